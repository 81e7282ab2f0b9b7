//! Container apps against the real Docker engine on this machine, with a busybox image
//! imported for each test (nothing can be pulled here). Every test removes what it made, even
//! when it fails (`docker::Sandbox`).
//!
//! The library level (`ferry_connectors::docker`): deploy, a failing update rolled back, a new
//! deployer adopting a running app, removal.

#[path = "apps/docker.rs"]
mod docker;

use std::collections::HashMap;
use std::time::Duration;

use docker::{Sandbox, SOCKET};
use ferry_connectors::docker::compose::{self, ParseOptions};
use ferry_connectors::docker::{
    converge, remove, DesiredApp, DockerEngine, Engine, Outcome, RolloutSettings, RunState,
};

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
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 5000 -h /www & wait"]
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
