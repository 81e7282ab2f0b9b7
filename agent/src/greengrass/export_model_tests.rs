use ferry_stream_manager::definition::{FirehoseSettings, S3Settings};

use super::*;

fn kinesis(id: &str, stream: &str) -> ExportConfig {
    ExportConfig {
        identifier: id.into(),
        kind: ConfigKind::Kinesis {
            stream_name: stream.into(),
        },
        batch_size: None,
        batch_interval_millis: None,
        priority: None,
        start_sequence_number: None,
        disabled: None,
    }
}

fn s3_task(id: &str, status_stream: Option<&str>) -> ExportConfig {
    ExportConfig {
        kind: ConfigKind::S3Task {
            size_threshold_for_multipart_upload_bytes: Some(8 << 20),
            status_config: status_stream.map(|s| StatusConfig {
                status_level: Some(3),
                status_stream_name: Some(s.into()),
            }),
        },
        ..kinesis(id, "unused")
    }
}

fn configs(configs: Vec<ExportConfig>) -> ExportConfigs {
    ExportConfigs {
        configs,
        refused: vec![],
    }
}

fn settings() -> ExportSettings {
    ExportSettings {
        region: Some("us-east-1".into()),
        kinesis_endpoint: Some("http://127.0.0.1:5000".into()),
        s3_input_dirs: vec!["/data".into()],
        ..ExportSettings::default()
    }
}

#[test]
fn a_kinesis_config_becomes_a_kinesis_export_with_its_batching_priority_and_start() {
    let mut k = kinesis("K", "my-kinesis-stream");
    k.batch_size = Some(10);
    k.batch_interval_millis = Some(60_000);
    k.priority = Some(1);
    k.start_sequence_number = Some(5);
    k.disabled = Some(true);
    let out = exports(&[], &configs(vec![k.clone()]), &settings()).unwrap();
    let e = &out[0];
    assert_eq!(e.identifier, "K");
    assert_eq!(
        (
            e.batch_size,
            e.batch_interval_ms,
            e.priority,
            e.start_sequence_number,
            e.disabled
        ),
        (Some(10), Some(60_000), 1, Some(5), true)
    );
    let ExportKind::Kinesis(s) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(s.stream_name, "my-kinesis-stream");
    assert_eq!(s.partition_key, PartitionKey::Random);
    assert_eq!(s.aws.region.as_deref(), Some("us-east-1"));
    assert_eq!(s.aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(e.on_permanent_error, PermanentErrorPolicy::Pause);
    assert_eq!(config_of(e), Some(k), "describe shows what was asked for");
}

#[test]
fn absent_keys_take_the_lowest_priority_and_the_sinks_own_batching() {
    let out = exports(&[], &configs(vec![kinesis("K", "s")]), &settings()).unwrap();
    let e = &out[0];
    assert_eq!(
        (e.priority, e.batch_size, e.batch_interval_ms),
        (10, None, None)
    );
    assert_eq!((e.start_sequence_number, e.disabled), (None, false));
}

#[test]
fn an_s3_task_config_becomes_an_s3_task_export_that_skips_failed_tasks() {
    let task = s3_task("S3", Some("status"));
    let out = exports(&[], &configs(vec![task.clone()]), &settings()).unwrap();
    let ExportKind::S3Task(s) = &out[0].kind else {
        panic!("{:?}", out[0])
    };
    assert_eq!(s.multipart_threshold_bytes, 8 << 20);
    assert_eq!(s.status_stream.as_deref(), Some("status"));
    assert_eq!(s.status_level, StatusLevel::Debug);
    assert_eq!(s.input_dirs, vec![std::path::PathBuf::from("/data")]);
    assert_eq!(out[0].on_permanent_error, PermanentErrorPolicy::Skip);
    let mut shown = task;
    shown.priority = Some(10);
    shown.disabled = Some(false);
    assert_eq!(config_of(&out[0]), Some(shown));
    assert_eq!(
        status_streams(&configs(vec![s3_task("a", Some("st")), kinesis("k", "x")]))
            .collect::<Vec<_>>(),
        ["st"]
    );
}

#[test]
fn iot_analytics_and_sitewise_are_refused_naming_the_kind() {
    let requested = ExportConfigs {
        configs: vec![],
        refused: vec!["iotAnalytics", "IotSitewise"],
    };
    let e = exports(&[], &requested, &settings()).unwrap_err();
    assert!(
        e.contains(
            "IoT Analytics (iotAnalytics) and IoT SiteWise (IotSitewise) exports are not supported"
        ),
        "{e}"
    );
}

#[test]
fn raw_not_batched_http_and_duplicate_identifiers_are_refused() {
    let http = |format| ExportConfig {
        kind: ConfigKind::Http {
            uri: "http://127.0.0.1:9/x".into(),
            export_format: format,
        },
        ..kinesis("H", "unused")
    };
    let e = exports(&[], &configs(vec![http(Some(0))]), &settings()).unwrap_err();
    assert!(e.contains("RAW_NOT_BATCHED"), "{e}");
    let out = exports(&[], &configs(vec![http(None)]), &settings()).unwrap();
    assert!(matches!(&out[0].kind, ExportKind::Http(h) if h.format == HttpFormat::JsonArray));
    let e = exports(
        &[],
        &configs(vec![kinesis("K", "a"), kinesis("K", "b")]),
        &settings(),
    )
    .unwrap_err();
    assert!(e.contains("used twice"), "{e}");
}

#[test]
fn an_update_matches_by_identifier_keeping_what_the_protocol_cannot_say() {
    let mut first = exports(
        &[],
        &configs(vec![kinesis("K", "a"), kinesis("Gone", "g")]),
        &settings(),
    )
    .unwrap();
    // Set through Ferry's API since: kept by an update through this port.
    let ExportKind::Kinesis(s) = &mut first[0].kind else {
        panic!()
    };
    s.partition_key = PartitionKey::Fixed { value: "p".into() };
    first[0].batch_bytes = Some(4096);
    let mut changed = kinesis("K", "b");
    changed.priority = Some(2);
    let after = exports(
        &first,
        &configs(vec![changed, kinesis("New", "n")]),
        &ExportSettings::default(),
    )
    .unwrap();
    let ids: Vec<&str> = after.iter().map(|e| e.identifier.as_str()).collect();
    assert_eq!(ids, ["K", "New"], "a missing identifier is removed");
    let ExportKind::Kinesis(s) = &after[0].kind else {
        panic!()
    };
    assert_eq!(s.stream_name, "b");
    assert_eq!(s.partition_key, PartitionKey::Fixed { value: "p".into() });
    assert_eq!(
        s.aws.region.as_deref(),
        Some("us-east-1"),
        "the stored AWS settings stay"
    );
    assert_eq!((after[0].priority, after[0].batch_bytes), (2, Some(4096)));
}

#[test]
fn exports_the_protocol_cannot_express_are_hidden_and_kept_by_an_update() {
    let firehose = ExportDefinition::new("F", ExportKind::Firehose(FirehoseSettings::new("d")));
    let s3 = ExportDefinition::new("B", ExportKind::S3(S3Settings::new("bucket")));
    let ndjson = ExportDefinition::new("N", ExportKind::Http(HttpSettings::new("http://x")));
    let mut fast = ExportDefinition::new("Fast", ExportKind::Kinesis(KinesisSettings::new("k")));
    fast.batch_interval_ms = Some(50);
    let current = [firehose, s3, ndjson, fast];
    assert!(current.iter().all(|e| config_of(e).is_none()));
    let after = exports(&current, &configs(vec![kinesis("K", "a")]), &settings()).unwrap();
    assert_eq!(after.len(), 5);
    let e = exports(&current, &configs(vec![kinesis("F", "a")]), &settings()).unwrap_err();
    assert!(e.contains("cannot express"), "{e}");
}
