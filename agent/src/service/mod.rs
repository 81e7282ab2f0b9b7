//! The one service layer under every front end. The HTTP API, the CLI (through the API), the
//! Greengrass protocol server and the dashboard call these operations and nothing below them:
//! stream list / create / update / delete / describe (with export status and lag), append, read
//! and follow, and an overview for metrics. Answers are the typed structs of [`views`].
//!
//! Errors are the stream manager's [`Error`]: every front end maps its stable `code()` to its
//! own status (HTTP status, Greengrass status code).

mod export_control;
mod health;
mod reads;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::mqtt::{IngestMetrics, IngestSnapshot};
use ferry_connectors::sinks::SinkEnv;
use ferry_stream_manager::{Error, NewRecord, StreamDefinition, StreamDescription};
use tokio_util::sync::CancellationToken;

use crate::exports::Exports;
pub use export_control::ExportControl;
pub use health::ProcessReadings;
pub use reads::{Follower, ReadRequest, MAX_READ_COUNT};
use views::{Appended, ExportView, StreamList, StreamPatch, StreamView};

/// How long a change waits for the export supervisor to apply it, so the answer to a create
/// or update already shows the exports it defines.
const EXPORTS_FOLLOW_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Service {
    manager: Arc<ferry_stream_manager::StreamManager>,
    exports: Arc<Exports>,
    ingest: Vec<(String, Arc<IngestMetrics>)>,
    sink_env: SinkEnv,
    /// For the free-space reading.
    data_dir: std::path::PathBuf,
    /// Cancelled when Ferry stops taking data: long polls and followers end with what they have.
    stop_ingress: CancellationToken,
}

/// Everything `/metrics` (and the dashboard) shows, taken in one pass without reading records.
pub struct Overview {
    pub ingest: Vec<(String, IngestSnapshot)>,
    pub streams: Vec<StreamDescription>,
    pub exports: Vec<ExportView>,
}

impl Service {
    pub fn new(
        manager: Arc<ferry_stream_manager::StreamManager>,
        exports: Arc<Exports>,
        ingest: Vec<(String, Arc<IngestMetrics>)>,
        sink_env: SinkEnv,
        data_dir: std::path::PathBuf,
        stop_ingress: CancellationToken,
    ) -> Arc<Service> {
        Arc::new(Service {
            manager,
            exports,
            ingest,
            sink_env,
            data_dir,
            stop_ingress,
        })
    }

    pub fn list(&self) -> Result<StreamList, Error> {
        let mut streams = Vec::new();
        for name in self.manager.list() {
            match self.describe(&name) {
                Ok(v) => streams.push(v),
                // Deleted between list and describe: not part of the answer.
                Err(Error::StreamNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(StreamList { streams })
    }

    /// Stream names, sorted: a list without storage status (nothing is read or counted).
    pub fn stream_names(&self) -> Vec<String> {
        self.manager.list()
    }

    /// `Ok` when the stream exists (so a front end can name a missing stream before reading a
    /// request body).
    pub fn check_stream(&self, name: &str) -> Result<(), Error> {
        self.manager.stream(name).map(drop)
    }

    pub fn describe(&self, name: &str) -> Result<StreamView, Error> {
        let d = self.manager.describe(name)?;
        Ok(StreamView::new(&d, self.exports.statuses(Some(name))))
    }

    pub async fn create(&self, def: StreamDefinition) -> Result<StreamView, Error> {
        self.check_exports(&def)?;
        let name = def.name.clone();
        self.blocking(move |m| m.create_stream(def).map(drop))
            .await?;
        self.exports_follow().await;
        self.describe(&name)
    }

    /// Changes the fields of stream `name`'s definition that `patch` names (a stream cannot be
    /// renamed).
    pub async fn update(&self, name: &str, patch: StreamPatch) -> Result<StreamView, Error> {
        if let Some(other) = patch.name.as_deref().filter(|n| *n != name) {
            return Err(Error::InvalidDefinition(format!(
                "the body names stream {other:?} but the path names {name:?}; a stream cannot be renamed"
            )));
        }
        let current = self.manager.stream(name)?.definition();
        let mut def = patch.apply(current.clone());
        // A secret sent back as shown (redacted) keeps its stored value.
        ferry_stream_manager::definition::restore_secrets(&mut def, &current);
        self.check_exports(&def)?;
        self.blocking(move |m| m.update_stream(def)).await?;
        self.exports_follow().await;
        self.describe(name)
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.blocking(move |m| m.delete_stream(&name)).await?;
        self.exports_follow().await;
        Ok(())
    }

    pub async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Appended, Error> {
        if records.is_empty() {
            return Err(Error::InvalidRecord(
                "records must hold at least one record".into(),
            ));
        }
        let count = records.len() as u64;
        let range = self.manager.stream(name)?.append(records).await?;
        Ok(Appended {
            first_sequence_number: range.start,
            count,
        })
    }

    pub fn overview(&self) -> Overview {
        let ingest = self
            .ingest
            .iter()
            .map(|(n, m)| (n.clone(), m.snapshot()))
            .collect();
        let streams: Vec<StreamDescription> = self
            .manager
            .list()
            .iter()
            .filter_map(|name| self.manager.describe(name).ok())
            .collect();
        let exports = self
            .exports
            .statuses(None)
            .into_iter()
            .filter_map(|e| {
                let d = streams.iter().find(|d| d.definition.name == e.stream)?;
                Some(ExportView::new(d, e))
            })
            .collect();
        Overview {
            ingest,
            streams,
            exports,
        }
    }

    /// Refuses a definition whose exports could not start (a region missing from the settings
    /// and the environment, an unreadable credentials or certificate file), naming the export
    /// and the key. What needs no environment was already refused when the definition parsed.
    fn check_exports(&self, def: &StreamDefinition) -> Result<(), Error> {
        for (i, e) in def.exports.iter().enumerate() {
            if let Err(err) = ferry_connectors::sinks::check(e, &def.name, &self.sink_env) {
                return Err(Error::InvalidDefinition(format!(
                    "stream {:?}: exports[{i}].{}: {}",
                    def.name, err.key, err.reason
                )));
            }
        }
        Ok(())
    }

    /// Runs a catalog change (an fsynced SQLite commit, files created or removed, a syncer
    /// thread joined) on the blocking pool, never on a runtime thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ferry_stream_manager::StreamManager) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let manager = self.manager.clone();
        tokio::task::spawn_blocking(move || f(&manager))
            .await
            .map_err(|e| Error::Internal(format!("stream definition task failed: {e}")))?
    }

    /// Waits until the export supervisor has applied the definitions as they are now.
    async fn exports_follow(&self) {
        let generation = *self.manager.watch_definitions().borrow();
        if tokio::time::timeout(EXPORTS_FOLLOW_TIMEOUT, self.exports.applied(generation))
            .await
            .is_err()
        {
            tracing::warn!(
                generation,
                "the export supervisor has not applied a definition change yet"
            );
        }
    }
}
