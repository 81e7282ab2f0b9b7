//! Kinesis, Firehose and S3 sinks against moto (a real AWS API emulator) with its SigV4
//! checking switched on, so a wrong signature fails the test; throttling and partial failures
//! come from a fault-injecting proxy in front of moto (a FAKE, named as such: moto never
//! throttles and never reports partial failures).

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferry_connectors::sinks::aws::{AwsClient, AwsSettings, SinkEnv};
use serde_json::{json, Value};
use support::api::Daemon;

use support::moto::{kinesis_records, start as moto, Moto};

fn client(m: &Moto, service: &'static str, endpoint: &str, secret: &str) -> AwsClient {
    let settings: AwsSettings = serde_json::from_value(json!({
        "region": "us-east-1", "endpoint": endpoint,
        "credentials": {"access_key_id": m.key, "secret_access_key": secret}
    }))
    .unwrap();
    AwsClient::new(&settings, service, &SinkEnv::default()).unwrap()
}

fn aws_export(kind: &str, m: &Moto, endpoint: &str, secret: &str, extra: Value) -> Value {
    let mut settings = json!({"region": "us-east-1", "endpoint": endpoint, "credentials": {"access_key_id": m.key, "secret_access_key": secret}});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    json!({"identifier": kind, "kind": kind, "settings": settings, "batch_interval_ms": 50, "on_permanent_error": "pause"})
}

fn records(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"payload": format!("reading-{i:04}"), "metadata": {"topic": format!("dev/{}", i % 3)}})).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_receives_every_record_in_order_per_partition_key_and_a_wrong_signature_is_refused()
{
    let m = moto().await;
    let k = client(&m, "kinesis", &m.url, &m.secret);
    k.json_call(
        "Kinesis_20131202.CreateStream",
        &json!({"StreamName": "ferry-k", "ShardCount": 2}),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let good = aws_export(
        "kinesis",
        &m,
        &m.url,
        &m.secret,
        json!({"stream_name": "ferry-k"}),
    );
    d.create(json!({"name": "good", "exports": [good]})).await;
    let bad = aws_export(
        "kinesis",
        &m,
        &m.url,
        "wrong-secret",
        json!({"stream_name": "ferry-k"}),
    );
    d.create(json!({"name": "bad", "exports": [bad]})).await;
    d.append_all("good", records(120)).await;
    d.append_all("bad", records(5)).await;
    d.wait_export("good", "delivered", |e| e["checkpoint"] == 120)
        .await;
    let bad = d
        .wait_export("bad", "paused", |e| e["state"] == "paused")
        .await;
    assert!(
        bad["last_error"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch"),
        "{bad}"
    );
    let got = kinesis_records(&k, "ferry-k").await;
    assert_eq!(
        got.len(),
        120,
        "only the correctly signed export's records arrived"
    );
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, data) in got {
        per_key
            .entry(key)
            .or_default()
            .push(String::from_utf8(data).unwrap());
    }
    for (key, payloads) in &per_key {
        let i = key.strip_prefix("dev/").unwrap().parse::<usize>().unwrap();
        let want: Vec<String> = (0..120)
            .filter(|n| n % 3 == i)
            .map(|n| format!("reading-{n:04}"))
            .collect();
        assert_eq!(
            payloads, &want,
            "partition key {key}: same payloads, same order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_delivers_newline_separated_records_to_s3() {
    let m = moto().await;
    let s3 = client(&m, "s3", &m.url, &m.secret);
    let r = s3
        .send(
            reqwest::Method::PUT,
            &format!("{}/fh-bucket", m.url),
            &[],
            Vec::new(),
            true,
        )
        .await
        .unwrap();
    assert!(r.status().is_success());
    let fh = client(&m, "firehose", &m.url, &m.secret);
    fh.json_call(
        "Firehose_20150804.CreateDeliveryStream",
        &json!({"DeliveryStreamName": "ferry-fh", "DeliveryStreamType": "DirectPut",
                "ExtendedS3DestinationConfiguration": {"RoleARN": "arn:aws:iam::123456789012:role/fh", "BucketARN": "arn:aws:s3:::fh-bucket", "Prefix": "fh/"}}),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let mut e = aws_export(
        "firehose",
        &m,
        &m.url,
        &m.secret,
        json!({"delivery_stream_name": "ferry-fh"}),
    );
    e["batch_size"] = json!(25);
    d.create(json!({"name": "f", "exports": [e]})).await;
    d.append_all("f", records(60)).await;
    d.wait_export("f", "delivered", |e| e["checkpoint"] == 60)
        .await;
    let text = list_and_read(&s3, &m.url, "fh-bucket", "fh/").await;
    let lines: Vec<&str> = text.iter().flat_map(|t| t.lines()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..60)
            .map(|n| format!("reading-{n:04}"))
            .collect::<Vec<_>>()
    );
}

async fn list_and_read(s3: &AwsClient, url: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let resp = s3
        .send(
            reqwest::Method::GET,
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
    let mut keys: Vec<String> = list
        .split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .filter(|k| k.starts_with(prefix))
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let body = s3
            .send(
                reqwest::Method::GET,
                &format!("{url}/{bucket}/{key}"),
                &[],
                Vec::new(),
                true,
            )
            .await
            .unwrap();
        out.push(body.text().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_are_keyed_by_sequence_range_and_large_ones_go_up_in_parts() {
    let m = moto().await;
    let s3 = client(&m, "s3", &m.url, &m.secret);
    s3.send(
        reqwest::Method::PUT,
        &format!("{}/ferry-s3", m.url),
        &[],
        Vec::new(),
        true,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let mut e = aws_export(
        "s3",
        &m,
        &m.url,
        &m.secret,
        json!({"bucket": "ferry-s3", "key_prefix": "small/{stream}/{yyyy}/"}),
    );
    e["batch_size"] = json!(50);
    d.create(json!({"name": "objs", "exports": [e]})).await;
    d.append_all("objs", records(120)).await;
    d.wait_export("objs", "delivered", |e| e["checkpoint"] == 120)
        .await;
    let objects = list_and_read(&s3, &m.url, "ferry-s3", "small/objs/").await;
    assert_eq!(objects.len(), 3, "120 records in batches of 50");
    let all: Vec<String> = objects.concat().lines().map(String::from).collect();
    assert_eq!(
        all,
        (0..120)
            .map(|n| format!("reading-{n:04}"))
            .collect::<Vec<_>>()
    );
    // One 6 MB batch over a 5 MiB threshold: a multipart upload of two parts.
    let mut big = aws_export(
        "s3",
        &m,
        &m.url,
        &m.secret,
        json!({"bucket": "ferry-s3", "key_prefix": "big/", "multipart_threshold_bytes": 5242880}),
    );
    big["batch_size"] = json!(60);
    big["batch_interval_ms"] = json!(2000);
    d.create(json!({"name": "big", "exports": [big]})).await;
    let payload = "x".repeat(100_000);
    d.append_all(
        "big",
        (0..60).map(|_| json!({"payload": payload})).collect(),
    )
    .await;
    d.wait_export("big", "delivered", |e| e["checkpoint"] == 60)
        .await;
    let objects = list_and_read(&s3, &m.url, "ferry-s3", "big/").await;
    assert_eq!(objects.iter().map(String::len).sum::<usize>(), 60 * 100_001);
    assert!(d.logs().contains("ready"));
}

/// FAKE: a proxy in front of moto that produces what moto cannot: throttling of a whole call,
/// and a PutRecords answer that marks some records failed. It keeps the Host header, so the
/// client's signature still verifies at moto.
#[derive(Default)]
struct Faults {
    calls: Vec<usize>,
    throttled_once: bool,
    rewrote_once: bool,
}

async fn proxy(upstream: String, faults: Arc<Mutex<Faults>>) -> u16 {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let http = reqwest::Client::new();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (http, upstream, faults) = (http.clone(), upstream.clone(), faults.clone());
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let puts = target.ends_with("PutRecords");
            if puts {
                let n = serde_json::from_slice::<Value>(&body).unwrap()["Records"]
                    .as_array()
                    .unwrap()
                    .len();
                let mut f = faults.lock().unwrap();
                f.calls.push(n);
                if !f.throttled_once {
                    f.throttled_once = true;
                    let body = json!({"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded"}).to_string();
                    return (StatusCode::BAD_REQUEST, body);
                }
            }
            let mut req = http.post(format!("{upstream}/")).body(body.to_vec());
            for (k, v) in headers.iter() {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let mut text = resp.text().await.unwrap();
            if puts && status == StatusCode::OK {
                let mut f = faults.lock().unwrap();
                if !f.rewrote_once {
                    f.rewrote_once = true;
                    // Mark records 1 and 3 failed (moto stored them: they will arrive twice).
                    let mut v: Value = serde_json::from_str(&text).unwrap();
                    for i in [1, 3] {
                        v["Records"][i] = json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"});
                    }
                    v["FailedRecordCount"] = json!(2);
                    text = v.to_string();
                }
            }
            (status, text)
        }
    };
    let app = axum::Router::new().route("/", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_and_only_failed_records_are_put_again_in_order() {
    let m = moto().await;
    let k = client(&m, "kinesis", &m.url, &m.secret);
    k.json_call(
        "Kinesis_20131202.CreateStream",
        &json!({"StreamName": "ferry-t", "ShardCount": 1}),
    )
    .await
    .unwrap();
    let faults = Arc::new(Mutex::new(Faults::default()));
    let port = proxy(m.url.clone(), faults.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let mut e = aws_export(
        "kinesis",
        &m,
        &format!("http://127.0.0.1:{port}"),
        &m.secret,
        json!({"stream_name": "ferry-t", "partition_key": "fixed", "partition_key_value": "k"}),
    );
    e["batch_size"] = json!(10);
    e["batch_interval_ms"] = json!(500);
    d.create(json!({"name": "t", "exports": [e]})).await;
    d.append_all("t", records(10)).await; // one call, so the ten records form one batch
    let status = d
        .wait_export("t", "delivered", |e| e["checkpoint"] == 10)
        .await;
    assert!(
        status["retries"].as_u64().unwrap() >= 1,
        "the throttled call was retried: {status}"
    );
    let calls = faults.lock().unwrap().calls.clone();
    assert_eq!(
        calls,
        vec![10, 10, 2],
        "throttled call, full call, then only the 2 failed records"
    );
    let got: Vec<String> = kinesis_records(&k, "ferry-t")
        .await
        .into_iter()
        .map(|(_, d)| String::from_utf8(d).unwrap())
        .collect();
    let mut want: Vec<String> = (0..10).map(|n| format!("reading-{n:04}")).collect();
    want.push("reading-0001".into());
    want.push("reading-0003".into());
    assert_eq!(
        got, want,
        "the retried records come after the batch, in their order"
    );
}
