//! Exports defined through the Greengrass port with the official SDK: shown by describe and by
//! the HTTP API as Ferry exports, and delivering to moto (Kinesis, S3 export tasks).

use reqwest::Method;
use serde_json::json;

use super::{moto, sdk, start, OFFLINE_EXPORTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_defined_through_the_sdk_are_described_and_shown_by_the_http_api_as_ferry_exports()
{
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], OFFLINE_EXPORTS);
    tokio::task::block_in_place(|| sdk(&d, port, "exports_roundtrip", &[]));
    let (s, v) = d.call(Method::GET, "/v1/streams/exported", None).await;
    assert_eq!(s, 200, "{v}");
    let exports = v["definition"]["exports"].as_array().unwrap();
    let ids: Vec<&str> = exports
        .iter()
        .map(|e| e["identifier"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["K1", "S1"], "the update removed H1: {v}");
    let (k, s3) = (&exports[0], &exports[1]);
    assert_eq!(k["kind"], "kinesis");
    assert_eq!(k["settings"]["stream_name"], "ks");
    assert_eq!(k["settings"]["partition_key"], "random");
    assert_eq!(k["settings"]["region"], "us-east-1");
    assert_eq!(
        (
            &k["priority"],
            &k["batch_size"],
            &k["start_sequence_number"],
            &k["disabled"]
        ),
        (&json!(5), &json!(100), &json!(3), &json!(true))
    );
    assert_eq!(s3["kind"], "s3_task");
    assert_eq!(s3["settings"]["status_stream"], "exported_status");
    assert_eq!(s3["settings"]["status_level"], "debug");
    assert_eq!(s3["settings"]["multipart_threshold_bytes"], 8 << 20);
    assert_eq!(s3["on_permanent_error"], "skip");
    let states: Vec<(&str, &str)> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["identifier"].as_str().unwrap(),
                e["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("K1", "disabled"), ("S1", "disabled")], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_export_defined_through_the_sdk_delivers_to_moto() {
    let m = moto::start().await;
    let k = m.client("kinesis");
    k.json_call(
        "Kinesis_20131202.CreateStream",
        &json!({"StreamName": "gg-kinesis", "ShardCount": 1}),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], &m.export_settings());
    tokio::task::block_in_place(|| {
        sdk(
            &d,
            port,
            "kinesis_export",
            &[("FERRYTEST_GG_KINESIS", "gg-kinesis")],
        )
    });
    let got = moto::kinesis_records(&k, "gg-kinesis").await;
    let payloads: Vec<String> = got
        .iter()
        .map(|(_, data)| String::from_utf8(data.clone()).unwrap())
        .collect();
    let want: Vec<String> = (0..12).map(|i| format!("gg-{i:02}")).collect();
    assert_eq!(payloads, want, "every message, once, in order");
    let keys: std::collections::BTreeSet<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.len() > 1,
        "a fresh partition key per record, as Greengrass: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_export_task_uploads_a_file_to_moto_and_reports_its_status_through_the_sdk() {
    let m = moto::start().await;
    let s3 = m.client("s3");
    let made = s3
        .send(
            Method::PUT,
            &format!("{}/gg-bucket", m.url),
            &[],
            Vec::new(),
            true,
        )
        .await
        .unwrap();
    assert!(
        made.status().is_success(),
        "CreateBucket: {}",
        made.status()
    );
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let small = b"a small file from the edge\n".repeat(100);
    // 11 MiB over the 5 MiB threshold: a multipart upload of three parts.
    let big: Vec<u8> = (0..11u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(files.join("small.txt"), &small).unwrap();
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let (d, port) = start(dir.path(), &[], &m.export_settings());
    let out = tokio::task::block_in_place(|| {
        sdk(
            &d,
            port,
            "s3_task",
            &[
                ("FERRYTEST_GG_DIR", files.to_str().unwrap()),
                ("FERRYTEST_GG_BUCKET", "gg-bucket"),
            ],
        )
    });
    assert!(
        out.contains("PASS task 1: InProgress then Success"),
        "{out}"
    );
    let year = &humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4];
    let mut keys = moto::s3_keys(&s3, &m.url, "gg-bucket").await;
    keys.sort();
    let small_key = format!("gg/{year}/small.txt");
    assert_eq!(keys, [small_key.clone(), "gg/big.bin".to_string()], "{out}");
    let (body, meta) = moto::s3_object(&s3, &m.url, "gg-bucket", &small_key)
        .await
        .unwrap();
    assert_eq!(body, small);
    assert_eq!(meta, [("x-amz-meta-origin".to_string(), "sdk".to_string())]);
    let (body, _) = moto::s3_object(&s3, &m.url, "gg-bucket", "gg/big.bin")
        .await
        .unwrap();
    assert!(
        body == big,
        "the multipart object is the file ({} of {} bytes)",
        body.len(),
        big.len()
    );
}
