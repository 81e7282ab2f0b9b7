//! Runs the exports the streams define: one task per export, started, restarted or stopped
//! whenever the definitions change (at start-up and after API changes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_connectors::sinks;
use ferry_stream_manager::export::{run_export, Bandwidth, ExportStatus, ExportStatusHandle};
use ferry_stream_manager::{ExportDefinition, StreamManager};
use tokio_util::sync::CancellationToken;

struct Running {
    def: ExportDefinition,
    status: ExportStatusHandle,
    stop: CancellationToken,
}

pub struct Exports {
    manager: Arc<StreamManager>,
    env: sinks::SinkEnv,
    bandwidth: Bandwidth,
    running: Mutex<HashMap<(String, String), Running>>,
    shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl Exports {
    pub fn new(
        manager: Arc<StreamManager>,
        env: sinks::SinkEnv,
        bandwidth_bytes_per_second: Option<u64>,
        shutdown: CancellationToken,
    ) -> Arc<Exports> {
        Arc::new(Exports {
            manager,
            env,
            bandwidth: Bandwidth::new(bandwidth_bytes_per_second),
            running: Mutex::new(HashMap::new()),
            shutdown,
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Brings the running exports in line with the stream definitions.
    pub fn reconcile(&self) {
        let mut wanted: HashMap<(String, String), ExportDefinition> = HashMap::new();
        for name in self.manager.list() {
            if let Ok(stream) = self.manager.stream(&name) {
                for e in stream.definition().exports {
                    wanted.insert((name.clone(), e.identifier.clone()), e);
                }
            }
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
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
            let stop = self.shutdown.child_token();
            match sinks::build(&def, &key.0, &self.env) {
                Ok(sink) => {
                    tracing::info!(stream = %key.0, export = %key.1, kind = def.kind.name(), priority = def.priority, "export started");
                    let fut = run_export(
                        self.manager.clone(),
                        key.0.clone(),
                        def.clone(),
                        sink,
                        self.bandwidth.clone(),
                        status.clone(),
                        stop.clone().cancelled_owned(),
                    );
                    self.tasks.spawn(fut);
                }
                Err(reason) => {
                    tracing::error!(stream = %key.0, export = %key.1, error = %reason, "export cannot start");
                    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                    *s = ExportStatus {
                        stream: key.0.clone(),
                        identifier: key.1.clone(),
                        kind: def.kind.name().to_string(),
                        priority: def.priority,
                        state: "stopped".into(),
                        last_error: Some(reason.to_string()),
                        ..Default::default()
                    };
                }
            }
            running.insert(key, Running { def, status, stop });
        }
    }

    /// Status of every export of `stream` (all streams when `None`), sorted.
    pub fn statuses(&self, stream: Option<&str>) -> Vec<ExportStatus> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ExportStatus> = running
            .iter()
            .filter(|((s, _), _)| stream.is_none_or(|want| want == s))
            .map(|(_, r)| r.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        out.sort_by(|a, b| (&a.stream, &a.identifier).cmp(&(&b.stream, &b.identifier)));
        out
    }

    /// Waits for every export task to stop (after the shutdown token was cancelled).
    pub async fn wait_stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
