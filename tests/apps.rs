//! Container apps against the real Docker engine on this machine, with a busybox image
//! imported for each test (nothing can be pulled here). Every test removes what it made, even
//! when it fails (`docker::Sandbox`).
//!
//! The library level (`ferry_connectors::docker`): deploy, a failing update rolled back, a new
//! deployer adopting a running app, removal. The agent level (`ferry run` and `ferry apps`):
//! an app from `[[apps]]` adopted after the daemon was killed and removed when the file no
//! longer names it; the CLI deploying, rolling back, refusing a bad file, showing logs and
//! metrics, removing; a crashed container restarted by its policy and kept; an app reaching
//! the streams it was granted through the injected FERRY_URL and FERRY_TOKEN.

#[path = "apps/docker.rs"]
mod docker;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use docker::{Sandbox, SOCKET};
use ferry_connectors::docker::compose::{self, ParseOptions};
use ferry_connectors::docker::{
    converge, remove, DesiredApp, DockerEngine, Engine, Outcome, RolloutSettings, RunState,
};
use reqwest::Method;
use support::api::Daemon;

const SETTINGS: RolloutSettings = RolloutSettings {
    health_timeout_ms: 30_000,
    healthy_after_ms: 1_000,
    poll_ms: 200,
};

/// A web service on busybox httpd, published on `port`; its healthcheck runs `check`.
fn web_compose(image: &str, port: u16, version: &str, check: &str) -> String {
    format!(
        r#"services:
  web:
    image: {image}
    command: ["sh", "-c", "echo started v{version}; trap 'exit 0' TERM; httpd -f -p 5000 -h /www & wait"]
    environment:
      VERSION: "{version}"
    ports: ["127.0.0.1:{port}:5000"]
    healthcheck:
      test: ["CMD", "{check}"]
      interval: 1s
      timeout: 1s
      retries: 1
"#
    )
}

fn desired(app: &str, text: &str) -> DesiredApp {
    let vars = HashMap::new();
    let parsed = compose::parse(
        text,
        ParseOptions {
            vars: &vars,
            base_dir: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    DesiredApp::new(app, &parsed.compose).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(port: u16) -> Option<String> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    r.text().await.ok()
}

/// Polls `condition` until it holds (at most 30 s).
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn web_container(app: &str) -> String {
    let names = Sandbox::objects("container", app);
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

#[tokio::test]
async fn a_compose_file_deploys_serves_and_is_removed_with_all_it_made() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("dep");
    let port = free_port();
    let engine = DockerEngine::connect(SOCKET, &app).await.unwrap();
    let target = desired(&app, &web_compose(&sandbox.image, port, "1", "true"));
    let done = converge(&engine, &target, SETTINGS, |_| {}).await.unwrap();
    assert_eq!(done.outcome, Outcome::Healthy);
    assert!(done.changed);

    let observed = engine.observe().await.unwrap().of_app(&app);
    assert_eq!(observed.containers.len(), 1);
    assert_eq!(observed.containers[0].state, RunState::Running);
    assert_eq!(observed.networks[0].name, format!("ferry-{app}-default"));
    let body = get(port).await;
    assert_eq!(body.as_deref(), Some("hello from busybox\n"));
    let c = web_container(&app);
    assert_eq!(
        Sandbox::inspect(&c, "{{index .Config.Labels \"ferry.service\"}}"),
        "web"
    );

    remove(&engine, &app, false).await.unwrap();
    assert!(Sandbox::objects("container", &app).is_empty());
    assert!(Sandbox::objects("network", &app).is_empty());
    assert_eq!(get(port).await, None, "nothing listens any more");
}

#[tokio::test]
async fn an_update_whose_healthcheck_fails_rolls_back_to_the_running_revision() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("rb");
    let port = free_port();
    let engine = DockerEngine::connect(SOCKET, &app).await.unwrap();
    let good = desired(&app, &web_compose(&sandbox.image, port, "1", "true"));
    assert_eq!(
        converge(&engine, &good, SETTINGS, |_| {})
            .await
            .unwrap()
            .outcome,
        Outcome::Healthy
    );
    let before = web_container(&app);
    let id_before = Sandbox::inspect(&before, "{{.Id}}");

    let bad = desired(&app, &web_compose(&sandbox.image, port, "2", "false"));
    let outcome = converge(&engine, &bad, SETTINGS, |_| {})
        .await
        .unwrap()
        .outcome;
    match outcome {
        Outcome::RolledBack { reason } => {
            assert!(reason.contains("service web is unhealthy"), "{reason}")
        }
        other => panic!("expected a rollback: {other:?}"),
    }
    let after = web_container(&app);
    assert_eq!(
        Sandbox::inspect(&after, "{{.Id}}"),
        id_before,
        "the old container is back"
    );
    assert_eq!(Sandbox::inspect(&after, "{{.State.Status}}"), "running");
    // It was stopped to hand port 80 over and started again: its healthcheck starts over.
    wait_until("the old revision is healthy again", || {
        Sandbox::inspect(&after, "{{.State.Health.Status}}") == "healthy"
    })
    .await;
    assert_eq!(get(port).await.as_deref(), Some("hello from busybox\n"));
}

#[tokio::test]
async fn a_new_deployer_adopts_the_running_app_instead_of_recreating_it() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("adopt");
    let port = free_port();
    let text = web_compose(&sandbox.image, port, "1", "true");
    {
        let engine = DockerEngine::connect(SOCKET, &app).await.unwrap();
        converge(&engine, &desired(&app, &text), SETTINGS, |_| {})
            .await
            .unwrap();
    }
    let c = web_container(&app);
    let started = Sandbox::inspect(&c, "{{.State.StartedAt}}");
    // What a restarted agent does: a new connection, the compose file parsed again.
    let engine = DockerEngine::connect(SOCKET, &app).await.unwrap();
    let done = converge(&engine, &desired(&app, &text), SETTINGS, |_| {})
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Healthy);
    assert!(!done.changed, "nothing was done");
    assert_eq!(web_container(&app), c);
    assert_eq!(
        Sandbox::inspect(&c, "{{.State.StartedAt}}"),
        started,
        "not restarted"
    );
}

/// The `[docker]` settings of the agent-level tests: quick polls and passes.
const DOCKER_SETTINGS: &str = "[docker]\nhealth_timeout_ms = 30000\nhealthy_after_ms = 1000\npoll_interval_ms = 200\nreconcile_interval_ms = 1000\n";

async fn app_status(d: &Daemon, app: &str) -> (u16, serde_json::Value) {
    d.call(Method::GET, &format!("/v1/apps/{app}"), None).await
}

/// Waits until the daemon reports `state` for `app` (at most 60 s).
async fn wait_state(d: &Daemon, app: &str, state: &str) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let (code, v) = app_status(d, app).await;
        if code == 200 && v["state"] == state {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{app} never became {state}: {code} {v}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ferry apps ARGS` against the daemon: success, stdout, stderr.
fn apps_cli(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("apps")
        .args(args)
        .env("FERRY_URL", &d.api)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn an_app_from_the_config_is_adopted_after_a_kill_and_removed_when_the_config_drops_it() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("cfg");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let compose_file = dir.path().join("compose.yaml");
    std::fs::write(
        &compose_file,
        web_compose(&sandbox.image, port, "1", "true"),
    )
    .unwrap();
    let apps_table = format!(
        "[[apps]]\nname = \"{app}\"\ncompose_file = \"{}\"\n",
        compose_file.display()
    );
    let mut d = Daemon::start(dir.path(), &format!("{apps_table}{DOCKER_SETTINGS}"), None);
    let v = wait_state(&d, &app, "healthy").await;
    assert_eq!(v["source"], "config");
    assert_eq!(v["services"][0]["service"], "web");
    let c = web_container(&app);
    let started = Sandbox::inspect(&c, "{{.State.StartedAt}}");
    assert_eq!(get(port).await.as_deref(), Some("hello from busybox\n"));

    // Killed: nothing of Ferry's shutdown runs; the container goes on serving.
    d.kill9();
    assert_eq!(get(port).await.as_deref(), Some("hello from busybox\n"));
    d.restart();
    wait_state(&d, &app, "healthy").await;
    assert_eq!(web_container(&app), c, "adopted, not recreated");
    assert_eq!(
        Sandbox::inspect(&c, "{{.State.StartedAt}}"),
        started,
        "not restarted"
    );

    // The configuration no longer names the app: the next start removes it.
    let config = dir.path().join("ferry.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&apps_table, "");
    std::fs::write(&config, text).unwrap();
    d.restart();
    let start = std::time::Instant::now();
    while !Sandbox::objects("container", &app).is_empty()
        || !Sandbox::objects("network", &app).is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the app was not removed:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app_status(&d, &app).await.0, 404);
}

#[tokio::test]
async fn the_cli_deploys_rolls_back_refuses_a_bad_file_shows_logs_and_removes() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("cli");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), DOCKER_SETTINGS, None);
    let file = dir.path().join("compose.yaml");
    let write = |text: String| std::fs::write(&file, text).unwrap();
    let file_arg = file.to_str().unwrap();

    write(web_compose(&sandbox.image, port, "1", "true"));
    let (ok, out, err) = apps_cli(&d, &["deploy", &app, file_arg]);
    assert!(ok, "{out}{err}\n{}", d.logs());
    assert!(out.contains(&format!("{app}: healthy")), "{out}");
    let c = web_container(&app);

    // An update whose healthcheck fails: rolled back, the old container serves again.
    write(web_compose(&sandbox.image, port, "2", "false"));
    let (ok, out, err) = apps_cli(&d, &["deploy", &app, file_arg]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("rolled_back") && err.contains("unhealthy"),
        "{err}"
    );
    let v = wait_state(&d, &app, "rolled_back").await;
    assert_eq!(v["rollbacks"], 1);
    assert_eq!(web_container(&app), c);

    // A key Ferry does not support: refused with its line, nothing changes.
    write(
        web_compose(&sandbox.image, port, "3", "true")
            .replace("    ports:", "    build: .\n    ports:"),
    );
    let (ok, _, err) = apps_cli(&d, &["deploy", &app, file_arg]);
    assert!(!ok);
    assert!(
        err.contains("invalid_app") && err.contains("line 7: services.web.build"),
        "{err}"
    );
    assert_eq!(app_status(&d, &app).await.1["state"], "rolled_back");
    assert_eq!(web_container(&app), c);

    let (ok, out, _) = apps_cli(&d, &["status", &app, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"][0]["container"], c.as_str());
    let (ok, out, _) = apps_cli(&d, &["list"]);
    assert!(
        ok && out.contains(&app) && out.contains("rolled_back"),
        "{out}"
    );
    // The old container ran twice (started, stopped for the handover, started again).
    let (ok, out, err) = apps_cli(&d, &["logs", &app, "web"]);
    assert!(ok, "{err}");
    assert_eq!(out, "started v1\nstarted v1\n");
    let (ok, out, _) = apps_cli(&d, &["logs", &app, "--tail", "1"]);
    assert!(ok);
    assert_eq!(out, "started v1\n", "one service: no prefix");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(&format!(
            "ferry_app_state{{app=\"{app}\",state=\"rolled_back\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("ferry_app_rollbacks_total{{app=\"{app}\"}} 1")));

    let (ok, out, err) = apps_cli(&d, &["remove", &app]);
    assert!(ok, "{out}{err}");
    assert!(Sandbox::objects("container", &app).is_empty());
    assert!(Sandbox::objects("network", &app).is_empty());
    assert_eq!(app_status(&d, &app).await.0, 404);
}

#[tokio::test]
async fn an_app_reaches_the_streams_it_was_granted_through_the_injected_variables() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("reach");
    let dir = tempfile::tempdir().unwrap();
    // `$$`: the container's shell expands these, not the compose file's interpolation. wget's
    // errors go to stdout so the log's order is the script's.
    let auth = r#"--header \"Authorization: Bearer $$FERRY_TOKEN\""#;
    let script = [
        format!(r#"wget -q -O /tmp/raw {auth} \"$$FERRY_URL/v1/streams/raw/records?from=0\" && echo read-raw"#),
        format!(r#"wget -q -O- {auth} --post-data '{{\"records\":[{{\"payload\":\"sum=3\"}}]}}' \"$$FERRY_URL/v1/streams/aggregates/records\" && echo appended"#),
        format!(r#"wget -q -O- {auth} --post-data '{{\"records\":[{{\"payload\":\"x\"}}]}}' \"$$FERRY_URL/v1/streams/raw/records\" 2>&1 || echo raw-refused"#),
        r#"wget -q -O- \"$$FERRY_URL/v1/streams\" 2>&1 || echo no-token-refused"#.to_string(),
        "trap 'exit 0' TERM; while :; do sleep 1; done".to_string(),
    ]
    .join("; ");
    let compose = format!(
        "services:\n  agg:\n    image: {}\n    command: [\"sh\", \"-c\", \"{script}\"]\n",
        sandbox.image
    );
    let compose_file = dir.path().join("compose.yaml");
    std::fs::write(&compose_file, compose).unwrap();
    let app_port = free_port();
    let extra = format!(
        "[[streams]]\nname = \"raw\"\n[[streams]]\nname = \"aggregates\"\n\
         [[apps]]\nname = \"{app}\"\ncompose_file = \"{}\"\nread_streams = [\"raw\"]\nwrite_streams = [\"aggregates\"]\n\
         {DOCKER_SETTINGS}app_api_listen = \"172.17.0.1:{app_port}\"\n",
        compose_file.display()
    );
    let d = Daemon::start(dir.path(), &extra, None);
    wait_state(&d, &app, "healthy").await;
    let start = std::time::Instant::now();
    let logs = loop {
        let (ok, out, _) = apps_cli(&d, &["logs", &app]);
        if ok && out.contains("no-token-refused") {
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the app did not finish: {out}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        logs,
        "read-raw\n{\"first_sequence_number\":0,\"count\":1}appended\n\
         wget: server returned error: HTTP/1.1 403 Forbidden\nraw-refused\n\
         wget: server returned error: HTTP/1.1 401 Unauthorized\nno-token-refused\n",
        "wget prints the append's answer before `appended`, and each refusal's status"
    );
    let (_, v) = d
        .call(Method::GET, "/v1/streams/aggregates/records?from=0", None)
        .await;
    assert_eq!(v["records"][0]["payload"], "sum=3", "{v}");
    let (_, v) = d.call(Method::GET, "/v1/streams/raw", None).await;
    assert_eq!(
        v["status"]["records"], 0,
        "the refused append stored nothing"
    );
    let env = Sandbox::inspect(&web_container(&app), "{{json .Config.Env}}");
    assert!(
        env.contains(&format!("FERRY_URL=http://172.17.0.1:{app_port}")),
        "{env}"
    );
}

#[tokio::test]
async fn a_crashed_container_is_restarted_by_its_policy_and_ferry_keeps_it() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("crash");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let compose_file = dir.path().join("compose.yaml");
    let text = web_compose(&sandbox.image, port, "1", "true")
        .replace("    environment:", "    restart: always\n    environment:");
    std::fs::write(&compose_file, text).unwrap();
    let extra = format!(
        "[[apps]]\nname = \"{app}\"\ncompose_file = \"{}\"\n{DOCKER_SETTINGS}",
        compose_file.display()
    );
    let d = Daemon::start(dir.path(), &extra, None);
    wait_state(&d, &app, "healthy").await;
    let c = web_container(&app);
    let id = Sandbox::inspect(&c, "{{.Id}}");
    // The service's shell exits on SIGTERM: a crash as far as the engine knows. The exec's own
    // exit status is not checked: when PID 1 dies first, the engine ends the exec session too
    // (a non-zero status with nothing on stderr). The restart below is what proves the kill.
    let _ = std::process::Command::new("docker")
        .args(["exec", &c, "kill", "-TERM", "1"])
        .output()
        .unwrap();
    wait_until("the engine restarted it", || {
        Sandbox::inspect(&c, "{{.RestartCount}}") == "1"
            && Sandbox::inspect(&c, "{{.State.Status}}") == "running"
    })
    .await;
    // A reconcile pass after the restart (the status is stamped by each) keeps that container.
    let stamped = app_status(&d, &app).await.1["updated_at_ms"]
        .as_i64()
        .unwrap();
    let start = std::time::Instant::now();
    let v = loop {
        let v = app_status(&d, &app).await.1;
        if v["updated_at_ms"].as_i64().unwrap() > stamped {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no pass ran: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["state"], "healthy");
    assert_eq!(v["services"][0]["restart_count"], 1, "{v}");
    assert_eq!(
        Sandbox::inspect(&web_container(&app), "{{.Id}}"),
        id,
        "not recreated"
    );
    assert_eq!(
        d.logs().matches("rolling out").count(),
        1,
        "only the first deployment:\n{}",
        d.logs()
    );
    assert_eq!(get(port).await.as_deref(), Some("hello from busybox\n"));
}
