//! Kinesis Data Streams sink: `PutRecords`, at most 500 records and 5 MiB per call and 1 MiB per
//! record. Records the response marks failed (throttling, internal failure) come back to the
//! exporter as [`SinkError::Partial`]; it sends only those again, in their order, with its own
//! backoff. The sink never loops itself: one retry layer per export.
//!
//! Settings ([`KinesisSettings`]): `stream_name` (required), `partition_key` (`topic` default,
//! `random`, or `fixed` with `partition_key_value`), plus the AWS settings (`region`,
//! `endpoint`, `credentials`).
//!
//! [`SinkError::Partial`]: ferry_stream_manager::export::SinkError::Partial

use base64::Engine;
use ferry_stream_manager::definition::{KinesisSettings, PartitionKey};
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkLimits};
use ferry_stream_manager::Record;
use serde_json::{json, Value};

use super::aws::{per_record_failures, AwsClient, SinkEnv};
use super::SinkConfigError;
use crate::json::BASE64;

pub struct KinesisSink {
    client: AwsClient,
    settings: KinesisSettings,
}

impl KinesisSink {
    pub fn new(settings: &KinesisSettings, env: &SinkEnv) -> Result<KinesisSink, SinkConfigError> {
        settings.validate().map_err(|e| e.within("settings"))?;
        Ok(KinesisSink {
            client: AwsClient::new(&settings.aws, "kinesis", env)?,
            settings: settings.clone(),
        })
    }

    fn partition_key(&self, r: &Record) -> String {
        match &self.settings.partition_key {
            PartitionKey::Fixed { value } => value.clone(),
            PartitionKey::Random => format!("{:016x}", rand::random::<u64>()),
            // Records without a topic (appended through the API) share one key.
            PartitionKey::Topic => r
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
            let records: Vec<Value> = batch
                .records
                .iter()
                .map(|r| json!({"Data": BASE64.encode(&r.payload), "PartitionKey": self.partition_key(r)}))
                .collect();
            let body = json!({"StreamName": self.settings.stream_name, "Records": records});
            let resp = self
                .client
                .json_call("Kinesis_20131202.PutRecords", &body)
                .await?;
            if resp["FailedRecordCount"].as_u64().unwrap_or(0) == 0 {
                return Ok(());
            }
            let results = resp["Records"].as_array().map_or(&[][..], Vec::as_slice);
            per_record_failures("PutRecords", batch.records.len(), results)
        })
    }
}
