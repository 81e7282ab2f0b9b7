//! What an export reports about itself: read by the API, the metrics and `ferry streams
//! describe`, written only by the export's own task.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Where an export stands. Serialized in snake_case (`"retrying"`), as the API always showed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Set up, not yet reading.
    #[default]
    Starting,
    Running,
    /// The sink failed in a way worth retrying; the stream keeps buffering meanwhile.
    Retrying,
    /// A permanent error under `on_permanent_error = pause`; the checkpoint stays before it.
    Paused,
    /// The definition says `disabled`: the checkpoint is reported, nothing is sent.
    Disabled,
    /// Shut down, or the stream is gone.
    Stopped,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Starting => "starting",
            ExportState::Running => "running",
            ExportState::Retrying => "retrying",
            ExportState::Paused => "paused",
            ExportState::Disabled => "disabled",
            ExportState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for ExportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an export is doing and has done since Ferry started (the checkpoint survives restarts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportStatus {
    pub stream: String,
    pub identifier: String,
    pub kind: String,
    pub priority: u8,
    pub state: ExportState,
    /// The next sequence number to send: everything before it was confirmed by the sink.
    pub checkpoint: u64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub records_sent: u64,
    pub bytes_sent: u64,
    pub batches_sent: u64,
    pub retries: u64,
    /// Records retention removed before they were exported.
    pub records_dropped_by_retention: u64,
    /// Records skipped after a permanent error (policy `skip`).
    pub records_skipped: u64,
}

pub type ExportStatusHandle = Arc<Mutex<ExportStatus>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_serializes_as_its_name() {
        use ExportState::*;
        for s in [Starting, Running, Retrying, Paused, Disabled, Stopped] {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::Value::String(s.as_str().into()));
            assert_eq!(s.to_string(), s.as_str());
        }
        let status = ExportStatus {
            state: Retrying,
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&status).unwrap()["state"], "retrying");
    }
}
