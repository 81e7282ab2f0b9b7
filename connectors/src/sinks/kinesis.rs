//! Kinesis Data Streams sink: `PutRecords`, at most 500 records and 5 MiB per call and 1 MiB per
//! record. Records the response marks failed (throttling, internal failure) are retried, and
//! only they, in their original order, until all are in or an error is permanent.
//!
//! Settings: `stream_name` (required), `partition_key` (`topic` default, `random`, or `fixed`
//! with `partition_key_value`), plus the AWS settings (`region`, `endpoint`, `credentials`).

use std::time::Duration;

use base64::Engine;
use ferry_stream_manager::backoff::Backoff;
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkLimits};
use ferry_stream_manager::Record;
use serde::Deserialize;
use serde_json::{json, Value};

use super::aws::{failed_entries, AwsClient, AwsSettings, SinkEnv};
use crate::json::BASE64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KinesisSettings {
    stream_name: String,
    #[serde(default = "default_key")]
    partition_key: String,
    #[serde(default)]
    partition_key_value: Option<String>,
    #[serde(flatten)]
    aws: AwsSettings,
}

fn default_key() -> String {
    "topic".into()
}

pub struct KinesisSink {
    client: AwsClient,
    settings: KinesisSettings,
}

impl KinesisSink {
    pub fn from_settings(
        settings: &serde_json::Map<String, Value>,
        env: &SinkEnv,
    ) -> Result<KinesisSink, String> {
        let s: KinesisSettings = serde_json::from_value(Value::Object(settings.clone()))
            .map_err(|e| format!("kinesis sink settings: {e}"))?;
        match (s.partition_key.as_str(), &s.partition_key_value) {
            ("topic" | "random", _) | ("fixed", Some(_)) => {}
            ("fixed", None) => {
                return Err(
                    "kinesis sink settings: partition_key = fixed needs partition_key_value".into(),
                )
            }
            (other, _) => {
                return Err(format!(
                    "kinesis sink settings: partition_key {other:?} is not topic, random or fixed"
                ))
            }
        }
        Ok(KinesisSink {
            client: AwsClient::new(&s.aws, "kinesis", env)?,
            settings: s,
        })
    }

    fn partition_key(&self, r: &Record) -> String {
        match self.settings.partition_key.as_str() {
            "fixed" => self
                .settings
                .partition_key_value
                .clone()
                .unwrap_or_default(),
            "random" => format!("{:016x}", rand::random::<u64>()),
            // Records without a topic (appended through the API) share one key.
            _ => r
                .metadata
                .get("topic")
                .filter(|t| !t.is_empty())
                .cloned()
                .unwrap_or_else(|| "ferry".into()),
        }
        .chars()
        .take(256)
        .collect()
    }
}

impl Sink for KinesisSink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: 500,
            max_bytes: 5 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
        }
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            // (data, partition key) of the records still to put, in order.
            let mut pending: Vec<(String, String)> = batch
                .records
                .iter()
                .map(|r| (BASE64.encode(&r.payload), self.partition_key(r)))
                .collect();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                let records: Vec<Value> = pending
                    .iter()
                    .map(|(d, k)| json!({"Data": d, "PartitionKey": k}))
                    .collect();
                let body = json!({"StreamName": self.settings.stream_name, "Records": records});
                let resp = self
                    .client
                    .json_call("Kinesis_20131202.PutRecords", &body)
                    .await?;
                let results = resp["Records"].as_array().cloned().unwrap_or_default();
                if resp["FailedRecordCount"].as_u64().unwrap_or(0) == 0 {
                    return Ok(());
                }
                let retry = failed_entries("PutRecords", pending, &results)?;
                tracing::debug!(
                    failed = retry.len(),
                    "PutRecords partially failed; retrying the failed records"
                );
                pending = retry;
                if pending.is_empty() {
                    return Ok(());
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        })
    }
}
