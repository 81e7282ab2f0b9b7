//! The `[greengrass]` section of Ferry's configuration.
//!
//! ```toml
//! [greengrass]
//! enabled = true                      # default false
//! listen = "127.0.0.1:8088"           # STREAM_MANAGER_SERVER_PORT, when set, replaces the port
//! tokens = ["token-of-app-a"]         # accepted auth tokens; with no tokens and no file: auth off
//! token_file = "/etc/ferry/gg-tokens" # one token per line ('#' comments and blank lines skipped)
//! max_frame_bytes = 16777216          # largest request read and answer written
//! max_connections = 32
//! max_in_flight_per_connection = 16   # requests running or answered-but-unwritten
//! write_timeout_ms = 30000            # a client that reads nothing for this long is dropped
//!
//! [greengrass.exports]                # AWS settings of exports defined through this port
//! region = "eu-west-1"                # (export_settings.rs)
//! ```
//! Memory held for clients is at most `max_connections × (max_in_flight_per_connection + 1) ×
//! max_frame_bytes` (frames being read, requests running, answers queued).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::export_settings::ExportSettings;
use super::frame::PROTOCOL_MAX_LENGTH;
use super::handshake::Auth;
use super::server::Settings;

/// The SDKs' (and the AWS component's) port variable.
pub const PORT_VARIABLE: &str = "STREAM_MANAGER_SERVER_PORT";

#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GreengrassConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_per_connection: usize,
    #[serde(default = "default_write_timeout")]
    pub write_timeout_ms: u64,
    #[serde(default)]
    pub exports: ExportSettings,
}

/// Tokens are secrets: Debug shows how many there are, never what they are.
impl std::fmt::Debug for GreengrassConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreengrassConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("tokens", &self.tokens.len())
            .field("token_file", &self.token_file)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_connections", &self.max_connections)
            .field(
                "max_in_flight_per_connection",
                &self.max_in_flight_per_connection,
            )
            .field("write_timeout_ms", &self.write_timeout_ms)
            .field("exports", &self.exports)
            .finish()
    }
}

impl Default for GreengrassConfig {
    fn default() -> Self {
        GreengrassConfig {
            enabled: false,
            listen: default_listen(),
            tokens: Vec::new(),
            token_file: None,
            max_frame_bytes: default_max_frame(),
            max_connections: default_max_connections(),
            max_in_flight_per_connection: default_max_in_flight(),
            write_timeout_ms: default_write_timeout(),
            exports: ExportSettings::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}
fn default_max_frame() -> usize {
    16 * 1024 * 1024
}
fn default_max_connections() -> usize {
    32
}
fn default_max_in_flight() -> usize {
    16
}
fn default_write_timeout() -> u64 {
    30_000
}

impl GreengrassConfig {
    /// `STREAM_MANAGER_SERVER_PORT` (as the SDKs read it) replaces the port of `listen`.
    pub fn apply_port_variable(&mut self, env: &HashMap<String, String>) -> Result<(), String> {
        if let Some(v) = env.get(PORT_VARIABLE) {
            let port: u16 = v
                .trim()
                .parse()
                .map_err(|_| format!("{PORT_VARIABLE}={v:?} is not a port number"))?;
            self.listen.set_port(port);
        }
        Ok(())
    }

    /// Checks the section; `Err` is (key, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if !(1024..PROTOCOL_MAX_LENGTH as usize).contains(&self.max_frame_bytes) {
            return bad("max_frame_bytes", "must be from 1024 to 2^30 - 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be greater than 0");
        }
        if self.max_in_flight_per_connection == 0 {
            return bad("max_in_flight_per_connection", "must be greater than 0");
        }
        if self.write_timeout_ms == 0 {
            return bad("write_timeout_ms", "must be greater than 0");
        }
        self.exports
            .validate()
            .map_err(|(k, m)| (format!("exports.{k}"), m))?;
        self.auth().map(drop).map_err(|m| ("tokens".to_string(), m))
    }

    /// Authentication: off when neither `tokens` nor `token_file` is set.
    pub fn auth(&self) -> Result<Auth, String> {
        let mut tokens = self.tokens.clone();
        if tokens.iter().any(|t| t.trim().is_empty()) {
            return Err("an empty token would let clients without a token in".into());
        }
        if let Some(f) = &self.token_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read token_file {}: {e}", f.display()))?;
            let before = tokens.len();
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
            if tokens.len() == before {
                return Err(format!("token_file {} holds no token", f.display()));
            }
        }
        if tokens.is_empty() {
            return Ok(Auth::off());
        }
        Ok(Auth::tokens(tokens))
    }

    pub fn settings(&self) -> Result<Settings, String> {
        Ok(Settings {
            listen: self.listen,
            auth: self.auth()?,
            max_frame_bytes: self.max_frame_bytes,
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight_per_connection,
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            exports: self.exports.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_off_by_default_and_listens_on_8088_when_on() {
        let c = GreengrassConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8088");
        assert!(!c.auth().unwrap().is_on());
    }

    #[test]
    fn the_port_variable_replaces_the_port_and_a_bad_one_is_an_error() {
        let mut c = GreengrassConfig::default();
        let env = HashMap::from([(PORT_VARIABLE.to_string(), "9099".to_string())]);
        c.apply_port_variable(&env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9099");
        let env = HashMap::from([(PORT_VARIABLE.to_string(), "".to_string())]);
        assert!(c
            .apply_port_variable(&env)
            .unwrap_err()
            .contains(PORT_VARIABLE));
    }

    #[test]
    fn tokens_come_from_the_list_and_the_file_together() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, "# apps\nfrom-file\n\n").unwrap();
        let c = GreengrassConfig {
            tokens: vec!["listed".into()],
            token_file: Some(f),
            ..GreengrassConfig::default()
        };
        let auth = c.auth().unwrap();
        assert!(auth.accepts(Some("listed")) && auth.accepts(Some("from-file")));
        assert!(!auth.accepts(Some("# apps")));
    }

    #[test]
    fn an_empty_token_or_an_empty_token_file_is_refused() {
        let c = GreengrassConfig {
            tokens: vec![" ".into()],
            ..GreengrassConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "tokens");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, "# nothing\n").unwrap();
        let c = GreengrassConfig {
            token_file: Some(f),
            ..GreengrassConfig::default()
        };
        assert!(c.validate().unwrap_err().1.contains("holds no token"));
    }

    #[test]
    fn the_debug_output_never_shows_a_token() {
        let c = GreengrassConfig {
            tokens: vec!["s3cret".into()],
            ..GreengrassConfig::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn limits_of_zero_or_beyond_the_protocol_are_refused() {
        let c = GreengrassConfig {
            max_frame_bytes: 1 << 30,
            ..GreengrassConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "max_frame_bytes");
        let c = GreengrassConfig {
            max_in_flight_per_connection: 0,
            ..GreengrassConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "max_in_flight_per_connection");
    }
}
