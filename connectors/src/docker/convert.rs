//! A [`ServiceSpec`] as the engine's create-container request (pure, so it is tested without
//! an engine). Engines before API 1.44 take one network at create time: the others are joined
//! before the container starts ([`extra_networks`]).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};

use super::compose::{HealthTest, Mount, NetworkMode, Restart};
use super::spec::{labels, Attachment, NetworkSpec, ServiceSpec, VolumeSpec};

const NS_PER_MS: i64 = 1_000_000;

pub fn container_labels(spec: &ServiceSpec) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = spec.definition.labels.clone().into_iter().collect();
    l.insert(labels::APP.into(), spec.app.clone());
    l.insert(labels::SERVICE.into(), spec.service.clone());
    l.insert(labels::SPEC_HASH.into(), spec.spec_hash.clone());
    l.insert(labels::REVISION.into(), spec.revision.clone());
    l
}

pub fn create_body(spec: &ServiceSpec) -> ContainerCreateBody {
    let d = &spec.definition;
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &d.ports {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port.map(|h| h.to_string()),
            });
    }
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    for m in &d.volumes {
        match m {
            Mount::Bind {
                source,
                target,
                read_only,
            } => binds.push(bind(&source.display().to_string(), target, *read_only)),
            Mount::Volume {
                name,
                target,
                read_only,
            } => {
                let engine = spec.volume_names.get(name).unwrap_or(name);
                binds.push(bind(engine, target, *read_only));
            }
            Mount::Anonymous { target } => anonymous.push(target.clone()),
        }
    }
    let network_mode = match d.network_mode {
        Some(NetworkMode::Host) => Some("host".to_string()),
        Some(NetworkMode::None) => Some("none".to_string()),
        Some(NetworkMode::Bridge) => Some("bridge".to_string()),
        None => spec.networks.first().map(|a| a.network.clone()),
    };
    let host_config = HostConfig {
        port_bindings: Some(port_bindings).filter(|p| !p.is_empty()),
        binds: Some(binds).filter(|b| !b.is_empty()),
        restart_policy: Some(restart_policy(d.restart)),
        devices: Some(
            d.devices
                .iter()
                .map(|dev| DeviceMapping {
                    path_on_host: Some(dev.host.clone()),
                    path_in_container: Some(dev.container.clone()),
                    cgroup_permissions: Some(dev.permissions.clone()),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|v| !v.is_empty()),
        privileged: Some(d.privileged),
        network_mode,
        extra_hosts: Some(
            d.extra_hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{ip}"))
                .collect::<Vec<_>>(),
        )
        .filter(|v| !v.is_empty()),
        cap_add: Some(d.cap_add.clone()).filter(|v| !v.is_empty()),
        cap_drop: Some(d.cap_drop.clone()).filter(|v| !v.is_empty()),
        readonly_rootfs: Some(d.read_only),
        memory: d.mem_limit_bytes.map(|b| b as i64),
        nano_cpus: d.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: d.pids_limit,
        log_config: d.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: Some(l.options.clone().into_iter().collect()),
        }),
        ..Default::default()
    };
    let networking_config = spec
        .networks
        .first()
        .filter(|_| d.network_mode.is_none())
        .map(|a| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(a.network.clone(), endpoint(a))])),
        });
    ContainerCreateBody {
        image: Some(d.image.clone()),
        cmd: d.command.clone(),
        entrypoint: d.entrypoint.clone(),
        env: Some(
            d.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        user: d.user.clone(),
        working_dir: d.working_dir.clone(),
        labels: Some(container_labels(spec)),
        exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
        volumes: Some(anonymous).filter(|a| !a.is_empty()),
        healthcheck: d.healthcheck.as_ref().map(|h| HealthConfig {
            test: match &h.test {
                HealthTest::Inherit => None,
                HealthTest::Cmd(c) => Some(
                    std::iter::once("CMD".to_string())
                        .chain(c.iter().cloned())
                        .collect(),
                ),
                HealthTest::Shell(s) => Some(vec!["CMD-SHELL".into(), s.clone()]),
                HealthTest::Disabled => Some(vec!["NONE".into()]),
            },
            interval: h.interval_ms.map(|ms| ms as i64 * NS_PER_MS),
            timeout: h.timeout_ms.map(|ms| ms as i64 * NS_PER_MS),
            retries: h.retries.map(i64::from),
            start_period: h.start_period_ms.map(|ms| ms as i64 * NS_PER_MS),
            start_interval: h.start_interval_ms.map(|ms| ms as i64 * NS_PER_MS),
        }),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// The networks joined after create, with their endpoint settings.
pub fn extra_networks(spec: &ServiceSpec) -> Vec<(String, EndpointSettings)> {
    if spec.definition.network_mode.is_some() {
        return Vec::new();
    }
    spec.networks
        .iter()
        .skip(1)
        .map(|a| (a.network.clone(), endpoint(a)))
        .collect()
}

fn endpoint(a: &Attachment) -> EndpointSettings {
    EndpointSettings {
        aliases: Some(a.aliases.clone()),
        ..Default::default()
    }
}

fn bind(source: &str, target: &str, read_only: bool) -> String {
    if read_only {
        format!("{source}:{target}:ro")
    } else {
        format!("{source}:{target}")
    }
}

fn restart_policy(r: Restart) -> RestartPolicy {
    let (name, retries) = match r {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.map(i64::from),
        ),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

pub fn network_body(n: &NetworkSpec) -> NetworkCreateRequest {
    let mut l: HashMap<String, String> = n.def.labels.clone().into_iter().collect();
    l.insert(labels::APP.into(), n.app.clone());
    l.insert(labels::NETWORK.into(), n.compose_name.clone());
    NetworkCreateRequest {
        name: n.engine_name.clone(),
        driver: n.def.driver.clone(),
        internal: Some(n.def.internal),
        labels: Some(l),
        ..Default::default()
    }
}

pub fn volume_body(v: &VolumeSpec) -> VolumeCreateRequest {
    let mut l: HashMap<String, String> = v.def.labels.clone().into_iter().collect();
    l.insert(labels::APP.into(), v.app.clone());
    l.insert(labels::VOLUME.into(), v.compose_name.clone());
    VolumeCreateRequest {
        name: Some(v.engine_name.clone()),
        driver: v.def.driver.clone(),
        driver_opts: Some(v.def.driver_opts.clone().into_iter().collect()),
        labels: Some(l),
        ..Default::default()
    }
}

/// An RFC 3339 time as the engine writes it (`2026-12-01T03:24:39.503078417Z`) in ms since the
/// epoch; `None` for the zero time of a container that never started.
pub fn parse_engine_time_ms(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if y < 1970 {
        return None;
    }
    let (clock, offset_s) = match time.find(['Z', '+', '-']) {
        Some(i) if &time[i..] == "Z" => (&time[..i], 0),
        Some(i) => {
            let sign = if time.as_bytes()[i] == b'-' { -1 } else { 1 };
            let (oh, om) = time[i + 1..].split_once(':')?;
            (
                &time[..i],
                sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
            )
        }
        None => return None,
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    let days = crate::sinks::civil_time::days_from_civil(y, m, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    u64::try_from(secs * 1000 + ms).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::docker::compose::{self, ParseOptions};
    use crate::docker::spec::DesiredApp;

    #[test]
    fn engine_times_read_as_ms_since_the_epoch() {
        assert_eq!(parse_engine_time_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_engine_time_ms("2026-12-01T03:24:39.503078417Z"),
            Some(1_796_095_479_503)
        );
        assert_eq!(
            parse_engine_time_ms("2026-12-01T04:24:39+01:00"),
            Some(1_796_095_479_000)
        );
        assert_eq!(parse_engine_time_ms("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn a_service_becomes_a_create_request_with_ferrys_labels() {
        let vars = HashMap::new();
        let text = "services:\n  web:\n    image: web:1\n    ports: [\"127.0.0.1:80:5000\", \"81:5000\"]\n    volumes: [data:/data:ro, /tmp]\n    restart: on-failure:3\n    cpus: 1.5\n    healthcheck: {test: \"wget -q -O- localhost\", interval: 2s}\n    networks: [a, b]\nnetworks:\n  a: {}\n  b: {}\nvolumes:\n  data: {}\n";
        let parsed = compose::parse(
            text,
            ParseOptions {
                vars: &vars,
                base_dir: None,
            },
        )
        .unwrap();
        let app = DesiredApp::new("shop", &parsed.compose).unwrap();
        let spec = app.service("web").unwrap();
        let body = create_body(spec);
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels["ferry.app"], "shop");
        assert_eq!(labels["ferry.spec-hash"], spec.spec_hash);
        let host = body.host_config.as_ref().unwrap();
        let bindings = host.port_bindings.as_ref().unwrap()["5000/tcp"]
            .as_ref()
            .unwrap();
        assert_eq!(bindings.len(), 2, "two host ports for one container port");
        assert_eq!(
            host.binds.as_deref(),
            Some(&["ferry-shop-data:/data:ro".to_string()][..])
        );
        assert_eq!(body.volumes.as_deref(), Some(&["/tmp".to_string()][..]));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(
            host.restart_policy.as_ref().unwrap().maximum_retry_count,
            Some(3)
        );
        assert_eq!(host.network_mode.as_deref(), Some("ferry-shop-a"));
        let hc = body.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test.as_ref().unwrap()[0], "CMD-SHELL");
        assert_eq!(hc.interval, Some(2_000_000_000));
        let extra = extra_networks(spec);
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].0, "ferry-shop-b");
        assert_eq!(
            extra[0].1.aliases.as_deref(),
            Some(&["web".to_string()][..])
        );
    }
}
