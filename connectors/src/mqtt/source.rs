//! One broker connection feeding local streams, as three tasks joined by bounded channels
//! (event_loop.rs, driving connection.rs; ingest.rs; ack.rs):
//!
//! ```text
//! event loop ──publish──▶ ingest ──(ack job, in order)──▶ acker ──(batches)──▶ event loop
//!  (rumqttc poll)        route, append             wait until durable        PUBACKs
//! ```
//! At-least-once from device to disk: a QoS 1/2 message is acknowledged only after its record is
//! durable in every stream it routes to. A stream that refuses data for now (full with
//! `reject_new_data`, a storage or disk error) holds the message back, so acks stop and the
//! broker's in-flight window throttles delivery: backpressure, not loss. QoS 0 messages carry no
//! such promise and are dropped, counted. Messages that can never be stored (oversized,
//! unroutable, refused by the stream as invalid) are acknowledged (so the broker does not
//! redeliver them forever), counted under their reason and logged with their topic.
//!
//! Acks carry the connection generation they belong to; an ack for a connection that is gone is
//! not sent (the packet id would be meaningless), the broker redelivers the message instead.
//! The event-loop task writes acks between polls, a batch per flush (see ack.rs for why).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_stream_manager::StreamManager;
use rumqttc::{MqttOptions, QoS, SubscribeFilter, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ack::{ack_loop, AckQueue};
use super::config::{BrokerConfig, Subscription};
use super::connection::Connection;
use super::event_loop::EventLoopTask;
use super::ingest::Ingest;
use super::metrics::IngestMetrics;
use super::tls::TlsError;
use super::topic::{Route, Router};

/// MQTT's own ceiling for a packet; rumqttc is allowed this much so that an oversized message
/// is rejected by Ferry (acknowledged and counted) instead of killing the connection and being
/// redelivered forever.
const MQTT_MAX_PACKET: usize = 268_435_455;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("broker {broker:?}: tls: {error}")]
    Tls { broker: String, error: TlsError },
}

pub struct MqttSource {
    cfg: BrokerConfig,
    router: Router,
    manager: Arc<StreamManager>,
    metrics: Arc<IngestMetrics>,
}

impl MqttSource {
    pub fn new(
        cfg: BrokerConfig,
        routes: &[Route],
        manager: Arc<StreamManager>,
        metrics: Arc<IngestMetrics>,
    ) -> Self {
        let router = Router::for_broker(routes, &cfg.name);
        MqttSource {
            cfg,
            router,
            manager,
            metrics,
        }
    }

    /// The configured subscriptions, or one QoS 1 subscription per route filter; QoS 2 is
    /// subscribed as QoS 1 (see `subscription_filters` for why).
    pub fn subscriptions(&self) -> Vec<SubscribeFilter> {
        subscription_filters(&self.cfg.subscriptions, &self.router)
    }

    fn options(&self) -> Result<MqttOptions, SourceError> {
        let c = &self.cfg;
        let mut o = MqttOptions::new(c.client_id(), c.host.clone(), c.port);
        o.set_keep_alive(Duration::from_secs(c.keep_alive_secs))
            .set_clean_session(c.clean_session)
            .set_manual_acks(true)
            .set_max_packet_size(MQTT_MAX_PACKET, 1024 * 1024);
        if let Some(user) = &c.username {
            o.set_credentials(user.clone(), c.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &c.tls {
            let config = super::tls::client_config(tls).map_err(|error| SourceError::Tls {
                broker: c.name.clone(),
                error,
            })?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(o)
    }

    /// Runs until `shutdown` is cancelled, then stops taking messages, acknowledges what became
    /// durable (for at most `drain_timeout`) and disconnects.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Result<(), SourceError> {
        let options = self.options()?;
        let cfg = &self.cfg;
        // Room for the acks of everything the ingest and ack channels hold (see ack_loop).
        let request_capacity = 2 * cfg.max_inflight_messages + 128;
        let (client, eventloop) = rumqttc::AsyncClient::new(options, request_capacity);
        let generation = Arc::new(AtomicU64::new(0));
        let (in_tx, in_rx) = mpsc::channel(cfg.max_inflight_messages);
        let (ack_tx, ack_rx) = mpsc::channel(cfg.max_inflight_messages);
        let ingest = Ingest::new(
            self.router.clone(),
            self.manager.clone(),
            self.metrics.clone(),
            cfg.max_message_size_bytes,
            shutdown.clone(),
        );
        tokio::spawn(ingest.run(in_rx, ack_tx));
        let acks = Arc::new(Mutex::new(AckQueue::default()));
        let acker = tokio::spawn(ack_loop(
            ack_rx,
            client.clone(),
            acks.clone(),
            generation.clone(),
            self.metrics.clone(),
        ));
        if let Some(s) = cfg.subscriptions.iter().find(|s| s.qos == 2) {
            tracing::warn!(broker = %cfg.name, filter = %s.filter, "qos = 2 subscriptions are made at QoS 1 (at-least-once, duplicates counted; see README)");
        }
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        tracing::info!(broker = %cfg.name, endpoint, "connecting to MQTT broker");
        let task = EventLoopTask {
            name: cfg.name.clone(),
            endpoint,
            connection: Connection::new(
                Duration::from_millis(cfg.reconnect_min_ms),
                Duration::from_millis(cfg.reconnect_max_ms),
                drain_timeout,
            ),
            eventloop,
            client,
            filters: self.subscriptions(),
            acks,
            ack_buf: Vec::new(),
            generation,
            metrics: self.metrics.clone(),
            in_tx: Some(in_tx),
            acker,
            acker_done: false,
            shutdown,
        };
        task.run().await;
        Ok(())
    }
}

/// The configured subscriptions, or one QoS 1 subscription per route filter.
///
/// QoS 2 is subscribed as QoS 1: rumqttc forgets a QoS 2 delivery's state when a connection
/// drops and then takes the PUBREL the broker resends on the resumed session for a protocol
/// error, disconnects, and meets the same PUBREL again: a reconnect loop (seen in the QoS 2
/// kill test). Ferry promises at-least-once with duplicates counted, which QoS 1 gives.
fn subscription_filters(configured: &[Subscription], router: &Router) -> Vec<SubscribeFilter> {
    if configured.is_empty() {
        return router
            .filters()
            .into_iter()
            .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce))
            .collect();
    }
    configured
        .iter()
        .map(|s| {
            let qos = match s.qos {
                0 => QoS::AtMostOnce,
                _ => QoS::AtLeastOnce,
            };
            SubscribeFilter::new(s.filter.clone(), qos)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_2_subscriptions_are_made_at_qos_1() {
        let sub = |filter: &str, qos| Subscription {
            filter: filter.into(),
            qos,
        };
        let got = subscription_filters(
            &[sub("a/#", 0), sub("b/#", 1), sub("c/#", 2)],
            &Router::default(),
        );
        let got: Vec<(String, QoS)> = got.into_iter().map(|f| (f.path, f.qos)).collect();
        assert_eq!(
            got,
            vec![
                ("a/#".into(), QoS::AtMostOnce),
                ("b/#".into(), QoS::AtLeastOnce),
                ("c/#".into(), QoS::AtLeastOnce),
            ]
        );
    }

    #[test]
    fn without_configured_subscriptions_each_route_filter_is_subscribed_at_qos_1() {
        let route = |filter: &str, stream: &str| Route {
            filter: filter.into(),
            stream: stream.into(),
            broker: None,
            on_full: Default::default(),
        };
        let router = Router::for_broker(&[route("a/#", "s"), route("a/#", "t")], "b");
        let got = subscription_filters(&[], &router);
        assert_eq!(
            got,
            vec![SubscribeFilter::new("a/#".into(), QoS::AtLeastOnce)]
        );
    }
}
