//! HTTP sink: POSTs a batch as newline-delimited JSON (default) or a JSON array of records, each
//! `{"sequence_number", "timestamp_ms", "metadata", "payload"}` (`payload_base64` instead of
//! `payload` when the payload is not valid UTF-8).
//! 2xx commits; 408, 429 and 5xx are retried (honouring `Retry-After` in seconds); other 4xx
//! are permanent; network errors and timeouts are retried.
//!
//! Settings: `url` (required), `format` (`ndjson` | `json_array`), `compression` (`none` |
//! `gzip`), `headers` (name → value), `timeout_ms` (30000), `max_batch_records` (500),
//! `max_batch_bytes` (5 MiB), `max_record_bytes` (1 MiB).
//!
//! One client per sink: its connections are kept alive and reused (each answer is read to its
//! end, which is what gives a connection back to the pool), and over https a sink that offers
//! HTTP/2 (ALPN) gets all the batches in flight multiplexed on one connection.

use std::io::Write;
use std::time::Duration;

use ferry_stream_manager::definition::{HttpCompression, HttpFormat, HttpSettings};
use ferry_stream_manager::export::{Batch, ProbeFuture, SendFuture, Sink, SinkError, SinkLimits};
use ferry_stream_manager::Record;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};

use super::SinkConfigError;
use crate::json::write_export_json;

/// The most of an answer's body read to keep its connection: a sink that answers with more is
/// unusual, and its connection is closed instead.
const MAX_ANSWER_DRAIN_BYTES: usize = 64 * 1024;

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

    /// The request body for `records`, compressed if the settings say so.
    fn body(&self, records: &[Record]) -> bytes::Bytes {
        let json = self.json(records);
        match self.settings.compression {
            HttpCompression::None => json.into(),
            HttpCompression::Gzip => gzip(&json).into(),
        }
    }

    fn json(&self, records: &[Record]) -> Vec<u8> {
        let mut out = Vec::with_capacity(records.len() * 256);
        match self.settings.format {
            HttpFormat::Ndjson => {
                for r in records {
                    write_export_json(&mut out, r);
                    out.push(b'\n');
                }
            }
            HttpFormat::JsonArray => {
                out.push(b'[');
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_export_json(&mut out, r);
                }
                out.push(b']');
            }
        }
        out
    }
}

/// gzip at flate2's default level (6): the links this is for are slow and often billed per
/// byte, and level 6 keeps up with them on a small CPU (README, *Benchmarks*).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Reads what is left of an answer, up to [`MAX_ANSWER_DRAIN_BYTES`], so that its connection
/// goes back to the pool instead of being closed with the answer half read.
async fn drain(mut resp: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = resp.chunk().await {
        read += chunk.len();
        if read > MAX_ANSWER_DRAIN_BYTES {
            return;
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
        Some(self.body(records))
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let body = match &batch.body {
                Some(b) => b.clone(),
                None => self.body(&batch.records),
            };
            let mut request = self
                .client
                .post(&self.settings.url)
                .header(CONTENT_TYPE, self.content_type());
            if self.settings.compression == HttpCompression::Gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            let resp = request
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
            let status = resp.status().as_u16();
            drain(resp).await;
            match classify(status, retry_after.as_deref()) {
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
mod tests;
