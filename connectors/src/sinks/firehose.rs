//! Firehose sink: `PutRecordBatch`, at most 500 records and 4 MiB per call, 1000 KiB per
//! record, optionally a newline after each record. Failed entries are retried, and only they.
//!
//! Settings: `delivery_stream_name` (required), `newline` (default `true`), plus the AWS settings.

use std::time::Duration;

use base64::Engine;
use ferry_stream_manager::backoff::Backoff;
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkLimits};
use serde::Deserialize;
use serde_json::{json, Value};

use super::aws::{failed_entries, AwsClient, AwsSettings, SinkEnv};
use crate::json::BASE64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirehoseSettings {
    delivery_stream_name: String,
    #[serde(default = "yes")]
    newline: bool,
    #[serde(flatten)]
    aws: AwsSettings,
}

fn yes() -> bool {
    true
}

pub struct FirehoseSink {
    client: AwsClient,
    settings: FirehoseSettings,
}

impl FirehoseSink {
    pub fn from_settings(
        settings: &serde_json::Map<String, Value>,
        env: &SinkEnv,
    ) -> Result<FirehoseSink, String> {
        let s: FirehoseSettings = serde_json::from_value(Value::Object(settings.clone()))
            .map_err(|e| format!("firehose sink settings: {e}"))?;
        Ok(FirehoseSink {
            client: AwsClient::new(&s.aws, "firehose", env)?,
            settings: s,
        })
    }
}

impl Sink for FirehoseSink {
    fn limits(&self) -> SinkLimits {
        // The newline counts against Firehose's per-record limit.
        SinkLimits {
            max_records: 500,
            max_bytes: 4 * 1024 * 1024,
            max_record_bytes: 1000 * 1024 - 1,
        }
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            let mut pending: Vec<String> = batch
                .records
                .iter()
                .map(|r| {
                    let mut data = r.payload.to_vec();
                    if self.settings.newline {
                        data.push(b'\n');
                    }
                    BASE64.encode(data)
                })
                .collect();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                let records: Vec<Value> = pending.iter().map(|d| json!({"Data": d})).collect();
                let body = json!({"DeliveryStreamName": self.settings.delivery_stream_name, "Records": records});
                let resp = self
                    .client
                    .json_call("Firehose_20150804.PutRecordBatch", &body)
                    .await?;
                if resp["FailedPutCount"].as_u64().unwrap_or(0) == 0 {
                    return Ok(());
                }
                let results = resp["RequestResponses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let retry = failed_entries("PutRecordBatch", pending, &results)?;
                pending = retry;
                if pending.is_empty() {
                    return Ok(());
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        })
    }
}
