//! moto (an AWS API emulator, `FERRYTEST_MOTO_SERVER`) for the Greengrass export tests, with
//! SigV4 checking switched on as in tests/export_aws.rs, and readers for what arrived there.

use ferry_connectors::sinks::aws::{AwsClient, AwsSettings, SinkEnv};
use reqwest::Method;
use serde_json::json;

pub use crate::support::moto::{kinesis_records, start, Moto};

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
