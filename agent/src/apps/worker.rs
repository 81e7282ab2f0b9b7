//! The app subsystem's task: deployments and removals from the queue, one at a time, and a
//! periodic pass that converges every app (adopting what runs as desired, repairing the rest)
//! and removes this instance's apps that are no longer wanted. When the engine cannot be
//! reached, apps show `engine_unavailable` and the pass is retried with backoff; streams and
//! exports do not depend on it.

use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::backoff::Backoff;
use ferry_connectors::docker::{converge, remove, Engine, EngineError, Outcome, Stage};
use ferry_stream_manager::time::lock;
use tokio_util::sync::CancellationToken;

use super::source::AppSource;
use super::store::Stored;
use super::views::AppState;
use super::{Apps, AppsWorker, Job};

/// The first retry after the engine was unreachable; doubling up to the reconcile interval.
const ENGINE_RETRY_MIN: Duration = Duration::from_secs(1);

/// Why a pass stopped early.
enum Interrupted {
    Stop,
    EngineDown,
}

impl Apps {
    pub async fn run(self: Arc<Self>, mut worker: AppsWorker, stop: CancellationToken) {
        if !self.settings.enabled {
            stop.cancelled().await;
            return;
        }
        let every = Duration::from_millis(self.settings.reconcile_interval_ms);
        let mut retry = Backoff::new(ENGINE_RETRY_MIN, every.max(ENGINE_RETRY_MIN));
        let mut next_pass = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                job = worker.jobs.recv() => {
                    let Some(job) = job else { return };
                    let work = async {
                        match job {
                            Job::Deploy(name) => self.deploy_now(&name, &stop).await,
                            Job::Remove { name, volumes } => self.remove_now(&name, volumes, &stop).await,
                        }
                    };
                    // Stopping drops the work wherever it is: a later start picks it up.
                    let r = tokio::select! {
                        r = work => r,
                        () = stop.cancelled() => return,
                    };
                    match r {
                        Err(Interrupted::Stop) => return,
                        Err(Interrupted::EngineDown) => next_pass = tokio::time::Instant::now() + retry.next_delay(),
                        Ok(()) => {}
                    }
                }
                () = tokio::time::sleep_until(next_pass) => {
                    let r = tokio::select! {
                        r = self.pass(&stop) => r,
                        () = stop.cancelled() => return,
                    };
                    match r {
                        Err(Interrupted::Stop) => return,
                        Err(Interrupted::EngineDown) => next_pass = tokio::time::Instant::now() + retry.next_delay(),
                        Ok(()) => {
                            retry.reset();
                            next_pass = tokio::time::Instant::now() + every;
                        }
                    }
                }
            }
        }
    }

    /// Converges every app and removes the unwanted ones.
    async fn pass(&self, stop: &CancellationToken) -> Result<(), Interrupted> {
        let engine = self.connected().await?;
        let observed = match engine.observe().await {
            Ok(o) => o,
            Err(e) => return Err(self.engine_down(e.to_string()).await),
        };
        let wanted: Vec<(String, bool)> = lock(&self.entries)
            .iter()
            .map(|(n, e)| (n.clone(), e.desired.is_some()))
            .collect();
        for app in observed.apps() {
            if !wanted.iter().any(|(n, desired)| *n == app && *desired) {
                // Neither configured nor deployed through the API (any more), or a removal
                // that did not finish: it goes.
                tracing::info!(app, "removing an app that is no longer wanted");
                self.remove_now(&app, false, stop).await?;
            }
        }
        for (name, desired) in wanted {
            if desired {
                self.deploy_now(&name, stop).await?;
            }
        }
        Ok(())
    }

    async fn connected(&self) -> Result<ferry_connectors::docker::DockerEngine, Interrupted> {
        match self.engine().await {
            Ok(e) => Ok(e),
            Err(reason) => Err(self.engine_down(reason).await),
        }
    }

    async fn engine_down(&self, reason: String) -> Interrupted {
        self.engine_lost().await;
        let mut entries = lock(&self.entries);
        let mut first = true;
        for (name, e) in entries.iter_mut().filter(|(_, e)| e.desired.is_some()) {
            if e.state != AppState::EngineUnavailable && first {
                tracing::warn!(app = %name, %reason, "the Docker engine is unavailable; apps keep their state and Ferry retries");
                first = false;
            }
            e.state = AppState::EngineUnavailable;
            e.reason = Some(reason.clone());
        }
        Interrupted::EngineDown
    }

    async fn deploy_now(&self, name: &str, stop: &CancellationToken) -> Result<(), Interrupted> {
        let Some(target) = lock(&self.entries)
            .get(name)
            .and_then(|e| e.desired.clone())
        else {
            return Ok(());
        };
        let engine = self.connected().await?;
        let report = |stage: Stage| {
            let state = match stage {
                Stage::Starting => AppState::Starting,
                Stage::Verifying => AppState::Verifying,
                Stage::RollingBack => AppState::RollingBack,
                Stage::Done => return,
            };
            self.set_state(name, state, None);
        };
        let result = tokio::select! {
            r = converge(&engine, &target, self.settings.rollout(), report) => r,
            () = stop.cancelled() => return Err(Interrupted::Stop),
        };
        let converged = match result {
            Ok(c) => c,
            Err(e) => return Err(self.engine_down(e.to_string()).await),
        };
        // A deployment queued while this one ran replaced the target: its own job follows.
        let still_target = lock(&self.entries)
            .get(name)
            .and_then(|e| e.desired.as_ref())
            .is_some_and(|d| d.revision == target.revision);
        if !still_target {
            return Ok(());
        }
        match converged.outcome {
            Outcome::Healthy => self.healthy(name, converged.changed).await,
            Outcome::RolledBack { reason } => {
                self.went_back(name, AppState::RolledBack, reason).await
            }
            Outcome::Failed { reason } => self.went_back(name, AppState::Failed, reason).await,
        }
        Ok(())
    }

    async fn healthy(&self, name: &str, changed: bool) {
        let stored = {
            let mut entries = lock(&self.entries);
            let Some(e) = entries.get_mut(name) else {
                return;
            };
            // The previous revision running on after a failed update keeps the failure in the
            // status until the next deployment.
            if !changed && matches!(e.state, AppState::RolledBack | AppState::Failed) {
                return;
            }
            if e.state != AppState::Healthy || changed {
                tracing::info!(app = name, adopted = !changed, "app is healthy");
            }
            e.state = AppState::Healthy;
            e.reason = None;
            e.updated_at_ms = ferry_stream_manager::time::now_ms();
            let newly_good = e.good.as_ref() != Some(&e.request);
            e.good = Some(e.request.clone());
            (e.source == AppSource::Api && newly_good).then(|| Stored {
                current: e.request.clone(),
                good: e.good.clone(),
            })
        };
        if let Some(stored) = stored {
            self.save(name, Some(stored)).await;
        }
    }

    /// A failed deployment: the previous good request becomes the desired one again (it runs
    /// again already); with none, nothing of the app runs and nothing is retried.
    async fn went_back(&self, name: &str, state: AppState, reason: String) {
        let good = lock(&self.entries).get(name).and_then(|e| e.good.clone());
        let good_desired = good.as_ref().and_then(|g| self.desired(name, g).ok());
        let (api, stored) = {
            let mut entries = lock(&self.entries);
            let Some(e) = entries.get_mut(name) else {
                return;
            };
            e.rollbacks += 1;
            e.state = state;
            e.reason = Some(reason);
            e.updated_at_ms = ferry_stream_manager::time::now_ms();
            e.desired = good_desired;
            let stored = good.map(|g| {
                e.request = g.clone();
                Stored {
                    current: g.clone(),
                    good: Some(g),
                }
            });
            (e.source == AppSource::Api, stored)
        };
        if api {
            self.save(name, stored).await;
        }
    }

    /// Writes (or, with `None`, deletes) the stored app; a failure is logged: what runs is
    /// right, only a restart would deploy the older state.
    async fn save(&self, name: &str, stored: Option<Stored>) {
        let store = self.store.clone();
        let n = name.to_string();
        let r = tokio::task::spawn_blocking(move || match stored {
            Some(s) => store.save(&n, &s),
            None => store.delete(&n),
        })
        .await;
        if let Err(e) = r
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::error!(app = name, error = %e, "cannot store the app's state");
        }
    }

    async fn remove_now(
        &self,
        name: &str,
        volumes: bool,
        stop: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let engine = self.connected().await?;
        let result = tokio::select! {
            r = remove(&engine, name, volumes) => r,
            () = stop.cancelled() => return Err(Interrupted::Stop),
        };
        match result {
            Ok(()) => {}
            Err(e @ EngineError::Unavailable(_)) => {
                return Err(self.engine_down(e.to_string()).await)
            }
            Err(e) => {
                self.set_state(name, AppState::Removing, Some(e.to_string()));
                return Ok(());
            }
        }
        let removed = {
            let mut entries = lock(&self.entries);
            // Only an app still meant to go: it may have been deployed again meanwhile.
            let going = entries
                .get(name)
                .is_some_and(|e| e.desired.is_none() && e.source == AppSource::Api);
            if going {
                entries.remove(name);
            }
            going
        };
        if removed {
            tracing::info!(app = name, "app removed");
            self.save(name, None).await;
        }
        Ok(())
    }
}
