//! Settings every AWS export (Kinesis, Firehose, S3) has: region, endpoint and credentials.
//! Pure data: resolving credentials (the environment, the shared credentials file, the AWS IoT
//! credentials provider) is the connectors' business.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::export::ExportConfigError;
use super::sink_settings::check_http_url;

/// What a Debug output shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// e.g. `eu-west-1`. Default: `AWS_REGION` / `AWS_DEFAULT_REGION` from Ferry's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Overrides the service endpoint (VPC endpoints, local emulators), e.g. `http://127.0.0.1:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Default: the environment, then the shared credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSettings>,
}

impl AwsSettings {
    /// Checks what needs no environment; keys are relative to the settings object.
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        if self.region.as_deref() == Some("") {
            return Err(ExportConfigError::new(
                "region",
                "must not be empty (omit it to use AWS_REGION)",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            check_http_url(endpoint)
                .map_err(|reason| ExportConfigError::new("endpoint", reason))?;
        }
        if let Some(c) = &self.credentials {
            c.validate().map_err(|e| e.within("credentials"))?;
        }
        Ok(())
    }
}

/// Where an AWS sink's credentials come from: static keys, a profile of the shared
/// credentials file, or the AWS IoT credentials provider. Without any, the environment.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// A profile of the shared credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The shared credentials file; default `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Temporary credentials from the AWS IoT credentials provider (device certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot: Option<IotSettings>,
}

impl CredentialsSettings {
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        let pair = "access_key_id and secret_access_key go together";
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => return Err(ExportConfigError::new("secret_access_key", pair)),
            (None, Some(_)) => return Err(ExportConfigError::new("access_key_id", pair)),
            _ => {}
        }
        if let Some(iot) = &self.iot {
            iot.validate().map_err(|e| e.within("iot"))?;
        }
        Ok(())
    }
}

/// The secret key and the session token never reach a log line.
impl fmt::Debug for CredentialsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| REDACTED);
        f.debug_struct("CredentialsSettings")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("profile", &self.profile)
            .field("credentials_file", &self.credentials_file)
            .field("iot", &self.iot)
            .finish()
    }
}

/// The AWS IoT credentials provider: the device certificate is exchanged for temporary
/// credentials through a role alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IotSettings {
    /// `{prefix}.credentials.iot.{region}.amazonaws.com` (`https://` optional).
    pub endpoint: String,
    pub role_alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<String>,
    /// The device certificate (PEM) and its key, as used for AWS IoT MQTT.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA for the endpoint's certificate; default: the Mozilla roots built into Ferry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl IotSettings {
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        for (key, value) in [
            ("endpoint", &self.endpoint),
            ("role_alias", &self.role_alias),
        ] {
            if value.trim().is_empty() {
                return Err(ExportConfigError::new(key, "must not be empty"));
            }
        }
        Ok(())
    }
}
