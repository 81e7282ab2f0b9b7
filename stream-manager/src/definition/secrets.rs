//! Secrets in export definitions: HTTP header values (an `authorization` header, an API key)
//! and AWS secret keys and session tokens. Answers to API clients show them as [`REDACTED`];
//! an update that sends [`REDACTED`] back (the usual read–modify–write) keeps the stored value
//! of the export with the same identifier, so a client never needs to know a secret to change
//! something else.

use super::aws_settings::{AwsSettings, CredentialsSettings, REDACTED};
use super::{ExportDefinition, ExportKind, StreamDefinition};

/// The definition with every secret replaced by [`REDACTED`].
pub fn redact_secrets(mut def: StreamDefinition) -> StreamDefinition {
    for e in &mut def.exports {
        for secret in secrets_mut(e) {
            *secret = REDACTED.to_string();
        }
    }
    def
}

/// Puts back, in `new`, the stored value of each secret sent as [`REDACTED`], taken from the
/// export of `old` with the same identifier. A redacted secret with nothing to restore stays as
/// sent (and then fails where it is used, saying so).
pub fn restore_secrets(new: &mut StreamDefinition, old: &StreamDefinition) {
    for e in &mut new.exports {
        let Some(before) = old.exports.iter().find(|o| o.identifier == e.identifier) else {
            continue;
        };
        let mut before = before.clone();
        let stored: Vec<(String, String)> = secret_slots(&mut before);
        for (slot, value) in secret_slots_mut(e) {
            if value == REDACTED {
                if let Some((_, v)) = stored.iter().find(|(s, _)| *s == slot) {
                    *value = v.clone();
                }
            }
        }
    }
}

fn secret_slots(e: &mut ExportDefinition) -> Vec<(String, String)> {
    secret_slots_mut(e)
        .into_iter()
        .map(|(slot, v)| (slot, v.clone()))
        .collect()
}

fn secrets_mut(e: &mut ExportDefinition) -> Vec<&mut String> {
    secret_slots_mut(e).into_iter().map(|(_, v)| v).collect()
}

/// Every secret of an export, named by where it sits (`headers.authorization`, ...).
fn secret_slots_mut(e: &mut ExportDefinition) -> Vec<(String, &mut String)> {
    match &mut e.kind {
        ExportKind::Http(h) => h
            .headers
            .iter_mut()
            .map(|(k, v)| (format!("headers.{}", k.to_ascii_lowercase()), v))
            .collect(),
        ExportKind::Kinesis(s) => aws_secrets(&mut s.aws),
        ExportKind::Firehose(s) => aws_secrets(&mut s.aws),
        ExportKind::S3(s) => aws_secrets(&mut s.aws),
        ExportKind::S3Task(s) => aws_secrets(&mut s.aws),
    }
}

fn aws_secrets(aws: &mut AwsSettings) -> Vec<(String, &mut String)> {
    let Some(CredentialsSettings {
        secret_access_key,
        session_token,
        ..
    }) = aws.credentials.as_mut()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(v) = secret_access_key.as_mut() {
        out.push(("credentials.secret_access_key".to_string(), v));
    }
    if let Some(v) = session_token.as_mut() {
        out.push(("credentials.session_token".to_string(), v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: serde_json::Value) -> StreamDefinition {
        serde_json::from_value(json).unwrap()
    }

    fn with_secrets() -> StreamDefinition {
        def(serde_json::json!({"name": "s", "exports": [
            {"identifier": "h", "kind": "http", "settings": {"url": "http://x/",
                "headers": {"Authorization": "Bearer hunter2"}}},
            {"identifier": "k", "kind": "kinesis", "settings": {"stream_name": "k", "region": "eu-west-1",
                "credentials": {"access_key_id": "AKIA1", "secret_access_key": "s3cr3t", "session_token": "tok"}}}
        ]}))
    }

    #[test]
    fn answers_show_no_secret() {
        let shown = serde_json::to_string(&redact_secrets(with_secrets())).unwrap();
        for secret in ["hunter2", "s3cr3t", "\"tok\""] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("AKIA1"), "a key id is not a secret: {shown}");
        assert!(shown.contains(REDACTED));
    }

    #[test]
    fn a_redacted_secret_sent_back_keeps_the_stored_one() {
        let stored = with_secrets();
        let mut sent = redact_secrets(stored.clone());
        // The client changes something else and sends the answer it got back.
        sent.exports[0].priority = 3;
        restore_secrets(&mut sent, &stored);
        let mut expected = stored;
        expected.exports[0].priority = 3;
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_new_secret_replaces_the_stored_one() {
        let stored = with_secrets();
        let mut sent = stored.clone();
        if let ExportKind::Http(h) = &mut sent.exports[0].kind {
            h.headers
                .insert("Authorization".into(), "Bearer new".into());
        }
        let expected = sent.clone();
        restore_secrets(&mut sent, &stored);
        assert_eq!(sent, expected);
    }
}
