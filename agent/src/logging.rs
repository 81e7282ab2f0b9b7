//! Logs through `tracing` to stderr: text for people, JSON on request, and no ANSI colours when
//! stderr is not a terminal (journald). The embedded broker (rumqttd) logs every client
//! disconnect as an error, so it is silenced unless `RUST_LOG` asks for it. The level can be
//! changed while Ferry runs (a configuration reload), unless `RUST_LOG` set it.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Changes the log filter of the running process.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set: it wins over the configuration, on reload too.
    from_env: bool,
}

impl LogLevel {
    /// Applies `log.level` from a reloaded configuration; `false` when `RUST_LOG` rules.
    pub fn set(&self, level: &str) -> anyhow::Result<bool> {
        if self.from_env {
            return Ok(false);
        }
        self.handle
            .reload(config_filter(level)?)
            .map_err(|e| anyhow::anyhow!("cannot change the log level: {e}"))?;
        Ok(true)
    }
}

fn config_filter(level: &str) -> anyhow::Result<EnvFilter> {
    Ok(EnvFilter::try_new(format!("{level},rumqttd=off"))?)
}

pub fn init(cfg: &LogConfig) -> anyhow::Result<LogLevel> {
    let (filter, from_env) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => (EnvFilter::try_new(v)?, true),
        _ => (config_filter(&cfg.level)?, false),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal();
    let output = match cfg.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))?;
    Ok(LogLevel { handle, from_env })
}
