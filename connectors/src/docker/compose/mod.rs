//! The compose subset Ferry deploys: the service keys of [`service::SERVICE_KEYS`], top-level
//! `networks` and `volumes`, `${VAR}` interpolation, YAML anchors and merge keys. A key Ferry
//! does not support is an error naming the key and its line, never silently ignored: an
//! operator must not believe a limit or a mount is in force when it is not.
//!
//! Parsing is pure (text and variables in, typed [`Compose`] out) except [`read_env_files`],
//! which reads the `env_file`s a parsed file names.

mod fields;
mod interpolate;
mod ports;
mod service;
mod types;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

pub use fields::{parse_bytes, parse_duration_ms, shell_words};
pub use service::SERVICE_KEYS;
pub use types::*;

use fields::{check_keys, err, join};
use yaml::{Node, Value};

/// Keys of the top level. `version` is obsolete in the Compose specification and only informs;
/// it is accepted so that files written for docker-compose v1/v2 deploy unchanged.
pub const TOP_LEVEL_KEYS: &[&str] = &["version", "services", "networks", "volumes"];

/// What is wrong with a compose file, and where. `line` is 1-based (0: no single line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ComposeError {
    pub line: usize,
    /// The key's path (`services.web.build`); empty when the error is about the document.
    pub path: String,
    pub reason: String,
}

impl ComposeError {
    pub fn at(line: usize, path: &str, reason: impl Into<String>) -> ComposeError {
        ComposeError {
            line,
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if self.line > 0 {
            s.push_str(&format!("line {}: ", self.line));
        }
        if !self.path.is_empty() {
            s.push_str(&self.path);
            s.push_str(": ");
        }
        s.push_str(&self.reason);
        s
    }
}

/// What parsing needs besides the text.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions<'a> {
    /// The values `${VAR}` and valueless `environment` entries take.
    pub vars: &'a HashMap<String, String>,
    /// The compose file's directory: relative bind mounts and env_files resolve against it.
    pub base_dir: Option<&'a Path>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub compose: Compose,
    /// Variables used without a value or default; they became "" (Compose warns about them).
    pub unset_variables: BTreeSet<String>,
}

pub fn parse(text: &str, opts: ParseOptions<'_>) -> Result<Parsed, ComposeError> {
    let mut root = yaml::parse(text)?;
    let mut vars = interpolate::Vars {
        values: opts.vars,
        unset: BTreeSet::new(),
    };
    interpolate::interpolate_tree(&mut root, &mut vars)?;
    let entries = match &root.value {
        Value::Map(e) => e,
        _ => {
            return Err(err(
                &root,
                "",
                "a compose file is a mapping with `services`",
            ))
        }
    };
    check_keys(entries, "", TOP_LEVEL_KEYS)?;
    let cx = service::Context {
        vars: opts.vars,
        base_dir: opts.base_dir,
    };
    let mut compose = Compose::default();
    let mut services_node = None;
    for (k, v) in entries {
        match k.name.as_str() {
            "services" => {
                services_node = Some(v);
                for (name, s) in fields::map(v, "services")? {
                    check_name(&name.name, name.line, "services")?;
                    let path = join("services", &name.name);
                    let parsed = service::parse_service(s, &path, &cx)?;
                    compose.services.insert(name.name.clone(), parsed);
                }
            }
            "networks" => {
                for (name, n) in fields::map(v, "networks")? {
                    check_name(&name.name, name.line, "networks")?;
                    let def = network(n, &join("networks", &name.name))?;
                    compose.networks.insert(name.name.clone(), def);
                }
            }
            "volumes" => {
                for (name, n) in fields::map(v, "volumes")? {
                    check_name(&name.name, name.line, "volumes")?;
                    let def = volume(n, &join("volumes", &name.name))?;
                    compose.volumes.insert(name.name.clone(), def);
                }
            }
            _ => {} // version, x-...
        }
    }
    let Some(services_node) = services_node.filter(|_| !compose.services.is_empty()) else {
        return Err(err(
            &root,
            "services",
            "a compose file needs at least one service",
        ));
    };
    check_references(&compose, services_node)?;
    start_order(&compose).map_err(|m| err(services_node, "services", m))?;
    Ok(Parsed {
        compose,
        unset_variables: vars.unset,
    })
}

/// Names Ferry turns into engine object names (`ferry-APP-NAME`): letters, digits, `_.-`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_name(name: &str, line: usize, section: &str) -> Result<(), ComposeError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(ComposeError::at(
        line,
        &join(section, name),
        "names start with a letter or digit and hold only letters, digits, `_`, `.` and `-`",
    ))
}

fn network(node: &Node, path: &str) -> Result<NetworkDef, ComposeError> {
    let entries = fields::map(node, path)?;
    check_keys(
        entries,
        path,
        &["driver", "internal", "labels", "external", "name"],
    )?;
    let mut def = NetworkDef::default();
    for (k, v) in entries {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "driver" => def.driver = Some(fields::string(v, &p)?),
            "internal" => def.internal = fields::boolean(v, &p)?,
            "labels" => def.labels = string_map(v, &p)?,
            "external" => def.external = fields::boolean(v, &p)?,
            "name" => def.name = Some(fields::string(v, &p)?),
            _ => {}
        }
    }
    if def.name.is_some() && !def.external {
        return Err(err(
            node,
            path,
            "`name` is only for external networks (Ferry names the ones it creates)",
        ));
    }
    Ok(def)
}

fn volume(node: &Node, path: &str) -> Result<VolumeDef, ComposeError> {
    let entries = fields::map(node, path)?;
    check_keys(
        entries,
        path,
        &["driver", "driver_opts", "labels", "external", "name"],
    )?;
    let mut def = VolumeDef::default();
    for (k, v) in entries {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "driver" => def.driver = Some(fields::string(v, &p)?),
            "driver_opts" => def.driver_opts = string_map(v, &p)?,
            "labels" => def.labels = string_map(v, &p)?,
            "external" => def.external = fields::boolean(v, &p)?,
            "name" => def.name = Some(fields::string(v, &p)?),
            _ => {}
        }
    }
    if def.name.is_some() && !def.external {
        return Err(err(
            node,
            path,
            "`name` is only for external volumes (Ferry names the ones it creates)",
        ));
    }
    Ok(def)
}

fn string_map(node: &Node, path: &str) -> Result<BTreeMap<String, String>, ComposeError> {
    Ok(fields::list_or_map(node, path, '=')?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Every `depends_on`, network and named volume a service uses must be declared.
fn check_references(c: &Compose, services_node: &Node) -> Result<(), ComposeError> {
    let line_of = |name: &str| match &services_node.value {
        Value::Map(e) => e
            .iter()
            .find(|(k, _)| k.name == name)
            .map_or(services_node.line, |(k, _)| k.line),
        _ => services_node.line,
    };
    for (name, s) in &c.services {
        let path = join("services", name);
        let fail =
            |key: &str, reason: String| ComposeError::at(line_of(name), &join(&path, key), reason);
        for dep in s.depends_on.keys() {
            if !c.services.contains_key(dep) {
                return Err(fail("depends_on", format!("no service is called {dep:?}")));
            }
            if dep == name {
                return Err(fail(
                    "depends_on",
                    "a service cannot depend on itself".into(),
                ));
            }
        }
        for net in s.networks.keys() {
            if net != "default" && !c.networks.contains_key(net) {
                return Err(fail(
                    "networks",
                    format!("network {net:?} is not declared under the top-level `networks`"),
                ));
            }
        }
        for m in &s.volumes {
            if let Mount::Volume { name: v, .. } = m {
                if !c.volumes.contains_key(v) {
                    return Err(fail(
                        "volumes",
                        format!("volume {v:?} is not declared under the top-level `volumes`"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Services in an order that starts every dependency before its dependents (ties by name, so
/// the order is stable); a cycle is an error naming the services in it.
pub fn start_order(c: &Compose) -> Result<Vec<String>, String> {
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = c.services.keys().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|s| c.services[*s].depends_on.keys().all(|d| done.contains(d)))
            .collect();
        if ready.is_empty() {
            let names: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "depends_on forms a cycle among {}",
                names.join(", ")
            ));
        }
        for s in ready {
            left.remove(s);
            done.push(s.clone());
        }
    }
    Ok(done)
}

/// Reads each service's `env_file`s (in order; later files win) under its `environment`,
/// which wins over them. Lines are `NAME=VALUE`; blank lines and `#` comments are skipped.
pub fn read_env_files(compose: &mut Compose) -> Result<(), ComposeError> {
    for (name, s) in compose.services.iter_mut() {
        let mut from_files = BTreeMap::new();
        for file in &s.env_file {
            let path = format!("services.{name}.env_file");
            let text = std::fs::read_to_string(file).map_err(|e| {
                ComposeError::at(0, &path, format!("cannot read {}: {e}", file.display()))
            })?;
            for (k, v) in parse_env_file(&text)
                .map_err(|m| ComposeError::at(0, &path, format!("{}: {m}", file.display())))?
            {
                from_files.insert(k, v);
            }
        }
        for (k, v) in from_files {
            s.environment.entry(k).or_insert(v);
        }
    }
    Ok(())
}

pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not NAME=VALUE", i + 1))?;
        let v = v.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|x| x.strip_suffix(*q)))
            .unwrap_or(v);
        out.push((k.trim().to_string(), unquoted.to_string()));
    }
    Ok(out)
}
