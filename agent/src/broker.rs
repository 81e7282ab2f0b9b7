//! The embedded MQTT broker (rumqttd), for gateways without one. It runs on its own threads;
//! rumqttd has no shutdown, so it lives as long as the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::EmbeddedBrokerConfig;

pub fn start(cfg: &EmbeddedBrokerConfig) -> anyhow::Result<()> {
    // rumqttd would fail to bind inside its own thread; check here for a clear error.
    drop(TcpListener::bind(cfg.listen).with_context(|| {
        format!("the embedded MQTT broker cannot listen on {} (set embedded_broker.listen, or configure [[brokers]])", cfg.listen)
    })?);
    let server = ServerSettings {
        name: "ferry-embedded".into(),
        listen: cfg.listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: wire_limit(cfg.max_payload_size_bytes),
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("ferry-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = ?e, "embedded MQTT broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    wait_listening(cfg.listen)
}

fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let connect_to = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(connect_to).is_ok() {
            tracing::info!(listen = %addr, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the embedded MQTT broker did not start listening on {addr} within 10 s")
}

/// What the broker itself accepts. rumqttd answers a publish over its limit by closing the
/// device's connection, with no log line and no count; so it gets headroom above
/// `max_payload_size_bytes`, and a publish up to twice the limit reaches Ferry's own MQTT source,
/// which refuses it with a reason, a log line naming the topic and the `oversized` count, as it
/// does for an external broker. Only a publish over twice the limit is still cut off by rumqttd.
fn wire_limit(max_payload_size_bytes: usize) -> usize {
    max_payload_size_bytes
        .saturating_mul(2)
        .max(max_payload_size_bytes.saturating_add(64 * 1024))
}
