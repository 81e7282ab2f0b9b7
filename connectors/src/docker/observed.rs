//! What the engine reports about the objects Ferry labelled: the "actual" side of
//! reconciliation, as plain values the planner can be tested with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Health {
    /// No healthcheck (or it is disabled).
    None,
    Starting,
    Healthy,
    /// With the output of the last failed check, for the operator.
    Unhealthy {
        last_output: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub app: String,
    pub service: String,
    pub spec_hash: String,
    pub revision: String,
    pub state: RunState,
    pub health: Health,
    pub exit_code: Option<i64>,
    /// When the engine last started it (ms since the epoch), if it ever did.
    pub started_at_ms: Option<u64>,
    pub restart_count: u64,
}

/// A network or volume Ferry created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedObject {
    pub name: String,
    pub app: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedObject>,
    pub volumes: Vec<ObservedObject>,
}

impl Observed {
    /// Only what belongs to `app`.
    pub fn of_app(&self, app: &str) -> Observed {
        Observed {
            containers: self
                .containers
                .iter()
                .filter(|c| c.app == app)
                .cloned()
                .collect(),
            networks: self
                .networks
                .iter()
                .filter(|n| n.app == app)
                .cloned()
                .collect(),
            volumes: self
                .volumes
                .iter()
                .filter(|v| v.app == app)
                .cloned()
                .collect(),
        }
    }

    pub fn container(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The names of the apps that have anything in the engine.
    pub fn apps(&self) -> std::collections::BTreeSet<String> {
        let c = self.containers.iter().map(|c| c.app.clone());
        let n = self.networks.iter().map(|n| n.app.clone());
        let v = self.volumes.iter().map(|v| v.app.clone());
        c.chain(n).chain(v).collect()
    }
}
