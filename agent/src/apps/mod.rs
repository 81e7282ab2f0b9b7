//! Container apps, the agent's side: the apps Ferry deploys (from `[[apps]]` and the API), their
//! status, and the worker that converges them through the Docker engine
//! (`ferry_connectors::docker`, where the planning is). Front ends (the API's /v1/apps, the
//! `ferry apps` CLI through it) call [`Apps`] and nothing below it.
//!
//! One worker task ([`worker`]) does every engine change, one at a time: deployments and
//! removals queued by the API, and a periodic pass that adopts or repairs every app and
//! removes the apps of this instance that are no longer wanted.

pub mod access;
pub mod api;
pub mod cli;
pub mod config;
pub mod source;
mod store;
mod subsystem;
pub mod views;
mod worker;

pub use subsystem::{serve_app_api, start};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferry_connectors::docker::{DesiredApp, DockerEngine, Observed};
use ferry_stream_manager::time::{lock, now_ms};
use tokio::sync::mpsc;

pub use config::{AppConfig, DockerConfig};
use source::{AppSource, DeployRequest};
use store::{Store, Stored};
use views::{view, AppList, AppState, AppView};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no app is called {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("app {0:?} is deployed by the configuration file: change it there")]
    ManagedByConfig(String),
    #[error("container apps are disabled (docker.enabled = false)")]
    Disabled,
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "app_not_found",
            AppError::Invalid(_) => "invalid_app",
            AppError::ManagedByConfig(_) => "app_managed_by_config",
            AppError::Disabled => "apps_disabled",
            AppError::Engine(_) => "engine_unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

/// One app as Ferry knows it.
#[derive(Debug, Clone)]
struct Entry {
    source: AppSource,
    /// The revision being deployed or running; `None` after a first deployment failed (nothing
    /// runs) or while the app is being removed.
    desired: Option<DesiredApp>,
    request: DeployRequest,
    /// The last request that became healthy: what a failed update goes back to.
    good: Option<DeployRequest>,
    state: AppState,
    reason: Option<String>,
    updated_at_ms: i64,
    rollbacks: u64,
}

enum Job {
    Deploy(String),
    Remove { name: String, volumes: bool },
}

pub struct Apps {
    settings: DockerConfig,
    owner: String,
    store: Store,
    tokens_dir: std::path::PathBuf,
    tokens: Mutex<access::Tokens>,
    /// Stream permissions of configured apps (API-deployed apps may use every stream).
    grants: std::collections::HashMap<String, access::Grants>,
    entries: Mutex<BTreeMap<String, Entry>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Connected on first use and again after the engine went away.
    engine: tokio::sync::Mutex<Option<DockerEngine>>,
    /// Cancelled when Ferry stops taking requests: log follows end.
    pub stop_follow: tokio_util::sync::CancellationToken,
    /// The Greengrass port, when that server runs: offered to apps on the bridge as well.
    greengrass_port: Option<u16>,
}

/// What the worker task takes.
pub struct AppsWorker {
    jobs: mpsc::UnboundedReceiver<Job>,
}

impl Apps {
    /// Loads the stored API deployments and the configured apps (a configured app wins over a
    /// stored one of the same name). Nothing talks to the engine yet.
    pub fn open(
        data_dir: &std::path::Path,
        settings: DockerConfig,
        configured: &[AppConfig],
        stop_follow: tokio_util::sync::CancellationToken,
        greengrass_port: Option<u16>,
    ) -> anyhow::Result<(Arc<Apps>, AppsWorker)> {
        let store = Store::open(data_dir)?;
        let owner = store.owner()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let grants = configured
            .iter()
            .map(|a| {
                let g = access::Grants {
                    read: a.read_streams.clone(),
                    write: a.write_streams.clone(),
                };
                (a.name.clone(), g)
            })
            .collect();
        let apps = Apps {
            settings,
            owner,
            tokens_dir: data_dir.join("apps").join("tokens"),
            store,
            entries: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(access::Tokens::default()),
            grants,
            jobs: tx,
            engine: tokio::sync::Mutex::new(None),
            stop_follow,
            greengrass_port,
        };
        let now = now_ms();
        let mut entries = BTreeMap::new();
        for (name, stored) in apps.store.load_all()? {
            let (desired, state, reason) = match apps.desired(&name, &stored.current) {
                Ok(d) => (Some(d), AppState::Accepted, None),
                Err(e) => (None, AppState::Failed, Some(e)),
            };
            let entry = Entry {
                source: AppSource::Api,
                desired,
                request: stored.current,
                good: stored.good,
                state,
                reason,
                updated_at_ms: now,
                rollbacks: 0,
            };
            entries.insert(name, entry);
        }
        for a in configured {
            let request = a.request().map_err(anyhow::Error::msg)?;
            let desired = apps
                .desired(&a.name, &request)
                .map_err(anyhow::Error::msg)?;
            let entry = Entry {
                source: AppSource::Config,
                desired: Some(desired),
                request,
                good: None,
                state: AppState::Accepted,
                reason: None,
                updated_at_ms: now,
                rollbacks: 0,
            };
            entries.insert(a.name.clone(), entry);
        }
        *lock(&apps.entries) = entries;
        Ok((Arc::new(apps), AppsWorker { jobs: rx }))
    }

    /// What `request` deploys for `name`, with the variables that let its containers reach
    /// Ferry (`FERRY_URL`, `FERRY_TOKEN`; the token is made on first use).
    fn desired(&self, name: &str, request: &DeployRequest) -> Result<DesiredApp, String> {
        let mut inject = BTreeMap::new();
        if self.settings.app_api_enabled {
            let token = lock(&self.tokens)
                .ensure(&self.tokens_dir, name)
                .map_err(|e| format!("cannot keep the app's token: {e}"))?;
            inject.insert(
                "FERRY_URL".to_string(),
                format!("http://{}", self.settings.app_api_listen),
            );
            if let Some(port) = self.greengrass_port {
                // What the Greengrass SDKs read: the same server, on the apps' network.
                let host = self.settings.app_api_listen.ip().to_string();
                inject.insert("STREAM_MANAGER_SERVER_HOST".to_string(), host);
                inject.insert("STREAM_MANAGER_SERVER_PORT".to_string(), port.to_string());
                inject.insert(
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_string(),
                    token.clone(),
                );
            }
            inject.insert("FERRY_TOKEN".to_string(), token);
        }
        request.desired_with(name, &inject)
    }

    /// Whether `token` is the token of an app that is deployed now (for the Greengrass port).
    pub fn accepts_token(&self, token: &str) -> bool {
        let app = lock(&self.tokens).app_of(token).map(String::from);
        app.is_some_and(|a| lock(&self.entries).contains_key(&a))
    }

    /// Where apps reach Ferry's Greengrass port, when it is offered to them.
    pub fn greengrass_listen(&self) -> Option<std::net::SocketAddr> {
        let port = self.greengrass_port?;
        self.settings
            .app_api_enabled
            .then(|| std::net::SocketAddr::new(self.settings.app_api_listen.ip(), port))
    }

    /// Whether a request to the app API with `token` may go on (see [`access::check`]).
    pub fn authorize(
        &self,
        token: &str,
        method: &axum::http::Method,
        path: &str,
    ) -> Result<(), access::Denied> {
        let app = lock(&self.tokens)
            .app_of(token)
            .map(String::from)
            .ok_or(access::Denied::UnknownToken)?;
        let app = app.as_str();
        // A removed app's token no longer opens anything.
        if !lock(&self.entries).contains_key(app) {
            return Err(access::Denied::UnknownToken);
        }
        let none = access::Grants::default();
        let grants = self.grants.get(app).unwrap_or(&none);
        access::check(app, grants, method, path)
    }

    fn check_enabled(&self) -> Result<(), AppError> {
        if self.settings.enabled {
            Ok(())
        } else {
            Err(AppError::Disabled)
        }
    }

    /// Every app with the containers the engine reports (none when it cannot be asked).
    pub async fn list(&self) -> Result<AppList, AppError> {
        self.check_enabled()?;
        let observed = self.observe_quietly().await;
        let entries = lock(&self.entries).clone();
        Ok(AppList {
            apps: entries
                .iter()
                .map(|(name, e)| view(name, e, &observed))
                .collect(),
        })
    }

    pub async fn status(&self, name: &str) -> Result<AppView, AppError> {
        self.check_enabled()?;
        let observed = self.observe_quietly().await;
        let entries = lock(&self.entries);
        let e = entries
            .get(name)
            .ok_or_else(|| AppError::NotFound(name.into()))?;
        Ok(view(name, e, &observed))
    }

    /// Checks the compose file (nothing changes when it is refused), keeps the request, and
    /// queues the deployment: the answer says `accepted`; its progress is in the status.
    pub async fn deploy(&self, name: &str, request: DeployRequest) -> Result<AppView, AppError> {
        self.check_enabled()?;
        if let Some(e) = lock(&self.entries).get(name) {
            if e.source == AppSource::Config {
                return Err(AppError::ManagedByConfig(name.into()));
            }
        }
        let desired = self.desired(name, &request).map_err(AppError::Invalid)?;
        let good = lock(&self.entries).get(name).and_then(|e| e.good.clone());
        let stored = Stored {
            current: request.clone(),
            good: good.clone(),
        };
        let store = self.store.clone();
        let n = name.to_string();
        tokio::task::spawn_blocking(move || store.save(&n, &stored))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Internal(format!("cannot store the app: {e}")))?;
        let view = {
            let mut entries = lock(&self.entries);
            let e = entries.entry(name.to_string()).or_insert_with(|| Entry {
                source: AppSource::Api,
                desired: None,
                request: request.clone(),
                good: None,
                state: AppState::Accepted,
                reason: None,
                updated_at_ms: 0,
                rollbacks: 0,
            });
            e.desired = Some(desired);
            e.request = request;
            e.good = good;
            e.state = AppState::Accepted;
            e.reason = None;
            e.updated_at_ms = now_ms();
            view(name, e, &None)
        };
        tracing::info!(app = name, revision = ?view.revision, "deployment accepted");
        self.jobs
            .send(Job::Deploy(name.to_string()))
            .map_err(|_| AppError::Internal("the app worker has stopped".into()))?;
        Ok(view)
    }

    /// Queues the removal of an API-deployed app (its volumes too when `volumes`).
    pub fn remove(&self, name: &str, volumes: bool) -> Result<AppView, AppError> {
        self.check_enabled()?;
        let view = {
            let mut entries = lock(&self.entries);
            let e = entries
                .get_mut(name)
                .ok_or_else(|| AppError::NotFound(name.into()))?;
            if e.source == AppSource::Config {
                return Err(AppError::ManagedByConfig(name.into()));
            }
            e.desired = None;
            e.state = AppState::Removing;
            e.reason = None;
            e.updated_at_ms = now_ms();
            view(name, e, &None)
        };
        self.jobs
            .send(Job::Remove {
                name: name.to_string(),
                volumes,
            })
            .map_err(|_| AppError::Internal("the app worker has stopped".into()))?;
        Ok(view)
    }

    /// The containers of `name` (only `service`'s when given) whose logs to show.
    pub async fn log_sources(
        &self,
        name: &str,
        service: Option<&str>,
    ) -> Result<(DockerEngine, Vec<(String, String)>), AppError> {
        self.check_enabled()?;
        if !lock(&self.entries).contains_key(name) {
            return Err(AppError::NotFound(name.into()));
        }
        let engine = self.engine().await.map_err(AppError::Engine)?;
        let observed = {
            use ferry_connectors::docker::Engine;
            engine
                .observe()
                .await
                .map_err(|e| AppError::Engine(e.to_string()))?
        };
        let containers: Vec<(String, String)> = observed
            .of_app(name)
            .containers
            .into_iter()
            .filter(|c| service.is_none_or(|s| s == c.service))
            .map(|c| (c.service, c.name))
            .collect();
        if let (Some(s), true) = (service, containers.is_empty()) {
            return Err(AppError::NotFound(format!("{name}/{s}")));
        }
        Ok((engine, containers))
    }

    /// `/metrics`' app families: each app's state (1 for the state it is in) and rollbacks.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let entries = lock(&self.entries);
        let mut out = String::new();
        let _ = writeln!(out, "# HELP ferry_app_state The state each container app is in (1).\n# TYPE ferry_app_state gauge");
        for (name, e) in entries.iter() {
            let _ = writeln!(
                out,
                "ferry_app_state{{app=\"{name}\",state=\"{}\"}} 1",
                e.state.as_str()
            );
        }
        let _ = writeln!(out, "# HELP ferry_app_rollbacks_total Deployments rolled back (or failed) since Ferry started.\n# TYPE ferry_app_rollbacks_total counter");
        for (name, e) in entries.iter() {
            let _ = writeln!(
                out,
                "ferry_app_rollbacks_total{{app=\"{name}\"}} {}",
                e.rollbacks
            );
        }
        out
    }

    async fn engine(&self) -> Result<DockerEngine, String> {
        let mut cached = self.engine.lock().await;
        if let Some(e) = cached.as_ref() {
            return Ok(e.clone());
        }
        let socket = self.settings.socket.display().to_string();
        let engine = DockerEngine::connect(&socket, &self.owner)
            .await
            .map_err(|e| format!("{e} (socket {socket})"))?;
        *cached = Some(engine.clone());
        Ok(engine)
    }

    /// Forgets the connection after the engine went away, so the next use reconnects.
    async fn engine_lost(&self) {
        *self.engine.lock().await = None;
    }

    async fn observe_quietly(&self) -> Option<Observed> {
        use ferry_connectors::docker::Engine;
        let engine = self.engine().await.ok()?;
        let observe = engine.observe();
        tokio::time::timeout(std::time::Duration::from_secs(5), observe)
            .await
            .ok()?
            .ok()
    }

    fn set_state(&self, name: &str, state: AppState, reason: Option<String>) {
        if let Some(e) = lock(&self.entries).get_mut(name) {
            e.state = state;
            e.reason = reason;
            e.updated_at_ms = now_ms();
        }
    }
}
