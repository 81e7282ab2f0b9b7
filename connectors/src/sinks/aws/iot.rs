//! The AWS IoT credentials provider: the device's X.509 certificate (mutual TLS) is exchanged
//! for temporary AWS credentials through a role alias, the way Greengrass does it:
//! `GET https://{endpoint}/role-aliases/{role_alias}/credentials` (header
//! `x-amzn-iot-thingname`), answered with
//! `{"credentials": {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}}`.
//! Credentials are cached and fetched again [`REFRESH_MARGIN`] before they expire.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_stream_manager::export::SinkError;
use serde::Deserialize;
use tokio::sync::Mutex;

pub use ferry_stream_manager::definition::IotSettings;

use super::credentials::Keys;

pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Why the provider cannot be set up. [`IotError::key`] names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum IotError {
    #[error("iot credentials: cannot read {}: {source}", path.display())]
    UnreadableFile {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("iot credentials: certificate and key: {0}")]
    Identity(#[source] reqwest::Error),
    #[error("iot credentials: {}: {source}", path.display())]
    Ca {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("iot credentials: {0}")]
    Client(#[source] reqwest::Error),
}

impl IotError {
    /// The setting at fault, relative to the export.
    pub fn key(&self) -> &'static str {
        match self {
            IotError::UnreadableFile { key, .. } => key,
            IotError::Identity(_) => "settings.credentials.iot.cert_file",
            IotError::Ca { .. } => "settings.credentials.iot.ca_file",
            IotError::Client(_) => "settings.credentials.iot",
        }
    }
}

pub struct IotProvider {
    settings: IotSettings,
    client: reqwest::Client,
    cached: Mutex<Option<(Keys, SystemTime)>>,
}

impl std::fmt::Debug for IotProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotProvider")
            .field("endpoint", &self.settings.endpoint)
            .finish()
    }
}

impl IotProvider {
    pub fn new(settings: IotSettings) -> Result<IotProvider, IotError> {
        let read = |key: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| IotError::UnreadableFile {
                key,
                path: path.clone(),
                source,
            })
        };
        let mut pem = read("settings.credentials.iot.cert_file", &settings.cert_file)?;
        pem.push(b'\n');
        pem.extend(read(
            "settings.credentials.iot.key_file",
            &settings.key_file,
        )?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(IotError::Identity)?;
        // HTTP/1.1, as before reqwest's http2 feature was turned on for the HTTP sink.
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .identity(identity)
            .http1_only()
            .timeout(Duration::from_secs(30));
        if let Some(ca) = &settings.ca_file {
            let cert =
                reqwest::Certificate::from_pem(&read("settings.credentials.iot.ca_file", ca)?)
                    .map_err(|source| IotError::Ca {
                        path: ca.clone(),
                        source,
                    })?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        let client = builder.build().map_err(IotError::Client)?;
        Ok(IotProvider {
            settings,
            client,
            cached: Mutex::new(None),
        })
    }

    /// Cached credentials, fetched again when they expire within [`REFRESH_MARGIN`].
    pub async fn keys(&self) -> Result<Keys, SinkError> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, expires)) = cached.as_ref() {
            if SystemTime::now() + REFRESH_MARGIN < *expires {
                return Ok(keys.clone());
            }
        }
        let (keys, expires) = self.fetch().await?;
        *cached = Some((keys.clone(), expires));
        Ok(keys)
    }

    async fn fetch(&self) -> Result<(Keys, SystemTime), SinkError> {
        let host = self
            .settings
            .endpoint
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let url = format!(
            "https://{host}/role-aliases/{}/credentials",
            self.settings.role_alias
        );
        let mut req = self.client.get(&url);
        if let Some(thing) = &self.settings.thing_name {
            req = req.header("x-amzn-iot-thingname", thing);
        }
        let retryable = |reason: String| SinkError::Retryable {
            reason,
            retry_after: None,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| retryable(format!("iot credentials: {url}: {e}")))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let reason = format!(
                "iot credentials: HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            );
            // 4xx: the certificate, policy or role alias is wrong; retrying will not fix it.
            return Err(if status.is_client_error() {
                SinkError::Permanent { reason }
            } else {
                retryable(reason)
            });
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Creds {
            access_key_id: String,
            secret_access_key: String,
            session_token: String,
            expiration: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            credentials: Creds,
        }
        let a: Answer = serde_json::from_str(&body)
            .map_err(|e| retryable(format!("iot credentials: unreadable answer: {e}")))?;
        let expires = parse_rfc3339(&a.credentials.expiration).ok_or_else(|| {
            retryable(format!(
                "iot credentials: unreadable expiration {:?}",
                a.credentials.expiration
            ))
        })?;
        let keys = Keys {
            access_key_id: a.credentials.access_key_id,
            secret_access_key: a.credentials.secret_access_key,
            session_token: Some(a.credentials.session_token),
        };
        Ok((keys, expires))
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s
        .trim()
        .strip_suffix('Z')
        .or_else(|| s.trim().strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let days = crate::sinks::civil_time::days_from_civil(y, m, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expirations_parse_as_utc() {
        let t = parse_rfc3339("2018-01-18T09:18:06Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_516_267_086
        );
        let f = parse_rfc3339("2026-11-23T21:08:05.123Z").unwrap();
        assert_eq!(
            f.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_468_085
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
