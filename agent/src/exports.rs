//! The export supervisor: runs the exports the stream definitions declare, one task per
//! export, and follows the definitions by itself. It watches the stream manager's definition
//! generation and starts, restarts or stops export tasks whenever any front end (or the config
//! file at start) changed a definition; nobody calls it after a change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_connectors::sinks;
use ferry_stream_manager::export::{
    run_export, Bandwidth, ExportState, ExportStatus, ExportStatusHandle,
};
use ferry_stream_manager::time::lock;
use ferry_stream_manager::{ExportDefinition, StreamManager};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Running {
    def: ExportDefinition,
    status: ExportStatusHandle,
    stop: CancellationToken,
    /// The export's task, when it runs (not when its sink could not be built).
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Exports {
    manager: Arc<StreamManager>,
    env: sinks::SinkEnv,
    bandwidth: Bandwidth,
    running: Mutex<HashMap<(String, String), Running>>,
    /// The definition generation the running exports reflect.
    applied: watch::Sender<u64>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl Exports {
    /// `stop` ends the supervisor and every export task.
    pub fn new(
        manager: Arc<StreamManager>,
        env: sinks::SinkEnv,
        bandwidth_bytes_per_second: Option<u64>,
        stop: CancellationToken,
    ) -> Arc<Exports> {
        Arc::new(Exports {
            manager,
            env,
            bandwidth: Bandwidth::new(bandwidth_bytes_per_second),
            running: Mutex::new(HashMap::new()),
            applied: watch::Sender::new(0),
            stop,
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Follows the definitions until `stop`, then waits for every export task to end.
    pub async fn run(self: Arc<Self>) {
        let mut definitions = self.manager.watch_definitions();
        loop {
            let generation = *definitions.borrow_and_update();
            self.reconcile();
            self.applied.send_replace(generation);
            tokio::select! {
                changed = definitions.changed() => if changed.is_err() { break },
                _ = self.stop.cancelled() => break,
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Resolves once the definitions of `generation` (or later) are applied, or the supervisor
    /// is stopping.
    pub async fn applied(&self, generation: u64) {
        let mut applied = self.applied.subscribe();
        tokio::select! {
            _ = applied.wait_for(|g| *g >= generation) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Brings the running exports in line with the stream definitions.
    fn reconcile(&self) {
        let mut wanted: HashMap<(String, String), ExportDefinition> = HashMap::new();
        for def in self.manager.definitions() {
            for e in def.exports {
                wanted.insert((def.name.clone(), e.identifier.clone()), e);
            }
        }
        let mut running = lock(&self.running);
        running.retain(|key, r| {
            let keep = wanted.get(key) == Some(&r.def);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for (key, def) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let status: ExportStatusHandle = Arc::default();
            let stop = self.stop.child_token();
            let task = self.start(&key.0, &def, &status, &stop);
            running.insert(
                key,
                Running {
                    def,
                    status,
                    stop,
                    task,
                },
            );
        }
    }

    fn start(
        &self,
        stream: &str,
        def: &ExportDefinition,
        status: &ExportStatusHandle,
        stop: &CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        // Filled in before the task runs, so a status read right after a change names it.
        *lock(status) = ExportStatus {
            stream: stream.to_string(),
            identifier: def.identifier.clone(),
            kind: def.kind.name().to_string(),
            priority: def.priority,
            state: if def.disabled {
                ExportState::Disabled
            } else {
                ExportState::Starting
            },
            ..Default::default()
        };
        match sinks::build(def, stream, &self.env) {
            Ok(sink) => {
                tracing::info!(stream, export = %def.identifier, kind = def.kind.name(), priority = def.priority, "export started");
                Some(self.tasks.spawn(run_export(
                    self.manager.clone(),
                    stream.to_string(),
                    def.clone(),
                    sink,
                    self.bandwidth.clone(),
                    status.clone(),
                    stop.clone().cancelled_owned(),
                )))
            }
            Err(reason) => {
                tracing::error!(stream, export = %def.identifier, error = %reason, "export cannot start");
                let mut s = lock(status);
                s.state = ExportState::Stopped;
                s.last_error = Some(reason.to_string());
                None
            }
        }
    }

    /// Stops export `id` of `stream`, waits for its task to end (so it commits no checkpoint
    /// any more), runs `between` (e.g. moving the checkpoint), then starts it again from its
    /// checkpoint: how an operator resumes a paused export or moves it.
    pub async fn restart<T>(
        &self,
        stream: &str,
        id: &str,
        between: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let key = (stream.to_string(), id.to_string());
        let running = lock(&self.running).remove(&key)?;
        running.stop.cancel();
        if let Some(task) = running.task {
            let _ = task.await;
        }
        let out = between.await;
        self.reconcile();
        Some(out)
    }

    /// Status of every export of `stream` (all streams when `None`), sorted.
    pub fn statuses(&self, stream: Option<&str>) -> Vec<ExportStatus> {
        let running = lock(&self.running);
        let mut out: Vec<ExportStatus> = running
            .iter()
            .filter(|((s, _), _)| stream.is_none_or(|want| want == s))
            .map(|(_, r)| lock(&r.status).clone())
            .collect();
        out.sort_by(|a, b| (&a.stream, &a.identifier).cmp(&(&b.stream, &b.identifier)));
        out
    }
}

#[cfg(test)]
mod tests {
    use ferry_stream_manager::{ManagerOptions, StreamDefinition};

    use super::*;

    fn http_export(id: &str) -> ExportDefinition {
        // Port 9 is closed: the export exists and retries; no sink is needed for this test.
        serde_json::from_value(serde_json::json!({
            "identifier": id, "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn exports_follow_changes_made_directly_on_the_stream_manager() {
        let dir = tempfile::tempdir().unwrap();
        let manager = Arc::new(StreamManager::open(dir.path(), ManagerOptions::default()).unwrap());
        let stop = CancellationToken::new();
        let exports = Exports::new(manager.clone(), Default::default(), None, stop.clone());
        let supervisor = tokio::spawn(exports.clone().run());
        let applied = |exports: &Arc<Exports>| {
            let generation = *manager.watch_definitions().borrow();
            let exports = exports.clone();
            async move { exports.applied(generation).await }
        };

        let mut def = StreamDefinition::new("s");
        def.exports = vec![http_export("a"), http_export("b")];
        manager.create_stream(def.clone()).unwrap();
        applied(&exports).await;
        let ids: Vec<String> = exports
            .statuses(Some("s"))
            .into_iter()
            .map(|s| s.identifier)
            .collect();
        assert_eq!(ids, ["a", "b"]);

        def.exports.remove(0);
        manager.update_stream(def).unwrap();
        applied(&exports).await;
        assert_eq!(exports.statuses(Some("s")).len(), 1);

        manager.delete_stream("s").unwrap();
        applied(&exports).await;
        assert!(exports.statuses(None).is_empty());

        stop.cancel();
        supervisor.await.unwrap();
    }
}
