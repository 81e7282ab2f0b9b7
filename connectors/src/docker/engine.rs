//! The engine behind the planner: [`Engine`] is what reconciliation needs (read the labelled
//! objects, apply one action); [`DockerEngine`] implements it with bollard over the engine's
//! unix socket. Every action is idempotent where the engine allows it (removing what is gone,
//! stopping what is stopped), so a deployment interrupted halfway can be applied again.

use std::collections::HashMap;
use std::future::Future;

use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::convert::{self, parse_engine_time_ms};
use super::observed::{Health, Observed, ObservedContainer, ObservedObject, RunState};
use super::plan::Action;
use super::spec::{labels, ServiceSpec};

/// How long the engine may take to answer one request (not a log stream's whole length).
const REQUEST_TIMEOUT_S: u64 = 120;
/// How long a container gets to stop on SIGTERM before the engine kills it.
const STOP_TIMEOUT_S: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached (not running, restarting, no socket).
    #[error("the Docker engine is unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the request.
    #[error("the Docker engine answered {status}: {message}")]
    Refused { status: u16, message: String },
}

impl EngineError {
    fn status(&self) -> Option<u16> {
        match self {
            EngineError::Refused { status, .. } => Some(*status),
            EngineError::Unavailable(_) => None,
        }
    }
}

impl From<bollard::errors::Error> for EngineError {
    fn from(e: bollard::errors::Error) -> Self {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Refused {
                status: status_code,
                message,
            },
            other => EngineError::Unavailable(other.to_string()),
        }
    }
}

/// What reconciliation needs from an engine. Implemented by [`DockerEngine`] and, in tests,
/// by an engine in memory.
pub trait Engine: Send + Sync {
    /// Every container, network and volume carrying Ferry's app label.
    fn observe(&self) -> impl Future<Output = Result<Observed, EngineError>> + Send;
    fn apply(&self, action: &Action) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The engine's clock in ms since the epoch (container start times are on it).
    fn now_ms(&self) -> u64 {
        ferry_stream_manager::time::now_ms().max(0) as u64
    }
}

/// A line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stderr: bool,
    pub bytes: bytes::Bytes,
}

#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// The `ferry.owner` label value of this instance's objects.
    owner: String,
}

impl DockerEngine {
    /// Connects to the engine's socket (`/var/run/docker.sock` by default) and settles on the
    /// API version both sides speak (Debian 12's engine speaks 1.41). `owner` labels what this
    /// instance creates, and only objects with that label are observed.
    pub async fn connect(socket: &str, owner: &str) -> Result<DockerEngine, EngineError> {
        let docker =
            Docker::connect_with_socket(socket, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)?;
        let docker = docker.negotiate_version().await?;
        Ok(DockerEngine {
            docker,
            owner: owner.to_string(),
        })
    }

    /// A container's output: the last `tail` lines, then (with `follow`) what it writes next.
    pub fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> impl Stream<Item = Result<LogChunk, EngineError>> + Send + 'static {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        self.docker
            .logs(container, Some(options))
            .map_ok(|out| match out {
                bollard::container::LogOutput::StdErr { message } => LogChunk {
                    stderr: true,
                    bytes: message,
                },
                other => LogChunk {
                    stderr: false,
                    bytes: other.into_bytes(),
                },
            })
            .map_err(EngineError::from)
    }

    async fn container(&self, id: &str) -> Result<Option<ObservedContainer>, EngineError> {
        let c = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            // Removed between the list and the inspect.
            Err(e) => match EngineError::from(e) {
                e if e.status() == Some(404) => return Ok(None),
                e => return Err(e),
            },
        };
        let labels = c
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let state = c.state.unwrap_or_default();
        use bollard::models::{ContainerStateStatusEnum as S, HealthStatusEnum as H};
        let run_state = match state.status {
            Some(S::RUNNING) => RunState::Running,
            Some(S::RESTARTING) => RunState::Restarting,
            Some(S::PAUSED) => RunState::Paused,
            Some(S::EXITED | S::STOPPING) => RunState::Exited,
            Some(S::DEAD) => RunState::Dead,
            Some(S::REMOVING) => RunState::Removing,
            _ => RunState::Created,
        };
        let health = match state.health {
            Some(h) => match h.status {
                Some(H::STARTING) => Health::Starting,
                Some(H::HEALTHY) => Health::Healthy,
                Some(H::UNHEALTHY) => Health::Unhealthy {
                    last_output: h
                        .log
                        .and_then(|l| l.last().and_then(|r| r.output.clone()))
                        .unwrap_or_default(),
                },
                _ => Health::None,
            },
            None => Health::None,
        };
        Ok(Some(ObservedContainer {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            app: label(labels::APP),
            service: label(labels::SERVICE),
            spec_hash: label(labels::SPEC_HASH),
            revision: label(labels::REVISION),
            state: run_state,
            health,
            exit_code: state.exit_code,
            started_at_ms: state.started_at.as_deref().and_then(parse_engine_time_ms),
            restart_count: c.restart_count.unwrap_or(0).max(0) as u64,
        }))
    }

    /// Pulls the image unless the engine has it.
    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) => match EngineError::from(e) {
                e if e.status() == Some(404) => {}
                e => return Err(e),
            },
        }
        tracing::info!(image, "pulling image");
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(progress) = pull.next().await {
            let p = progress?;
            if let Some(status) = p.status {
                if status != last {
                    tracing::debug!(image, status = %status, "pull progress");
                    last = status;
                }
            }
        }
        tracing::info!(image, "image pulled");
        Ok(())
    }

    async fn create(&self, spec: &ServiceSpec) -> Result<(), EngineError> {
        self.ensure_image(&spec.definition.image).await?;
        let options = CreateContainerOptions {
            name: Some(spec.container_name.clone()),
            ..Default::default()
        };
        let mut body = convert::create_body(spec);
        self.label(&mut body.labels);
        self.docker.create_container(Some(options), body).await?;
        for (network, endpoint) in convert::extra_networks(spec) {
            let request = bollard::models::NetworkConnectRequest {
                container: spec.container_name.clone(),
                endpoint_config: Some(endpoint),
            };
            self.docker.connect_network(&network, request).await?;
        }
        Ok(())
    }
}

impl DockerEngine {
    fn label(&self, map: &mut Option<HashMap<String, String>>) {
        map.get_or_insert_with(HashMap::new)
            .insert(labels::OWNER.into(), self.owner.clone());
    }

    /// This instance's app objects.
    fn owned(&self) -> Option<HashMap<String, Vec<String>>> {
        let owner = format!("{}={}", labels::OWNER, self.owner);
        Some(HashMap::from([(
            "label".to_string(),
            vec![labels::APP.to_string(), owner],
        )]))
    }
}

/// `Ok` when the engine's refusal means the action's goal already holds.
fn already(result: Result<(), bollard::errors::Error>, done: &[u16]) -> Result<(), EngineError> {
    match result.map_err(EngineError::from) {
        Err(e) if e.status().is_some_and(|s| done.contains(&s)) => Ok(()),
        other => other,
    }
}

impl Engine for DockerEngine {
    async fn observe(&self) -> Result<Observed, EngineError> {
        let list = ListContainersOptions {
            all: true,
            filters: self.owned(),
            ..Default::default()
        };
        let mut containers = Vec::new();
        for summary in self.docker.list_containers(Some(list)).await? {
            let Some(id) = summary.id else { continue };
            if let Some(c) = self.container(&id).await? {
                containers.push(c);
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: self.owned(),
            }))
            .await?
            .into_iter()
            .filter_map(|n| {
                let app = n.labels?.get(labels::APP)?.clone();
                Some(ObservedObject { name: n.name?, app })
            })
            .collect();
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: self.owned(),
            }))
            .await?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                let app = v.labels.get(labels::APP)?.clone();
                Some(ObservedObject { name: v.name, app })
            })
            .collect();
        Ok(Observed {
            containers,
            networks,
            volumes,
        })
    }

    async fn apply(&self, action: &Action) -> Result<(), EngineError> {
        tracing::debug!(action = %action.describe(), "applying");
        let d = &self.docker;
        match action {
            Action::CreateNetwork(n) => {
                let mut body = convert::network_body(n);
                self.label(&mut body.labels);
                already(d.create_network(body).await.map(drop), &[409])
            }
            Action::CreateVolume(v) => {
                let mut body = convert::volume_body(v);
                self.label(&mut body.labels);
                d.create_volume(body).await.map(drop).map_err(Into::into)
            }
            Action::CreateContainer(spec) => self.create(spec).await,
            Action::StartContainer(c) => already(d.start_container(c, None).await, &[304]),
            Action::StopContainer(c) => {
                let options = StopContainerOptions {
                    t: Some(STOP_TIMEOUT_S),
                    ..Default::default()
                };
                already(d.stop_container(c, Some(options)).await, &[304, 404])
            }
            Action::RemoveContainer(c) => {
                let options = RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                already(d.remove_container(c, Some(options)).await, &[404])
            }
            Action::RemoveNetwork(n) => already(d.remove_network(n).await, &[404]),
            Action::RemoveVolume(v) => already(
                d.remove_volume(v, None::<RemoveVolumeOptions>).await,
                &[404],
            ),
        }
    }
}
