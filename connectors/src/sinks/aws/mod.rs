//! What the AWS sinks share: credentials, SigV4 signing (`aws-sigv4`), endpoints, and turning
//! AWS error responses into retryable or permanent sink errors.

pub mod credentials;
pub mod iot;

use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use ferry_stream_manager::export::SinkError;
use serde::Deserialize;

pub use credentials::{Credentials, CredentialsSettings, SinkEnv};

/// Settings every AWS sink has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// e.g. `eu-west-1`. Default: `AWS_REGION` / `AWS_DEFAULT_REGION` from Ferry's environment.
    #[serde(default)]
    pub region: Option<String>,
    /// Overrides the service endpoint (VPC endpoints, local emulators), e.g. `http://127.0.0.1:5000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub credentials: Option<CredentialsSettings>,
}

/// A signed-request client for one service.
pub struct AwsClient {
    pub http: reqwest::Client,
    pub region: String,
    pub endpoint: String,
    service: &'static str,
    credentials: Credentials,
}

impl AwsClient {
    pub fn new(
        settings: &AwsSettings,
        service: &'static str,
        env: &SinkEnv,
    ) -> Result<AwsClient, String> {
        let region = settings
            .region
            .clone()
            .or_else(|| env.var("AWS_REGION"))
            .or_else(|| env.var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                format!("{service} sink settings: no region (set settings.region or AWS_REGION)")
            })?;
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{service}.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        let credentials = Credentials::resolve(settings.credentials.as_ref(), env)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AwsClient {
            http,
            region,
            endpoint,
            service,
            credentials,
        })
    }

    /// Sends a signed request. `headers` are signed too; `s3` selects S3's signing variant.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        s3: bool,
    ) -> Result<reqwest::Response, SinkError> {
        let keys = self.credentials.current().await?;
        let signed = self.sign(keys, method.as_str(), url, headers, &body, s3)?;
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        req.body(body)
            .send()
            .await
            .map_err(|e| SinkError::Retryable {
                reason: format!("{} {url}: {e}", self.service),
                retry_after: None,
            })
    }

    fn sign(
        &self,
        keys: credentials::Keys,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        s3: bool,
    ) -> Result<Vec<(&'static str, String)>, SinkError> {
        let identity: Identity = aws_credential_types::Credentials::new(
            keys.access_key_id,
            keys.secret_access_key,
            keys.session_token,
            None,
            "ferry",
        )
        .into();
        let mut settings = SigningSettings::default();
        if s3 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let permanent = |e: &dyn std::fmt::Display| SinkError::Permanent {
            reason: format!("signing: {e}"),
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| permanent(&e))?
            .into();
        let req = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| permanent(&e))?;
        let (instructions, _) = sign(req, &params).map_err(|e| permanent(&e))?.into_parts();
        let (hdrs, _) = instructions.into_parts();
        Ok(hdrs
            .into_iter()
            .map(|h| (h.name(), h.value().to_string()))
            .collect())
    }

    /// Calls a JSON 1.1 API (`X-Amz-Target: {target}`) and returns the response body.
    pub async fn json_call(
        &self,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SinkError> {
        let url = format!("{}/", self.endpoint);
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let resp = self
            .send(
                reqwest::Method::POST,
                &url,
                &headers,
                body.to_string().into_bytes(),
                false,
            )
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status == 200 {
            return serde_json::from_str(&text).map_err(|e| SinkError::Retryable {
                reason: format!("{target}: unreadable response: {e}"),
                retry_after: None,
            });
        }
        Err(classify_error(status, &text))
    }
}

/// The AWS error code of a response body (JSON `__type`, or XML `<Code>`).
pub fn error_code(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(t) = v
            .get("__type")
            .or_else(|| v.get("code"))
            .and_then(|t| t.as_str())
        {
            let t = t.split(':').next().unwrap_or(t);
            return t.rsplit('#').next().unwrap_or(t).to_string();
        }
    }
    if let (Some(a), Some(b)) = (body.find("<Code>"), body.find("</Code>")) {
        if a + 6 <= b {
            return body[a + 6..b].to_string();
        }
    }
    String::new()
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "RequestThrottled",
    "PriorRequestNotComplete",
    "KMSThrottlingException",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalFailureException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredTokenException",
];

/// After a batch call that reported per-record failures: the entries to send again (those the
/// response marks failed, in their order), or a permanent error if one failure cannot be
/// fixed by retrying. `results` are the response's entries, in request order.
pub fn failed_entries<T>(
    operation: &str,
    pending: Vec<T>,
    results: &[serde_json::Value],
) -> Result<Vec<T>, SinkError> {
    let mut retry = Vec::new();
    for (entry, result) in pending.into_iter().zip(
        results
            .iter()
            .chain(std::iter::repeat(&serde_json::Value::Null)),
    ) {
        let Some(code) = result.get("ErrorCode").and_then(serde_json::Value::as_str) else {
            continue;
        };
        if !is_retryable_code(code) {
            return Err(SinkError::Permanent {
                reason: format!(
                    "{operation} refused a record: {code}: {}",
                    result["ErrorMessage"]
                ),
            });
        }
        retry.push(entry);
    }
    Ok(retry)
}

/// Whether a per-record or per-call error code is worth retrying.
pub fn is_retryable_code(code: &str) -> bool {
    THROTTLING.contains(&code)
}

pub fn classify_error(status: u16, body: &str) -> SinkError {
    let code = error_code(body);
    let reason = format!(
        "HTTP {status} {code}: {}",
        body.chars().take(300).collect::<String>()
    );
    if status >= 500 || status == 429 || is_retryable_code(&code) {
        SinkError::Retryable {
            reason,
            retry_after: None,
        }
    } else {
        SinkError::Permanent { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_json_and_xml_bodies() {
        assert_eq!(
            error_code(r#"{"__type":"com.amazon#ResourceNotFoundException:x","message":"m"}"#),
            "ResourceNotFoundException"
        );
        assert_eq!(
            error_code(
                "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"
            ),
            "SignatureDoesNotMatch"
        );
        assert!(matches!(
            classify_error(
                400,
                r#"{"__type":"ProvisionedThroughputExceededException"}"#
            ),
            SinkError::Retryable { .. }
        ));
        assert!(matches!(
            classify_error(403, "<Code>SignatureDoesNotMatch</Code>"),
            SinkError::Permanent { .. }
        ));
        assert!(matches!(
            classify_error(503, ""),
            SinkError::Retryable { .. }
        ));
    }
}
