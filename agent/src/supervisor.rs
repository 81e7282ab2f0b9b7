//! The daemon's supervisor. Subsystems (MQTT ingress, the local API, exports, retention, and
//! later the Greengrass server and container apps) register with a [`Phase`]; the supervisor
//! runs each as a task and stops them in phase order:
//!
//! 1. [`Phase::Ingress`]: stop taking data (sources acknowledge what is durable and disconnect;
//!    servers stop accepting and end long polls),
//! 2. [`Phase::Processing`]: stop exports, retention and apps,
//! 3. [`Phase::Storage`]: flush and close the streams: always run, even when an earlier phase
//!    overran `shutdown_timeout_ms`, so nothing written is left unsynced.
//!
//! A subsystem whose task ends before shutdown was asked for has failed: the supervisor reports
//! it and the daemon stops in the same order. A new subsystem registers itself with
//! [`Supervisor::spawn`]; no other subsystem changes.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Ingress = 0,
    Processing = 1,
    Storage = 2,
}

const PHASES: [Phase; 3] = [Phase::Ingress, Phase::Processing, Phase::Storage];

type Outcome = (String, anyhow::Result<()>);

struct PhaseTasks {
    stop: CancellationToken,
    tasks: JoinSet<Outcome>,
}

pub struct Supervisor {
    phases: [PhaseTasks; 3],
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            phases: PHASES.map(|_| PhaseTasks {
                stop: CancellationToken::new(),
                tasks: JoinSet::new(),
            }),
        }
    }
}

impl Supervisor {
    /// The token cancelled when `phase` is asked to stop (for things built before they run).
    pub fn stop_token(&self, phase: Phase) -> CancellationToken {
        self.phases[phase as usize].stop.clone()
    }

    /// Runs a subsystem. `run` gets its phase's stop token and must return soon after it is
    /// cancelled; returning earlier counts as a failure.
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, phase: Phase, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let p = &mut self.phases[phase as usize];
        let name = name.into();
        let fut = run(p.stop.clone());
        p.tasks.spawn(async move { (name, fut.await) });
    }

    /// Waits until some subsystem ends on its own (none should before shutdown) and returns
    /// its name and why it ended. Pending forever when nothing is registered.
    pub async fn failure(&mut self) -> (String, anyhow::Error) {
        let [ingress, processing, storage] = &mut self.phases;
        let joined = tokio::select! {
            Some(r) = ingress.tasks.join_next() => r,
            Some(r) = processing.tasks.join_next() => r,
            Some(r) = storage.tasks.join_next() => r,
            else => std::future::pending().await,
        };
        match joined {
            Ok((name, Err(e))) => (name, e),
            Ok((name, Ok(()))) => {
                let e = anyhow::anyhow!("{name} stopped unexpectedly");
                (name, e)
            }
            Err(e) => (
                "a subsystem".to_string(),
                anyhow::anyhow!("a subsystem task failed: {e}"),
            ),
        }
    }

    /// Stops every phase in order. Ingress and processing share `timeout`; what has not stopped
    /// by then is abandoned (and logged). Storage always runs to completion.
    pub async fn shutdown(mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for phase in PHASES {
            let p = &mut self.phases[phase as usize];
            p.stop.cancel();
            let drain = async {
                while let Some(joined) = p.tasks.join_next().await {
                    log_stop(joined);
                }
            };
            if phase == Phase::Storage {
                drain.await;
            } else if tokio::time::timeout_at(deadline, drain).await.is_err() {
                tracing::warn!(
                    ?phase,
                    timeout_ms = timeout.as_millis() as u64,
                    "subsystems did not stop in time; going on with shutdown"
                );
                p.tasks.abort_all();
            }
        }
    }
}

fn log_stop(joined: Result<Outcome, tokio::task::JoinError>) {
    match joined {
        Ok((name, Ok(()))) => tracing::debug!(subsystem = name, "stopped"),
        Ok((name, Err(e))) => {
            tracing::warn!(subsystem = name, error = %format!("{e:#}"), "stopped with an error")
        }
        Err(e) if e.is_cancelled() => {}
        Err(e) => tracing::error!(error = %e, "a subsystem task panicked"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recorder() -> Arc<Mutex<Vec<&'static str>>> {
        Arc::default()
    }

    #[tokio::test]
    async fn phases_stop_in_order_ingress_then_processing_then_storage() {
        let log = recorder();
        let mut sup = Supervisor::default();
        for (name, phase) in [
            ("streams", Phase::Storage),
            ("exports", Phase::Processing),
            ("mqtt", Phase::Ingress),
            ("api", Phase::Ingress),
        ] {
            let log = log.clone();
            sup.spawn(name, phase, move |stop| async move {
                stop.cancelled().await;
                log.lock().unwrap().push(name);
                Ok(())
            });
        }
        sup.shutdown(Duration::from_secs(5)).await;
        let order = log.lock().unwrap().clone();
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("mqtt") < pos("exports") && pos("api") < pos("exports"));
        assert!(pos("exports") < pos("streams"), "{order:?}");
    }

    #[tokio::test]
    async fn a_later_phase_does_not_stop_before_an_earlier_one_finished() {
        let log = recorder();
        let mut sup = Supervisor::default();
        let l = log.clone();
        sup.spawn("slow ingress", Phase::Ingress, move |stop| async move {
            stop.cancelled().await;
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            l.lock().unwrap().push("ingress done");
            Ok(())
        });
        let l = log.clone();
        sup.spawn("exports", Phase::Processing, move |stop| async move {
            stop.cancelled().await;
            l.lock().unwrap().push("exports asked to stop");
            Ok(())
        });
        sup.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            *log.lock().unwrap(),
            vec!["ingress done", "exports asked to stop"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn storage_is_flushed_even_when_ingress_overruns_the_timeout() {
        let log = recorder();
        let mut sup = Supervisor::default();
        sup.spawn("stuck", Phase::Ingress, |_stop| async move {
            std::future::pending::<()>().await;
            Ok(())
        });
        let l = log.clone();
        sup.spawn("streams", Phase::Storage, move |stop| async move {
            stop.cancelled().await;
            l.lock().unwrap().push("flushed");
            Ok(())
        });
        sup.shutdown(Duration::from_secs(10)).await;
        assert_eq!(*log.lock().unwrap(), vec!["flushed"]);
    }

    #[tokio::test]
    async fn a_subsystem_that_ends_on_its_own_is_reported_as_failed() {
        let mut sup = Supervisor::default();
        sup.spawn("api", Phase::Ingress, |stop| async move {
            stop.cancelled().await;
            Ok(())
        });
        sup.spawn("mqtt broker-a", Phase::Ingress, |_stop| async move {
            Err(anyhow::anyhow!("cannot read the CA file"))
        });
        let (name, err) = sup.failure().await;
        assert_eq!(name, "mqtt broker-a");
        assert!(err.to_string().contains("CA file"), "{err}");
        sup.shutdown(Duration::from_secs(5)).await;
    }
}
