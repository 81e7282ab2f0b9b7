//! AWS credentials for the sinks: static in the export's settings, from Ferry's environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), or from the shared
//! credentials file and a profile, or from the AWS IoT credentials provider (see iot.rs). The
//! environment reaches the library as data ([`SinkEnv`]): libraries do not read it themselves.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use ferry_stream_manager::export::SinkError;

pub use ferry_stream_manager::definition::CredentialsSettings;

use super::iot::{IotError, IotProvider};
use crate::sinks::SinkConfigError;

/// The process environment and home directory, captured by the binary and handed down.
#[derive(Debug, Clone, Default)]
pub struct SinkEnv {
    pub vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
    /// The daemon's streams, for sinks that write into them (the S3 task's status stream).
    pub local_streams: Option<crate::sinks::local_streams::LocalStreams>,
}

impl SinkEnv {
    /// The environment `vars`, with the home directory taken from their `HOME`.
    pub fn from_vars(vars: HashMap<String, String>) -> SinkEnv {
        let home = vars
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        SinkEnv {
            vars,
            home,
            local_streams: None,
        }
    }

    /// The same environment, with the daemon's streams for sinks that write into them.
    pub fn with_local_streams(
        mut self,
        manager: std::sync::Arc<ferry_stream_manager::StreamManager>,
    ) -> SinkEnv {
        self.local_streams = Some(crate::sinks::local_streams::LocalStreams::new(manager));
        self
    }

    pub fn var(&self, k: &str) -> Option<String> {
        self.vars.get(k).filter(|v| !v.is_empty()).cloned()
    }
}

/// Why no credentials could be resolved. [`CredentialsError::key`] names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials: access_key_id and secret_access_key go together")]
    IncompleteKeys,
    #[error("credentials: none in settings or environment, and no home directory for ~/.aws/credentials")]
    NoSource,
    #[error("credentials: cannot read {}: {source}", path.display())]
    UnreadableFile {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials: no usable profile [{profile}] in {}", path.display())]
    NoProfile {
        key: &'static str,
        profile: String,
        path: PathBuf,
    },
    #[error(transparent)]
    Iot(#[from] IotError),
}

impl CredentialsError {
    /// The setting at fault, relative to the export.
    pub fn key(&self) -> &'static str {
        match self {
            CredentialsError::UnreadableFile { key, .. }
            | CredentialsError::NoProfile { key, .. } => key,
            CredentialsError::Iot(e) => e.key(),
            CredentialsError::IncompleteKeys | CredentialsError::NoSource => "settings.credentials",
        }
    }
}

impl From<CredentialsError> for SinkConfigError {
    fn from(e: CredentialsError) -> Self {
        SinkConfigError::new(e.key(), e.to_string())
    }
}

#[derive(Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The secret key and the session token never reach a log line.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = ferry_stream_manager::definition::REDACTED;
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| redacted),
            )
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Static(Keys),
    Iot(std::sync::Arc<IotProvider>),
}

impl Credentials {
    /// Static settings first, then the environment, then the shared file and profile.
    pub fn resolve(
        settings: Option<&CredentialsSettings>,
        env: &SinkEnv,
    ) -> Result<Credentials, CredentialsError> {
        if let Some(iot) = settings.and_then(|s| s.iot.clone()) {
            let provider = IotProvider::new(iot)?;
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
                _ => return Err(CredentialsError::IncompleteKeys),
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
        let configured_file = settings.and_then(|s| s.credentials_file.clone());
        let file_key = if configured_file.is_some() {
            "settings.credentials.credentials_file"
        } else {
            "settings.credentials"
        };
        let file = configured_file
            .or_else(|| env.var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
            .or_else(|| env.home.as_ref().map(|h| h.join(".aws/credentials")))
            .ok_or(CredentialsError::NoSource)?;
        let profile_key = if profile.is_some() {
            "settings.credentials.profile"
        } else {
            "settings.credentials"
        };
        let profile = profile
            .or_else(|| env.var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let text =
            std::fs::read_to_string(&file).map_err(|source| CredentialsError::UnreadableFile {
                key: file_key,
                path: file.clone(),
                source,
            })?;
        let keys = parse_profile(&text, &profile).ok_or_else(|| CredentialsError::NoProfile {
            key: profile_key,
            profile,
            path: file.clone(),
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
            local_streams: None,
        };
        let s = CredentialsSettings {
            access_key_id: Some("CFG".into()),
            secret_access_key: Some("C".into()),
            ..CredentialsSettings::default()
        };
        let key = |c: Credentials| match c.source {
            Source::Static(k) => k.access_key_id,
            Source::Iot(_) => String::new(),
        };
        assert_eq!(key(Credentials::resolve(Some(&s), &env).unwrap()), "CFG");
        assert_eq!(key(Credentials::resolve(None, &env).unwrap()), "ENV");
    }

    #[test]
    fn an_unreadable_credentials_file_names_the_setting_and_the_path() {
        let s = CredentialsSettings {
            credentials_file: Some("/nonexistent/ferry-credentials".into()),
            ..CredentialsSettings::default()
        };
        let e = Credentials::resolve(Some(&s), &SinkEnv::default()).unwrap_err();
        assert_eq!(e.key(), "settings.credentials.credentials_file");
        assert!(
            e.to_string().contains("/nonexistent/ferry-credentials"),
            "{e}"
        );
    }

    #[test]
    fn keys_keep_their_secrets_out_of_debug_output() {
        let k = Keys {
            access_key_id: "AKID".into(),
            secret_access_key: "s3cr3t".into(),
            session_token: Some("t0k3n".into()),
        };
        let out = format!("{:?}", Credentials::fixed(k));
        assert!(out.contains("AKID") && !out.contains("s3cr3t") && !out.contains("t0k3n"));
    }
}
