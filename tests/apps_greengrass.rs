//! Container apps reach Ferry's Greengrass Stream Manager port as Greengrass components do:
//! their containers get `STREAM_MANAGER_SERVER_HOST`/`_PORT` and their own
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`, and the port listens on the apps' network (the Docker
//! bridge, like the app API) accepting exactly the tokens of deployed apps.

#[path = "apps/docker.rs"]
mod docker;
#[allow(dead_code)]
#[path = "greengrass/raw.rs"]
mod raw;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use docker::Sandbox;
use reqwest::Method;
use support::api::Daemon;
use support::free_port;

/// Connects to `addr` once something listens there (the bridge listener binds in the background).
fn connect_when_listening(addr: SocketAddr) -> raw::Client {
    let start = Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    raw::Client::connect_to(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_the_greengrass_variables_and_its_token_opens_the_port_on_its_network() {
    if !docker::available() {
        return;
    }
    let mut sandbox = Sandbox::new();
    let app = sandbox.app("gg");
    let dir = tempfile::tempdir().unwrap();
    let compose_file = dir.path().join("compose.yaml");
    std::fs::write(
        &compose_file,
        format!(
            "services:\n  sdk:\n    image: {}\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 1; done\"]\n",
            sandbox.image
        ),
    )
    .unwrap();
    let (gg_port, app_port) = (free_port(), free_port());
    let extra = format!(
        "[greengrass]\nenabled = true\nlisten = \"127.0.0.1:{gg_port}\"\n\
         [[apps]]\nname = \"{app}\"\ncompose_file = \"{}\"\n\
         [docker]\nhealth_timeout_ms = 30000\nhealthy_after_ms = 1000\npoll_interval_ms = 200\n\
         app_api_listen = \"172.17.0.1:{app_port}\"\n",
        compose_file.display()
    );
    let d = Daemon::start(dir.path(), &extra, None);
    let start = Instant::now();
    loop {
        let (_, v) = d.call(Method::GET, &format!("/v1/apps/{app}"), None).await;
        if v["state"] == "healthy" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{v}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let containers = Sandbox::objects("container", &app);
    assert_eq!(containers.len(), 1, "{containers:?}");
    let env = Sandbox::inspect(&containers[0], "{{json .Config.Env}}");
    assert!(
        env.contains("STREAM_MANAGER_SERVER_HOST=172.17.0.1"),
        "{env}"
    );
    assert!(
        env.contains(&format!("STREAM_MANAGER_SERVER_PORT={gg_port}")),
        "{env}"
    );
    let token = env
        .split("AWS_CONTAINER_AUTHORIZATION_TOKEN=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the app's Greengrass token")
        .to_string();
    assert!(
        env.contains(&format!("FERRY_TOKEN={token}")),
        "one token per app: {env}"
    );

    // On the bridge: the app's token opens the port, another does not.
    let bridge = SocketAddr::from(([172, 17, 0, 1], gg_port));
    let mut ok = connect_when_listening(bridge);
    assert_eq!(raw::status(&ok.handshake(Some(&token))), 0, "{}", d.logs());
    ok.create("from-an-app");
    let mut wrong = raw::Client::connect_to(bridge);
    assert_eq!(
        raw::status(&wrong.handshake(Some("not-a-token"))),
        2,
        "Unauthorized"
    );
    let mut none = raw::Client::connect_to(bridge);
    assert_eq!(
        raw::status(&none.handshake(None)),
        2,
        "no token, no entry on the bridge"
    );
    // The stream the app created is Ferry's, seen through the HTTP API.
    let (s, _) = d.call(Method::GET, "/v1/streams/from-an-app", None).await;
    assert_eq!(s, 200);
}
