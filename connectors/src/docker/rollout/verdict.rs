//! Whether a service's dependencies allow it to start, and whether a started service is
//! healthy, from what the engine reports: the judgements the rollout machine acts on.

use super::Rollout;
use crate::docker::compose::{Condition, Restart};
use crate::docker::observed::{Health, Observed, RunState};
use crate::docker::spec::ServiceSpec;

pub(super) enum Verdict {
    Ok,
    /// Not yet; look again at this time if nothing else happens.
    Pending(String, Option<u64>),
    Failed(String),
}

impl Rollout {
    pub(super) fn dependencies(&self, spec: &ServiceSpec, obs: &Observed) -> Verdict {
        for (dep, condition) in spec.depends_on() {
            let Some(dep_spec) = self.target.service(dep) else {
                return Verdict::Failed(format!("service {}: no service {dep}", spec.service));
            };
            let Some(c) = obs.container(&dep_spec.container_name) else {
                return Verdict::Failed(format!("service {dep} has no container"));
            };
            let exited = c.state == RunState::Exited;
            let code = c.exit_code.unwrap_or(-1);
            match condition {
                Condition::Started if c.state == RunState::Running || exited => {}
                Condition::Started => {
                    return Verdict::Pending(format!("{dep} to start"), None);
                }
                Condition::Healthy => match &c.health {
                    Health::Healthy => {}
                    Health::Unhealthy { last_output } => {
                        return Verdict::Failed(format!(
                            "service {dep} is unhealthy: {}",
                            last_output.trim()
                        ))
                    }
                    _ if exited => {
                        return Verdict::Failed(format!("service {dep} exited with code {code}"))
                    }
                    Health::None if c.state == RunState::Running => {
                        return Verdict::Failed(format!(
                            "service {} waits for {dep} to be healthy, but {dep} has no healthcheck",
                            spec.service
                        ))
                    }
                    _ => return Verdict::Pending(format!("{dep} to become healthy"), None),
                },
                Condition::CompletedSuccessfully if exited && code == 0 => {}
                Condition::CompletedSuccessfully if exited => {
                    return Verdict::Failed(format!("service {dep} exited with code {code}"))
                }
                Condition::CompletedSuccessfully => {
                    return Verdict::Pending(format!("{dep} to complete"), None)
                }
            }
        }
        Verdict::Ok
    }

    pub(super) fn health_of(&self, spec: &ServiceSpec, obs: &Observed, now_ms: u64) -> Verdict {
        let s = &spec.service;
        let Some(c) = obs.container(&spec.container_name) else {
            return Verdict::Failed(format!(
                "service {s}: its container {} is gone",
                spec.container_name
            ));
        };
        if c.restart_count > 0 && self.created.contains(&c.name) {
            return Verdict::Failed(format!(
                "service {s} crashed (restarted {} times; last exit code {})",
                c.restart_count,
                c.exit_code.unwrap_or(-1)
            ));
        }
        match (&c.health, c.state) {
            (Health::Unhealthy { last_output }, _) => {
                Verdict::Failed(format!("service {s} is unhealthy: {}", last_output.trim()))
            }
            (_, RunState::Exited | RunState::Dead) => {
                let code = c.exit_code.unwrap_or(-1);
                let one_shot = spec.definition.restart == Restart::No && c.health == Health::None;
                if code == 0 && one_shot {
                    Verdict::Ok
                } else {
                    Verdict::Failed(format!("service {s} exited with code {code}"))
                }
            }
            (Health::Healthy, _) => Verdict::Ok,
            (Health::Starting, _) => Verdict::Pending(format!("{s} (health: starting)"), None),
            (Health::None, RunState::Running) => {
                let since = c.started_at_ms.unwrap_or(now_ms);
                let ready_at = since + self.settings.healthy_after_ms;
                if now_ms >= ready_at {
                    Verdict::Ok
                } else {
                    Verdict::Pending(
                        format!(
                            "{s} (running for less than {} ms)",
                            self.settings.healthy_after_ms
                        ),
                        Some(ready_at),
                    )
                }
            }
            (Health::None, state) => Verdict::Pending(format!("{s} ({state:?})"), None),
        }
    }
}
