//! Firehose sink: `PutRecordBatch`, at most 500 records and 4 MiB per call, 1000 KiB per
//! record, optionally a newline after each record. Entries the response marks failed come back
//! to the exporter as [`SinkError::Partial`], which sends only those again.
//!
//! Settings ([`FirehoseSettings`]): `delivery_stream_name` (required), `newline` (default
//! `true`), plus the AWS settings.
//!
//! [`SinkError::Partial`]: ferry_stream_manager::export::SinkError::Partial

use base64::Engine;
use ferry_stream_manager::definition::FirehoseSettings;
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkLimits};
use serde_json::{json, Value};

use super::aws::{per_record_failures, AwsClient, SinkEnv};
use super::SinkConfigError;
use crate::json::BASE64;

pub struct FirehoseSink {
    client: AwsClient,
    settings: FirehoseSettings,
}

impl FirehoseSink {
    pub fn new(
        settings: &FirehoseSettings,
        env: &SinkEnv,
    ) -> Result<FirehoseSink, SinkConfigError> {
        settings.validate().map_err(|e| e.within("settings"))?;
        Ok(FirehoseSink {
            client: AwsClient::new(&settings.aws, "firehose", env)?,
            settings: settings.clone(),
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
            let records: Vec<Value> = batch
                .records
                .iter()
                .map(|r| {
                    let mut data = r.payload.to_vec();
                    if self.settings.newline {
                        data.push(b'\n');
                    }
                    json!({"Data": BASE64.encode(data)})
                })
                .collect();
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
                .map_or(&[][..], Vec::as_slice);
            per_record_failures("PutRecordBatch", batch.records.len(), results)
        })
    }
}
