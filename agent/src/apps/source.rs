//! What a deployment is made of, wherever it comes from (the configuration file or the API):
//! the compose text, the directory its relative paths resolve against, and its variables.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ferry_connectors::docker::compose::{self, ParseOptions};
use ferry_connectors::docker::DesiredApp;
use serde::{Deserialize, Serialize};

/// `PUT /v1/apps/{name}`'s body, and what Ferry keeps of an API deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The compose file's text.
    pub compose: String,
    /// Its directory on the gateway (the CLI sends the file's): relative bind mounts and
    /// env_files resolve against it. Without it, relative paths are refused.
    #[serde(default)]
    pub base_dir: Option<PathBuf>,
    /// Values for `${VAR}` (the CLI sends a `.env` file beside the compose file, then `--env`).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppSource {
    /// `[[apps]]` in the configuration file: changed there, not through the API.
    Config,
    /// `ferry apps deploy` / `PUT /v1/apps/{name}`: kept in the data directory.
    Api,
}

impl DeployRequest {
    /// Parses the compose file and reads its env_files: the app's desired state, or the
    /// reason it cannot be deployed (with the compose file's line and key).
    pub fn desired(&self, name: &str) -> Result<DesiredApp, String> {
        self.desired_with(name, &BTreeMap::new())
    }

    /// As [`desired`](Self::desired), with `inject` added to every service's environment
    /// (what the compose file sets itself wins).
    pub fn desired_with(
        &self,
        name: &str,
        inject: &BTreeMap<String, String>,
    ) -> Result<DesiredApp, String> {
        let vars: HashMap<String, String> = self.variables.clone().into_iter().collect();
        let mut parsed = compose::parse(
            &self.compose,
            ParseOptions {
                vars: &vars,
                base_dir: self.base_dir.as_deref(),
            },
        )
        .map_err(|e| format!("compose file: {e}"))?;
        compose::read_env_files(&mut parsed.compose).map_err(|e| format!("compose file: {e}"))?;
        if !parsed.unset_variables.is_empty() {
            let names: Vec<&str> = parsed.unset_variables.iter().map(String::as_str).collect();
            tracing::warn!(app = name, variables = %names.join(", "), "compose file uses variables that are not set; they are empty");
        }
        for service in parsed.compose.services.values_mut() {
            for (k, v) in inject {
                service
                    .environment
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
        }
        DesiredApp::new(name, &parsed.compose)
    }
}
