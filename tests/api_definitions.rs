//! Stream definitions through the service layer: a broken export is refused with the key that
//! is wrong before anything is created, and exports follow definition changes by themselves
//! (the answer to a create or update already shows them).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::api::Daemon;

fn stream_with_export(name: &str, export: Value) -> Value {
    json!({"name": name, "max_size_bytes": 65536, "exports": [export]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_export_is_refused_naming_the_key_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let cases = [
        (json!({"identifier": "e", "kind": "ftp"}), "kind"),
        (
            json!({"identifier": "e", "kind": "http", "settings": {"url": "not a url"}}),
            "url",
        ),
        (
            json!({"identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/", "verb": "PUT"}}),
            "verb",
        ),
        (
            json!({"identifier": "e", "kind": "kinesis", "settings": {"region": "eu-west-1"}}),
            "stream_name",
        ),
    ];
    for (export, key) in cases {
        let (s, v) = d
            .call(
                Method::POST,
                "/v1/streams",
                Some(stream_with_export("broken", export.clone())),
            )
            .await;
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_definition")),
            "{export}: {v}"
        );
        assert!(
            message.contains("exports[0]") && message.contains(key),
            "the message should name exports[0] and {key:?}: {message}"
        );
        let (s, _) = d.call(Method::GET, "/v1/streams/broken", None).await;
        assert_eq!(s, 404, "a refused definition creates nothing");
    }
    // The same check guards an update: the stream keeps its old definition.
    let (s, _) = d
        .call(Method::POST, "/v1/streams", Some(json!({"name": "ok"})))
        .await;
    assert_eq!(s, 201);
    let (s, v) = d
        .call(
            Method::PUT,
            "/v1/streams/ok",
            Some(stream_with_export(
                "ok",
                json!({"identifier": "e", "kind": "ftp"}),
            )),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );
    let (_, v) = d.call(Method::GET, "/v1/streams/ok", None).await;
    assert_eq!(v["definition"]["exports"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_start_and_stop_with_the_definition_that_declares_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    // Port 9 (discard) is closed here: the export exists and keeps retrying.
    let export =
        json!({"identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}});
    let (s, v) = d
        .call(
            Method::POST,
            "/v1/streams",
            Some(stream_with_export("s", export)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["exports"][0]["identifier"], "e",
        "the create answer already shows the export: {v}"
    );
    // An update that does not name the exports keeps them, and the segment size with them.
    let segment = v["definition"]["segment_size_bytes"].clone();
    let (s, v) = d
        .call(
            Method::PATCH,
            "/v1/streams/s",
            Some(json!({"max_size_bytes": 1048576})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["definition"]["max_size_bytes"], 1048576);
    assert_eq!(v["definition"]["segment_size_bytes"], segment);
    assert_eq!(v["exports"][0]["identifier"], "e", "{v}");
    let (s, v) = d
        .call(
            Method::PUT,
            "/v1/streams/s",
            Some(json!({"name": "s", "exports": []})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["exports"],
        json!([]),
        "the export stopped with its definition"
    );
    let metrics = d.metrics().await;
    assert!(
        !metrics.contains("export=\"e\""),
        "no export left in /metrics:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_updates_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let (ok, _, err) = d.cli(&[
        "create",
        "u",
        "--max-size-bytes",
        "65536",
        "--time-to-live-ms",
        "60000",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = d.cli(&["update", "u", "--strategy-on-full", "overwrite_oldest_data"]);
    assert!(ok, "{err}");
    assert!(out.contains("overwrite_oldest_data"), "{out}");
    let (_, v) = d.call(Method::GET, "/v1/streams/u", None).await;
    assert_eq!(v["definition"]["max_size_bytes"], 65536);
    assert_eq!(v["definition"]["time_to_live_ms"], 60000);
    let (ok, _, err) = d.cli(&["update", "u", "--no-time-to-live"]);
    assert!(ok, "{err}");
    let (_, v) = d.call(Method::GET, "/v1/streams/u", None).await;
    assert_eq!(v["definition"]["time_to_live_ms"], Value::Null);
    assert_eq!(v["definition"]["strategy_on_full"], "overwrite_oldest_data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_an_endpoint_does_not_take_gets_a_json_405() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let (s, v) = d.call(Method::PATCH, "/v1/streams", Some(json!({}))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_the_api_address_and_token_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "[api]\ntoken = \"sekrit\"\n", Some("sekrit"));
    let listen = d.api.trim_start_matches("http://");
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(
        &cli_config,
        format!("[api]\nlisten = \"{listen}\"\ntoken = \"sekrit\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["streams", "list", "--config"])
        .arg(&cli_config)
        .env_remove("FERRY_URL")
        .env_remove("FERRY_TOKEN")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("NAME"),
        "{stdout}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_shown_and_survive_a_read_modify_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let export = json!({"identifier": "e", "kind": "http",
        "settings": {"url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer hunter2"}}});
    let (s, v) = d
        .call(
            Method::POST,
            "/v1/streams",
            Some(stream_with_export("sec", export)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(!v.to_string().contains("hunter2"), "{v}");
    // Read, change the priority, write the whole export list back as it was shown.
    let (_, v) = d.call(Method::GET, "/v1/streams/sec", None).await;
    assert!(!v.to_string().contains("hunter2"), "{v}");
    let mut exports = v["definition"]["exports"].clone();
    exports[0]["priority"] = json!(2);
    let (s, v) = d
        .call(
            Method::PATCH,
            "/v1/streams/sec",
            Some(json!({"exports": exports})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["definition"]["exports"][0]["priority"], 2);
    let (_, text, _) = d.cli(&["describe", "sec", "--json"]);
    assert!(!text.contains("hunter2"), "{text}");
    // The stored secret is the original one, not the placeholder.
    drop(d);
    let catalog = catalog_text(&dir.path().join("data/catalog.sqlite"));
    assert!(
        catalog.contains("Bearer hunter2"),
        "the real secret is kept"
    );
    assert!(
        !catalog.contains("<redacted>"),
        "the placeholder was not stored"
    );
}

/// The catalog's bytes as text (SQLite keeps short rows readable): enough to see which header
/// value was stored, without opening the database.
fn catalog_text(path: &std::path::Path) -> String {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    if let Ok(wal) = std::fs::read(path.with_extension("sqlite-wal")) {
        bytes.extend(wal);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
