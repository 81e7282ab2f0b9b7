//! `[greengrass.exports]`: what exports defined through the Greengrass port get that the
//! protocol cannot say. An SDK's `KinesisConfig` names a Kinesis stream but no region, endpoint
//! or credentials (Greengrass takes them from its token exchange service); Ferry copies these
//! into each export the port creates, so the stored export is complete and the HTTP API shows
//! it as any other.
//!
//! ```toml
//! [greengrass.exports]
//! region = "eu-west-1"                  # default: AWS_REGION / AWS_DEFAULT_REGION
//! credentials = { profile = "edge" }    # default: the environment, then ~/.aws/credentials
//! kinesis_endpoint = "https://…"        # default: https://kinesis.{region}.amazonaws.com
//! s3_endpoint = "https://…"             # default: https://s3.{region}.amazonaws.com
//! s3_input_dirs = ["/var/lib/app/out"]  # S3 tasks may only upload files under these; default: any
//! ```
//! Changing them affects exports created afterwards; existing exports keep what they got.

use std::path::PathBuf;

use ferry_stream_manager::definition::{check_http_url, AwsSettings, CredentialsSettings};
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    #[serde(default)]
    pub region: Option<String>,
    /// Debug output redacts the secret key and session token.
    #[serde(default)]
    pub credentials: Option<CredentialsSettings>,
    #[serde(default)]
    pub kinesis_endpoint: Option<String>,
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    #[serde(default)]
    pub s3_input_dirs: Vec<PathBuf>,
}

impl ExportSettings {
    /// The AWS settings of a new export that uses `endpoint`.
    pub fn aws(&self, endpoint: Option<&String>) -> AwsSettings {
        AwsSettings {
            region: self.region.clone(),
            endpoint: endpoint.cloned(),
            credentials: self.credentials.clone(),
        }
    }

    /// Checks the section; `Err` is (key within it, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (key, url) in [
            ("kinesis_endpoint", &self.kinesis_endpoint),
            ("s3_endpoint", &self.s3_endpoint),
        ] {
            if let Some(url) = url {
                check_http_url(url).map_err(|reason| (key.to_string(), reason))?;
            }
        }
        if let Some(dir) = self.s3_input_dirs.iter().find(|d| !d.is_absolute()) {
            return Err((
                "s3_input_dirs".into(),
                format!("{} is not an absolute path", dir.display()),
            ));
        }
        self.aws(None).validate().map_err(|e| (e.key, e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_become_each_new_exports_aws_settings() {
        let s: ExportSettings = serde_json::from_value(serde_json::json!({
            "region": "eu-west-1", "kinesis_endpoint": "http://127.0.0.1:5000",
            "credentials": {"access_key_id": "A", "secret_access_key": "S"}
        }))
        .unwrap();
        let aws = s.aws(s.kinesis_endpoint.as_ref());
        assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(s.validate().is_ok());
        assert!(
            !format!("{s:?}").contains("\"S\""),
            "the secret stays out of Debug"
        );
    }

    #[test]
    fn a_bad_endpoint_a_relative_input_dir_or_half_a_key_pair_is_refused_naming_the_key() {
        let bad = |v: serde_json::Value| {
            serde_json::from_value::<ExportSettings>(v)
                .unwrap()
                .validate()
                .unwrap_err()
                .0
        };
        assert_eq!(
            bad(serde_json::json!({"s3_endpoint": "ftp://x"})),
            "s3_endpoint"
        );
        assert_eq!(
            bad(serde_json::json!({"s3_input_dirs": ["out"]})),
            "s3_input_dirs"
        );
        assert_eq!(
            bad(serde_json::json!({"credentials": {"access_key_id": "A"}})),
            "credentials.secret_access_key"
        );
    }
}
