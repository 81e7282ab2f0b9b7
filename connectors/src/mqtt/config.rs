//! Configuration of one MQTT broker connection. Units are in the key names; `validate` names
//! the offending key so the agent can point at it in the config file.

use std::path::PathBuf;

use serde::Deserialize;

use super::topic::validate_filter;

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_max_message() -> usize {
    1024 * 1024
}
fn default_inflight() -> usize {
    1024
}
fn default_qos() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate chain, for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub filter: String,
    #[serde(default = "default_qos")]
    pub qos: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Names the connection in logs, metrics and routes.
    pub name: String,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Must be stable for persistent sessions; default `ferry-<name>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// `false` (default): a persistent session, so QoS 1 messages published while Ferry was
    /// away are delivered when it reconnects.
    #[serde(default)]
    pub clean_session: bool,
    /// Topic filters to subscribe to. Empty: the filters of the routes that apply.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Larger payloads are rejected (acknowledged, counted, logged), not stored.
    #[serde(default = "default_max_message")]
    pub max_message_size_bytes: usize,
    /// Messages received but not yet acknowledged (being stored or waiting for the fsync).
    #[serde(default = "default_inflight")]
    pub max_inflight_messages: usize,
}

impl BrokerConfig {
    /// A connection to `host:port` with every default.
    pub fn new(name: &str, host: &str, port: u16) -> Self {
        BrokerConfig {
            name: name.into(),
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            tls: None,
            keep_alive_secs: default_keep_alive(),
            clean_session: false,
            subscriptions: Vec::new(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_ms: default_reconnect_max(),
            max_message_size_bytes: default_max_message(),
            max_inflight_messages: default_inflight(),
        }
    }

    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("ferry-{}", self.name))
    }

    /// Checks every field; errors are `(key, reason)` with the key relative to this section.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if self.name.is_empty() {
            return err("name", "must not be empty".into());
        }
        if self.host.is_empty() {
            return err("host", "must not be empty".into());
        }
        if self.port == 0 {
            return err("port", "must be 1 to 65535".into());
        }
        if self.client_id().is_empty() || self.client_id().len() > 65535 {
            return err("client_id", "must be 1 to 65535 bytes".into());
        }
        if !(1..=65535).contains(&self.keep_alive_secs) {
            return err(
                "keep_alive_secs",
                format!("is {} but must be 1 to 65535", self.keep_alive_secs),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return err("password", "is set without a username".into());
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return err(
                    "tls",
                    "cert_file and key_file go together (mutual TLS needs both)".into(),
                );
            }
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            validate_filter(&s.filter)
                .or_else(|m| err(&format!("subscriptions[{i}].filter"), m))?;
            if s.qos > 2 {
                return err(
                    &format!("subscriptions[{i}].qos"),
                    format!("is {} but must be 0, 1 or 2", s.qos),
                );
            }
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return err(
                "reconnect_min_ms",
                format!(
                    "must be at least 1 and at most reconnect_max_ms ({} > {})",
                    self.reconnect_min_ms, self.reconnect_max_ms
                ),
            );
        }
        if self.max_message_size_bytes == 0 {
            return err("max_message_size_bytes", "must be greater than 0".into());
        }
        if self.max_inflight_messages == 0 {
            return err("max_inflight_messages", "must be greater than 0".into());
        }
        Ok(())
    }
}
