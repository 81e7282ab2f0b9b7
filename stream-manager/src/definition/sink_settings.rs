//! The typed settings of each export kind: plain data the sinks (in the connectors crate) act
//! on. `validate` checks what needs no environment, with keys relative to the settings object.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::aws_settings::{AwsSettings, REDACTED};
use super::export::ExportConfigError;

/// S3 refuses smaller parts of a multipart upload (all but the last).
pub const MIN_S3_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;

/// How the HTTP sink writes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    /// One JSON record per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// One JSON array of records (`application/json`).
    JsonArray,
}

/// How the HTTP sink encodes request bodies on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpCompression {
    /// The body as it is.
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`: the sink must accept it.
    Gzip,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// An `http://` or `https://` URL; batches are POSTed to it.
    pub url: String,
    #[serde(default)]
    pub format: HttpFormat,
    #[serde(default)]
    pub compression: HttpCompression,
    /// Sent with every request (e.g. `authorization`); values are secret to Debug output.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_http_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_http_batch_records")]
    pub max_batch_records: usize,
    #[serde(default = "default_http_batch_bytes")]
    pub max_batch_bytes: u64,
    #[serde(default = "default_http_record_bytes")]
    pub max_record_bytes: u64,
}

fn default_http_timeout_ms() -> u64 {
    30_000
}
fn default_http_batch_records() -> usize {
    500
}
fn default_http_batch_bytes() -> u64 {
    5 * 1024 * 1024
}
fn default_http_record_bytes() -> u64 {
    1024 * 1024
}

impl HttpSettings {
    /// Every default, posting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        HttpSettings {
            url: url.into(),
            format: HttpFormat::default(),
            compression: HttpCompression::default(),
            headers: BTreeMap::new(),
            timeout_ms: default_http_timeout_ms(),
            max_batch_records: default_http_batch_records(),
            max_batch_bytes: default_http_batch_bytes(),
            max_record_bytes: default_http_record_bytes(),
        }
    }

    pub fn validate(&self) -> Result<(), ExportConfigError> {
        check_http_url(&self.url).map_err(|reason| ExportConfigError::new("url", reason))?;
        for (name, value) in &self.headers {
            let key = || format!("headers.{name}");
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ExportConfigError::new(
                    key(),
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(ExportConfigError::new(
                    key(),
                    "the value holds a control character",
                ));
            }
        }
        positive("timeout_ms", self.timeout_ms)?;
        positive("max_batch_records", self.max_batch_records as u64)?;
        positive("max_batch_bytes", self.max_batch_bytes)?;
        positive("max_record_bytes", self.max_record_bytes)
    }
}

/// Header values can be tokens or passwords: Debug shows the header names only.
impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), REDACTED))
            .collect();
        f.debug_struct("HttpSettings")
            .field("url", &self.url)
            .field("format", &self.format)
            .field("compression", &self.compression)
            .field("headers", &headers)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_batch_records", &self.max_batch_records)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish()
    }
}

/// Which Kinesis partition key a record gets (and so which shard, and in which order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PartitionKey {
    /// The record's MQTT topic: order is kept per topic.
    #[default]
    Topic,
    /// A random key per record: spread over all shards, no order.
    Random,
    /// One key for every record: one shard, total order.
    Fixed { value: String },
}

/// The spelling of [`PartitionKey`] in settings: `partition_key = "fixed"` with
/// `partition_key_value`, as catalogs and configs have always written it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PartitionKeyName {
    #[default]
    Topic,
    Random,
    Fixed,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KinesisSettings {
    pub stream_name: String,
    pub partition_key: PartitionKey,
    pub aws: AwsSettings,
}

/// [`KinesisSettings`] as written. A `fixed` key without a value becomes an empty value here,
/// which `validate` refuses naming `partition_key_value`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KinesisFields {
    stream_name: String,
    #[serde(default)]
    partition_key: PartitionKeyName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition_key_value: Option<String>,
    #[serde(flatten)]
    aws: AwsSettings,
}

impl From<KinesisFields> for KinesisSettings {
    fn from(f: KinesisFields) -> Self {
        let partition_key = match f.partition_key {
            PartitionKeyName::Topic => PartitionKey::Topic,
            PartitionKeyName::Random => PartitionKey::Random,
            PartitionKeyName::Fixed => PartitionKey::Fixed {
                value: f.partition_key_value.unwrap_or_default(),
            },
        };
        KinesisSettings {
            stream_name: f.stream_name,
            partition_key,
            aws: f.aws,
        }
    }
}

impl From<KinesisSettings> for KinesisFields {
    fn from(s: KinesisSettings) -> Self {
        let (partition_key, partition_key_value) = match s.partition_key {
            PartitionKey::Topic => (PartitionKeyName::Topic, None),
            PartitionKey::Random => (PartitionKeyName::Random, None),
            PartitionKey::Fixed { value } => (PartitionKeyName::Fixed, Some(value)),
        };
        KinesisFields {
            stream_name: s.stream_name,
            partition_key,
            partition_key_value,
            aws: s.aws,
        }
    }
}

impl Serialize for KinesisSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KinesisFields::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for KinesisSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KinesisFields::deserialize(d).map(KinesisSettings::from)
    }
}

impl KinesisSettings {
    pub fn new(stream_name: impl Into<String>) -> Self {
        KinesisSettings {
            stream_name: stream_name.into(),
            partition_key: PartitionKey::default(),
            aws: AwsSettings::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ExportConfigError> {
        not_empty("stream_name", &self.stream_name)?;
        if let PartitionKey::Fixed { value } = &self.partition_key {
            if value.is_empty() {
                return Err(ExportConfigError::new(
                    "partition_key_value",
                    "partition_key = \"fixed\" needs a non-empty partition_key_value",
                ));
            }
        }
        self.aws.validate()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirehoseSettings {
    pub delivery_stream_name: String,
    /// A newline after each record, so the delivered objects hold one record per line.
    #[serde(default = "yes")]
    pub newline: bool,
    #[serde(flatten)]
    pub aws: AwsSettings,
}

fn yes() -> bool {
    true
}

impl FirehoseSettings {
    pub fn new(delivery_stream_name: impl Into<String>) -> Self {
        FirehoseSettings {
            delivery_stream_name: delivery_stream_name.into(),
            newline: true,
            aws: AwsSettings::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ExportConfigError> {
        not_empty("delivery_stream_name", &self.delivery_stream_name)?;
        self.aws.validate()
    }
}

/// How an S3 object holds its records' payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum S3Format {
    /// One payload per line (`.ndjson`).
    #[default]
    Newline,
    /// Payloads concatenated as they are (`.bin`).
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    /// Placeholders: `{stream}`, `{yyyy}`, `{MM}`, `{dd}`, `{HH}`, `{mm}` (UTC).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    #[serde(default)]
    pub format: S3Format,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default = "default_s3_batch_records")]
    pub max_batch_records: usize,
    #[serde(default = "default_s3_batch_bytes")]
    pub max_batch_bytes: u64,
    /// Larger objects go up in parts (multipart upload).
    #[serde(default = "default_multipart_threshold_bytes")]
    pub multipart_threshold_bytes: u64,
    #[serde(default = "default_part_size_bytes")]
    pub part_size_bytes: u64,
    #[serde(flatten)]
    pub aws: AwsSettings,
}

fn default_key_prefix() -> String {
    "ferry/{stream}/{yyyy}/{MM}/{dd}/{HH}/".into()
}
fn default_s3_batch_records() -> usize {
    10_000
}
fn default_s3_batch_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_multipart_threshold_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_part_size_bytes() -> u64 {
    MIN_S3_PART_SIZE_BYTES
}

impl S3Settings {
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Settings {
            bucket: bucket.into(),
            key_prefix: default_key_prefix(),
            format: S3Format::default(),
            gzip: false,
            max_batch_records: default_s3_batch_records(),
            max_batch_bytes: default_s3_batch_bytes(),
            multipart_threshold_bytes: default_multipart_threshold_bytes(),
            part_size_bytes: default_part_size_bytes(),
            aws: AwsSettings::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ExportConfigError> {
        not_empty("bucket", &self.bucket)?;
        positive("max_batch_records", self.max_batch_records as u64)?;
        positive("max_batch_bytes", self.max_batch_bytes)?;
        positive("multipart_threshold_bytes", self.multipart_threshold_bytes)?;
        if self.part_size_bytes < MIN_S3_PART_SIZE_BYTES {
            return Err(ExportConfigError::new(
                "part_size_bytes",
                format!(
                    "is {} but must be at least {MIN_S3_PART_SIZE_BYTES} (S3's minimum)",
                    self.part_size_bytes
                ),
            ));
        }
        self.aws.validate()
    }
}

fn positive(key: &str, value: u64) -> Result<(), ExportConfigError> {
    if value == 0 {
        return Err(ExportConfigError::new(key, "must be greater than 0"));
    }
    Ok(())
}

fn not_empty(key: &str, value: &str) -> Result<(), ExportConfigError> {
    if value.trim().is_empty() {
        return Err(ExportConfigError::new(key, "must not be empty"));
    }
    Ok(())
}

/// RFC 9110's token characters, which a header name consists of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An `http://` or `https://` URL with a host (and, if any, a numeric port). The sink parses
/// it fully when it starts; this catches what a definition must never hold.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{url:?} is not an http or https URL {why}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("(no scheme)");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return bad(&format!("(the scheme is {scheme:?})"));
    }
    if url.chars().any(char::is_whitespace) {
        return bad("(it holds whitespace)");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return bad("(unclosed '[' in the host)"),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return bad("with a host");
    }
    if port.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_err()) {
        return bad("(the port is not a number from 0 to 65535)");
    }
    Ok(())
}
