//! HTTP sink: POSTs a batch as newline-delimited JSON (default) or a JSON array of records, each
//! `{"sequence_number", "timestamp_ms", "metadata", "payload"}` (`payload_base64` instead of
//! `payload` when the payload is not valid UTF-8).
//! 2xx commits; 408, 429 and 5xx are retried (honouring `Retry-After` in seconds); other 4xx
//! are permanent; network errors and timeouts are retried.
//!
//! Settings: `url` (required), `format` (`ndjson` | `json_array`), `headers` (name → value),
//! `timeout_ms` (30000), `max_batch_records` (500), `max_batch_bytes` (5 MiB),
//! `max_record_bytes` (1 MiB).

use std::time::Duration;

use ferry_stream_manager::definition::{HttpFormat, HttpSettings};
use ferry_stream_manager::export::{Batch, ProbeFuture, SendFuture, Sink, SinkError, SinkLimits};
use ferry_stream_manager::Record;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use super::SinkConfigError;
use crate::json::write_export_json;

pub struct HttpSink {
    settings: HttpSettings,
    client: reqwest::Client,
    /// The URL's host (without IPv6 brackets) and port, for [`Sink::probe`].
    host: String,
    port: u16,
}

impl HttpSink {
    pub fn new(settings: &HttpSettings) -> Result<HttpSink, SinkConfigError> {
        settings.validate().map_err(|e| e.within("settings"))?;
        let s = settings.clone();
        let url = reqwest::Url::parse(&s.url)
            .map_err(|e| SinkConfigError::new("settings.url", format!("{:?}: {e}", s.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SinkConfigError::new(
                "settings.url",
                format!("{:?} must be http or https", s.url),
            ));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let bad = |e: &dyn std::fmt::Display| {
                SinkConfigError::new(format!("settings.headers.{k}"), e.to_string())
            };
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(&e))?;
            let value = HeaderValue::from_str(v).map_err(|e| bad(&e))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_millis(s.timeout_ms))
            .build()
            .map_err(|e| SinkConfigError::new("settings", format!("http sink: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(HttpSink {
            settings: s,
            client,
            host,
            port,
        })
    }

    fn content_type(&self) -> &'static str {
        match self.settings.format {
            HttpFormat::Ndjson => "application/x-ndjson",
            HttpFormat::JsonArray => "application/json",
        }
    }

    /// reqwest's own message names only the URL ("error sending request for url ..."); the
    /// cause that says what to fix is in its source chain.
    fn transport_error(&self, e: &reqwest::Error) -> String {
        let url = &self.settings.url;
        // is_timeout is also true for an operating-system timeout in the chain, so the chain
        // follows in either case.
        let mut reason = if e.is_timeout() {
            format!(
                "POST {url}: timed out (timeout_ms = {})",
                self.settings.timeout_ms
            )
        } else {
            format!("POST {url}: {e}")
        };
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            reason.push_str(": ");
            reason.push_str(&c.to_string());
            cause = c.source();
        }
        reason
    }

    fn body(&self, records: &[Record]) -> (Vec<u8>, &'static str) {
        match self.settings.format {
            HttpFormat::Ndjson => {
                let mut out = Vec::with_capacity(records.len() * 256);
                for r in records {
                    write_export_json(&mut out, r);
                    out.push(b'\n');
                }
                (out, "application/x-ndjson")
            }
            HttpFormat::JsonArray => {
                let mut out = Vec::with_capacity(records.len() * 256);
                out.push(b'[');
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_export_json(&mut out, r);
                }
                out.push(b']');
                (out, "application/json")
            }
        }
    }
}

/// Classifies a response status: `None` for success.
pub fn classify(status: u16, retry_after: Option<&str>) -> Option<SinkError> {
    let reason = format!("HTTP {status}");
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(SinkError::Retryable {
            reason,
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }),
        _ => Some(SinkError::Permanent { reason }),
    }
}

impl Sink for HttpSink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: self.settings.max_batch_records,
            max_bytes: self.settings.max_batch_bytes,
            max_record_bytes: self.settings.max_record_bytes,
        }
    }

    fn encode(&self, records: &[Record]) -> Option<bytes::Bytes> {
        Some(self.body(records).0.into())
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let (body, content_type) = match &batch.body {
                Some(b) => (b.clone(), self.content_type()),
                None => {
                    let (b, t) = self.body(&batch.records);
                    (bytes::Bytes::from(b), t)
                }
            };
            let resp = self
                .client
                .post(&self.settings.url)
                .header(CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .map_err(|e| SinkError::Retryable {
                    reason: self.transport_error(&e),
                    retry_after: None,
                })?;
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match classify(resp.status().as_u16(), retry_after.as_deref()) {
                None => Ok(()),
                Some(e) => Err(e),
            }
        })
    }

    /// A TCP connect to the URL's host and port (through DNS for a name): whether the sink
    /// takes connections, for a few packets instead of a request with a batch in it.
    fn probe(&self) -> Option<ProbeFuture<'_>> {
        Some(Box::pin(async move {
            tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .is_ok()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_http_clients_expect() {
        assert!(classify(204, None).is_none());
        assert_eq!(
            classify(429, Some("7")),
            Some(SinkError::Retryable {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            })
        );
        assert!(matches!(
            classify(503, None),
            Some(SinkError::Retryable {
                retry_after: None,
                ..
            })
        ));
        assert!(matches!(
            classify(400, None),
            Some(SinkError::Permanent { .. })
        ));
        assert!(matches!(
            classify(404, None),
            Some(SinkError::Permanent { .. })
        ));
    }

    #[tokio::test]
    async fn the_probe_tells_a_listening_sink_from_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink =
            HttpSink::new(&HttpSettings::new(format!("http://127.0.0.1:{port}/in"))).unwrap();
        assert!(sink.probe().unwrap().await, "listening");
        drop(listener);
        assert!(!sink.probe().unwrap().await, "closed");
        let v6 = HttpSink::new(&HttpSettings::new("https://[::1]/in")).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
    }

    #[test]
    fn settings_are_checked() {
        let bad = HttpSettings::new("ftp://x");
        let e = HttpSink::new(&bad).err().unwrap();
        assert_eq!(e.key, "settings.url");
        assert!(e.reason.contains("http or https"), "{e}");
        let unknown = serde_json::json!({"identifier": "e", "kind": "http",
            "settings": {"url": "http://x", "verb": "PUT"}});
        let e = serde_json::from_value::<ferry_stream_manager::ExportDefinition>(unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("verb"), "{e}");
        let mut zero = HttpSettings::new("http://x");
        zero.max_record_bytes = 0;
        let e = HttpSink::new(&zero).err().unwrap();
        assert_eq!(e.key, "settings.max_record_bytes");
    }
}
