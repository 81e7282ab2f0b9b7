//! The compose subset Ferry runs, as typed values. Everything the engine needs is here; the
//! spec hash is taken over these values, so a change to any of them replaces the container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Compose {
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, NetworkDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Service {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// After `env_file`s were read (`environment` wins over them).
    pub environment: BTreeMap<String, String>,
    pub env_file: Vec<PathBuf>,
    pub ports: Vec<Port>,
    pub volumes: Vec<Mount>,
    pub restart: Restart,
    pub depends_on: BTreeMap<String, Condition>,
    pub healthcheck: Option<Healthcheck>,
    pub labels: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    pub privileged: bool,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub network_mode: Option<NetworkMode>,
    /// Networks by their compose name; empty (and no network_mode) means the app's default.
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// (host name, IP address or `host-gateway`).
    pub extra_hosts: Vec<(String, String)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub mem_limit_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub logging: Option<Logging>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One published port. No `host_port`: the engine picks one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    /// A host path (made absolute against the compose file's directory).
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A named volume declared under the top-level `volumes`.
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    /// `- /data` alone: a volume the engine names.
    Anonymous { target: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        max_retries: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub test: HealthTest,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub start_period_ms: Option<u64>,
    pub start_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthTest {
    /// No `test`: the image's own HEALTHCHECK, with the timings given here.
    Inherit,
    /// `["CMD", ...]`.
    Cmd(Vec<String>),
    /// A string, or `["CMD-SHELL", "..."]`.
    Shell(String),
    /// `disable: true` or `["NONE"]`: the image's healthcheck is switched off.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    Host,
    None,
    Bridge,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Logging {
    pub driver: Option<String>,
    /// Driver options, such as the json-file driver's `max-size` and `max-file` limits.
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkDef {
    pub driver: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// Created by someone else: Ferry joins it by name and never creates or removes it.
    pub external: bool,
    /// The engine's name for it (only with `external`).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeDef {
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub external: bool,
    pub name: Option<String>,
}
