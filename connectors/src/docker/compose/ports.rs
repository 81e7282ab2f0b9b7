//! `ports` and `volumes` of a service, in their short (`"8080:80/udp"`, `"./data:/data:ro"`) and
//! long (mapping) forms.

use std::path::Path;

use super::fields::{self, check_keys, err, join};
use super::service::resolve_path;
use super::types::{Mount, Port, Protocol};
use super::yaml::{Node, Value};
use super::ComposeError;

pub fn parse_ports(node: &Node, path: &str) -> Result<Vec<Port>, ComposeError> {
    let mut out = Vec::new();
    for (i, item) in fields::seq(node, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &item.value {
            Value::Map(entries) => {
                check_keys(entries, &p, &["target", "published", "host_ip", "protocol"])?;
                let mut port = Port {
                    host_ip: None,
                    host_port: None,
                    container_port: 0,
                    protocol: Protocol::Tcp,
                };
                for (k, v) in entries {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "target" => port.container_port = fields::number(v, &kp)?,
                        "published" => port.host_port = Some(fields::number(v, &kp)?),
                        "host_ip" => port.host_ip = Some(fields::string(v, &kp)?),
                        "protocol" => {
                            port.protocol =
                                protocol(&fields::string(v, &kp)?).map_err(|m| err(v, &kp, m))?
                        }
                        _ => {}
                    }
                }
                if port.container_port == 0 {
                    return Err(err(item, &p, "`target` (the container's port) is required"));
                }
                out.push(port);
            }
            _ => {
                let s = fields::string(item, &p)?;
                out.extend(short_port(&s).map_err(|m| err(item, &p, m))?);
            }
        }
    }
    Ok(out)
}

fn protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(format!("{other:?} is not tcp, udp or sctp")),
    }
}

/// `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]`; an IPv6 host address is
/// written in brackets.
pub fn short_port(s: &str) -> Result<Vec<Port>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, p)) => (spec, protocol(p)?),
        None => (s, Protocol::Tcp),
    };
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6
                .split_once("]:")
                .ok_or_else(|| format!("{s:?}: an IPv6 address is written [ADDR]:PORT:PORT"))?;
            (Some(ip.to_string()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some(ip.to_string()), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err(format!("{s:?} is not [HOST_IP:][HOST_PORT:]CONTAINER_PORT")),
    };
    if let Some(ip) = &host_ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IP address"))?;
    }
    let host = host.filter(|h| !h.is_empty()).map(range).transpose()?;
    let container = range(container)?;
    let count = container.1 - container.0 + 1;
    if let Some(h) = host {
        if h.1 - h.0 + 1 != count {
            return Err(format!(
                "{s:?}: the host and container ranges differ in length"
            ));
        }
    }
    Ok((0..count)
        .map(|i| Port {
            host_ip: host_ip.clone(),
            host_port: host.map(|h| h.0 + i),
            container_port: container.0 + i,
            protocol: proto,
        })
        .collect())
}

fn range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{p:?} is not a port number")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("{s:?} is not an ascending range"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(s)?;
            Ok((p, p))
        }
    }
}

pub fn parse_volume_mounts(
    node: &Node,
    path: &str,
    base_dir: Option<&Path>,
) -> Result<Vec<Mount>, ComposeError> {
    let mut out = Vec::new();
    for (i, item) in fields::seq(node, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let mount = match &item.value {
            Value::Map(entries) => long_mount(item, entries, &p, base_dir)?,
            _ => {
                let s = fields::string(item, &p)?;
                short_mount(&s, item, &p, base_dir)?
            }
        };
        out.push(mount);
    }
    Ok(out)
}

fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

fn short_mount(
    s: &str,
    item: &Node,
    p: &str,
    base_dir: Option<&Path>,
) -> Result<Mount, ComposeError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => {
            return Ok(Mount::Anonymous {
                target: t.to_string(),
            })
        }
        [s, t] => (*s, *t, "rw"),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(err(item, p, format!("{s:?} is not SOURCE:TARGET[:MODE]"))),
    };
    let read_only = match mode {
        "rw" => false,
        "ro" => true,
        other => {
            return Err(err(
                item,
                p,
                format!("mode {other:?}: Ferry supports ro and rw"),
            ))
        }
    };
    mount(source, target, read_only, item, p, base_dir)
}

fn mount(
    source: &str,
    target: &str,
    read_only: bool,
    item: &Node,
    p: &str,
    base_dir: Option<&Path>,
) -> Result<Mount, ComposeError> {
    if !target.starts_with('/') {
        return Err(err(
            item,
            p,
            format!("the target {target:?} is not an absolute path"),
        ));
    }
    if source.starts_with('~') {
        return Err(err(
            item,
            p,
            "`~` paths are not supported: write the absolute path",
        ));
    }
    if is_path(source) {
        Ok(Mount::Bind {
            source: resolve_path(source, base_dir, item, p)?,
            target: target.into(),
            read_only,
        })
    } else {
        Ok(Mount::Volume {
            name: source.into(),
            target: target.into(),
            read_only,
        })
    }
}

fn long_mount(
    item: &Node,
    entries: &fields::Entries,
    p: &str,
    base_dir: Option<&Path>,
) -> Result<Mount, ComposeError> {
    check_keys(entries, p, &["type", "source", "target", "read_only"])?;
    let (mut kind, mut source, mut target, mut read_only) = (None, None, None, false);
    for (k, v) in entries {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "type" => kind = Some((fields::string(v, &kp)?, v)),
            "source" => source = Some(fields::string(v, &kp)?),
            "target" => target = Some(fields::string(v, &kp)?),
            "read_only" => read_only = fields::boolean(v, &kp)?,
            _ => {}
        }
    }
    let target = target.ok_or_else(|| err(item, p, "`target` is required"))?;
    let (kind, kind_node) = kind.ok_or_else(|| err(item, p, "`type` is required"))?;
    match (kind.as_str(), source) {
        ("bind", Some(s)) if is_path(&s) => mount(&s, &target, read_only, item, p, base_dir),
        ("bind", _) => Err(err(item, p, "a bind mount needs a path `source`")),
        ("volume", None) => Ok(Mount::Anonymous { target }),
        ("volume", Some(s)) if !is_path(&s) => Ok(Mount::Volume {
            name: s,
            target,
            read_only,
        }),
        ("volume", Some(s)) => Err(err(item, p, format!("{s:?} is a path: use type bind"))),
        (other, _) => Err(err(
            kind_node,
            &join(p, "type"),
            format!("{other:?}: Ferry supports bind and volume"),
        )),
    }
}
