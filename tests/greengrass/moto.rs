//! moto (an AWS API emulator, `FERRYTEST_MOTO_SERVER`) for the Greengrass export tests, with
//! SigV4 checking switched on as in tests/export_aws.rs, and readers for what arrived there.

use base64::Engine;
use ferry_connectors::sinks::aws::{AwsClient, AwsSettings, SinkEnv};
use reqwest::Method;
use serde_json::json;

pub use crate::support::moto::{start, Moto};

/// The `[greengrass.exports]` section pointing both services at moto with its user's keys.
impl Moto {
    pub fn export_settings(&self) -> String {
        format!(
            "[greengrass.exports]\nregion = \"us-east-1\"\nkinesis_endpoint = \"{url}\"\n\
             s3_endpoint = \"{url}\"\ncredentials = {{ access_key_id = \"{}\", secret_access_key = \"{}\" }}\n",
            self.key,
            self.secret,
            url = self.url
        )
    }

    pub fn client(&self, service: &'static str) -> AwsClient {
        let settings: AwsSettings = serde_json::from_value(json!({
            "region": "us-east-1", "endpoint": self.url,
            "credentials": {"access_key_id": self.key, "secret_access_key": self.secret}
        }))
        .unwrap();
        AwsClient::new(&settings, service, &SinkEnv::default()).unwrap()
    }
}

/// Every record of a Kinesis stream, in shard order: (partition key, data).
pub async fn kinesis_records(k: &AwsClient, stream: &str) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let shards = k
        .json_call(
            "Kinesis_20131202.ListShards",
            &json!({"StreamName": stream}),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards["Shards"].as_array().unwrap() {
        let it = k
            .json_call("Kinesis_20131202.GetShardIterator", &json!({"StreamName": stream, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}))
            .await
            .unwrap();
        let mut iter = it["ShardIterator"].clone();
        loop {
            let got = k
                .json_call(
                    "Kinesis_20131202.GetRecords",
                    &json!({"ShardIterator": iter, "Limit": 10000}),
                )
                .await
                .unwrap();
            let recs = got["Records"].as_array().unwrap();
            if recs.is_empty() {
                break;
            }
            for r in recs {
                out.push((
                    r["PartitionKey"].as_str().unwrap().to_string(),
                    b64.decode(r["Data"].as_str().unwrap()).unwrap(),
                ));
            }
            iter = got["NextShardIterator"].clone();
        }
    }
    out
}

/// An S3 object's body and its `x-amz-meta-*` headers; `None` when there is no such object.
pub async fn s3_object(
    s3: &AwsClient,
    url: &str,
    bucket: &str,
    key: &str,
) -> Option<(Vec<u8>, Vec<(String, String)>)> {
    let resp = s3
        .send(
            Method::GET,
            &format!("{url}/{bucket}/{key}"),
            &[],
            Vec::new(),
            true,
        )
        .await
        .unwrap();
    if resp.status().as_u16() == 404 {
        return None;
    }
    assert!(resp.status().is_success(), "GET {key}: {}", resp.status());
    let meta = resp
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-amz-meta-"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    Some((resp.bytes().await.unwrap().to_vec(), meta))
}

/// Every key of `bucket`.
pub async fn s3_keys(s3: &AwsClient, url: &str, bucket: &str) -> Vec<String> {
    let resp = s3
        .send(
            Method::GET,
            &format!("{url}/{bucket}?list-type=2"),
            &[],
            Vec::new(),
            true,
        )
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "ListObjectsV2: {}",
        resp.status()
    );
    let list = resp.text().await.unwrap();
    list.split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect()
}
