//! What the app endpoints answer, as typed serde structs the API serialises and the CLI
//! deserialises. No secret (registry credentials, tokens) is ever part of them.

use ferry_connectors::docker::{Health, Observed, RunState};
use serde::{Deserialize, Serialize};

use super::source::AppSource;
use super::Entry;

/// Where an app's deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Checked and queued; nothing changed yet.
    Accepted,
    /// Creating networks and volumes, pulling images, starting services.
    Starting,
    /// Waiting for the new revision to become healthy.
    Verifying,
    RollingBack,
    Healthy,
    /// The last deployment failed; the previous revision runs (see `reason`).
    RolledBack,
    /// The last deployment failed with nothing to go back to (see `reason`).
    Failed,
    Removing,
    /// The Docker engine cannot be reached; Ferry retries (see `reason`).
    EngineUnavailable,
}

impl AppState {
    /// No further change comes without a new deployment (the CLI stops waiting).
    pub fn settled(self) -> bool {
        matches!(
            self,
            AppState::Healthy
                | AppState::RolledBack
                | AppState::Failed
                | AppState::EngineUnavailable
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Accepted => "accepted",
            AppState::Starting => "starting",
            AppState::Verifying => "verifying",
            AppState::RollingBack => "rolling_back",
            AppState::Healthy => "healthy",
            AppState::RolledBack => "rolled_back",
            AppState::Failed => "failed",
            AppState::Removing => "removing",
            AppState::EngineUnavailable => "engine_unavailable",
        }
    }
}

/// `GET /v1/apps/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub source: AppSource,
    pub state: AppState,
    /// The revision running (or being deployed while not settled).
    pub revision: Option<String>,
    /// Why the last deployment failed or was rolled back, or why the engine is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub updated_at_ms: i64,
    /// How often a deployment of this app was rolled back since Ferry started.
    pub rollbacks: u64,
    /// The containers as the engine reports them now (empty when it cannot be asked).
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: String,
    pub container: String,
    pub revision: String,
    pub state: RunState,
    pub health: Health,
    pub restart_count: u64,
}

/// `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

/// An app's view: Ferry's side from `e`, the containers from `observed`.
pub(super) fn view(name: &str, e: &Entry, observed: &Option<Observed>) -> AppView {
    let services = observed
        .as_ref()
        .map(|o| {
            o.of_app(name)
                .containers
                .into_iter()
                .map(|c| ServiceView {
                    service: c.service,
                    container: c.name,
                    revision: c.revision,
                    state: c.state,
                    health: c.health,
                    restart_count: c.restart_count,
                })
                .collect()
        })
        .unwrap_or_default();
    AppView {
        name: name.to_string(),
        source: e.source,
        state: e.state,
        revision: e.desired.as_ref().map(|d| d.revision.clone()),
        reason: e.reason.clone(),
        updated_at_ms: e.updated_at_ms,
        rollbacks: e.rollbacks,
        services,
    }
}
