//! S3 sink: each batch becomes one object, the records' payloads concatenated (`raw`) or one
//! per line (`newline`), optionally gzipped. Objects larger than `multipart_threshold_bytes`
//! go up in parts (multipart upload).
//!
//! The key is `{key_prefix}{first sequence number}-{last sequence number}{.ndjson|.bin}[.gz]`,
//! with these placeholders in `key_prefix`, taken from the batch's first record (so a resent
//! batch overwrites its own object instead of adding a duplicate): `{stream}`, `{yyyy}`, `{MM}`,
//! `{dd}`, `{HH}`, `{mm}` (UTC).
//!
//! Settings: `bucket` (required), `key_prefix` (`ferry/{stream}/{yyyy}/{MM}/{dd}/{HH}/`), `format`
//! (`newline` | `raw`), `gzip` (false), `max_batch_records` (10000), `max_batch_bytes` (16 MiB),
//! `multipart_threshold_bytes` (8 MiB), `part_size_bytes` (5 MiB, S3's minimum), plus the AWS
//! settings. Requests are path-style (`{endpoint}/{bucket}/{key}`).

use super::civil_time::civil;
use std::io::Write;

use ferry_stream_manager::definition::{S3Format, S3Settings};
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkError, SinkLimits};
use ferry_stream_manager::Record;
use reqwest::Method;

use super::aws::{classify_error, AwsClient, SinkEnv};
use super::SinkConfigError;

pub struct S3Sink {
    client: AwsClient,
    settings: S3Settings,
    stream: String,
}

pub fn render_prefix(template: &str, stream: &str, ms: i64) -> String {
    let t = civil(ms);
    template
        .replace("{stream}", stream)
        .replace("{yyyy}", &format!("{:04}", t.year))
        .replace("{MM}", &format!("{:02}", t.month))
        .replace("{dd}", &format!("{:02}", t.day))
        .replace("{HH}", &format!("{:02}", t.hour))
        .replace("{mm}", &format!("{:02}", t.minute))
}

impl S3Sink {
    pub fn new(
        settings: &S3Settings,
        stream: &str,
        env: &SinkEnv,
    ) -> Result<S3Sink, SinkConfigError> {
        settings.validate().map_err(|e| e.within("settings"))?;
        Ok(S3Sink {
            // Without an endpoint: https://s3.{region}.amazonaws.com, path-style.
            client: AwsClient::new(&settings.aws, "s3", env)?,
            settings: settings.clone(),
            stream: stream.to_owned(),
        })
    }

    fn object(&self, records: &[Record]) -> Result<(String, Vec<u8>), SinkError> {
        let mut body = Vec::new();
        for r in records {
            body.extend_from_slice(&r.payload);
            if self.settings.format == S3Format::Newline {
                body.push(b'\n');
            }
        }
        let first = records.first().map_or(0, |r| r.sequence_number);
        let last = records.last().map_or(0, |r| r.sequence_number);
        let ts = records.first().map_or(0, |r| r.timestamp_ms);
        let ext = match self.settings.format {
            S3Format::Newline => "ndjson",
            S3Format::Raw => "bin",
        };
        let mut key = format!(
            "{}{first:020}-{last:020}.{ext}",
            render_prefix(&self.settings.key_prefix, &self.stream, ts)
        );
        if self.settings.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&body)
                .and_then(|_| gz.finish())
                .map(|b| body = b)
                .map_err(|e| SinkError::Permanent {
                    reason: format!("gzip: {e}"),
                })?;
            key.push_str(".gz");
        }
        Ok((key, body))
    }

    fn url(&self, key: &str, query: &str) -> String {
        format!(
            "{}/{}/{}{query}",
            self.client.endpoint, self.settings.bucket, key
        )
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, SinkError> {
        let resp = self.client.send(method, url, &[], body, true).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        Err(classify_error(
            status,
            &resp.text().await.unwrap_or_default(),
        ))
    }

    async fn multipart(&self, key: &str, body: Vec<u8>) -> Result<(), SinkError> {
        let resp = self
            .call(Method::POST, &self.url(key, "?uploads"), Vec::new())
            .await?;
        let text = resp.text().await.unwrap_or_default();
        let upload_id = between(&text, "<UploadId>", "</UploadId>")
            .ok_or_else(|| SinkError::Retryable {
                reason: "CreateMultipartUpload: no UploadId in the answer".into(),
                retry_after: None,
            })?
            .to_string();
        let upload_id = encode_query(&upload_id);
        let result = self.upload_parts(key, &upload_id, &body).await;
        if result.is_err() {
            // Best effort: an abandoned upload only costs storage until S3's lifecycle rules.
            let _ = self
                .call(
                    Method::DELETE,
                    &self.url(key, &format!("?uploadId={upload_id}")),
                    Vec::new(),
                )
                .await;
        }
        result
    }

    async fn upload_parts(&self, key: &str, upload_id: &str, body: &[u8]) -> Result<(), SinkError> {
        let mut etags = Vec::new();
        for (i, part) in body
            .chunks(self.settings.part_size_bytes as usize)
            .enumerate()
        {
            let n = i + 1;
            let resp = self
                .call(
                    Method::PUT,
                    &self.url(key, &format!("?partNumber={n}&uploadId={upload_id}")),
                    part.to_vec(),
                )
                .await?;
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            etags.push(format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        let xml = format!(
            "<CompleteMultipartUpload>{}</CompleteMultipartUpload>",
            etags.concat()
        );
        let resp = self
            .call(
                Method::POST,
                &self.url(key, &format!("?uploadId={upload_id}")),
                xml.into_bytes(),
            )
            .await?;
        // S3 can answer 200 with an error document here.
        let text = resp.text().await.unwrap_or_default();
        if text.contains("<Error>") {
            return Err(classify_error(500, &text));
        }
        Ok(())
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay), as SigV4 canonicalises it.
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(text: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = text.find(a)? + a.len();
    let end = text[start..].find(b)? + start;
    Some(&text[start..end])
}

impl Sink for S3Sink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: self.settings.max_batch_records,
            max_bytes: self.settings.max_batch_bytes,
            max_record_bytes: self.settings.max_batch_bytes,
        }
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let (key, body) = self.object(&batch.records)?;
            if body.len() as u64 > self.settings.multipart_threshold_bytes {
                return self.multipart(&key, body).await;
            }
            self.call(Method::PUT, &self.url(&key, ""), body)
                .await
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefixes_use_the_utc_time_of_the_batch() {
        // 2026-11-23T21:08:05Z
        let ms = 1_795_468_085_000;
        assert_eq!(
            render_prefix("{stream}/{yyyy}/{MM}/{dd}/{HH}/{mm}/", "s", ms),
            "s/2026/11/23/21/08/"
        );
        assert_eq!(
            render_prefix("x/{yyyy}-{MM}-{dd}", "s", 951_782_400_000),
            "x/2000-02-29"
        );
    }
}
