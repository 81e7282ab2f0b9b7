//! One service of a compose file: every supported key read into [`Service`], anything else
//! refused with its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fields::{self, check_keys, err, join, Entries};
use super::ports::{parse_ports, parse_volume_mounts};
use super::types::*;
use super::yaml::{Node, Value};
use super::ComposeError;

pub const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "restart",
    "depends_on",
    "healthcheck",
    "labels",
    "devices",
    "privileged",
    "user",
    "working_dir",
    "network_mode",
    "networks",
    "extra_hosts",
    "cap_add",
    "cap_drop",
    "read_only",
    "mem_limit",
    "cpus",
    "pids_limit",
    "logging",
];

pub struct Context<'a> {
    pub vars: &'a std::collections::HashMap<String, String>,
    pub base_dir: Option<&'a Path>,
}

pub fn parse_service(node: &Node, path: &str, cx: &Context<'_>) -> Result<Service, ComposeError> {
    let entries = fields::map(node, path)?;
    check_keys(entries, path, SERVICE_KEYS)?;
    let mut s = Service::default();
    let mut image = None;
    for (k, v) in entries {
        let p = join(path, &k.name);
        let p = p.as_str();
        match k.name.as_str() {
            "image" => image = Some(fields::string(v, p)?),
            "command" => s.command = Some(fields::command(v, p)?),
            "entrypoint" => s.entrypoint = Some(fields::command(v, p)?),
            "environment" => {
                for (name, value) in fields::list_or_map(v, p, '=')? {
                    // `- NAME` alone takes the value from the deployment's variables (Compose:
                    // the shell's); unset there, the variable is left out.
                    if let Some(value) = value.or_else(|| cx.vars.get(&name).cloned()) {
                        s.environment.insert(name, value);
                    }
                }
            }
            "env_file" => {
                for f in fields::string_or_list(v, p)? {
                    s.env_file.push(resolve_path(&f, cx.base_dir, v, p)?);
                }
            }
            "ports" => s.ports = parse_ports(v, p)?,
            "volumes" => s.volumes = parse_volume_mounts(v, p, cx.base_dir)?,
            "restart" => s.restart = restart(v, p)?,
            "depends_on" => s.depends_on = depends_on(v, p)?,
            "healthcheck" => s.healthcheck = Some(healthcheck(v, p)?),
            "labels" => s.labels = labels(v, p)?,
            "devices" => s.devices = devices(v, p)?,
            "privileged" => s.privileged = fields::boolean(v, p)?,
            "user" => s.user = Some(fields::string(v, p)?),
            "working_dir" => s.working_dir = Some(fields::string(v, p)?),
            "network_mode" => s.network_mode = Some(network_mode(v, p)?),
            "networks" => s.networks = service_networks(v, p)?,
            "extra_hosts" => s.extra_hosts = extra_hosts(v, p)?,
            "cap_add" => s.cap_add = fields::strings(v, p)?,
            "cap_drop" => s.cap_drop = fields::strings(v, p)?,
            "read_only" => s.read_only = fields::boolean(v, p)?,
            "mem_limit" => s.mem_limit_bytes = Some(fields::bytes(v, p)?),
            "cpus" => {
                let cpus: f64 = fields::number(v, p)?;
                if !(cpus > 0.0 && cpus.is_finite()) {
                    return Err(err(v, p, "must be a number of CPUs greater than 0"));
                }
                s.cpus = Some(cpus);
            }
            "pids_limit" => s.pids_limit = Some(fields::number(v, p)?),
            "logging" => s.logging = Some(logging(v, p)?),
            _ => {} // extension keys (x-...) passed check_keys
        }
    }
    s.image = image.ok_or_else(|| {
        err(
            node,
            path,
            "a service needs an `image` (Ferry does not build images)",
        )
    })?;
    if s.image.trim().is_empty() {
        return Err(err(node, &join(path, "image"), "must not be empty"));
    }
    if s.network_mode.is_some() && !s.networks.is_empty() {
        return Err(err(
            node,
            path,
            "`network_mode` and `networks` cannot be used together",
        ));
    }
    Ok(s)
}

pub fn resolve_path(
    raw: &str,
    base_dir: Option<&Path>,
    node: &Node,
    path: &str,
) -> Result<PathBuf, ComposeError> {
    let p = Path::new(raw);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    match base_dir {
        Some(base) => Ok(base.join(p)),
        None => Err(err(
            node,
            path,
            format!("the relative path {raw:?} needs the compose file's directory"),
        )),
    }
}

fn restart(node: &Node, path: &str) -> Result<Restart, ComposeError> {
    let s = fields::string(node, path)?;
    Ok(match s.as_str() {
        "no" | "false" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure { max_retries: None },
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Restart::OnFailure {
                max_retries: Some(n),
            },
            _ => {
                return Err(err(
                    node,
                    path,
                    format!(
                        "{other:?} is not no, always, unless-stopped, on-failure or on-failure:N"
                    ),
                ))
            }
        },
    })
}

fn depends_on(node: &Node, path: &str) -> Result<BTreeMap<String, Condition>, ComposeError> {
    let mut out = BTreeMap::new();
    if let Value::Seq(_) = node.value {
        for name in fields::strings(node, path)? {
            out.insert(name, Condition::Started);
        }
        return Ok(out);
    }
    for (k, v) in fields::map(node, path)? {
        let p = join(path, &k.name);
        let entries = fields::map(v, &p)?;
        check_keys(entries, &p, &["condition"])?;
        let mut condition = Condition::Started;
        if let Some((ck, cv)) = entries.iter().find(|(k, _)| k.name == "condition") {
            let cp = join(&p, &ck.name);
            condition = match fields::string(cv, &cp)?.as_str() {
                "service_started" => Condition::Started,
                "service_healthy" => Condition::Healthy,
                "service_completed_successfully" => Condition::CompletedSuccessfully,
                other => return Err(err(
                    cv,
                    &cp,
                    format!("{other:?} is not service_started, service_healthy or service_completed_successfully"),
                )),
            };
        }
        out.insert(k.name.clone(), condition);
    }
    Ok(out)
}

fn healthcheck(node: &Node, path: &str) -> Result<Healthcheck, ComposeError> {
    let entries = fields::map(node, path)?;
    check_keys(
        entries,
        path,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
    )?;
    let mut h = Healthcheck {
        test: HealthTest::Inherit,
        interval_ms: None,
        timeout_ms: None,
        retries: None,
        start_period_ms: None,
        start_interval_ms: None,
    };
    let mut disabled = false;
    for (k, v) in entries {
        let p = join(path, &k.name);
        let p = p.as_str();
        match k.name.as_str() {
            "test" => h.test = health_test(v, p)?,
            "interval" => h.interval_ms = Some(fields::duration_ms(v, p)?),
            "timeout" => h.timeout_ms = Some(fields::duration_ms(v, p)?),
            "retries" => h.retries = Some(fields::number(v, p)?),
            "start_period" => h.start_period_ms = Some(fields::duration_ms(v, p)?),
            "start_interval" => h.start_interval_ms = Some(fields::duration_ms(v, p)?),
            "disable" => disabled = fields::boolean(v, p)?,
            _ => {}
        }
    }
    if disabled {
        h.test = HealthTest::Disabled;
    }
    Ok(h)
}

fn health_test(node: &Node, path: &str) -> Result<HealthTest, ComposeError> {
    if let Value::Scalar { .. } = node.value {
        return Ok(HealthTest::Shell(fields::string(node, path)?));
    }
    let words = fields::strings(node, path)?;
    match words.split_first() {
        Some((first, rest)) if first == "CMD" && !rest.is_empty() => {
            Ok(HealthTest::Cmd(rest.to_vec()))
        }
        Some((first, rest)) if first == "CMD-SHELL" && rest.len() == 1 => {
            Ok(HealthTest::Shell(rest[0].clone()))
        }
        Some((first, [])) if first == "NONE" => Ok(HealthTest::Disabled),
        _ => Err(err(
            node,
            path,
            "a list test starts with CMD (then the command), CMD-SHELL (then one string) or is [NONE]",
        )),
    }
}

fn labels(node: &Node, path: &str) -> Result<BTreeMap<String, String>, ComposeError> {
    let mut out = BTreeMap::new();
    for (k, v) in fields::list_or_map(node, path, '=')? {
        if k.starts_with("ferry.") {
            return Err(err(
                node,
                path,
                format!("label {k:?}: the ferry. prefix is Ferry's own"),
            ));
        }
        out.insert(k, v.unwrap_or_default());
    }
    Ok(out)
}

fn devices(node: &Node, path: &str) -> Result<Vec<Device>, ComposeError> {
    let mut out = Vec::new();
    for (i, item) in fields::seq(node, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let s = fields::string(item, &p)?;
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] => (*h, *c, "rwm"),
            [h, c, perm] => (*h, *c, *perm),
            _ => {
                return Err(err(
                    item,
                    &p,
                    format!("{s:?} is not HOST[:CONTAINER[:PERMISSIONS]]"),
                ))
            }
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(err(item, &p, format!("{s:?}: device paths are absolute")));
        }
        if permissions.is_empty() || !permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(err(
                item,
                &p,
                format!("{permissions:?}: permissions are made of r, w and m"),
            ));
        }
        out.push(Device {
            host: host.into(),
            container: container.into(),
            permissions: permissions.into(),
        });
    }
    Ok(out)
}

fn network_mode(node: &Node, path: &str) -> Result<NetworkMode, ComposeError> {
    match fields::string(node, path)?.as_str() {
        "host" => Ok(NetworkMode::Host),
        "none" => Ok(NetworkMode::None),
        "bridge" => Ok(NetworkMode::Bridge),
        other => Err(err(
            node,
            path,
            format!("{other:?}: Ferry supports network_mode host, none and bridge"),
        )),
    }
}

fn service_networks(
    node: &Node,
    path: &str,
) -> Result<BTreeMap<String, ServiceNetwork>, ComposeError> {
    let mut out = BTreeMap::new();
    if let Value::Seq(_) = node.value {
        for name in fields::strings(node, path)? {
            out.insert(name, ServiceNetwork::default());
        }
        return Ok(out);
    }
    for (k, v) in fields::map(node, path)? {
        let p = join(path, &k.name);
        let entries: &Entries = fields::map(v, &p)?;
        check_keys(entries, &p, &["aliases"])?;
        let mut n = ServiceNetwork::default();
        if let Some((ak, av)) = entries.iter().find(|(k, _)| k.name == "aliases") {
            n.aliases = fields::strings(av, &join(&p, &ak.name))?;
        }
        out.insert(k.name.clone(), n);
    }
    Ok(out)
}

fn extra_hosts(node: &Node, path: &str) -> Result<Vec<(String, String)>, ComposeError> {
    // Items are `host:ip` or `host=ip`; an IPv6 address holds colons, so split at the first.
    let mut out = Vec::new();
    let items = match &node.value {
        Value::Seq(_) => fields::strings(node, path)?
            .into_iter()
            .map(|s| {
                let sep = s.find(['=', ':']);
                match sep {
                    Some(i) => Ok((s[..i].to_string(), s[i + 1..].to_string())),
                    None => Err(err(node, path, format!("{s:?} is not HOST:IP"))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => fields::list_or_map(node, path, ':')?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
    };
    for (host, ip) in items {
        let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
        if ip.parse::<std::net::IpAddr>().is_err() && ip != "host-gateway" {
            return Err(err(
                node,
                path,
                format!("{host}: {ip:?} is not an IP address"),
            ));
        }
        out.push((host, ip));
    }
    Ok(out)
}

fn logging(node: &Node, path: &str) -> Result<Logging, ComposeError> {
    let entries = fields::map(node, path)?;
    check_keys(entries, path, &["driver", "options"])?;
    let mut l = Logging::default();
    for (k, v) in entries {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "driver" => l.driver = Some(fields::string(v, &p)?),
            "options" => {
                for (name, value) in fields::list_or_map(v, &p, '=')? {
                    l.options.insert(name, value.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    Ok(l)
}
