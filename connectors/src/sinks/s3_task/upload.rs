//! Uploads one local file to S3: in one PUT up to `multipart_threshold_bytes`, otherwise as a
//! multipart upload (create, one part of `part_size_bytes` at a time read from the file, then
//! complete; on failure the upload is aborted so S3 keeps no parts). Memory is one part (or
//! one whole small file), never the whole large file. Requests are path-style
//! (`{endpoint}/{bucket}/{key}`) and signed with S3's SigV4 variant.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ferry_stream_manager::export::SinkError;
use reqwest::Method;

use crate::sinks::aws::{classify_error, AwsClient};

/// Where the file goes and with which metadata.
pub struct Target<'a> {
    pub bucket: &'a str,
    /// The resolved key (placeholders already rendered).
    pub key: &'a str,
    /// `x-amz-meta-*` headers (names lower-cased).
    pub metadata: Vec<(String, String)>,
}

/// How the file is cut.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
}

/// Why an upload failed, and whether cleaning up (aborting a multipart upload) failed too.
#[derive(Debug)]
pub struct UploadFailure {
    pub error: SinkError,
    pub cleanup: Option<String>,
}

impl From<SinkError> for UploadFailure {
    fn from(error: SinkError) -> Self {
        UploadFailure {
            error,
            cleanup: None,
        }
    }
}

/// The byte ranges of the parts of a file of `size` bytes (at least one part).
pub fn parts(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    let mut out = Vec::new();
    let mut at = 0;
    while at < size || out.is_empty() {
        let len = part_size.min(size - at);
        out.push((at, len));
        at += len;
        if len == 0 {
            break;
        }
    }
    out
}

/// Uploads `file` (of `size` bytes) to `target`.
pub async fn upload(
    client: &AwsClient,
    target: &Target<'_>,
    file: &Path,
    size: u64,
    sizes: Sizes,
) -> Result<(), UploadFailure> {
    let url = object_url(client, target);
    let headers: Vec<(&str, &str)> = target
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if size <= sizes.multipart_threshold_bytes {
        let body = read_range(file, 0, size).await?;
        call(client, Method::PUT, &url, &headers, body).await?;
        return Ok(());
    }
    let created = call(
        client,
        Method::POST,
        &format!("{url}?uploads"),
        &headers,
        Vec::new(),
    )
    .await?;
    let text = created.text().await.unwrap_or_default();
    let upload_id =
        between(&text, "<UploadId>", "</UploadId>").ok_or_else(|| SinkError::Retryable {
            reason: "CreateMultipartUpload: no UploadId in the answer".into(),
            retry_after: None,
        })?;
    let upload_id = encode_component(upload_id);
    match upload_parts(client, &url, &upload_id, file, size, sizes.part_size_bytes).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let abort = format!("{url}?uploadId={upload_id}");
            let cleanup = call(client, Method::DELETE, &abort, &[], Vec::new())
                .await
                .err()
                .map(|e| format!("aborting the multipart upload failed: {e}"));
            Err(UploadFailure { error, cleanup })
        }
    }
}

async fn upload_parts(
    client: &AwsClient,
    url: &str,
    upload_id: &str,
    file: &Path,
    size: u64,
    part_size: u64,
) -> Result<(), SinkError> {
    let mut etags = String::new();
    for (i, (offset, len)) in parts(size, part_size).into_iter().enumerate() {
        let n = i + 1;
        let body = read_range(file, offset, len).await?;
        let part_url = format!("{url}?partNumber={n}&uploadId={upload_id}");
        let resp = call(client, Method::PUT, &part_url, &[], body).await?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        etags.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    let xml = format!("<CompleteMultipartUpload>{etags}</CompleteMultipartUpload>");
    let complete = format!("{url}?uploadId={upload_id}");
    let resp = call(client, Method::POST, &complete, &[], xml.into_bytes()).await?;
    // S3 can answer 200 with an error document here.
    let text = resp.text().await.unwrap_or_default();
    if text.contains("<Error>") {
        return Err(classify_error(500, &text));
    }
    Ok(())
}

async fn call(
    client: &AwsClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<reqwest::Response, SinkError> {
    let resp = client.send(method, url, headers, body, true).await?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    Err(classify_error(
        status,
        &resp.text().await.unwrap_or_default(),
    ))
}

/// Reads `len` bytes at `offset` on the blocking pool. A file that is missing, unreadable or
/// shorter than it was is a permanent error: retrying the same task cannot fix it.
async fn read_range(file: &Path, offset: u64, len: u64) -> Result<Vec<u8>, SinkError> {
    let path: PathBuf = file.to_owned();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| SinkError::Retryable {
        reason: format!("reading {}: {e}", file.display()),
        retry_after: None,
    })?;
    read.map_err(|e| SinkError::Permanent {
        reason: format!("reading {}: {e}", file.display()),
    })
}

fn object_url(client: &AwsClient, target: &Target<'_>) -> String {
    let key: Vec<String> = target.key.split('/').map(encode_component).collect();
    format!("{}/{}/{}", client.endpoint, target.bucket, key.join("/"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as SigV4 canonicalises
/// a path segment or a query value.
fn encode_component(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn between<'a>(text: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = text.find(a)? + a.len();
    let end = text[start..].find(b)? + start;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_cut_into_parts_of_the_part_size_with_a_shorter_last_one() {
        assert_eq!(parts(11, 5), vec![(0, 5), (5, 5), (10, 1)]);
        assert_eq!(parts(10, 5), vec![(0, 5), (5, 5)]);
        assert_eq!(parts(0, 5), vec![(0, 0)]);
    }

    #[test]
    fn keys_are_encoded_per_segment_keeping_the_slashes() {
        let key: Vec<String> = "a b/ü+x".split('/').map(encode_component).collect();
        assert_eq!(key.join("/"), "a%20b/%C3%BC%2Bx");
    }

    #[tokio::test]
    async fn a_missing_or_shorter_file_is_a_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(read_range(&f, 1, 2).await.unwrap(), b"bc");
        assert!(matches!(
            read_range(&f, 0, 4).await,
            Err(SinkError::Permanent { .. })
        ));
        assert!(matches!(
            read_range(&dir.path().join("none"), 0, 1).await,
            Err(SinkError::Permanent { .. })
        ));
    }
}
