//! What Ferry wants running for one app: a [`DesiredApp`] built from an app name and a parsed
//! compose file, with the engine's names for everything and a hash of each service's spec.
//! Everything Ferry creates carries labels ([`labels`]) naming the app, the service, the spec
//! hash and the revision; the engine's state read back by those labels is all Ferry needs to
//! know what runs, so apps are adopted after a restart instead of recreated.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::compose::{
    self, Compose, Condition, HealthTest, NetworkDef, NetworkMode, Service, VolumeDef,
};

pub mod labels {
    /// On containers, networks and volumes: the app's name. Ferry only ever lists, changes or
    /// removes engine objects that carry it.
    pub const APP: &str = "ferry.app";
    pub const SERVICE: &str = "ferry.service";
    pub const SPEC_HASH: &str = "ferry.spec-hash";
    pub const REVISION: &str = "ferry.revision";
    pub const NETWORK: &str = "ferry.network";
    pub const VOLUME: &str = "ferry.volume";
    /// Which Ferry instance made it (one engine can serve several, as tests do): an instance
    /// only ever sees, changes or removes its own objects.
    pub const OWNER: &str = "ferry.owner";
}

/// The network services join when the compose file names none (Compose's `default`).
pub const DEFAULT_NETWORK: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredApp {
    pub name: String,
    /// A hash of every service spec and of the networks and volumes: the app's revision.
    pub revision: String,
    /// In start order (dependencies first).
    pub services: Vec<ServiceSpec>,
    /// Networks Ferry creates for the app (external ones are only joined).
    pub networks: Vec<NetworkSpec>,
    pub volumes: Vec<VolumeSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub app: String,
    pub service: String,
    /// `ferry-APP-SERVICE-HASH12`: two revisions of a service can exist side by side.
    pub container_name: String,
    pub spec_hash: String,
    /// The app revision this spec was created in (a label; not part of the hash).
    pub revision: String,
    pub definition: Service,
    /// Networks to join, by engine name, with the aliases the service answers to there.
    pub networks: Vec<Attachment>,
    /// Named volumes: compose name to engine name.
    pub volume_names: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub network: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub app: String,
    pub compose_name: String,
    pub engine_name: String,
    pub def: NetworkDef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub app: String,
    pub compose_name: String,
    pub engine_name: String,
    pub def: VolumeDef,
}

impl ServiceSpec {
    /// The conditions this service waits for before it starts.
    pub fn depends_on(&self) -> impl Iterator<Item = (&String, &Condition)> {
        self.definition.depends_on.iter()
    }

    /// Whether a new revision must take over from the old one rather than run beside it: it
    /// publishes fixed host ports (which the old one holds) or shares the host's network.
    pub fn hands_over(&self) -> bool {
        self.definition.network_mode == Some(NetworkMode::Host)
            || self.definition.ports.iter().any(|p| p.host_port.is_some())
    }

    /// Whether the compose file (or the image, which Ferry cannot see) gives a healthcheck.
    pub fn healthcheck_disabled(&self) -> bool {
        matches!(
            self.definition.healthcheck.as_ref().map(|h| &h.test),
            Some(HealthTest::Disabled)
        )
    }
}

pub fn network_engine_name(app: &str, compose_name: &str, def: Option<&NetworkDef>) -> String {
    match def {
        Some(d) if d.external => d.name.clone().unwrap_or_else(|| compose_name.to_string()),
        _ => format!("ferry-{app}-{compose_name}"),
    }
}

pub fn volume_engine_name(app: &str, compose_name: &str, def: &VolumeDef) -> String {
    if def.external {
        def.name.clone().unwrap_or_else(|| compose_name.to_string())
    } else {
        format!("ferry-{app}-{compose_name}")
    }
}

impl DesiredApp {
    /// `name` must be a valid compose name (see [`compose::valid_name`]); the compose file was
    /// checked when it parsed, so only the app name can be refused here.
    pub fn new(name: &str, compose: &Compose) -> Result<DesiredApp, String> {
        if !compose::valid_name(name) {
            return Err(format!(
                "{name:?} is not an app name: letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            ));
        }
        let order = compose::start_order(compose)?;
        let mut uses_default = false;
        let mut services = Vec::new();
        for service in &order {
            let def = &compose.services[service];
            let mut networks = Vec::new();
            if def.network_mode.is_none() {
                let joined: Vec<(&str, Vec<String>)> = if def.networks.is_empty() {
                    vec![(DEFAULT_NETWORK, Vec::new())]
                } else {
                    def.networks
                        .iter()
                        .map(|(n, s)| (n.as_str(), s.aliases.clone()))
                        .collect()
                };
                for (net, extra) in joined {
                    uses_default |= net == DEFAULT_NETWORK && !compose.networks.contains_key(net);
                    // Services find each other by name on every network they share, as in Compose.
                    let mut aliases = vec![service.clone()];
                    aliases.extend(extra);
                    networks.push(Attachment {
                        network: network_engine_name(name, net, compose.networks.get(net)),
                        aliases,
                    });
                }
            }
            let volume_names = compose
                .volumes
                .iter()
                .map(|(v, d)| (v.clone(), volume_engine_name(name, v, d)))
                .collect();
            let mut spec = ServiceSpec {
                app: name.to_string(),
                service: service.clone(),
                container_name: String::new(),
                spec_hash: String::new(),
                revision: String::new(),
                definition: def.clone(),
                networks,
                volume_names,
            };
            spec.spec_hash = hash(&(&spec.definition, &spec.networks, &spec.volume_names));
            spec.container_name = format!("ferry-{name}-{service}-{}", &spec.spec_hash[..12]);
            services.push(spec);
        }
        let mut networks: Vec<NetworkSpec> = compose
            .networks
            .iter()
            .filter(|(_, d)| !d.external)
            .map(|(n, d)| NetworkSpec {
                app: name.to_string(),
                compose_name: n.clone(),
                engine_name: network_engine_name(name, n, Some(d)),
                def: d.clone(),
            })
            .collect();
        if uses_default {
            networks.push(NetworkSpec {
                app: name.to_string(),
                compose_name: DEFAULT_NETWORK.into(),
                engine_name: network_engine_name(name, DEFAULT_NETWORK, None),
                def: NetworkDef::default(),
            });
        }
        let volumes: Vec<VolumeSpec> = compose
            .volumes
            .iter()
            .filter(|(_, d)| !d.external)
            .map(|(v, d)| VolumeSpec {
                app: name.to_string(),
                compose_name: v.clone(),
                engine_name: volume_engine_name(name, v, d),
                def: d.clone(),
            })
            .collect();
        let hashes: Vec<&str> = services.iter().map(|s| s.spec_hash.as_str()).collect();
        let revision = hash(&(hashes, &compose.networks, &compose.volumes))[..16].to_string();
        Ok(DesiredApp {
            name: name.to_string(),
            revision,
            services,
            networks,
            volumes,
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.service == name)
    }
}

/// SHA-256 of the value's JSON (maps are ordered, so equal specs hash equally), in hex.
fn hash(value: &impl Serialize) -> String {
    // Serialising these plain structs cannot fail; an empty input would still hash.
    let json = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}
