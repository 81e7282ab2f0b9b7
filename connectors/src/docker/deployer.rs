//! The I/O around the planner: read the engine, plan, apply, wait, read again. A converge that
//! is interrupted (Ferry stopped, the engine went away) can simply run again: the planner
//! adopts what already runs with the desired spec.

use std::time::Duration;

use super::engine::{Engine, EngineError};
use super::plan::{plan_app, plan_removal, AppPlan};
use super::rollout::{Next, Outcome, Rollout, RolloutSettings, Stage};
use super::spec::DesiredApp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    pub outcome: Outcome,
    /// `false`: the app already ran as desired and was left alone.
    pub changed: bool,
}

/// Brings `target` to running: leaves it alone when it already runs as desired (adoption), or
/// rolls out to it with health gating and rollback. `report` hears each stage as it begins.
/// Errs only when the engine cannot be reached; what the engine refuses is part of the outcome.
pub async fn converge<E: Engine>(
    engine: &E,
    target: &DesiredApp,
    settings: RolloutSettings,
    mut report: impl FnMut(Stage) + Send,
) -> Result<Converged, EngineError> {
    let mut observed = engine.observe().await?;
    if let AppPlan::Steady(actions) = plan_app(target, &observed) {
        for a in &actions {
            engine.apply(a).await?;
        }
        return Ok(Converged {
            outcome: Outcome::Healthy,
            changed: false,
        });
    }
    tracing::info!(app = %target.name, revision = %target.revision, "rolling out");
    let mut rollout = Rollout::new(target.clone(), &observed, settings);
    let mut stage = rollout.stage();
    report(stage);
    loop {
        let now = engine.now_ms();
        let next = rollout.next(now, &observed);
        if rollout.stage() != stage {
            stage = rollout.stage();
            report(stage);
        }
        match next {
            Next::Apply {
                actions,
                best_effort,
            } => {
                for a in &actions {
                    match engine.apply(a).await {
                        Ok(()) => {
                            tracing::debug!(app = %target.name, action = %a.describe(), "done")
                        }
                        Err(e @ EngineError::Unavailable(_)) => return Err(e),
                        Err(e) => {
                            tracing::warn!(app = %target.name, action = %a.describe(), error = %e, "action failed");
                            rollout.action_failed(a, &e.to_string());
                            if !best_effort {
                                break;
                            }
                        }
                    }
                }
            }
            Next::WaitUntil(at) => {
                let wait = at.saturating_sub(now).clamp(1, settings.poll_ms.max(1));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Next::Done(outcome) => {
                match &outcome {
                    Outcome::Healthy => {
                        tracing::info!(app = %target.name, revision = %target.revision, "healthy")
                    }
                    Outcome::RolledBack { reason } => {
                        tracing::warn!(app = %target.name, %reason, "update failed; rolled back")
                    }
                    Outcome::Failed { reason } => {
                        tracing::warn!(app = %target.name, %reason, "deployment failed")
                    }
                }
                return Ok(Converged {
                    outcome,
                    changed: true,
                });
            }
        }
        observed = engine.observe().await?;
    }
}

/// Stops and removes everything of `app` Ferry created: containers and networks, and volumes
/// when `remove_volumes`. Goes on past a failed removal and returns the first failure.
pub async fn remove<E: Engine>(
    engine: &E,
    app: &str,
    remove_volumes: bool,
) -> Result<(), EngineError> {
    let observed = engine.observe().await?;
    let mut first = None;
    for a in plan_removal(app, &observed, remove_volumes) {
        match engine.apply(&a).await {
            Ok(()) => {}
            Err(e @ EngineError::Unavailable(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(app, action = %a.describe(), error = %e, "removal failed");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::docker::compose::{self, ParseOptions};
    use crate::docker::fake::FakeEngine;

    const SETTINGS: RolloutSettings = RolloutSettings {
        health_timeout_ms: 20_000,
        healthy_after_ms: 3_000,
        poll_ms: 250,
    };

    fn app(image: &str) -> DesiredApp {
        let vars = HashMap::new();
        let text = format!("services:\n  web:\n    image: {image}\n    ports: [\"80:5000\"]\n    healthcheck: {{test: [CMD, check]}}\n");
        let parsed = compose::parse(
            &text,
            ParseOptions {
                vars: &vars,
                base_dir: None,
            },
        )
        .unwrap();
        DesiredApp::new("web", &parsed.compose).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn converging_deploys_then_adopts_then_rolls_a_bad_update_back() {
        let engine = FakeEngine::default();
        let mut stages = Vec::new();
        let first = converge(&engine, &app("web:1"), SETTINGS, |s| stages.push(s))
            .await
            .unwrap();
        assert_eq!(
            first,
            Converged {
                outcome: Outcome::Healthy,
                changed: true
            }
        );
        assert_eq!(stages, vec![Stage::Starting, Stage::Verifying, Stage::Done]);

        let again = converge(&engine, &app("web:1"), SETTINGS, |_| {})
            .await
            .unwrap();
        assert_eq!(
            again,
            Converged {
                outcome: Outcome::Healthy,
                changed: false
            }
        );

        let bad = converge(&engine, &app("web:2-unhealthy"), SETTINGS, |_| {})
            .await
            .unwrap();
        assert!(matches!(bad.outcome, Outcome::RolledBack { .. }), "{bad:?}");
        let d = engine.docker.lock().unwrap();
        assert_eq!(d.running("web", "web").len(), 1);
        assert_eq!(d.observed.containers.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_engine_that_is_down_is_an_error_and_removal_cleans_up_after_it_returns() {
        let engine = FakeEngine::default();
        converge(&engine, &app("web:1"), SETTINGS, |_| {})
            .await
            .unwrap();
        engine.down.store(true, Ordering::SeqCst);
        let e = converge(&engine, &app("web:2"), SETTINGS, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Unavailable(_)), "{e}");
        assert!(remove(&engine, "web", false).await.is_err());
        engine.down.store(false, Ordering::SeqCst);
        remove(&engine, "web", false).await.unwrap();
        let d = engine.docker.lock().unwrap();
        assert!(d.observed.containers.is_empty() && d.observed.networks.is_empty());
    }
}
