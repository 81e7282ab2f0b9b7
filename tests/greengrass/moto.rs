//! moto (an AWS API emulator, `FERRYTEST_MOTO_SERVER`) for the Greengrass export tests, with
//! SigV4 checking switched on as in tests/export_aws.rs, and readers for what arrived there.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use ferry_connectors::sinks::aws::{AwsClient, AwsSettings, SinkEnv};
use reqwest::Method;
use serde_json::json;

use crate::support::{free_port, wait_port};

pub struct Moto {
    child: Child,
    pub url: String,
    pub key: String,
    pub secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Starts moto, creates an IAM user allowed kinesis and s3 and its access key, then turns
/// signature checking on.
pub async fn start() -> Moto {
    let bin = std::env::var("FERRYTEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (tests/run-all.sh installs moto into .venv)"));
    wait_port(port);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // With authentication off moto needs only the credential scope to route to IAM. Transport
    // errors (moto still loading) are retried a few times.
    let iam = |form: Vec<(&'static str, String)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            for attempt in 1.. {
                let sent = http.post(format!("{url}/"))
                    .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00")
                    .form(&form)
                    .send()
                    .await;
                match sent {
                    Ok(r) => return r,
                    Err(e) if attempt < 10 => {
                        eprintln!("moto setup request failed ({e}); retrying");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Err(e) => panic!("moto does not answer: {e}"),
                }
            }
            unreachable!()
        }
    };
    let v = |s: &str| s.to_string();
    iam(vec![
        ("Action", v("CreateUser")),
        ("UserName", v("ferry")),
        ("Version", v("2010-05-08")),
    ])
    .await;
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:*", "s3:*"], "Resource": "*"}]});
    iam(vec![
        ("Action", v("PutUserPolicy")),
        ("UserName", v("ferry")),
        ("PolicyName", v("all")),
        ("PolicyDocument", policy.to_string()),
        ("Version", v("2010-05-08")),
    ])
    .await;
    let xml = iam(vec![
        ("Action", v("CreateAccessKey")),
        ("UserName", v("ferry")),
        ("Version", v("2010-05-08")),
    ])
    .await
    .text()
    .await
    .unwrap();
    let between = |a: &str, b: &str| {
        xml.split(a)
            .nth(1)
            .and_then(|r| r.split(b).next())
            .unwrap()
            .to_string()
    };
    let (key, secret) = (
        between("<AccessKeyId>", "</AccessKeyId>"),
        between("<SecretAccessKey>", "</SecretAccessKey>"),
    );
    let r = http
        .post(format!("{url}/moto-api/reset-auth"))
        .header("content-type", "text/plain")
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    Moto {
        child,
        url,
        key,
        secret,
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
