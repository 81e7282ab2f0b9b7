//! Export definitions: the stored JSON form, conversion with errors that name the key, and
//! Debug output that keeps secrets out.

use serde_json::json;

use super::*;
use crate::definition::{
    check_http_url, AwsSettings, CredentialsSettings, HttpCompression, HttpFormat, PartitionKey,
    S3Format, MIN_S3_PART_SIZE_BYTES,
};

fn parse(v: serde_json::Value) -> Result<ExportDefinition, ExportConfigError> {
    let raw: RawExportDefinition = serde_json::from_value(v).unwrap();
    ExportDefinition::try_from(raw)
}

fn error_of(kind: &str, settings: serde_json::Value) -> ExportConfigError {
    parse(json!({"identifier": "e", "kind": kind, "settings": settings})).unwrap_err()
}

#[test]
fn the_stored_form_keeps_kind_and_settings_apart_and_reads_back_the_same() {
    let stored = json!({
        "identifier": "k", "kind": "kinesis", "batch_size": 100,
        "settings": {"stream_name": "s", "partition_key": "fixed", "partition_key_value": "p",
                     "region": "eu-west-1"}
    });
    let def: ExportDefinition = serde_json::from_value(stored).unwrap();
    let ExportKind::Kinesis(k) = &def.kind else {
        panic!("{def:?}")
    };
    assert_eq!(k.partition_key, PartitionKey::Fixed { value: "p".into() });
    assert_eq!(k.aws.region.as_deref(), Some("eu-west-1"));
    let written = serde_json::to_value(&def).unwrap();
    assert_eq!(written["kind"], "kinesis");
    assert_eq!(written["batch_size"], 100);
    assert_eq!(written["priority"], 10);
    assert_eq!(
        written["settings"],
        json!({"stream_name": "s", "partition_key": "fixed", "partition_key_value": "p",
               "region": "eu-west-1"})
    );
    let again: ExportDefinition = serde_json::from_value(written).unwrap();
    assert_eq!(again, def);
}

#[test]
fn settings_strings_become_enums() {
    let def = parse(json!({"identifier": "h", "kind": "http",
        "settings": {"url": "https://example.com/in", "format": "json_array"}}))
    .unwrap();
    assert!(matches!(&def.kind, ExportKind::Http(h) if h.format == HttpFormat::JsonArray));
    let def = parse(json!({"identifier": "o", "kind": "s3",
        "settings": {"bucket": "b", "format": "raw", "part_size_bytes": MIN_S3_PART_SIZE_BYTES}}))
    .unwrap();
    assert!(matches!(&def.kind, ExportKind::S3(s) if s.format == S3Format::Raw));
    assert_eq!(def.kind.name(), "s3");
}

#[test]
fn an_unknown_kind_is_refused_naming_the_kinds_there_are() {
    let e = error_of("ftp", json!({}));
    assert_eq!(e.key, "kind");
    assert_eq!(
        e.reason,
        "unknown export kind \"ftp\" (expected http, kinesis, firehose, s3 or s3_task)"
    );
}

#[test]
fn each_broken_setting_is_refused_naming_its_key() {
    let cases = [
        (
            "kinesis",
            json!({"region": "x"}),
            "settings.stream_name",
            "required",
        ),
        (
            "http",
            json!({"url": "http://x", "verb": "PUT"}),
            "settings.verb",
            "unknown setting",
        ),
        (
            "kinesis",
            json!({"stream_name": "s", "regoin": "x"}),
            "settings.regoin",
            "unknown",
        ),
        (
            "http",
            json!({"url": "ftp://x"}),
            "settings.url",
            "http or https",
        ),
        (
            "http",
            json!({"url": "http://"}),
            "settings.url",
            "with a host",
        ),
        (
            "http",
            json!({"url": "http://x", "timeout_ms": "soon"}),
            "settings.timeout_ms",
            "u64",
        ),
        (
            "http",
            json!({"url": "http://x", "format": "xml"}),
            "settings.format",
            "xml",
        ),
        (
            "http",
            json!({"url": "http://x", "headers": {"bad name": "v"}}),
            "settings.headers.bad name",
            "header name",
        ),
        (
            "http",
            json!({"url": "http://x", "max_batch_records": 0}),
            "settings.max_batch_records",
            "greater than 0",
        ),
        (
            "kinesis",
            json!({"stream_name": "s", "partition_key": "hash"}),
            "settings.partition_key",
            "hash",
        ),
        (
            "kinesis",
            json!({"stream_name": "s", "partition_key": "fixed"}),
            "settings.partition_key_value",
            "fixed",
        ),
        (
            "kinesis",
            json!({"stream_name": "s", "endpoint": "localhost:5000"}),
            "settings.endpoint",
            "http or https",
        ),
        (
            "firehose",
            json!({"delivery_stream_name": ""}),
            "settings.delivery_stream_name",
            "empty",
        ),
        (
            "s3",
            json!({"bucket": "b", "part_size_bytes": 1024}),
            "settings.part_size_bytes",
            "S3's minimum",
        ),
        (
            "s3",
            json!({"bucket": "b", "credentials": {"access_key_id": "A"}}),
            "settings.credentials.secret_access_key",
            "go together",
        ),
    ];
    for (kind, settings, key, reason) in cases {
        let e = error_of(kind, settings.clone());
        assert_eq!(e.key, key, "{kind} {settings}: {e}");
        assert!(e.reason.contains(reason), "{kind} {settings}: {e}");
    }
}

#[test]
fn definition_level_limits_are_checked_too() {
    let e = parse(
        json!({"identifier": "e", "kind": "http", "settings": {"url": "http://x"},
                         "batch_size": 0}),
    )
    .unwrap_err();
    assert_eq!(e.key, "batch_size");
    let e = parse(json!({"identifier": "", "kind": "http", "settings": {"url": "http://x"}}))
        .unwrap_err();
    assert_eq!(e.key, "identifier");
}

#[test]
fn a_definition_that_does_not_convert_does_not_deserialize() {
    let err = serde_json::from_value::<ExportDefinition>(
        json!({"identifier": "e", "kind": "http", "settings": {"url": "gopher://x"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("settings.url") && err.contains("gopher"),
        "{err}"
    );
}

#[test]
fn urls_need_an_http_scheme_and_a_host() {
    for ok in [
        "http://x",
        "HTTPS://example.com:8443/a?b#c",
        "http://user:pw@host/p",
        "http://[::1]:8080/",
    ] {
        assert!(check_http_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "x",
        "ftp://x",
        "http:///path",
        "http://host:port/",
        "http://a b",
        "http://[::1",
    ] {
        assert!(check_http_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut http = HttpSettings::new("http://x");
    http.headers
        .insert("authorization".into(), "Bearer hunter2".into());
    let creds = CredentialsSettings {
        access_key_id: Some("AKIDEXAMPLE".into()),
        secret_access_key: Some("wJalrXUtnFEMI".into()),
        session_token: Some("FQoGZXIvYXdzE".into()),
        ..CredentialsSettings::default()
    };
    let aws = AwsSettings {
        credentials: Some(creds),
        ..AwsSettings::default()
    };
    let mut kinesis = crate::definition::KinesisSettings::new("s");
    kinesis.aws = aws;
    for kind in [ExportKind::Http(http), ExportKind::Kinesis(kinesis)] {
        let out = format!("{:?}", ExportDefinition::new("e", kind));
        for secret in ["hunter2", "wJalrXUtnFEMI", "FQoGZXIvYXdzE"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("<redacted>"), "{out}");
    }
}

#[test]
fn batches_in_flight_default_by_kind_and_the_definition_wins() {
    let http = |extra: serde_json::Value| {
        let mut v = json!({"identifier": "h", "kind": "http", "settings": {"url": "http://x"}});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse(v)
    };
    assert_eq!(
        http(json!({})).unwrap().in_flight_limit(),
        DEFAULT_MAX_IN_FLIGHT_BATCHES as usize
    );
    let kinesis =
        parse(json!({"identifier": "k", "kind": "kinesis", "settings": {"stream_name": "s"}}))
            .unwrap();
    assert_eq!(kinesis.in_flight_limit(), 1, "order per partition key");
    let three = http(json!({"max_in_flight_batches": 3})).unwrap();
    assert_eq!(three.in_flight_limit(), 3);
    let written = serde_json::to_value(&three).unwrap();
    assert_eq!(written["max_in_flight_batches"], 3);
    let unset = serde_json::to_value(http(json!({})).unwrap()).unwrap();
    assert!(
        unset.get("max_in_flight_batches").is_none(),
        "unset stays unset: {unset}"
    );
    for bad in [0, MAX_IN_FLIGHT_BATCHES + 1] {
        let e = http(json!({ "max_in_flight_batches": bad })).unwrap_err();
        assert_eq!(e.key, "max_in_flight_batches");
        assert!(e.reason.contains("1 to 64"), "{e}");
    }
}

#[test]
fn http_compression_is_none_unless_gzip_is_asked_for() {
    let http = |settings: serde_json::Value| {
        parse(json!({"identifier": "h", "kind": "http", "settings": settings}))
    };
    let plain = http(json!({"url": "http://x"})).unwrap();
    assert!(matches!(&plain.kind, ExportKind::Http(h) if h.compression == HttpCompression::None));
    let zipped = http(json!({"url": "http://x", "compression": "gzip"})).unwrap();
    assert!(matches!(&zipped.kind, ExportKind::Http(h) if h.compression == HttpCompression::Gzip));
    assert_eq!(zipped.kind.settings()["compression"], "gzip");
    let e = http(json!({"url": "http://x", "compression": "zstd"})).unwrap_err();
    assert_eq!(e.key, "settings.compression", "{e}");
}
