//! AWS credentials for the sinks: static in the export's settings, from Ferry's environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), or from the shared
//! credentials file and a profile, or from the AWS IoT credentials provider (see iot.rs). The environment reaches the library as data ([`SinkEnv`]):
//! libraries do not read it themselves.

use std::collections::HashMap;
use std::path::PathBuf;

use ferry_stream_manager::export::SinkError;
use serde::Deserialize;

/// The process environment and home directory, captured by the binary and handed down.
#[derive(Debug, Clone, Default)]
pub struct SinkEnv {
    pub vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
}

impl SinkEnv {
    pub fn var(&self, k: &str) -> Option<String> {
        self.vars.get(k).filter(|v| !v.is_empty()).cloned()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSettings {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// A profile of the shared credentials file.
    #[serde(default)]
    pub profile: Option<String>,
    /// The shared credentials file; default `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Temporary credentials from the AWS IoT credentials provider (device certificate).
    #[serde(default)]
    pub iot: Option<super::iot::IotSettings>,
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Static(Keys),
    Iot(std::sync::Arc<super::iot::IotProvider>),
}

impl Credentials {
    /// Static settings first, then the environment, then the shared file and profile.
    pub fn resolve(
        settings: Option<&CredentialsSettings>,
        env: &SinkEnv,
    ) -> Result<Credentials, String> {
        if let Some(iot) = settings.and_then(|s| s.iot.clone()) {
            let provider = super::iot::IotProvider::new(iot)?;
            return Ok(Credentials {
                source: Source::Iot(std::sync::Arc::new(provider)),
            });
        }
        if let Some(s) = settings {
            match (&s.access_key_id, &s.secret_access_key) {
                (Some(a), Some(k)) => {
                    return Ok(Credentials::fixed(Keys {
                        access_key_id: a.clone(),
                        secret_access_key: k.clone(),
                        session_token: s.session_token.clone(),
                    }))
                }
                (None, None) => {}
                _ => {
                    return Err(
                        "credentials: access_key_id and secret_access_key go together".into(),
                    )
                }
            }
        }
        let profile = settings.and_then(|s| s.profile.clone());
        if profile.is_none() {
            if let (Some(a), Some(k)) = (
                env.var("AWS_ACCESS_KEY_ID"),
                env.var("AWS_SECRET_ACCESS_KEY"),
            ) {
                return Ok(Credentials::fixed(Keys {
                    access_key_id: a,
                    secret_access_key: k,
                    session_token: env.var("AWS_SESSION_TOKEN"),
                }));
            }
        }
        let file = settings
            .and_then(|s| s.credentials_file.clone())
            .or_else(|| env.var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
            .or_else(|| env.home.as_ref().map(|h| h.join(".aws/credentials")))
            .ok_or("credentials: none in settings or environment, and no home directory for ~/.aws/credentials")?;
        let profile = profile
            .or_else(|| env.var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("credentials: cannot read {}: {e}", file.display()))?;
        let keys = parse_profile(&text, &profile).ok_or_else(|| {
            format!(
                "credentials: no usable profile [{profile}] in {}",
                file.display()
            )
        })?;
        Ok(Credentials::fixed(keys))
    }

    fn fixed(keys: Keys) -> Credentials {
        Credentials {
            source: Source::Static(keys),
        }
    }

    /// The keys to sign with now (fetching or refreshing temporary ones when needed).
    pub async fn current(&self) -> Result<Keys, SinkError> {
        match &self.source {
            Source::Static(k) => Ok(k.clone()),
            Source::Iot(p) => p.keys().await,
        }
    }
}

/// Reads `[profile]` from an INI-style shared credentials file.
pub fn parse_profile(text: &str, profile: &str) -> Option<Keys> {
    let mut in_section = false;
    let mut values: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_section = name == profile
                || name
                    .strip_prefix("profile ")
                    .is_some_and(|n| n.trim() == profile);
            continue;
        }
        if in_section {
            if let Some((k, v)) = line.split_once('=') {
                values.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
    }
    Some(Keys {
        access_key_id: values.get("aws_access_key_id")?.clone(),
        secret_access_key: values.get("aws_secret_access_key")?.clone(),
        session_token: values
            .get("aws_session_token")
            .or_else(|| values.get("aws_security_token"))
            .cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_the_shared_credentials_file() {
        let text = "[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\n; comment\n[ferry]\naws_access_key_id = A2\naws_secret_access_key = S2\naws_session_token = T2\n";
        let d = parse_profile(text, "default").unwrap();
        assert_eq!((d.access_key_id.as_str(), d.session_token), ("A1", None));
        let f = parse_profile(text, "ferry").unwrap();
        assert_eq!(
            (f.secret_access_key.as_str(), f.session_token.as_deref()),
            ("S2", Some("T2"))
        );
        assert!(parse_profile(text, "missing").is_none());
    }

    #[test]
    fn static_settings_win_over_the_environment() {
        let env = SinkEnv {
            vars: HashMap::from([
                ("AWS_ACCESS_KEY_ID".into(), "ENV".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "E".into()),
            ]),
            home: None,
        };
        let s = CredentialsSettings {
            access_key_id: Some("CFG".into()),
            secret_access_key: Some("C".into()),
            session_token: None,
            profile: None,
            credentials_file: None,
            iot: None,
        };
        let key = |c: Credentials| match c.source {
            Source::Static(k) => k.access_key_id,
            Source::Iot(_) => String::new(),
        };
        assert_eq!(key(Credentials::resolve(Some(&s), &env).unwrap()), "CFG");
        assert_eq!(key(Credentials::resolve(None, &env).unwrap()), "ENV");
    }
}
