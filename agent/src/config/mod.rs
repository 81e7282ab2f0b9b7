//! The agent's configuration: one TOML file plus `FERRY_...` environment overrides, read with
//! the `config` crate into typed structs that reject unknown keys. Every error names the file
//! (or the environment) and the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ferry_connectors::mqtt::topic::{validate_filter, OnFull};
use ferry_connectors::mqtt::{BrokerConfig, Route};
use ferry_connectors::sinks::SinkEnv;
use ferry_stream_manager::{units, StreamDefinition};
use serde::Deserialize;

use crate::greengrass::GreengrassConfig;

/// The stream and route Ferry uses when the configuration declares neither.
pub const DEFAULT_STREAM: &str = "mqtt";
/// `FERRY_` variables that belong to the command line, not to configuration keys.
pub const CLI_VARIABLES: &[&str] = &["FERRY_CONFIG", "FERRY_URL", "FERRY_TOKEN"];
/// The name of the implicit connection to the embedded broker.
pub const EMBEDDED_CONNECTION: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{text:?} is not one of \"text\", \"json\"")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `info,ferry_connectors=debug`. `RUST_LOG` wins.
    #[serde(default = "default_level")]
    pub level: String,
    /// How often each broker connection logs its counters; 0 turns it off.
    #[serde(default = "default_stats_interval", deserialize_with = "units::millis")]
    pub stats_interval_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_level(),
            stats_interval_ms: default_stats_interval(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

fn default_stats_interval() -> u64 {
    60_000
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Default: on when no `[[brokers]]` are configured, off otherwise.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default = "default_listen", deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    #[serde(default = "default_payload", deserialize_with = "units::bytes_usize")]
    pub max_payload_size_bytes: usize,
    #[serde(default = "default_connections")]
    pub max_connections: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            enabled: None,
            listen: default_listen(),
            max_payload_size_bytes: default_payload(),
            max_connections: default_connections(),
        }
    }
}

/// Settings shared by every export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// A cap on all exports together; higher-priority exports are served first under it.
    #[serde(default, deserialize_with = "units::bytes_opt")]
    pub bandwidth_bytes_per_second: Option<u64>,
}

/// The local HTTP API for reader apps, the CLI and metrics scrapers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_api_listen", deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// When set, every endpoint but `/healthz` needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (first line), instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Larger request bodies are refused with 413.
    #[serde(default = "default_max_body", deserialize_with = "units::bytes_usize")]
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: default_api_listen(),
            token: None,
            token_file: None,
            max_body_bytes: default_max_body(),
        }
    }
}

impl ApiConfig {
    /// Whether the API listens where other machines can reach it without asking for a token.
    pub fn open_beyond_loopback(&self) -> bool {
        self.enabled
            && !self.listen.ip().is_loopback()
            && self.token.is_none()
            && self.token_file.is_none()
    }

    /// The token, read from `token_file` when that is set.
    pub fn resolved_token(&self) -> Result<Option<String>, String> {
        match (&self.token, &self.token_file) {
            (Some(t), None) if t.trim().is_empty() => Err(
                "is empty, which would turn authentication off; remove the key to run without a token"
                    .into(),
            ),
            (Some(t), None) => Ok(Some(t.clone())),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() {
                    return Err(format!("{} holds no token", f.display()));
                }
                Ok(Some(token))
            }
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err("set token or token_file, not both".into()),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8470))
}
fn default_max_body() -> usize {
    16 * 1024 * 1024
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}
fn default_payload() -> usize {
    1024 * 1024
}
fn default_connections() -> usize {
    1000
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./ferry-data")
}
fn default_shutdown_timeout() -> u64 {
    10_000
}
fn default_retention_interval() -> u64 {
    60_000
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How long shutdown may take (stop ingestion, acknowledge, flush) before Ferry exits anyway.
    #[serde(
        default = "default_shutdown_timeout",
        deserialize_with = "units::millis"
    )]
    pub shutdown_timeout_ms: u64,
    /// How often records past their stream's time to live are removed.
    #[serde(
        default = "default_retention_interval",
        deserialize_with = "units::millis"
    )]
    pub retention_interval_ms: u64,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub export: ExportConfig,
    /// The Greengrass Stream Manager protocol server (off by default).
    #[serde(default)]
    pub greengrass: GreengrassConfig,
    #[serde(default)]
    pub embedded_broker: EmbeddedBrokerConfig,
    #[serde(default)]
    pub brokers: Vec<BrokerConfig>,
    #[serde(default)]
    pub streams: Vec<StreamDefinition>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Container apps deployed from compose files, and how Ferry reaches the Docker engine.
    #[serde(default)]
    pub apps: Vec<crate::apps::AppConfig>,
    #[serde(default)]
    pub docker: crate::apps::DockerConfig,
}

/// A configuration error, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

impl AgentConfig {
    /// Reads `file` (if any) and the `FERRY_` variables of `env`, applies the defaults and
    /// validates. `FERRY_CONFIG` is the file's own variable and is not a key.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<AgentConfig, ConfigError> {
        let origin = file.map_or_else(
            || "built-in defaults".to_string(),
            |f| f.display().to_string(),
        );
        let fail = |message: String| ConfigError {
            origin: origin.clone(),
            message,
        };
        let mut builder = config::Config::builder();
        if let Some(f) = file {
            if !f.is_file() {
                return Err(fail("no such configuration file".into()));
            }
            builder = builder.add_source(
                config::File::from(f)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let overrides: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("FERRY_") && !CLI_VARIABLES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("FERRY")
                .prefix_separator("_")
                .separator("__")
                .source(Some(overrides)),
        );
        let keyed = |(key, reason): (String, String)| fail(format!("key `{key}`: {reason}"));
        let crate_error = |e: config::ConfigError| messages::explain(&origin, &e.to_string(), env);
        let built = builder.build().map_err(crate_error)?;
        exports::check_definitions(&built).map_err(keyed)?;
        let mut cfg: AgentConfig = built.try_deserialize().map_err(crate_error)?;
        cfg.greengrass.apply_port_variable(env).map_err(fail)?;
        let cfg = cfg.resolve().map_err(keyed)?;
        exports::check_sinks(&cfg.streams, &SinkEnv::from_vars(env.clone())).map_err(keyed)?;
        Ok(cfg)
    }

    /// Fills in what the defaults imply and checks every section.
    fn resolve(mut self) -> Result<AgentConfig, (String, String)> {
        self.streams = self
            .streams
            .into_iter()
            .map(StreamDefinition::with_fitting_segments)
            .collect();
        if self.streams.is_empty() && self.routes.is_empty() {
            self.streams.push(StreamDefinition::new(DEFAULT_STREAM));
            self.routes.push(Route {
                filter: "#".into(),
                stream: DEFAULT_STREAM.into(),
                broker: None,
                on_full: Default::default(),
            });
        }
        if self.embedded_enabled() && !self.brokers.iter().any(|b| b.name == EMBEDDED_CONNECTION) {
            let l = self.embedded_broker.listen;
            let host = if l.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                l.ip().to_string()
            };
            let mut local = BrokerConfig::new(EMBEDDED_CONNECTION, &host, l.port());
            local.max_message_size_bytes = self.embedded_broker.max_payload_size_bytes;
            self.brokers.push(local);
        }
        self.validate()?;
        Ok(self)
    }

    pub fn embedded_enabled(&self) -> bool {
        self.embedded_broker
            .enabled
            .unwrap_or(self.brokers.iter().all(|b| b.name == EMBEDDED_CONNECTION))
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        check_log_level(&self.log.level).map_err(|m| ("log.level".to_string(), m))?;
        if self.export.bandwidth_bytes_per_second == Some(0) {
            return Err((
                "export.bandwidth_bytes_per_second".into(),
                "must be greater than 0 (omit it for no cap)".into(),
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return Err((
                "shutdown_timeout_ms".into(),
                "must be greater than 0".into(),
            ));
        }
        if self.retention_interval_ms < 100 {
            return Err((
                "retention_interval_ms".into(),
                "must be at least 100".into(),
            ));
        }
        exports::validate(&self.streams)?;
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            s.validate()
                .map_err(|e| (format!("streams[{i}]"), e.to_string()))?;
            if !names.insert(s.name.as_str()) {
                return Err((
                    format!("streams[{i}].name"),
                    format!("stream {:?} is declared twice", s.name),
                ));
            }
        }
        let mut brokers = std::collections::HashSet::new();
        for (i, b) in self.brokers.iter().enumerate() {
            b.validate()
                .map_err(|(k, m)| (format!("brokers[{i}].{k}"), m))?;
            // The same files `run` reads, read now, so a check passes only what will start.
            if let Some(tls) = &b.tls {
                ferry_connectors::mqtt::client_config(tls)
                    .map_err(|e| (format!("brokers[{i}].tls"), format!("{e:#}")))?;
            }
            if !brokers.insert(b.name.as_str()) {
                return Err((
                    format!("brokers[{i}].name"),
                    format!("broker {:?} is declared twice", b.name),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            validate_filter(&r.filter).map_err(|m| (format!("routes[{i}].filter"), m))?;
            if let OnFull::Divert(to) = &r.on_full {
                if !names.contains(to.as_str()) || *to == r.stream {
                    return Err((
                        format!("routes[{i}].on_full.divert"),
                        format!("{to:?} must be another stream declared in [[streams]]"),
                    ));
                }
            }
            if !names.contains(r.stream.as_str()) {
                return Err((
                    format!("routes[{i}].stream"),
                    format!("stream {:?} is not declared in [[streams]]", r.stream),
                ));
            }
            if let Some(b) = &r.broker {
                if !brokers.contains(b.as_str()) {
                    return Err((
                        format!("routes[{i}].broker"),
                        format!("broker {b:?} is not declared in [[brokers]]"),
                    ));
                }
            }
        }
        if self.api.enabled {
            self.api
                .resolved_token()
                .map_err(|m| ("api.token".to_string(), m))?;
            if self.api.max_body_bytes == 0 {
                return Err(("api.max_body_bytes".into(), "must be greater than 0".into()));
            }
        }
        if self.greengrass.enabled {
            self.greengrass
                .validate()
                .map_err(|(k, m)| (format!("greengrass.{k}"), m))?;
        }
        crate::apps::config::validate(&self.apps, &self.docker)?;
        if self.embedded_enabled() && self.embedded_broker.max_payload_size_bytes == 0 {
            return Err((
                "embedded_broker.max_payload_size_bytes".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

mod exports;
/// A listen address: `127.0.0.1:8470`, `[::1]:8470` or a host name such as `localhost:8470`
/// (resolved now; an IPv4 address is preferred).
pub fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    use std::net::ToSocketAddrs;
    let text = String::deserialize(d)?;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not an address to listen on (host:port, e.g. \"127.0.0.1:8470\"): {e}"
            ))
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} resolves to no address")))
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A tracing filter whose every directive names a level: `info`, `info,ferry_connectors=debug`.
/// (A bare word such as `verbose` is a valid filter to tracing, meaning "everything from the
/// target `verbose`", which silences all of Ferry's logs; so it is refused here.)
fn check_log_level(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("{filter:?} is not a log filter: {e}"))?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} names no level: use one of {} or target=level, e.g. \"info,ferry_connectors=debug\"",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

mod messages;
pub mod show;
#[cfg(test)]
mod tests;
