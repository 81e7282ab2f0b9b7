//! An engine in memory for the planner's and the deployer's tests: actions change an
//! [`Observed`], and time moves only when the test says so. How a container behaves follows
//! from its image name, so a test reads like a deployment:
//! `…-unhealthy` fails its healthcheck, `…-crash` crashes and is restarted, `…-exit0` runs
//! to completion, `missing/…` cannot be pulled; anything else runs, and becomes healthy after
//! [`HEALTHY_AFTER_MS`] when the service has a healthcheck.

use super::compose::HealthTest;
use super::observed::{Health, Observed, ObservedContainer, ObservedObject, RunState};
use super::plan::Action;

pub const HEALTHY_AFTER_MS: u64 = 2_000;

#[derive(Debug, Default)]
pub struct FakeDocker {
    pub observed: Observed,
    pub now_ms: u64,
    /// Every action applied, as `Action::describe` says it.
    pub log: Vec<String>,
    images: Vec<(String, String)>, // container name, image
    checked: Vec<String>,          // containers with a healthcheck
    next_id: u64,
}

impl FakeDocker {
    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        self.log.push(action.describe());
        let now = self.now_ms;
        let obs = &mut self.observed;
        match action {
            Action::CreateNetwork(n) => obs.networks.push(ObservedObject {
                name: n.engine_name.clone(),
                app: n.app.clone(),
            }),
            Action::CreateVolume(v) => obs.volumes.push(ObservedObject {
                name: v.engine_name.clone(),
                app: v.app.clone(),
            }),
            Action::CreateContainer(spec) => {
                let image = &spec.definition.image;
                if image.starts_with("missing/") {
                    return Err(format!("pull access denied for {image}"));
                }
                if obs.container(&spec.container_name).is_some() {
                    return Err("name already in use".into());
                }
                self.next_id += 1;
                obs.containers.push(ObservedContainer {
                    id: format!("id{}", self.next_id),
                    name: spec.container_name.clone(),
                    app: spec.app.clone(),
                    service: spec.service.clone(),
                    spec_hash: spec.spec_hash.clone(),
                    revision: String::new(),
                    state: RunState::Created,
                    health: Health::None,
                    exit_code: None,
                    started_at_ms: None,
                    restart_count: 0,
                });
                self.images
                    .push((spec.container_name.clone(), image.clone()));
                let hc = spec.definition.healthcheck.as_ref().map(|h| &h.test);
                if matches!(hc, Some(HealthTest::Cmd(_) | HealthTest::Shell(_))) {
                    self.checked.push(spec.container_name.clone());
                }
            }
            Action::StartContainer(name) => {
                let checked = self.checked.contains(name);
                let c = container(obs, name)?;
                c.state = RunState::Running;
                c.started_at_ms = Some(now);
                c.exit_code = None;
                c.health = if checked {
                    Health::Starting
                } else {
                    Health::None
                };
            }
            Action::StopContainer(name) => {
                let c = container(obs, name)?;
                c.state = RunState::Exited;
                c.exit_code = Some(0);
            }
            Action::RemoveContainer(name) => {
                container(obs, name)?;
                obs.containers.retain(|c| &c.name != name);
            }
            Action::RemoveNetwork(name) => obs.networks.retain(|n| &n.name != name),
            Action::RemoveVolume(name) => obs.volumes.retain(|v| &v.name != name),
        }
        Ok(())
    }

    /// Moves the clock and lets the running containers do what their image does.
    pub fn advance_to(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        for c in &mut self.observed.containers {
            let image = self
                .images
                .iter()
                .find(|(n, _)| *n == c.name)
                .map_or("", |(_, i)| i.as_str());
            let Some(since) = c.started_at_ms.filter(|_| c.state == RunState::Running) else {
                continue;
            };
            if now < since + HEALTHY_AFTER_MS {
                continue;
            }
            if image.ends_with("-crash") {
                c.restart_count += 1;
                c.exit_code = Some(1);
                c.started_at_ms = Some(now);
            } else if image.ends_with("-exit0") {
                c.state = RunState::Exited;
                c.exit_code = Some(0);
            } else if c.health == Health::Starting {
                c.health = if image.ends_with("-unhealthy") {
                    Health::Unhealthy {
                        last_output: "connection refused\n".into(),
                    }
                } else {
                    Health::Healthy
                };
            }
        }
    }

    pub fn running(&self, app: &str, service: &str) -> Vec<&ObservedContainer> {
        self.observed
            .containers
            .iter()
            .filter(|c| c.app == app && c.service == service && c.state == RunState::Running)
            .collect()
    }
}

fn container<'a>(obs: &'a mut Observed, name: &str) -> Result<&'a mut ObservedContainer, String> {
    obs.containers
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("no such container: {name}"))
}

/// [`FakeDocker`] behind the [`Engine`] trait, on tokio's clock (use a paused clock).
pub struct FakeEngine {
    pub docker: std::sync::Mutex<FakeDocker>,
    start: tokio::time::Instant,
    /// When set, every call fails as an engine that is down does.
    pub down: std::sync::atomic::AtomicBool,
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine {
            docker: Default::default(),
            start: tokio::time::Instant::now(),
            down: Default::default(),
        }
    }
}

impl FakeEngine {
    fn check_up(&self) -> Result<(), super::engine::EngineError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(super::engine::EngineError::Unavailable(
                "connection refused".into(),
            ));
        }
        Ok(())
    }
}

impl super::engine::Engine for FakeEngine {
    async fn observe(&self) -> Result<Observed, super::engine::EngineError> {
        self.check_up()?;
        let mut d = ferry_stream_manager::time::lock(&self.docker);
        d.advance_to(self.now_ms());
        Ok(d.observed.clone())
    }

    async fn apply(&self, action: &Action) -> Result<(), super::engine::EngineError> {
        self.check_up()?;
        let mut d = ferry_stream_manager::time::lock(&self.docker);
        d.advance_to(self.now_ms());
        d.apply(action)
            .map_err(|message| super::engine::EngineError::Refused {
                status: 500,
                message,
            })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}
