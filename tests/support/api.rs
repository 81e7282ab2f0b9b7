//! A `ferry run` daemon driven through its local HTTP API, shared by the API and export tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{free_port, Ferry};

/// A daemon with its own config and data directory under the test's temporary directory, an
/// embedded MQTT broker and the local API on free ports.
pub struct Daemon {
    /// `None` between `kill9` and `restart`.
    ferry: Option<Ferry>,
    /// The API's base URL, `http://127.0.0.1:PORT`; it changes on `restart`.
    pub api: String,
    /// Where the embedded broker listens.
    pub mqtt_port: u16,
    /// A plain client: requests through it carry no token (`req` adds one).
    pub http: reqwest::Client,
    token: Option<String>,
    config: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    /// Writes `DIR/ferry.toml` (`extra` is TOML placed before the broker's table) and starts the
    /// daemon. `token` is the API token `extra` configures, if any: `req`, `call` and `cli` send
    /// it.
    pub fn start(dir: &Path, extra: &str, token: Option<&str>) -> Daemon {
        let mqtt_port = free_port();
        let config = dir.join("ferry.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n{extra}\n[embedded_broker]\nlisten = \"127.0.0.1:{mqtt_port}\"\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut d = Daemon {
            ferry: None,
            api: String::new(),
            mqtt_port,
            http: reqwest::Client::new(),
            token: token.map(String::from),
            config,
            dir: dir.to_owned(),
        };
        d.restart();
        d
    }

    /// Starts the daemon (again, after `kill9`) on the same config and data, with the API on a
    /// fresh port, and waits until it is ready.
    pub fn restart(&mut self) {
        // Never two daemons on one data directory.
        self.ferry = None;
        let ferry = Ferry::start(&self.config, &self.dir);
        self.api = format!("http://{}", ferry.api);
        self.ferry = Some(ferry);
    }

    /// SIGKILLs the daemon: nothing of its shutdown path runs.
    pub fn kill9(&mut self) {
        self.ferry.take().expect("the daemon runs").kill9();
    }

    pub fn logs(&self) -> String {
        self.ferry.as_ref().map(Ferry::logs).unwrap_or_default()
    }

    /// A request to the API, with the token if the daemon has one.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.api));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends `body` as JSON and returns the status and the JSON answer (`Null` if there is none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a stream from its definition; the test cannot go on if that fails.
    pub async fn create(&self, definition: Value) {
        let (s, v) = self
            .call(Method::POST, "/v1/streams", Some(definition))
            .await;
        assert_eq!(s, 201, "creating a stream: {v}");
    }

    /// Replaces the definition of the stream it names; the test cannot go on if that fails.
    pub async fn update(&self, definition: Value) {
        let path = format!("/v1/streams/{}", definition["name"].as_str().unwrap());
        let (s, v) = self.call(Method::PUT, &path, Some(definition)).await;
        assert_eq!(s, 200, "{path}: {v}");
    }

    /// Appends text payloads in one request and returns the answer, which the caller checks.
    pub async fn append(&self, stream: &str, payloads: &[&str]) -> (u16, Value) {
        let records: Vec<Value> = payloads.iter().map(|p| json!({"payload": p})).collect();
        self.call(
            Method::POST,
            &format!("/v1/streams/{stream}/records"),
            Some(json!({"records": records})),
        )
        .await
    }

    /// Appends records (as the API takes them) in requests of 100; each must be stored.
    pub async fn append_all(&self, stream: &str, records: Vec<Value>) {
        for chunk in records.chunks(100) {
            let (s, v) = self
                .call(
                    Method::POST,
                    &format!("/v1/streams/{stream}/records"),
                    Some(json!({"records": chunk})),
                )
                .await;
            assert_eq!(s, 201, "appending to {stream}: {v}");
        }
    }

    /// Appends `n` records whose payloads are their index zero-padded to `size` bytes.
    pub async fn fill(&self, stream: &str, n: usize, size: usize) {
        let records = (0..n)
            .map(|i| json!({"payload": format!("{i:0>size$}")}))
            .collect();
        self.append_all(stream, records).await;
    }

    /// The `/metrics` page, as text.
    pub async fn metrics(&self) -> String {
        let resp = self.req(Method::GET, "/metrics").send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// The status of the stream's first export.
    pub async fn export_status(&self, stream: &str) -> Value {
        let (_, v) = self
            .call(Method::GET, &format!("/v1/streams/{stream}"), None)
            .await;
        v["exports"][0].clone()
    }

    /// Polls the first export's status until `pred` holds (at most 60 s) and returns it; `what`
    /// names the awaited state in the failure message.
    pub async fn wait_export(
        &self,
        stream: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let s = self.export_status(stream).await;
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "export never {what}: {s}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `ferry streams ARGS` against the daemon; returns success, stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_of("streams", args)
    }

    /// Runs `ferry COMMAND ARGS` (a client command: `streams`, `exports`) against the daemon.
    pub fn cli_of(&self, command: &str, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg(command).args(args).env("FERRY_URL", &self.api);
        if let Some(t) = &self.token {
            cmd.env("FERRY_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}
