//! `ferry run`: opens the streams, starts the embedded broker, registers every subsystem with
//! the [`Supervisor`] (MQTT sources and the local API take data in; exports and retention
//! process it; the streams are flushed last), tells systemd, and on SIGTERM/SIGINT stops them
//! in that order within `shutdown_timeout_ms`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_connectors::mqtt::{IngestMetrics, MqttSource};
use ferry_connectors::sinks::SinkEnv;
use ferry_stream_manager::{ManagerOptions, StreamManager};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::AgentConfig;
use crate::exports::Exports;
use crate::logging::LogLevel;
use crate::reload::{self, ConfigSource};
use crate::service::Service;
use crate::supervisor::{Phase, Supervisor};
use crate::{api, broker, greengrass, ingest_log, systemd};

/// How long start-up waits for the sources' first subscription before reporting ready anyway
/// (a broker that is down must not keep the service from starting: Ferry keeps retrying).
const READY_WAIT: Duration = Duration::from_secs(10);

type Ingest = Vec<(String, Arc<IngestMetrics>)>;

pub async fn run(
    mut cfg: AgentConfig,
    source: ConfigSource,
    log_level: LogLevel,
) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "ferry starting"
    );
    let mut signals = Signals::install()?;
    let manager = open_streams(&cfg).await?;
    if cfg.embedded_enabled() {
        let broker_cfg = cfg.embedded_broker.clone();
        tokio::task::spawn_blocking(move || broker::start(&broker_cfg)).await??;
    }
    let ingest: Ingest = cfg
        .brokers
        .iter()
        .map(|b| (b.name.clone(), Arc::new(IngestMetrics::default())))
        .collect();

    let mut sup = Supervisor::default();
    let m = manager.clone();
    sup.spawn("streams", Phase::Storage, move |stop| async move {
        stop.cancelled().await;
        tokio::task::spawn_blocking(move || m.close()).await?;
        tracing::info!("all streams flushed");
        Ok(())
    });
    let service = start_processing(&mut sup, &cfg, &manager, &ingest);
    let apps = match crate::apps::start(&mut sup, &cfg) {
        Ok(apps) => apps,
        Err(e) => {
            sup.shutdown(Duration::from_millis(cfg.shutdown_timeout_ms))
                .await;
            return Err(e);
        }
    };
    if let Err(e) = start_ingress(&mut sup, &cfg, &manager, &ingest, service, apps).await {
        sup.shutdown(Duration::from_millis(cfg.shutdown_timeout_ms))
            .await;
        return Err(e);
    }
    if cfg.log.stats_interval_ms > 0 {
        let every = Duration::from_millis(cfg.log.stats_interval_ms);
        let ingest = ingest.clone();
        sup.spawn("ingestion log", Phase::Ingress, move |stop| async move {
            ingest_log::run(ingest, every, stop).await;
            Ok(())
        });
    }

    let early = loop {
        tokio::select! {
            event = signals.next() => match event {
                SignalEvent::Stop(signal) => break Some(Ok(signal)),
                SignalEvent::Reload => tracing::warn!("SIGHUP during start-up ignored; send it again once Ferry is ready"),
            },
            failure = sup.failure() => break Some(Err(failure)),
            () = wait_subscribed(&ingest) => break None,
        }
    };
    let outcome = match early {
        Some(outcome) => outcome,
        None => {
            systemd::ready();
            systemd::spawn_watchdog(sup.stop_token(Phase::Storage));
            tracing::info!("ferry is ready");
            loop {
                let event = tokio::select! {
                    event = signals.next() => event,
                    failure = sup.failure() => break Err(failure),
                };
                match event {
                    SignalEvent::Stop(signal) => break Ok(signal),
                    SignalEvent::Reload => {
                        tracing::info!("SIGHUP received; reloading the configuration");
                        systemd::reloading();
                        if let Some(new) = reload::apply(&source, &cfg, &manager, &log_level).await
                        {
                            cfg = new;
                        }
                        systemd::ready();
                    }
                }
            }
        }
    };
    systemd::stopping();
    let result = match outcome {
        Ok(signal) => {
            tracing::info!("{signal} received; shutting down");
            Ok(())
        }
        Err((name, e)) => Err(e.context(format!("{name} failed"))),
    };
    sup.shutdown(Duration::from_millis(cfg.shutdown_timeout_ms))
        .await;
    ingest_log::summary(&ingest);
    tracing::info!("exiting");
    result
}

async fn open_streams(cfg: &AgentConfig) -> anyhow::Result<Arc<StreamManager>> {
    let data_dir = cfg.data_dir.clone();
    let streams = cfg.streams.clone();
    // Opening recovers segments and commits definitions (fsync): the blocking pool's work.
    let manager = tokio::task::spawn_blocking(move || -> anyhow::Result<StreamManager> {
        let manager = StreamManager::open(&data_dir, ManagerOptions::default())
            .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
        for def in streams {
            let name = def.name.clone();
            manager
                .ensure_stream(def)
                .with_context(|| format!("opening stream {name:?}"))?;
        }
        Ok(manager)
    })
    .await??;
    tracing::info!(data_dir = %cfg.data_dir.display(), streams = manager.list().len(), "streams open");
    Ok(Arc::new(manager))
}

/// Registers exports and retention; returns the service every front end uses.
fn start_processing(
    sup: &mut Supervisor,
    cfg: &AgentConfig,
    manager: &Arc<StreamManager>,
    ingest: &Ingest,
) -> Arc<Service> {
    // Sinks get the environment (AWS credentials, region) as data: libraries do not read it;
    // and the streams, for the S3 task's status messages.
    let sink_env =
        SinkEnv::from_vars(std::env::vars().collect()).with_local_streams(manager.clone());
    let exports = Exports::new(
        manager.clone(),
        sink_env.clone(),
        cfg.export.bandwidth_bytes_per_second,
        sup.stop_token(Phase::Processing),
    );
    let e = exports.clone();
    sup.spawn("exports", Phase::Processing, move |_stop| async move {
        e.run().await;
        Ok(())
    });
    let m = manager.clone();
    let interval = Duration::from_millis(cfg.retention_interval_ms);
    sup.spawn("retention", Phase::Processing, move |stop| async move {
        m.run_retention(interval, stop.cancelled_owned()).await;
        Ok(())
    });
    Service::new(
        manager.clone(),
        exports,
        ingest.clone(),
        sink_env,
        cfg.data_dir.clone(),
        sup.stop_token(Phase::Ingress),
    )
}

/// Binds the local API and the Greengrass server (so a taken port fails start-up) and starts
/// the MQTT sources.
async fn start_ingress(
    sup: &mut Supervisor,
    cfg: &AgentConfig,
    manager: &Arc<StreamManager>,
    ingest: &Ingest,
    service: Arc<Service>,
    apps: Option<Arc<crate::apps::Apps>>,
) -> anyhow::Result<()> {
    if cfg.api.open_beyond_loopback() {
        tracing::warn!(listen = %cfg.api.listen, "the local API listens beyond loopback WITHOUT A TOKEN: anyone who can reach it can read, write and delete streams; set api.token or api.token_file");
    }
    let apps_for_greengrass = apps.clone();
    if cfg.api.enabled {
        let token = cfg
            .api
            .resolved_token()
            .map_err(|e| anyhow::anyhow!("api.token: {e}"))?;
        let state = api::ApiState {
            service: service.clone(),
            token: token.map(Into::into),
            max_body_bytes: cfg.api.max_body_bytes,
            apps: apps.clone(),
        };
        crate::apps::serve_app_api(sup, &state);
        let serve = api::bind(cfg.api.listen, state, sup.stop_token(Phase::Ingress)).await?;
        sup.spawn("local API", Phase::Ingress, move |_stop| async move {
            serve.await;
            Ok(())
        });
    }
    if cfg.greengrass.enabled {
        let settings = cfg
            .greengrass
            .settings()
            .map_err(|e| anyhow::anyhow!("greengrass.tokens: {e}"))?;
        let stop = sup.stop_token(Phase::Ingress);
        let serve = greengrass::bind(settings, service.clone(), stop).await?;
        sup.spawn(
            "Greengrass server",
            Phase::Ingress,
            move |_stop| async move {
                serve.await;
                Ok(())
            },
        );
        if let Some(apps) = apps_for_greengrass {
            greengrass_for_apps(sup, cfg, service, apps)?;
        }
    }
    let drain = Duration::from_millis(cfg.shutdown_timeout_ms / 2);
    for (b, (_, metrics)) in cfg.brokers.iter().zip(ingest) {
        let source = MqttSource::new(b.clone(), &cfg.routes, manager.clone(), metrics.clone());
        sup.spawn(
            format!("MQTT connection {:?}", b.name),
            Phase::Ingress,
            move |stop| async move {
                // A source only ends on its own on a configuration error (an unreadable TLS file).
                source.run(stop, drain).await?;
                Ok(())
            },
        );
    }
    Ok(())
}

/// The Greengrass server again, on the apps' network (the Docker bridge, where the app API
/// listens), accepting the apps' tokens, so SDK apps in containers reach it as they reach the
/// HTTP API. The bridge may not exist yet: binding is retried every few seconds.
fn greengrass_for_apps(
    sup: &mut Supervisor,
    cfg: &AgentConfig,
    service: Arc<Service>,
    apps: Arc<crate::apps::Apps>,
) -> anyhow::Result<()> {
    let Some(listen) = apps.greengrass_listen() else {
        return Ok(());
    };
    let check = apps.clone();
    let app_tokens: greengrass::AppTokens = Arc::new(move |t: &str| check.accepts_token(t));
    let mut settings = cfg
        .greengrass
        .settings()
        .map_err(|e| anyhow::anyhow!("greengrass.tokens: {e}"))?;
    settings.listen = listen;
    sup.spawn("Greengrass server for apps", Phase::Ingress, move |stop| async move {
        let mut warned = false;
        let serve = loop {
            let attempt = greengrass::Settings {
                auth: settings.auth.clone().with_app_tokens(app_tokens.clone()),
                ..settings.clone()
            };
            match greengrass::bind(attempt, service.clone(), stop.clone()).await {
                Ok(serve) => break serve,
                Err(e) => {
                    if !warned {
                        tracing::warn!(listen = %listen, error = %e, "apps cannot reach the Greengrass port yet (is the Docker bridge up?); retrying");
                        warned = true;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        };
        serve.await;
        Ok(())
    });
    Ok(())
}

/// Resolves once every source subscribed, or after [`READY_WAIT`] with a warning for each that
/// has not (Ferry keeps retrying in the background).
async fn wait_subscribed(ingest: &Ingest) {
    let started = Instant::now();
    let subscribed = || {
        ingest
            .iter()
            .all(|(_, m)| m.subscribed.load(Ordering::Relaxed))
    };
    while started.elapsed() < READY_WAIT && !subscribed() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (name, m) in ingest {
        if !m.subscribed.load(Ordering::Relaxed) {
            tracing::warn!(broker = %name, "not subscribed yet; reporting ready and retrying in the background");
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    /// Reload the configuration (installed from the start, so a SIGHUP never kills Ferry).
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.int.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }
}

enum SignalEvent {
    Stop(&'static str),
    Reload,
}
