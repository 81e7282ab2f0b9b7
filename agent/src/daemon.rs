//! `ferry run`: opens the streams, starts the embedded broker and the MQTT sources, tells
//! systemd, and on SIGTERM/SIGINT stops ingestion, acknowledges what is durable, flushes every
//! stream and exits within `shutdown_timeout_ms`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_connectors::mqtt::{IngestMetrics, MqttSource};
use ferry_stream_manager::{ManagerOptions, StreamManager};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::{api, broker, systemd};

/// How long start-up waits for the sources' first subscription before reporting ready anyway
/// (a broker that is down must not keep the service from starting: Ferry keeps retrying).
const READY_WAIT: Duration = Duration::from_secs(10);

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let data_dir = cfg.data_dir.clone();
    let manager = tokio::task::spawn_blocking(move || {
        StreamManager::open(&data_dir, ManagerOptions::default())
    })
    .await?
    .with_context(|| format!("opening the data directory {}", cfg.data_dir.display()))?;
    let manager = Arc::new(manager);
    for def in &cfg.streams {
        manager
            .ensure_stream(def.clone())
            .with_context(|| format!("opening stream {:?}", def.name))?;
    }
    tracing::info!(data_dir = %cfg.data_dir.display(), streams = manager.list().len(), "streams open");

    if cfg.embedded_enabled() {
        let broker_cfg = cfg.embedded_broker.clone();
        tokio::task::spawn_blocking(move || broker::start(&broker_cfg)).await??;
    }

    let shutdown = CancellationToken::new();
    let drain = Duration::from_millis(cfg.shutdown_timeout_ms / 2);
    let mut sources = JoinSet::new();
    let mut metrics = Vec::new();
    for b in &cfg.brokers {
        let m = Arc::new(IngestMetrics::default());
        metrics.push((b.name.clone(), m.clone()));
        let source = MqttSource::new(b.clone(), &cfg.routes, manager.clone(), m);
        let token = shutdown.child_token();
        sources.spawn(async move { source.run(token, drain).await });
    }
    // Sinks get the environment (AWS credentials, region) as data: libraries do not read it.
    let sink_env = ferry_connectors::sinks::SinkEnv {
        vars: std::env::vars().collect(),
        home: std::env::var_os("HOME").map(std::path::PathBuf::from),
    };
    let exports = crate::exports::Exports::new(
        manager.clone(),
        sink_env,
        cfg.export.bandwidth_bytes_per_second,
        shutdown.clone(),
    );
    exports.reconcile();
    let api_task = if cfg.api.enabled {
        let token = cfg
            .api
            .resolved_token()
            .map_err(|e| anyhow::anyhow!("api.token: {e}"))?;
        let state = api::ApiState {
            manager: manager.clone(),
            ingest: Arc::new(metrics.clone()),
            token: token.map(Into::into),
            max_body_bytes: cfg.api.max_body_bytes,
            shutdown: shutdown.clone(),
            exports: exports.clone(),
        };
        Some(tokio::spawn(api::bind(cfg.api.listen, state).await?))
    } else {
        None
    };
    let retention = {
        let manager = manager.clone();
        let token = shutdown.clone();
        let interval = Duration::from_millis(cfg.retention_interval_ms);
        tokio::spawn(async move {
            manager
                .run_retention(interval, token.cancelled_owned())
                .await
        })
    };

    if cfg.log.stats_interval_ms > 0 {
        spawn_stats(
            &metrics,
            Duration::from_millis(cfg.log.stats_interval_ms),
            shutdown.clone(),
        );
    }
    let subscribed = async {
        let started = Instant::now();
        while started.elapsed() < READY_WAIT
            && !metrics
                .iter()
                .all(|(_, m)| m.subscribed.load(Ordering::Relaxed))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let early_signal = tokio::select! {
        _ = subscribed => None,
        _ = sigterm.recv() => Some("SIGTERM"),
        _ = sigint.recv() => Some("SIGINT"),
    };
    if early_signal.is_none() {
        for (name, m) in &metrics {
            if !m.subscribed.load(Ordering::Relaxed) {
                tracing::warn!(broker = %name, "not subscribed yet; reporting ready and retrying in the background");
            }
        }
        systemd::ready();
        systemd::spawn_watchdog(shutdown.clone());
        tracing::info!("ferry is ready");
    }

    tokio::select! {
        _ = std::future::ready(()), if early_signal.is_some() => {
            tracing::info!("{} received during start-up; shutting down", early_signal.unwrap_or_default());
        }
        _ = sigterm.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT received; shutting down"),
        Some(res) = sources.join_next() => {
            // A source only ends early on a configuration error (e.g. an unreadable TLS file).
            shutdown.cancel();
            let err = match res {
                Ok(Err(e)) => anyhow::Error::new(e),
                Ok(Ok(())) => anyhow::anyhow!("an MQTT source stopped unexpectedly"),
                Err(e) => anyhow::Error::new(e),
            };
            manager.close();
            return Err(err);
        }
    }
    systemd::stopping();
    shutdown.cancel();
    let deadline = Duration::from_millis(cfg.shutdown_timeout_ms);
    let stop = async {
        while sources.join_next().await.is_some() {}
        let _ = retention.await;
        if let Some(api) = api_task {
            let _ = api.await;
        }
        exports.wait_stopped().await;
    };
    if tokio::time::timeout(deadline, stop).await.is_err() {
        tracing::warn!(
            timeout_ms = cfg.shutdown_timeout_ms,
            "sources did not stop in time; flushing and exiting anyway"
        );
    }
    let m = manager.clone();
    tokio::task::spawn_blocking(move || m.close()).await?;
    for (name, m) in &metrics {
        let s = m.snapshot();
        tracing::info!(
            broker = %name,
            received = s.messages_received,
            stored = s.messages_stored,
            oversized = s.rejected_oversized,
            unroutable = s.rejected_unroutable,
            dropped_qos0 = s.dropped_qos0,
            backpressure_waits = s.backpressure_waits,
            stale_acks = s.stale_acks,
            "ingestion summary"
        );
    }
    tracing::info!("all streams flushed; exiting");
    Ok(())
}

/// Logs each connection's counters periodically (when they changed), with the rate since the
/// last line, so an operator sees ingestion progress without a metrics system.
fn spawn_stats(
    metrics: &[(String, Arc<IngestMetrics>)],
    every: Duration,
    shutdown: CancellationToken,
) {
    let metrics = metrics.to_vec();
    tokio::spawn(async move {
        let mut last: Vec<(u64, Instant)> = metrics.iter().map(|_| (0, Instant::now())).collect();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for ((name, m), (prev, at)) in metrics.iter().zip(last.iter_mut()) {
                let s = m.snapshot();
                if s.messages_stored == *prev && s.messages_received == *prev {
                    continue;
                }
                let rate = (s.messages_stored - *prev) as f64 / at.elapsed().as_secs_f64();
                tracing::info!(
                    broker = %name,
                    connected = s.connected,
                    received = s.messages_received,
                    stored = s.messages_stored,
                    rate_per_s = rate.round() as u64,
                    rejected = s.rejected_oversized + s.rejected_unroutable,
                    dropped_qos0 = s.dropped_qos0,
                    backpressure_waits = s.backpressure_waits,
                    "ingestion"
                );
                *prev = s.messages_stored;
                *at = Instant::now();
            }
        }
    });
}
