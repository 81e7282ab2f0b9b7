//! Stream definitions through the service layer: a broken export is refused with the key that
//! is wrong before anything is created, and exports follow definition changes by themselves
//! (the answer to a create or update already shows them).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::api::Daemon;

fn stream_with_export(name: &str, export: Value) -> Value {
    json!({"name": name, "exports": [export]})
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
    let (s, v) = d
        .call(Method::PUT, "/v1/streams/s", Some(json!({"name": "s"})))
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
