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

pub use credentials::{Credentials, CredentialsError, CredentialsSettings, SinkEnv};
pub use ferry_stream_manager::definition::AwsSettings;

use super::SinkConfigError;

/// A signed-request client for one service.
pub struct AwsClient {
    pub http: reqwest::Client,
    pub region: String,
    pub endpoint: String,
    service: &'static str,
    credentials: Credentials,
}

impl AwsClient {
    /// Resolves the region (settings, then `AWS_REGION`, then `AWS_DEFAULT_REGION`), the
    /// endpoint (default `https://{service}.{region}.amazonaws.com`) and the credentials.
    pub fn new(
        settings: &AwsSettings,
        service: &'static str,
        env: &SinkEnv,
    ) -> Result<AwsClient, SinkConfigError> {
        let region = settings
            .region
            .clone()
            .or_else(|| env.var("AWS_REGION"))
            .or_else(|| env.var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                SinkConfigError::new(
                    "settings.region",
                    format!("{service} sink: no region (set settings.region or AWS_REGION)"),
                )
            })?;
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{service}.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        let credentials = Credentials::resolve(settings.credentials.as_ref(), env)?;
        // HTTP/1.1 as before reqwest's http2 feature was turned on (for the HTTP sink): the
        // AWS sinks were not tested over HTTP/2.
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .http1_only()
            .build()
            .map_err(|e| SinkConfigError::new("settings", format!("{service} sink: {e}")))?;
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

/// AWS error codes, of a whole call or of one record, that retrying can fix: throttling,
/// service-side failures and timeouts, and an expired token (temporary credentials are fetched
/// again before the next call). Any other code is permanent.
const RETRYABLE_CODES: &[&str] = &[
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

/// After a batch call that reported per-record failures (`results`: the response's entries,
/// in request order, for `count` records): `Partial` with the indices of the failed records
/// for the exporter to send again, or `Permanent` if one failure cannot be fixed by retrying.
/// `Ok` when no entry carries an error code after all.
pub fn per_record_failures(
    operation: &str,
    count: usize,
    results: &[serde_json::Value],
) -> Result<(), SinkError> {
    let mut failed = Vec::new();
    let mut first_code = "";
    for (i, result) in results.iter().take(count).enumerate() {
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
        if failed.is_empty() {
            first_code = code;
        }
        failed.push(i);
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(SinkError::Partial {
        reason: format!(
            "{operation} refused {} of {count} records ({first_code})",
            failed.len()
        ),
        failed,
    })
}

/// Whether a per-record or per-call error code is worth retrying.
pub fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
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

    #[test]
    fn per_record_failures_are_reported_by_index_for_the_exporter_to_retry() {
        let ok = serde_json::json!({"SequenceNumber": "1"});
        let throttled = serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"});
        let results = [ok.clone(), throttled.clone(), ok.clone(), throttled];
        match per_record_failures("PutRecords", 4, &results) {
            Err(SinkError::Partial { failed, reason }) => {
                assert_eq!(failed, vec![1, 3]);
                assert!(reason.contains("2 of 4"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(per_record_failures("PutRecords", 1, &results[..1]), Ok(()));
        let invalid =
            serde_json::json!({"ErrorCode": "InvalidArgumentException", "ErrorMessage": "no"});
        assert!(matches!(
            per_record_failures("PutRecordBatch", 2, &[ok, invalid]),
            Err(SinkError::Permanent { .. })
        ));
    }
}
