//! The reconciler: desired apps against what the engine runs, as pure functions returning the
//! [`Action`]s to take. An app whose every service runs with the desired spec hash is left
//! alone, which is how a restarted Ferry adopts running apps instead of restarting them; any
//! other difference is a rollout ([`super::rollout::Rollout`]), so a change only replaces what
//! runs once the new revision is healthy.

use super::observed::{Observed, RunState};
use super::spec::{DesiredApp, NetworkSpec, ServiceSpec, VolumeSpec};

/// One change to the engine. Containers are named by their engine name, which Ferry chose.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateNetwork(NetworkSpec),
    CreateVolume(VolumeSpec),
    /// Pulls the image when it is missing, then creates the container (stopped).
    CreateContainer(Box<ServiceSpec>),
    StartContainer(String),
    StopContainer(String),
    /// Removes the container (stopping it first if it runs).
    RemoveContainer(String),
    RemoveNetwork(String),
    RemoveVolume(String),
}

impl Action {
    /// For logs and failure reasons: `create container ferry-web-web-0123abcd`.
    pub fn describe(&self) -> String {
        match self {
            Action::CreateNetwork(n) => format!("create network {}", n.engine_name),
            Action::CreateVolume(v) => format!("create volume {}", v.engine_name),
            Action::CreateContainer(s) => format!("create container {}", s.container_name),
            Action::StartContainer(c) => format!("start container {c}"),
            Action::StopContainer(c) => format!("stop container {c}"),
            Action::RemoveContainer(c) => format!("remove container {c}"),
            Action::RemoveNetwork(n) => format!("remove network {n}"),
            Action::RemoveVolume(v) => format!("remove volume {v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AppPlan {
    /// Every service runs (or ran and stopped under its own restart policy) with the desired
    /// spec, and nothing else of the app exists; the actions recreate a network or volume
    /// someone removed.
    Steady(Vec<Action>),
    /// Some service is missing or has another spec, or a leftover container exists: start a
    /// rollout to the desired revision.
    Update,
}

/// Whether `desired` already runs as asked.
pub fn plan_app(desired: &DesiredApp, observed: &Observed) -> AppPlan {
    let app = observed.of_app(&desired.name);
    let mut matched = 0;
    for spec in &desired.services {
        let same: Vec<_> = app
            .containers
            .iter()
            .filter(|c| c.service == spec.service && c.spec_hash == spec.spec_hash)
            .collect();
        let usable = same.len() == 1
            && !matches!(
                same[0].state,
                RunState::Created | RunState::Dead | RunState::Removing
            );
        if !usable {
            return AppPlan::Update;
        }
        matched += 1;
    }
    if app.containers.len() != matched {
        return AppPlan::Update;
    }
    AppPlan::Steady(missing_objects(desired, &app))
}

/// The networks and volumes the app needs that the engine does not have.
pub fn missing_objects(desired: &DesiredApp, app: &Observed) -> Vec<Action> {
    let mut actions = Vec::new();
    for n in &desired.networks {
        if !app.networks.iter().any(|o| o.name == n.engine_name) {
            actions.push(Action::CreateNetwork(n.clone()));
        }
    }
    for v in &desired.volumes {
        if !app.volumes.iter().any(|o| o.name == v.engine_name) {
            actions.push(Action::CreateVolume(v.clone()));
        }
    }
    actions
}

/// Everything of `app` that Ferry created, removed: containers, then networks, then (only
/// when asked: they hold data) volumes.
pub fn plan_removal(app: &str, observed: &Observed, remove_volumes: bool) -> Vec<Action> {
    let app = observed.of_app(app);
    let mut actions: Vec<Action> = app
        .containers
        .iter()
        .map(|c| Action::RemoveContainer(c.name.clone()))
        .collect();
    actions.extend(
        app.networks
            .iter()
            .map(|n| Action::RemoveNetwork(n.name.clone())),
    );
    if remove_volumes {
        actions.extend(
            app.volumes
                .iter()
                .map(|v| Action::RemoveVolume(v.name.clone())),
        );
    }
    actions
}
