//! `[[apps]]` (the apps the configuration file deploys) and `[docker]` (how Ferry reaches the
//! engine and rolls out). TOML cannot hold an `[apps]` table beside the `[[apps]]` array, hence
//! the settings' own table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_connectors::docker::compose;
use ferry_connectors::docker::RolloutSettings;
use serde::Deserialize;

use super::source::DeployRequest;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub name: String,
    /// The compose file; relative bind mounts and env_files resolve against its directory.
    pub compose_file: PathBuf,
    /// Values for `${VAR}` in the compose file, over those of a `.env` file beside it.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The streams the app's token may read; absent: all.
    #[serde(default)]
    pub read_streams: Option<Vec<String>>,
    /// The streams the app's token may append to; absent: all.
    #[serde(default)]
    pub write_streams: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// `false`: no container apps (the API's /v1/apps answers 503).
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// How long a new revision may take to become healthy before it is rolled back.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_ms: u64,
    /// A service without a healthcheck counts as healthy once it ran this long.
    #[serde(default = "default_healthy_after")]
    pub healthy_after_ms: u64,
    /// How often the engine is asked again during a rollout.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// How often every app is compared with what runs (repairs, and retries when the engine
    /// was unreachable).
    #[serde(default = "default_reconcile")]
    pub reconcile_interval_ms: u64,
    /// Serve apps (`FERRY_URL`, `FERRY_TOKEN` in their containers) on `app_api_listen`.
    #[serde(default = "default_true")]
    pub app_api_enabled: bool,
    /// Where apps reach Ferry: by default the Docker bridge's gateway, which containers reach
    /// and the LAN does not.
    #[serde(default = "default_app_api_listen")]
    pub app_api_listen: std::net::SocketAddr,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            enabled: true,
            socket: default_socket(),
            health_timeout_ms: default_health_timeout(),
            healthy_after_ms: default_healthy_after(),
            poll_interval_ms: default_poll(),
            reconcile_interval_ms: default_reconcile(),
            app_api_enabled: true,
            app_api_listen: default_app_api_listen(),
        }
    }
}

impl DockerConfig {
    pub fn rollout(&self) -> RolloutSettings {
        RolloutSettings {
            health_timeout_ms: self.health_timeout_ms,
            healthy_after_ms: self.healthy_after_ms,
            poll_ms: self.poll_interval_ms,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_socket() -> PathBuf {
    PathBuf::from("/var/run/docker.sock")
}
fn default_health_timeout() -> u64 {
    120_000
}
fn default_healthy_after() -> u64 {
    10_000
}
fn default_poll() -> u64 {
    1_000
}
fn default_reconcile() -> u64 {
    30_000
}
fn default_app_api_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([172, 17, 0, 1], 8471))
}

impl AppConfig {
    /// The file's deploy request: its text, directory and variables (`.env` beside it, then
    /// `variables`).
    pub fn request(&self) -> Result<DeployRequest, String> {
        let text = std::fs::read_to_string(&self.compose_file)
            .map_err(|e| format!("cannot read {}: {e}", self.compose_file.display()))?;
        let dir = self
            .compose_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut variables = read_dot_env(&dir)?;
        variables.extend(self.variables.clone());
        Ok(DeployRequest {
            compose: text,
            base_dir: Some(dir),
            variables,
        })
    }
}

/// `DIR/.env`, as docker-compose reads it, if it exists.
pub fn read_dot_env(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let path = dir.join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(compose::parse_env_file(&text)
            .map_err(|m| format!("{}: {m}", path.display()))?
            .into_iter()
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Checks `[docker]` and every `[[apps]]`, parsing each compose file: an error names the key
/// and, for a compose file, the file, line and key at fault.
pub fn validate(apps: &[AppConfig], docker: &DockerConfig) -> Result<(), (String, String)> {
    for (key, v) in [
        ("docker.health_timeout_ms", docker.health_timeout_ms),
        ("docker.poll_interval_ms", docker.poll_interval_ms),
        ("docker.reconcile_interval_ms", docker.reconcile_interval_ms),
    ] {
        if v == 0 {
            return Err((key.into(), "must be greater than 0".into()));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, a) in apps.iter().enumerate() {
        if !names.insert(a.name.as_str()) {
            return Err((
                format!("apps[{i}].name"),
                format!("app {:?} is declared twice", a.name),
            ));
        }
        let request = a
            .request()
            .map_err(|m| (format!("apps[{i}].compose_file"), m))?;
        request
            .desired(&a.name)
            .map_err(|m| (format!("apps[{i}]"), m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::AgentConfig;

    fn load(dir: &std::path::Path, toml: &str) -> Result<AgentConfig, String> {
        let path = dir.join("ferry.toml");
        std::fs::write(&path, toml).unwrap();
        AgentConfig::load(Some(&path), &HashMap::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn configured_apps_are_parsed_at_load_and_errors_name_the_compose_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "TAG=7\n").unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "services:\n  web:\n    image: web:${TAG}\n    ports: [\"80:5000\"]\n",
        )
        .unwrap();
        let ok = format!(
            "[[apps]]\nname = \"web\"\ncompose_file = \"{}/web.yaml\"\n",
            dir.path().display()
        );
        let cfg = load(dir.path(), &ok).unwrap();
        assert_eq!(cfg.apps.len(), 1);
        assert_eq!(cfg.docker.health_timeout_ms, 120_000);
        let desired = cfg.apps[0].request().unwrap().desired("web").unwrap();
        assert_eq!(
            desired.services[0].definition.image, "web:7",
            "the .env beside the file"
        );

        std::fs::write(
            dir.path().join("web.yaml"),
            "services:\n  web:\n    image: web\n    secrets: [s]\n",
        )
        .unwrap();
        let e = load(dir.path(), &ok).unwrap_err();
        assert!(
            e.contains("apps[0]") && e.contains("line 4: services.web.secrets"),
            "{e}"
        );
        let twice = format!("{ok}{}", ok.replace("[[apps]]", "\n[[apps]]"));
        std::fs::write(
            dir.path().join("web.yaml"),
            "services:\n  web:\n    image: web\n",
        )
        .unwrap();
        assert!(load(dir.path(), &twice)
            .unwrap_err()
            .contains("apps[1].name"));
        let missing = ok.replace("web.yaml", "nope.yaml");
        assert!(load(dir.path(), &missing)
            .unwrap_err()
            .contains("apps[0].compose_file"));
    }

    #[test]
    fn docker_settings_refuse_zero_intervals_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), "[docker]\npoll_interval_ms = 0\n").unwrap_err();
        assert!(e.contains("docker.poll_interval_ms"), "{e}");
        let e = load(dir.path(), "[docker]\nregistry = \"x\"\n").unwrap_err();
        assert!(e.contains("registry"), "{e}");
        let cfg = load(dir.path(), "[docker]\nenabled = false\n").unwrap();
        assert!(!cfg.docker.enabled && cfg.apps.is_empty());
    }
}
