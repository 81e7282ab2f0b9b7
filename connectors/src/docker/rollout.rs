//! One app's move to a desired revision, with automatic rollback, as a pure state machine. The
//! deployer (deployer.rs) reads the app's containers from the engine, asks [`Rollout::next`]
//! what to do, applies the actions and reports failures with [`Rollout::action_failed`].
//!
//! ```text
//! Preparing ──▶ Starting (services in depends_on order; each waits for its dependencies'
//!     │          conditions; a service publishing fixed host ports stops its old container
//!     │          first, the others start beside it)
//!     │                 │ all started
//!     │                 ▼
//!     │          Verifying: every service healthy (its healthcheck, or running for
//!     │          `healthy_after_ms` without one) before `health_timeout_ms`
//!     │                 │ yes: remove the old containers ──▶ Done(Healthy)
//!     └─ any failure ───┴─ no: RollingBack: remove what this rollout created, start the old
//!                              containers it stopped ──▶ Done(RolledBack) (Failed when there
//!                              was no old revision to go back to)
//! ```
//! Containers that already run the desired spec are kept as they are: a rollout after a crash
//! of Ferry picks up where the last one was.

use serde::{Deserialize, Serialize};

use super::observed::{Observed, ObservedContainer, RunState};
use super::plan::{missing_objects, Action};
use super::spec::DesiredApp;

mod verdict;
use verdict::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutSettings {
    /// How long the new revision (and each dependency wait) may take to become healthy.
    pub health_timeout_ms: u64,
    /// A service without a healthcheck counts as healthy once it ran this long.
    pub healthy_after_ms: u64,
    /// How often the engine is asked again while waiting.
    pub poll_ms: u64,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            health_timeout_ms: 120_000,
            healthy_after_ms: 10_000,
            poll_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Healthy,
    /// The new revision failed; the previous one runs again.
    RolledBack {
        reason: String,
    },
    /// The new revision failed and there was nothing to go back to (or going back failed).
    Failed {
        reason: String,
    },
}

/// Where a rollout is, for status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Starting,
    Verifying,
    RollingBack,
    Done,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Apply in order. `best_effort`: apply every one even when some fail (going back and
    /// cleaning up); otherwise stop at the first failure and report it.
    Apply {
        actions: Vec<Action>,
        best_effort: bool,
    },
    /// Ask the engine again at this time (ms), or earlier.
    WaitUntil(u64),
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Preparing,
    Starting { next: usize, since_ms: u64 },
    Verifying { deadline_ms: u64 },
    RollingBack { reason: String },
    Done(Outcome),
}

#[derive(Debug, Clone)]
pub struct Rollout {
    target: DesiredApp,
    settings: RolloutSettings,
    /// The app's containers that are not part of the target: removed once it is healthy.
    old: Vec<ObservedContainer>,
    /// Containers this rollout created: removed if it goes back.
    created: Vec<String>,
    /// Old containers stopped to hand over their ports: started again if it goes back.
    stopped_old: Vec<String>,
    state: State,
}

impl Rollout {
    /// `observed` is what the engine has now (any app's objects; only the target app's count).
    pub fn new(target: DesiredApp, observed: &Observed, settings: RolloutSettings) -> Rollout {
        let old = observed
            .of_app(&target.name)
            .containers
            .into_iter()
            .filter(|c| {
                !target
                    .services
                    .iter()
                    .any(|s| s.service == c.service && s.spec_hash == c.spec_hash)
            })
            .collect();
        Rollout {
            target,
            settings,
            old,
            created: Vec::new(),
            stopped_old: Vec::new(),
            state: State::Preparing,
        }
    }

    pub fn target(&self) -> &DesiredApp {
        &self.target
    }

    pub fn stage(&self) -> Stage {
        match self.state {
            State::Preparing | State::Starting { .. } => Stage::Starting,
            State::Verifying { .. } => Stage::Verifying,
            State::RollingBack { .. } => Stage::RollingBack,
            State::Done(_) => Stage::Done,
        }
    }

    /// What to do next, given the engine's current state.
    pub fn next(&mut self, now_ms: u64, observed: &Observed) -> Next {
        let observed = observed.of_app(&self.target.name);
        loop {
            match &self.state {
                State::Preparing => {
                    self.state = State::Starting {
                        next: 0,
                        since_ms: now_ms,
                    };
                    let actions = missing_objects(&self.target, &observed);
                    if !actions.is_empty() {
                        return apply(actions);
                    }
                }
                State::Starting { next, since_ms } => {
                    let (next, since_ms) = (*next, *since_ms);
                    if let Some(n) = self.start(next, since_ms, now_ms, &observed) {
                        return n;
                    }
                }
                State::Verifying { deadline_ms } => {
                    let deadline_ms = *deadline_ms;
                    if let Some(n) = self.verify(deadline_ms, now_ms, &observed) {
                        return n;
                    }
                }
                State::RollingBack { reason } => {
                    let reason = reason.clone();
                    // Only what exists: a create that failed left nothing to remove.
                    let mut actions: Vec<Action> = self
                        .created
                        .iter()
                        .filter(|c| observed.container(c).is_some())
                        .map(|c| Action::RemoveContainer(c.clone()))
                        .collect();
                    actions.extend(
                        self.stopped_old
                            .iter()
                            .map(|c| Action::StartContainer(c.clone())),
                    );
                    self.state = State::Done(if self.old.is_empty() {
                        Outcome::Failed { reason }
                    } else {
                        Outcome::RolledBack { reason }
                    });
                    if !actions.is_empty() {
                        return Next::Apply {
                            actions,
                            best_effort: true,
                        };
                    }
                }
                State::Done(o) => return Next::Done(o.clone()),
            }
        }
    }

    /// A failed action: going back (or, while going back, a failed rollback).
    pub fn action_failed(&mut self, action: &Action, error: &str) {
        let what = format!("{}: {error}", action.describe());
        self.state = match std::mem::replace(&mut self.state, State::Preparing) {
            State::Done(Outcome::Healthy) => State::Done(Outcome::Healthy), // a leftover; the next reconcile removes it
            State::Done(Outcome::RolledBack { reason } | Outcome::Failed { reason }) => {
                State::Done(Outcome::Failed {
                    reason: format!("{reason}; going back failed: {what}"),
                })
            }
            _ => State::RollingBack { reason: what },
        };
    }

    /// Starts service `next` once its dependencies allow; `None` to go round the loop again.
    fn start(&mut self, next: usize, since_ms: u64, now_ms: u64, obs: &Observed) -> Option<Next> {
        let Some(spec) = self.target.services.get(next).cloned() else {
            self.state = State::Verifying {
                deadline_ms: now_ms + self.settings.health_timeout_ms,
            };
            return None;
        };
        match self.dependencies(&spec, obs) {
            Verdict::Ok => {}
            Verdict::Failed(reason) => {
                self.state = State::RollingBack { reason };
                return None;
            }
            Verdict::Pending(waiting, _) => {
                let deadline = since_ms + self.settings.health_timeout_ms;
                if now_ms >= deadline {
                    self.state = State::RollingBack {
                        reason: format!(
                            "service {}: still waiting after {} ms for {waiting}",
                            spec.service, self.settings.health_timeout_ms
                        ),
                    };
                    return None;
                }
                return Some(Next::WaitUntil(
                    deadline.min(now_ms + self.settings.poll_ms),
                ));
            }
        }
        self.state = State::Starting {
            next: next + 1,
            since_ms: now_ms,
        };
        let mut actions = Vec::new();
        match obs.container(&spec.container_name) {
            Some(c) if matches!(c.state, RunState::Running | RunState::Restarting) => {}
            Some(c) => actions.push(Action::StartContainer(c.name.clone())),
            None => {
                if spec.hands_over() {
                    for old in self.old.iter().filter(|o| o.service == spec.service) {
                        if matches!(old.state, RunState::Running | RunState::Restarting) {
                            actions.push(Action::StopContainer(old.name.clone()));
                            self.stopped_old.push(old.name.clone());
                        }
                    }
                }
                actions.push(Action::CreateContainer(Box::new(spec.clone())));
                actions.push(Action::StartContainer(spec.container_name.clone()));
                self.created.push(spec.container_name.clone());
            }
        }
        if actions.is_empty() {
            None
        } else {
            Some(apply(actions))
        }
    }

    fn verify(&mut self, deadline_ms: u64, now_ms: u64, obs: &Observed) -> Option<Next> {
        let mut pending = Vec::new();
        let mut wake = deadline_ms.min(now_ms + self.settings.poll_ms);
        for spec in &self.target.services {
            match self.health_of(spec, obs, now_ms) {
                Verdict::Ok => {}
                Verdict::Failed(reason) => {
                    self.state = State::RollingBack { reason };
                    return None;
                }
                Verdict::Pending(what, at) => {
                    pending.push(what);
                    if let Some(at) = at {
                        wake = wake.min(at);
                    }
                }
            }
        }
        if pending.is_empty() {
            let mut actions: Vec<Action> = self
                .old
                .iter()
                .map(|c| Action::RemoveContainer(c.name.clone()))
                .collect();
            actions.extend(
                obs.networks
                    .iter()
                    .filter(|n| !self.target.networks.iter().any(|t| t.engine_name == n.name))
                    .map(|n| Action::RemoveNetwork(n.name.clone())),
            );
            self.state = State::Done(Outcome::Healthy);
            if actions.is_empty() {
                return None;
            }
            return Some(Next::Apply {
                actions,
                best_effort: true,
            });
        }
        if now_ms >= deadline_ms {
            self.state = State::RollingBack {
                reason: format!(
                    "not healthy within {} ms: {}",
                    self.settings.health_timeout_ms,
                    pending.join(", ")
                ),
            };
            return None;
        }
        Some(Next::WaitUntil(wake.max(now_ms)))
    }
}

fn apply(actions: Vec<Action>) -> Next {
    Next::Apply {
        actions,
        best_effort: false,
    }
}

#[cfg(test)]
mod tests;
