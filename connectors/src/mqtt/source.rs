//! One broker connection feeding local streams, as three tasks joined by bounded channels
//! (this file: the event loop; ingest.rs; ack.rs):
//!
//! ```text
//! event loop ──publish──▶ ingest ──(ack job, in order)──▶ acker ──(batches)──▶ event loop
//!  (rumqttc poll)        route, append             wait until durable        PUBACKs
//! ```
//! At-least-once from device to disk: a QoS 1/2 message is acknowledged only after its record is
//! durable in every stream it routes to. A stream that refuses data (full with
//! `reject_new_data`, or a storage error) holds the message back, so acks stop and the broker's
//! in-flight window throttles delivery: backpressure, not loss. QoS 0 messages carry no such
//! promise and are dropped, counted. Oversized and unroutable messages are acknowledged (so the
//! broker does not redeliver them forever), counted and logged with their topic.
//!
//! Acks carry the connection generation they belong to; an ack for a connection that is gone is
//! not sent (the packet id would be meaningless), the broker redelivers the message instead.
//! The event-loop task writes acks between polls, a batch per flush (see ack.rs for why).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_stream_manager::StreamManager;
use rumqttc::{
    ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Request,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ack::{ack_loop, lock, write_acks, AckQueue};
use super::config::BrokerConfig;
use super::ingest::{Incoming, Ingest};
use super::metrics::{inc, IngestMetrics};
use super::tls::TlsError;
use super::topic::{Route, Router};
use crate::backoff::Backoff;

/// MQTT's own ceiling for a packet; rumqttc is allowed this much so that an oversized message
/// is rejected by Ferry (acknowledged and counted) instead of killing the connection and being
/// redelivered forever.
const MQTT_MAX_PACKET: usize = 268_435_455;

/// A connection that lasted this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(5);

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

    pub fn metrics(&self) -> Arc<IngestMetrics> {
        self.metrics.clone()
    }

    /// The configured subscriptions, or one QoS 1 subscription per route filter.
    ///
    /// QoS 2 is subscribed as QoS 1: rumqttc forgets a QoS 2 delivery's state when a connection
    /// drops and then takes the PUBREL the broker resends on the resumed session for a protocol
    /// error, disconnects, and meets the same PUBREL again: a reconnect loop (seen in the QoS 2
    /// kill test). Ferry promises at-least-once with duplicates counted, which QoS 1 gives.
    pub fn subscriptions(&self) -> Vec<SubscribeFilter> {
        if self.cfg.subscriptions.is_empty() {
            return self
                .router
                .filters()
                .into_iter()
                .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce))
                .collect();
        }
        self.cfg
            .subscriptions
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
        let name = self.cfg.name.clone();
        // Room for the acks of everything the ingest and ack channels hold (see ack_loop).
        let request_capacity = 2 * self.cfg.max_inflight_messages + 128;
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, request_capacity);
        let generation = Arc::new(AtomicU64::new(0));
        let (in_tx, in_rx) = mpsc::channel(self.cfg.max_inflight_messages);
        let (ack_tx, ack_rx) = mpsc::channel(self.cfg.max_inflight_messages);
        let ingest = Ingest::new(
            self.router.clone(),
            self.manager.clone(),
            self.metrics.clone(),
            self.cfg.max_message_size_bytes,
            shutdown.clone(),
        );
        tokio::spawn(ingest.run(in_rx, ack_tx));
        let acks = Arc::new(Mutex::new(AckQueue::default()));
        let mut ack_buf = Vec::new();
        let mut acker = tokio::spawn(ack_loop(
            ack_rx,
            client.clone(),
            acks.clone(),
            generation.clone(),
            self.metrics.clone(),
        ));
        let filters = self.subscriptions();
        let mut in_tx = Some(in_tx);
        if let Some(s) = self.cfg.subscriptions.iter().find(|s| s.qos == 2) {
            tracing::warn!(broker = %self.cfg.name, filter = %s.filter, "qos = 2 subscriptions are made at QoS 1 (at-least-once, duplicates counted; see README)");
        }
        // Reset only after a connection that lasted: a broker that accepts and then drops the
        // connection straight away must not be hammered at the shortest delay.
        let mut connected_at: Option<std::time::Instant> = None;
        let mut backoff = Backoff::new(
            Duration::from_millis(self.cfg.reconnect_min_ms),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        );
        let mut retrying = false;
        let mut first_connack = true;
        let mut deadline = None;
        let endpoint = format!("{}:{}", self.cfg.host, self.cfg.port);
        tracing::info!(broker = %name, endpoint, "connecting to MQTT broker");
        loop {
            let draining = deadline.is_some();
            let until = deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400));
            let current = generation.load(Ordering::SeqCst);
            let written =
                write_acks(&mut eventloop, &acks, &mut ack_buf, current, &self.metrics).await;
            // A failed write is a lost connection: the Err arm below forgets it, and the next
            // poll reconnects.
            let event = if let Err(e) = written {
                Err(e)
            } else {
                tokio::select! {
                    _ = shutdown.cancelled(), if !draining => {
                        in_tx = None; // the ingest task finishes what it has, then the acker does
                        deadline = Some(tokio::time::Instant::now() + drain_timeout);
                        continue;
                    }
                    _ = &mut acker, if draining => break,
                    _ = tokio::time::sleep_until(until), if draining => {
                        tracing::warn!(broker = %name, "shutdown: gave up waiting for acknowledgements; the broker will redeliver");
                        break;
                    }
                    ev = eventloop.poll() => ev,
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    generation.fetch_add(1, Ordering::SeqCst);
                    self.metrics.connected.store(true, Ordering::Relaxed);
                    inc(&self.metrics.connects);
                    connected_at = Some(std::time::Instant::now());
                    retrying = false;
                    tracing::info!(broker = %name, endpoint, session_present = ack.session_present, "connected to MQTT broker");
                    // A broker that kept our session kept our subscriptions; subscribe anyway on
                    // the first connection, in case the configuration changed.
                    if first_connack || !ack.session_present {
                        if let Err(e) = client.try_subscribe_many(filters.clone()) {
                            tracing::error!(broker = %name, error = %e, "could not queue the subscriptions");
                        }
                    }
                    first_connack = false;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    self.metrics.subscribed.store(true, Ordering::Relaxed);
                    for (code, f) in ack.return_codes.iter().zip(&filters) {
                        match code {
                            SubscribeReasonCode::Failure => {
                                tracing::error!(broker = %name, filter = %f.path, "the broker refused the subscription")
                            }
                            SubscribeReasonCode::Success(q) => {
                                tracing::debug!(broker = %name, filter = %f.path, qos = ?q, "subscribed")
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    inc(&self.metrics.messages_received);
                    let Some(tx) = &in_tx else {
                        continue; // shutting down: not acknowledged, so the broker redelivers it
                    };
                    let msg = Incoming {
                        publish,
                        generation: generation.load(Ordering::SeqCst),
                    };
                    tokio::select! {
                        _ = tx.send(msg) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(Event::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid))) => {
                    lock(&acks).nudge_sent(pkid);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    forget_connection(&mut eventloop, &acks, &generation);
                    let was_connected = self.metrics.connected.swap(false, Ordering::Relaxed);
                    self.metrics.subscribed.store(false, Ordering::Relaxed);
                    if was_connected {
                        inc(&self.metrics.disconnects);
                        tracing::warn!(broker = %name, endpoint, error = %describe(&e), "lost the MQTT broker; reconnecting with backoff");
                    } else if !retrying {
                        tracing::warn!(broker = %name, endpoint, error = %describe(&e), "cannot reach the MQTT broker; retrying with backoff");
                    } else {
                        tracing::debug!(broker = %name, error = %describe(&e), "reconnect attempt failed");
                    }
                    retrying = true;
                    if connected_at
                        .take()
                        .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
                    {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled(), if !draining => {}
                        _ = tokio::time::sleep_until(until), if draining => {}
                    }
                    if draining && tokio::time::Instant::now() >= until {
                        break;
                    }
                }
            }
        }
        // Send the queued acks and a DISCONNECT; give the socket a moment to carry them.
        if self.metrics.connected.load(Ordering::Relaxed) {
            let current = generation.load(Ordering::SeqCst);
            let flush = async {
                loop {
                    write_acks(&mut eventloop, &acks, &mut ack_buf, current, &self.metrics).await?;
                    if lock(&acks).is_idle() {
                        break;
                    }
                    // A nudge is still in rumqttc's channel: let it through first.
                    if let Event::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid)) =
                        eventloop.poll().await?
                    {
                        lock(&acks).nudge_sent(pkid);
                    }
                }
                if client.try_disconnect().is_ok() {
                    while !matches!(
                        eventloop.poll().await?,
                        Event::Outgoing(Outgoing::Disconnect)
                    ) {}
                }
                Ok::<(), ConnectionError>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
        }
        self.metrics.connected.store(false, Ordering::Relaxed);
        acker.abort(); // after a drain timeout it may still hold acks no connection can carry
        tracing::info!(broker = %name, "MQTT connection closed");
        Ok(())
    }
}

/// After a connection error: nothing rumqttc still holds for the dead connection may reach the
/// next one. Events read before the failure would be handed on and acknowledged with packet ids
/// of the old connection; an ack request (a nudge) can land in rumqttc's channel after its own
/// clean-up, and its clean-up keeps PUBRECs for the next connection. Owed acks become stale.
/// Done under the ack queue's lock, which the acker holds while it sends a nudge.
fn forget_connection(eventloop: &mut EventLoop, acks: &Mutex<AckQueue>, generation: &AtomicU64) {
    let mut q = lock(acks);
    generation.fetch_add(1, Ordering::SeqCst);
    q.connection_lost();
    eventloop.clean(); // again: moves what reached the channel since into `pending`
    eventloop
        .pending
        .retain(|r| !matches!(r, Request::PubAck(_) | Request::PubRec(_)));
    eventloop.state.events.clear();
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("connection refused by the broker: {code:?}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::ack::OwedAck;
    use rumqttc::{AsyncClient, Publish};

    #[test]
    fn a_lost_connection_leaves_no_ack_or_event_for_the_next_one() {
        let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 16);
        let acks = Mutex::new(AckQueue::default());
        let generation = AtomicU64::new(3);
        lock(&acks).push([OwedAck {
            pkid: 9,
            qos: QoS::AtLeastOnce,
            generation: 3,
        }]);
        let (nudge, _) = lock(&acks).take_nudge(3);
        assert!(nudge.is_some());
        // The connection dies; then a nudge and a PUBREC reach rumqttc's channel after its own
        // clean-up, beside a subscription that must survive, and a read event is still queued.
        let mut p = Publish::new("", QoS::AtLeastOnce, Vec::new());
        p.pkid = 9;
        client.try_ack(&p).unwrap();
        p.qos = QoS::ExactlyOnce;
        p.pkid = 10;
        client.try_ack(&p).unwrap();
        client.try_subscribe("a/#", QoS::AtLeastOnce).unwrap();
        eventloop
            .state
            .events
            .push_back(Event::Incoming(Packet::Publish(p)));

        forget_connection(&mut eventloop, &acks, &generation);

        assert_eq!(generation.load(Ordering::SeqCst), 4);
        assert!(eventloop.state.events.is_empty());
        assert_eq!(eventloop.pending.len(), 1, "{:?}", eventloop.pending);
        assert!(matches!(eventloop.pending[0], Request::Subscribe(_)));
        assert!(
            lock(&acks).is_idle(),
            "the queue no longer waits for the lost nudge"
        );
    }
}
