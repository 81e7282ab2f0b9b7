//! moto, a real AWS API emulator (`FERRYTEST_MOTO_SERVER`, installed by tests/run-all.sh),
//! with an IAM user allowed Kinesis, Firehose and S3, and SigV4 checking switched on, so a
//! wrong signature fails a test. Shared by the export and Greengrass tests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use ferry_connectors::sinks::aws::AwsClient;
use serde_json::json;

use super::{free_port, wait_port};

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

/// Starts moto, creates an IAM user allowed kinesis/firehose/s3 and its access key, then turns
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
    // While authentication is off moto needs only the credential scope to route to IAM. A
    // freshly installed moto has been seen to drop its first request while it loads: transport
    // errors (not answers) are retried a few times.
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
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:*", "firehose:*", "s3:*"], "Resource": "*"}]});
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
