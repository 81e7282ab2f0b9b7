use std::collections::HashMap;
use std::path::Path;

use super::*;

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Parsed, ComposeError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(
        text,
        ParseOptions {
            vars: &vars,
            base_dir: Some(Path::new("/srv/app")),
        },
    )
}

fn ok(text: &str) -> Compose {
    match parse_with(text, &[]) {
        Ok(p) => p.compose,
        Err(e) => panic!("{e}"),
    }
}

fn fails(text: &str) -> ComposeError {
    match parse_with(text, &[]) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e,
    }
}

/// The compose file of the Greengrass Docker application deployment connector's example.
const GREENGRASS_EXAMPLE: &str = r#"version: '3.3'
services:
  web:
    image: "10.1.1.1:5000/my-web-app:latest"
    ports:
      - "80:5000"
"#;

#[test]
fn the_greengrass_example_parses_unchanged() {
    let c = ok(GREENGRASS_EXAMPLE);
    let web = &c.services["web"];
    assert_eq!(web.image, "10.1.1.1:5000/my-web-app:latest");
    assert_eq!(
        web.ports,
        vec![Port {
            host_ip: None,
            host_port: Some(80),
            container_port: 5000,
            protocol: Protocol::Tcp
        }]
    );
    assert_eq!(web.restart, Restart::No);
}

#[test]
fn an_unsupported_service_key_is_named_with_its_line() {
    let e = fails("services:\n  web:\n    image: x\n    build: .\n");
    assert_eq!(e.line, 4);
    assert_eq!(e.path, "services.web.build");
    assert!(e.reason.contains("`build`"), "{e}");
    assert!(
        e.to_string().starts_with("line 4: services.web.build:"),
        "{e}"
    );
}

#[test]
fn unsupported_keys_are_refused_at_every_level() {
    let top = fails("services:\n  a:\n    image: x\nsecrets:\n  s: {}\n");
    assert_eq!((top.line, top.path.as_str()), (4, "secrets"));
    let nested = fails(
        "services:\n  a:\n    image: x\n    healthcheck:\n      test: true\n      retry: 3\n",
    );
    assert_eq!(
        (nested.line, nested.path.as_str()),
        (6, "services.a.healthcheck.retry")
    );
    let port = fails(
        "services:\n  a:\n    image: x\n    ports:\n      - target: 80\n        mode: host\n",
    );
    assert_eq!(
        (port.line, port.path.as_str()),
        (6, "services.a.ports[0].mode")
    );
    let net = fails("services:\n  a:\n    image: x\nnetworks:\n  n:\n    ipam: {}\n");
    assert_eq!((net.line, net.path.as_str()), (6, "networks.n.ipam"));
}

#[test]
fn extension_keys_and_merge_keys_are_the_specs_own_and_pass() {
    let c = ok(r#"
x-common: &common
  restart: always
  labels:
    team: edge
services:
  a:
    <<: *common
    image: busybox
    x-note: anything
  b:
    <<: *common
    image: busybox
    restart: "no"
"#);
    assert_eq!(c.services["a"].restart, Restart::Always);
    assert_eq!(c.services["a"].labels["team"], "edge");
    assert_eq!(
        c.services["b"].restart,
        Restart::No,
        "explicit keys win over merged ones"
    );
}

#[test]
fn every_supported_service_key_is_read() {
    let c = ok(r#"
services:
  db:
    image: busybox
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 500ms
      retries: 3
      start_period: 1m30s
  web:
    image: busybox:1.36
    command: sh -c 'echo "hi there" && sleep 1'
    entrypoint: ["/bin/sh"]
    environment:
      - A=1
      - B
    env_file: web.env
    ports:
      - "127.0.0.1:8080:80"
      - "9000-9001:9000-9001/udp"
      - 7000
    volumes:
      - ./data:/data:ro
      - cache:/cache
      - /scratch
    restart: on-failure:5
    depends_on:
      db:
        condition: service_healthy
    labels:
      app.tier: front
    devices:
      - /dev/ttyUSB0
      - /dev/gpiochip0:/dev/gpiochip0:rw
    privileged: false
    user: "1000:1000"
    working_dir: /work
    networks:
      back:
        aliases: [api]
    extra_hosts:
      - "gateway:172.17.0.1"
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    read_only: true
    mem_limit: 512m
    cpus: 0.5
    pids_limit: 100
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: "3"
networks:
  back:
    internal: true
volumes:
  cache: {}
"#);
    let web = &c.services["web"];
    assert_eq!(
        web.command.as_deref(),
        Some(
            &[
                "sh".to_string(),
                "-c".into(),
                "echo \"hi there\" && sleep 1".into()
            ][..]
        )
    );
    assert_eq!(
        web.entrypoint.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(web.environment.get("A").map(String::as_str), Some("1"));
    assert!(
        !web.environment.contains_key("B"),
        "an unset valueless variable is left out"
    );
    assert_eq!(
        web.env_file,
        vec![Path::new("/srv/app/web.env").to_path_buf()]
    );
    assert_eq!(web.ports.len(), 4);
    assert_eq!(web.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        (web.ports[2].host_port, web.ports[2].container_port),
        (Some(9001), 9001)
    );
    assert_eq!(web.ports[2].protocol, Protocol::Udp);
    assert_eq!(
        (web.ports[3].host_port, web.ports[3].container_port),
        (None, 7000)
    );
    assert_eq!(
        web.volumes,
        vec![
            Mount::Bind {
                source: "/srv/app/./data".into(),
                target: "/data".into(),
                read_only: true
            },
            Mount::Volume {
                name: "cache".into(),
                target: "/cache".into(),
                read_only: false
            },
            Mount::Anonymous {
                target: "/scratch".into()
            },
        ]
    );
    assert_eq!(
        web.restart,
        Restart::OnFailure {
            max_retries: Some(5)
        }
    );
    assert_eq!(web.depends_on["db"], Condition::Healthy);
    assert_eq!(web.devices[0].container, "/dev/ttyUSB0");
    assert_eq!(web.devices[1].permissions, "rw");
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(web.networks["back"].aliases, vec!["api".to_string()]);
    assert_eq!(
        web.extra_hosts,
        vec![("gateway".into(), "172.17.0.1".into())]
    );
    assert_eq!(web.cap_drop, vec!["ALL".to_string()]);
    assert!(web.read_only);
    assert_eq!(web.mem_limit_bytes, Some(512 << 20));
    assert_eq!(web.cpus, Some(0.5));
    assert_eq!(web.pids_limit, Some(100));
    let logging = web.logging.as_ref().unwrap();
    assert_eq!(logging.options["max-file"], "3");
    let hc = c.services["db"].healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, HealthTest::Cmd(vec!["true".into()]));
    assert_eq!(
        (
            hc.interval_ms,
            hc.timeout_ms,
            hc.retries,
            hc.start_period_ms
        ),
        (Some(1000), Some(500), Some(3), Some(90_000))
    );
    assert!(c.networks["back"].internal);
    assert!(c.volumes.contains_key("cache"));
}

#[test]
fn variables_are_interpolated_with_defaults_and_required_markers() {
    let p = parse_with(
        r#"
services:
  web:
    image: "registry:5000/web:${TAG:-latest}"
    ports: ["${PORT}:80"]
    environment:
      GREETING: "$${not a var} $NAME"
      EMPTY: "${MISSING}"
"#,
        &[("PORT", "8080"), ("NAME", "ferry")],
    )
    .unwrap();
    let web = &p.compose.services["web"];
    assert_eq!(web.image, "registry:5000/web:latest");
    assert_eq!(web.ports[0].host_port, Some(8080));
    assert_eq!(web.environment["GREETING"], "${not a var} ferry");
    assert_eq!(web.environment["EMPTY"], "");
    assert!(p.unset_variables.contains("MISSING"));
    assert!(!p.unset_variables.contains("TAG"), "a default is not unset");

    let e = parse_with(
        "services:\n  a:\n    image: x\n    user: ${USER_ID:?set the user}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.line, 4);
    assert!(
        e.reason.contains("USER_ID is required: set the user"),
        "{e}"
    );
}

#[test]
fn bad_values_name_their_line_and_key() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "services:\n  a:\n    image: x\n    ports: [\"80:99999\"]\n",
            4,
            "services.a.ports[0]",
        ),
        (
            "services:\n  a:\n    image: x\n    restart: sometimes\n",
            4,
            "services.a.restart",
        ),
        (
            "services:\n  a:\n    image: x\n    mem_limit: lots\n",
            4,
            "services.a.mem_limit",
        ),
        (
            "services:\n  a:\n    image: x\n    privileged: maybe\n",
            4,
            "services.a.privileged",
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on: [b]\n",
            2,
            "services.a.depends_on",
        ),
        ("services:\n  a:\n    command: [x]\n", 3, "services.a"),
        (
            "services:\n  a:\n    image: x\n    volumes: [\"data:/d\"]\n",
            2,
            "services.a.volumes",
        ),
        (
            "services:\n  a:\n    image: x\n    network_mode: host\n    networks: [n]\n",
            3,
            "services.a",
        ),
        (
            "services:\n  a:\n    image: x\n    labels: {ferry.app: y}\n",
            4,
            "services.a.labels",
        ),
    ];
    for (text, line, path) in cases {
        let e = fails(text);
        assert_eq!((e.line, e.path.as_str()), (*line, *path), "{text}: {e}");
    }
}

#[test]
fn a_dependency_cycle_is_refused_and_order_follows_depends_on() {
    let e = fails("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n");
    assert!(e.reason.contains("cycle among a, b"), "{e}");
    let c = ok("services:\n  web:\n    image: x\n    depends_on: [db, cache]\n  db:\n    image: x\n  cache:\n    image: x\n    depends_on: [db]\n");
    assert_eq!(start_order(&c).unwrap(), vec!["db", "cache", "web"]);
}

#[test]
fn malformed_yaml_and_duplicate_keys_are_refused_with_lines() {
    let e = fails("services:\n  a:\n    image: x\n    image: y\n");
    assert_eq!((e.line, e.path.as_str()), (4, "image"));
    let e = fails("services:\n  a:\n    image: [x\n");
    assert!(e.reason.starts_with("not valid YAML"), "{e}");
    assert!(e.line >= 3, "{e}");
    assert!(fails("").reason.contains("mapping"));
    assert!(fails("services: {}\n")
        .reason
        .contains("at least one service"));
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("x-a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
    for i in 1..8 {
        let p = i - 1;
        text.push_str(&format!(
            "x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("services:\n  a:\n    image: x\n");
    assert!(fails(&text).reason.contains("nodes"));
}

#[test]
fn small_value_syntaxes_read_as_compose_does() {
    assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
    assert_eq!(parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse_duration_ms("2"), Some(2000));
    assert_eq!(parse_duration_ms("5 minutes"), None);
    assert_eq!(parse_bytes("1g"), Some(1 << 30));
    assert_eq!(parse_bytes("100KB"), Some(100 << 10));
    assert_eq!(parse_bytes("12x"), None);
    assert_eq!(
        shell_words(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
        vec!["a", "b c", "d \"e\"", "f g"]
    );
    assert!(shell_words("'open").is_err());
    assert_eq!(
        parse_env_file("# c\nexport A=1\nB=\"two words\"\n\n").unwrap(),
        vec![("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
}

#[test]
fn env_files_fill_the_environment_under_explicit_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.env"), "A=from-file\nB=from-file\n").unwrap();
    let vars = HashMap::new();
    let mut p = parse(
        "services:\n  a:\n    image: x\n    env_file: app.env\n    environment: {A: explicit}\n",
        ParseOptions {
            vars: &vars,
            base_dir: Some(dir.path()),
        },
    )
    .unwrap();
    read_env_files(&mut p.compose).unwrap();
    let env = &p.compose.services["a"].environment;
    assert_eq!(
        (env["A"].as_str(), env["B"].as_str()),
        ("explicit", "from-file")
    );
}
