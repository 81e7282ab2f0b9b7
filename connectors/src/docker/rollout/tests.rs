//! The planner and the rollout machine, driven against the in-memory engine.

use std::collections::HashMap;

use super::*;
use crate::docker::compose::{self, ParseOptions};
use crate::docker::fake::FakeDocker;
use crate::docker::observed::Health;
use crate::docker::plan::{plan_app, plan_removal, AppPlan};

const SETTINGS: RolloutSettings = RolloutSettings {
    health_timeout_ms: 30_000,
    healthy_after_ms: 5_000,
    poll_ms: 500,
};

fn app(name: &str, text: &str) -> DesiredApp {
    let vars = HashMap::new();
    let parsed = compose::parse(
        text,
        ParseOptions {
            vars: &vars,
            base_dir: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    DesiredApp::new(name, &parsed.compose).unwrap()
}

fn web_db(web_image: &str) -> String {
    format!(
        r#"
services:
  web:
    image: {web_image}
    ports: ["80:5000"]
    depends_on:
      db: {{condition: service_healthy}}
    healthcheck: {{test: ["CMD", "check"], interval: 1s}}
  db:
    image: db:1
    healthcheck: {{test: "pg_isready", interval: 1s}}
"#
    )
}

/// Runs a rollout to its end, moving the fake clock to each requested wake-up.
fn drive(docker: &mut FakeDocker, target: &DesiredApp) -> Outcome {
    let mut r = Rollout::new(target.clone(), &docker.observed, SETTINGS);
    for _ in 0..1000 {
        match r.next(docker.now_ms, &docker.observed) {
            Next::Apply {
                actions,
                best_effort,
            } => {
                for a in &actions {
                    if let Err(e) = docker.apply(a) {
                        r.action_failed(a, &e);
                        if !best_effort {
                            break;
                        }
                    }
                }
            }
            Next::WaitUntil(t) => {
                assert!(t > docker.now_ms, "a wait must move time forward");
                docker.advance_to(t);
            }
            Next::Done(o) => return o,
        }
    }
    panic!("the rollout did not end: {:?}", docker.log);
}

fn deployed(image: &str) -> (FakeDocker, DesiredApp) {
    let mut docker = FakeDocker::default();
    let target = app("shop", &web_db(image));
    assert_eq!(drive(&mut docker, &target), Outcome::Healthy);
    docker.log.clear();
    (docker, target)
}

#[test]
fn a_first_deploy_starts_dependencies_first_and_waits_for_their_health() {
    let mut docker = FakeDocker::default();
    let target = app("shop", &web_db("web:1"));
    assert_eq!(plan_app(&target, &docker.observed), AppPlan::Update);
    assert_eq!(drive(&mut docker, &target), Outcome::Healthy);
    let log = docker.log.join("\n");
    let db = target.service("db").unwrap().container_name.clone();
    let web = target.service("web").unwrap().container_name.clone();
    assert!(
        log.starts_with("create network ferry-shop-default"),
        "{log}"
    );
    let pos = |s: &str| docker.log.iter().position(|l| l == s).unwrap();
    assert!(pos(&format!("start container {db}")) < pos(&format!("create container {web}")));
    assert_eq!(docker.running("shop", "web").len(), 1);
    assert_eq!(docker.running("shop", "db")[0].health, Health::Healthy);
    // web only started once db was healthy.
    let web_started = docker.running("shop", "web")[0].started_at_ms.unwrap();
    assert!(
        web_started >= crate::docker::fake::HEALTHY_AFTER_MS,
        "{web_started}"
    );
}

#[test]
fn a_running_app_is_adopted_without_any_action() {
    let (docker, _) = deployed("web:1");
    // What a restarted Ferry builds from the same compose file.
    let again = app("shop", &web_db("web:1"));
    assert_eq!(plan_app(&again, &docker.observed), AppPlan::Steady(vec![]));
}

#[test]
fn a_removed_network_is_recreated_without_touching_containers() {
    let (mut docker, target) = deployed("web:1");
    docker.observed.networks.clear();
    match plan_app(&target, &docker.observed) {
        AppPlan::Steady(actions) => {
            assert_eq!(actions.len(), 1);
            assert!(
                matches!(&actions[0], Action::CreateNetwork(n) if n.engine_name == "ferry-shop-default")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_update_hands_the_port_over_and_keeps_unchanged_services() {
    let (mut docker, old) = deployed("web:1");
    let db_id = docker.running("shop", "db")[0].id.clone();
    let old_web = old.service("web").unwrap().container_name.clone();
    let new = app("shop", &web_db("web:2"));
    assert_eq!(plan_app(&new, &docker.observed), AppPlan::Update);
    assert_eq!(drive(&mut docker, &new), Outcome::Healthy);
    let new_web = new.service("web").unwrap().container_name.clone();
    let pos = |s: &str| docker.log.iter().position(|l| l == s).unwrap();
    assert!(
        pos(&format!("stop container {old_web}")) < pos(&format!("start container {new_web}")),
        "the old container frees port 80 first: {:?}",
        docker.log
    );
    assert!(
        docker.observed.container(&old_web).is_none(),
        "removed once the new one is healthy"
    );
    assert_eq!(
        docker.running("shop", "db")[0].id,
        db_id,
        "db was not recreated"
    );
    assert_eq!(plan_app(&new, &docker.observed), AppPlan::Steady(vec![]));
}

#[test]
fn a_service_without_fixed_ports_runs_beside_its_old_revision_until_healthy() {
    let text = |tag: &str| format!("services:\n  worker:\n    image: worker:{tag}\n");
    let mut docker = FakeDocker::default();
    assert_eq!(drive(&mut docker, &app("w", &text("1"))), Outcome::Healthy);
    docker.log.clear();
    assert_eq!(drive(&mut docker, &app("w", &text("2"))), Outcome::Healthy);
    assert!(
        !docker.log.iter().any(|l| l.starts_with("stop")),
        "{:?}",
        docker.log
    );
    assert!(
        docker.now_ms >= SETTINGS.healthy_after_ms,
        "no healthcheck: it had to run for a while"
    );
    assert_eq!(docker.running("w", "worker").len(), 1);
}

#[test]
fn an_unhealthy_update_rolls_back_to_the_old_revision() {
    let (mut docker, old) = deployed("web:1");
    let old_web = old.service("web").unwrap().container_name.clone();
    let bad = app("shop", &web_db("web:2-unhealthy"));
    match drive(&mut docker, &bad) {
        Outcome::RolledBack { reason } => {
            assert!(
                reason.contains("service web is unhealthy: connection refused"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let web = docker.running("shop", "web");
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].name, old_web, "the old container runs again");
    let new_web = bad.service("web").unwrap().container_name.clone();
    assert!(
        docker.observed.container(&new_web).is_none(),
        "the failed one is removed"
    );
    assert_eq!(plan_app(&old, &docker.observed), AppPlan::Steady(vec![]));
}

#[test]
fn an_update_that_never_becomes_healthy_rolls_back_at_the_timeout() {
    let (mut docker, _) = deployed("web:1");
    // No healthcheck and a crash loop would fail early; a healthcheck stuck in "starting" can
    // only end by the timeout.
    let stuck = app("shop", &web_db("web:2"));
    let started = docker.now_ms;
    let mut r = Rollout::new(stuck.clone(), &docker.observed, SETTINGS);
    let outcome = loop {
        match r.next(docker.now_ms, &docker.observed) {
            Next::Apply { actions, .. } => {
                for a in &actions {
                    docker.apply(a).unwrap();
                }
            }
            // Time passes but the fake is not told to run healthchecks: health stays "starting".
            Next::WaitUntil(t) => docker.now_ms = t,
            Next::Done(o) => break o,
        }
    };
    match outcome {
        Outcome::RolledBack { reason } => {
            assert!(
                reason.contains("not healthy within 30000 ms: web (health: starting)"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(docker.now_ms - started >= SETTINGS.health_timeout_ms);
    assert_eq!(docker.running("shop", "web").len(), 1);
}

#[test]
fn a_crashing_update_and_an_unpullable_image_roll_back() {
    let text =
        |image: &str| format!("services:\n  worker:\n    image: {image}\n    restart: always\n");
    let mut docker = FakeDocker::default();
    assert_eq!(
        drive(&mut docker, &app("w", &text("worker:1"))),
        Outcome::Healthy
    );
    match drive(&mut docker, &app("w", &text("worker:2-crash"))) {
        Outcome::RolledBack { reason } => assert!(reason.contains("crashed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match drive(&mut docker, &app("w", &text("missing/worker:3"))) {
        Outcome::RolledBack { reason } => {
            assert!(
                reason.starts_with("create container ferry-w-worker-"),
                "{reason}"
            );
            assert!(reason.contains("pull access denied"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let running = docker.running("w", "worker");
    assert_eq!(running.len(), 1);
    assert_eq!(
        docker.observed.containers.len(),
        1,
        "nothing of the failed revisions is left"
    );
}

#[test]
fn a_failed_first_deploy_leaves_nothing_running() {
    let mut docker = FakeDocker::default();
    match drive(&mut docker, &app("shop", &web_db("web:1-unhealthy"))) {
        Outcome::Failed { reason } => assert!(reason.contains("unhealthy"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        docker.observed.containers.is_empty(),
        "{:?}",
        docker.observed.containers
    );
}

#[test]
fn a_dependency_without_a_healthcheck_cannot_satisfy_service_healthy() {
    let text = "services:\n  a:\n    image: a\n    depends_on: {b: {condition: service_healthy}}\n  b:\n    image: b\n";
    let mut docker = FakeDocker::default();
    match drive(&mut docker, &app("x", text)) {
        Outcome::Failed { reason } => assert!(reason.contains("b has no healthcheck"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_one_shot_service_that_completes_satisfies_its_dependents() {
    let text = "services:\n  app:\n    image: app\n    depends_on: {migrate: {condition: service_completed_successfully}}\n  migrate:\n    image: migrate-exit0\n";
    let mut docker = FakeDocker::default();
    assert_eq!(drive(&mut docker, &app("x", text)), Outcome::Healthy);
    assert_eq!(docker.running("x", "app").len(), 1);
}

#[test]
fn a_rollout_after_a_crash_of_ferry_keeps_what_already_runs() {
    let (mut docker, _) = deployed("web:1");
    let new = app("shop", &web_db("web:2"));
    // A rollout got as far as creating and starting the new web, then Ferry died.
    let mut first = Rollout::new(new.clone(), &docker.observed, SETTINGS);
    while let Next::Apply { actions, .. } = first.next(docker.now_ms, &docker.observed) {
        for a in &actions {
            docker.apply(a).unwrap();
        }
        if docker
            .log
            .iter()
            .any(|l| l.starts_with("start container ferry-shop-web"))
        {
            break;
        }
    }
    docker.log.clear();
    assert_eq!(drive(&mut docker, &new), Outcome::Healthy);
    assert!(
        !docker.log.iter().any(|l| l.starts_with("create")),
        "{:?}",
        docker.log
    );
    assert_eq!(
        docker.observed.containers.len(),
        2,
        "the old web was removed"
    );
}

#[test]
fn removal_takes_the_apps_containers_and_networks_and_volumes_only_on_request() {
    let text = "services:\n  a:\n    image: a\n    volumes: [data:/data]\nvolumes:\n  data: {}\n";
    let mut docker = FakeDocker::default();
    assert_eq!(drive(&mut docker, &app("one", text)), Outcome::Healthy);
    assert_eq!(drive(&mut docker, &app("two", text)), Outcome::Healthy);
    let actions = plan_removal("one", &docker.observed, false);
    let described: Vec<String> = actions.iter().map(Action::describe).collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert!(described[0].starts_with("remove container ferry-one-a-"));
    assert_eq!(described[1], "remove network ferry-one-default");
    let with_volumes = plan_removal("one", &docker.observed, true);
    assert_eq!(
        with_volumes.last().map(Action::describe).as_deref(),
        Some("remove volume ferry-one-data")
    );
}

#[test]
fn specs_hash_deterministically_and_name_engine_objects_per_app() {
    let a = app("shop", &web_db("web:1"));
    let b = app("shop", &web_db("web:1"));
    assert_eq!(a, b);
    let changed = app("shop", &web_db("web:2"));
    assert_ne!(a.revision, changed.revision);
    assert_eq!(
        a.service("db").unwrap().spec_hash,
        changed.service("db").unwrap().spec_hash
    );
    assert_ne!(
        a.service("web").unwrap().spec_hash,
        changed.service("web").unwrap().spec_hash
    );
    let web = a.service("web").unwrap();
    assert!(web.container_name.starts_with("ferry-shop-web-"));
    assert_eq!(web.networks[0].network, "ferry-shop-default");
    assert_eq!(web.networks[0].aliases, vec!["web".to_string()]);
    assert!(web.hands_over());
    let host = app(
        "h",
        "services:\n  a:\n    image: a\n    network_mode: host\n",
    );
    assert!(host.networks.is_empty() && host.services[0].networks.is_empty());
    assert!(host.services[0].hands_over());
    assert!(DesiredApp::new("bad name", &compose::Compose::default()).is_err());
}
