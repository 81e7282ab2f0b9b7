//! Configuration reload on SIGHUP, as mosquitto, Fluent Bit and Vector do it: read the file (and
//! the environment) again, apply what can change while running — stream definitions with their
//! exports, the log level — log what changed, and name what needs a restart (brokers, routes,
//! listeners). An invalid file changes nothing: Ferry keeps running on the old configuration.
//!
//! [`plan`] compares two configurations as pure code; [`apply`] carries a plan out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_stream_manager::{StreamDefinition, StreamManager};

use crate::config::AgentConfig;
use crate::logging::LogLevel;

/// Where the configuration came from, to read it again.
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub env: HashMap<String, String>,
}

/// What a reload changes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Streams declared anew or with another definition: created or updated.
    pub streams: Vec<StreamDefinition>,
    /// Streams no longer declared: kept with their data (delete them through the API).
    pub undeclared: Vec<String>,
    pub log_level: Option<String>,
    /// Sections that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

pub fn plan(old: &AgentConfig, new: &AgentConfig) -> Plan {
    let streams = new
        .streams
        .iter()
        .filter(|d| !old.streams.contains(d))
        .cloned()
        .collect();
    let undeclared = old
        .streams
        .iter()
        .filter(|d| !new.streams.iter().any(|n| n.name == d.name))
        .map(|d| d.name.clone())
        .collect();
    let log_level = (old.log.level != new.log.level).then(|| new.log.level.clone());
    let mut needs_restart = Vec::new();
    let sections: [(&'static str, bool); 9] = [
        ("brokers", old.brokers != new.brokers),
        ("routes", old.routes != new.routes),
        ("api", old.api != new.api),
        (
            "embedded_broker",
            old.embedded_broker != new.embedded_broker,
        ),
        ("export", old.export != new.export),
        ("data_dir", old.data_dir != new.data_dir),
        ("log.format", old.log.format != new.log.format),
        ("greengrass", old.greengrass != new.greengrass),
        (
            "retention_interval_ms / shutdown_timeout_ms",
            old.retention_interval_ms != new.retention_interval_ms
                || old.shutdown_timeout_ms != new.shutdown_timeout_ms,
        ),
    ];
    for (name, changed) in sections {
        if changed {
            needs_restart.push(name);
        }
    }
    Plan {
        streams,
        undeclared,
        log_level,
        needs_restart,
    }
}

/// Reads the configuration again and applies what can change while running. Returns the new
/// configuration, or `None` (and logs why) when it is invalid or could not be applied whole.
pub async fn apply(
    source: &ConfigSource,
    current: &AgentConfig,
    manager: &Arc<StreamManager>,
    log: &LogLevel,
) -> Option<AgentConfig> {
    let new = match AgentConfig::load(source.file.as_deref(), &source.env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration reload refused: the file is invalid; Ferry keeps running on the previous configuration");
            return None;
        }
    };
    let plan = plan(current, &new);
    if plan.is_empty() {
        tracing::info!("configuration reloaded: nothing changed");
        return Some(new);
    }
    for def in plan.streams.clone() {
        let name = def.name.clone();
        let m = manager.clone();
        let applied = tokio::task::spawn_blocking(move || m.ensure_stream(def).map(drop)).await;
        match applied {
            Ok(Ok(())) => {
                tracing::info!(stream = %name, "configuration reload: stream created or updated (its exports follow)")
            }
            Ok(Err(e)) => {
                tracing::error!(stream = %name, error = %e, "configuration reload: stream not applied")
            }
            Err(e) => {
                tracing::error!(stream = %name, error = %e, "configuration reload: stream task failed")
            }
        }
    }
    for name in &plan.undeclared {
        tracing::warn!(stream = %name, "configuration reload: stream no longer declared; kept with its data (delete it through the API or the CLI)");
    }
    if let Some(level) = &plan.log_level {
        match log.set(level) {
            Ok(true) => tracing::info!(level = %level, "configuration reload: log level changed"),
            Ok(false) => {
                tracing::info!("configuration reload: RUST_LOG is set and keeps the log level")
            }
            Err(e) => tracing::error!(error = %e, "configuration reload: log level not changed"),
        }
    }
    if !plan.needs_restart.is_empty() {
        tracing::warn!(sections = ?plan.needs_restart, "configuration reload: these sections changed and take effect after a restart");
    }
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> AgentConfig {
        AgentConfig::load(None, &HashMap::new()).unwrap()
    }

    #[test]
    fn the_same_configuration_plans_nothing() {
        assert!(plan(&base(), &base()).is_empty());
    }

    #[test]
    fn a_changed_or_new_stream_and_the_log_level_apply_while_running() {
        let old = base();
        let mut new = base();
        new.streams[0].max_size_bytes = 1 << 20;
        new.streams.push(StreamDefinition::new("extra"));
        new.log.level = "debug".into();
        let p = plan(&old, &new);
        let names: Vec<&str> = p.streams.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["mqtt", "extra"]);
        assert_eq!(p.log_level.as_deref(), Some("debug"));
        assert!(p.needs_restart.is_empty());
    }

    #[test]
    fn brokers_routes_and_listeners_are_named_as_needing_a_restart() {
        let old = base();
        let mut new = base();
        new.routes[0].filter = "sensors/#".into();
        new.api.listen = "127.0.0.1:9999".parse().unwrap();
        let p = plan(&old, &new);
        assert_eq!(p.needs_restart, ["routes", "api"]);
        assert!(p.streams.is_empty());
    }

    #[test]
    fn a_stream_dropped_from_the_file_is_kept_and_named() {
        let old = base();
        let mut new = base();
        new.streams[0].name = "renamed".into();
        new.routes[0].stream = "renamed".into();
        let p = plan(&old, &new);
        assert_eq!(p.undeclared, ["mqtt"]);
    }
}
