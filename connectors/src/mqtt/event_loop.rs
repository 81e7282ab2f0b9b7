//! The event-loop task of a broker connection: polls rumqttc, hands publishes to the ingest task,
//! writes acks between polls (ack.rs), and turns what happens to the connection into events for
//! its state machine (connection.rs), whose actions it carries out. Reconnect, backoff and drain
//! decisions live in the machine; this file holds the I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, Outgoing, Packet, Publish,
    Request, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ack::{lock, write_acks, AckQueue, OwedAck, SharedAckQueue};
use super::connection::{Action, Change, Connection, Event, State};
use super::ingest::Incoming;
use super::metrics::{inc, IngestMetrics};

/// How long the last acks and the DISCONNECT may take to reach the socket at shutdown.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Stands in for "no deadline" in a `select!` branch that is disabled anyway.
const FAR_FUTURE: Duration = Duration::from_secs(86_400);

pub(super) struct EventLoopTask {
    pub name: String,
    /// `host:port`, for log lines.
    pub endpoint: String,
    pub connection: Connection,
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub filters: Vec<SubscribeFilter>,
    pub acks: SharedAckQueue,
    pub ack_buf: Vec<OwedAck>,
    pub generation: Arc<AtomicU64>,
    pub metrics: Arc<IngestMetrics>,
    /// `None` once shutdown was requested: the ingest task finishes what it has, then the acker.
    pub in_tx: Option<mpsc::Sender<Incoming>>,
    pub acker: JoinHandle<()>,
    /// The acker's handle has returned (it must not be polled again).
    pub acker_done: bool,
    pub shutdown: CancellationToken,
}

/// What woke the task up.
enum Wake {
    Machine(Event),
    Mqtt(Result<MqttEvent, ConnectionError>),
}

impl EventLoopTask {
    pub async fn run(mut self) {
        while self.connection.state() != State::Stopped {
            let (event, error) = match self.next().await {
                Wake::Machine(event) => (event, None),
                Wake::Mqtt(Ok(ev)) => match self.on_mqtt(ev).await {
                    Some(event) => (event, None),
                    None => continue,
                },
                Wake::Mqtt(Err(e)) => (Event::ConnectionError, Some(e)),
            };
            for action in self.connection.handle(event, Instant::now()) {
                self.apply(action, error.as_ref()).await;
            }
        }
        self.metrics.connected.store(false, Ordering::Relaxed);
        self.acker.abort(); // after a drain timeout it may still hold acks no connection can carry
        tracing::info!(broker = %self.name, "MQTT connection closed");
    }

    /// Writes the acks that are ready, then waits for the broker, shutdown, the acker or the
    /// machine's next deadline. Nothing is polled while waiting out a reconnect delay.
    async fn next(&mut self) -> Wake {
        let draining = self.connection.drain_deadline().is_some();
        let wake_at = self.connection.wake_at();
        let polling = !matches!(self.connection.state(), State::Backoff { .. });
        if polling {
            let current = self.generation.load(Ordering::SeqCst);
            let written = write_acks(
                &mut self.eventloop,
                &self.acks,
                &mut self.ack_buf,
                current,
                &self.metrics,
            )
            .await;
            // A failed write is a lost connection: forgotten like one, and the next poll
            // reconnects (after the backoff).
            if let Err(e) = written {
                return Wake::Mqtt(Err(e));
            }
        }
        let sleep =
            tokio::time::sleep_until(wake_at.unwrap_or_else(|| Instant::now() + FAR_FUTURE));
        tokio::select! {
            _ = self.shutdown.cancelled(), if !draining => Wake::Machine(Event::ShutdownRequested),
            _ = &mut self.acker, if draining && !self.acker_done => {
                self.acker_done = true;
                Wake::Machine(Event::DrainDone)
            }
            _ = sleep, if wake_at.is_some() => Wake::Machine(Event::Tick),
            ev = self.eventloop.poll(), if polling => Wake::Mqtt(ev),
        }
    }

    /// Handles what belongs to the data path; returns what the machine must hear of.
    async fn on_mqtt(&mut self, ev: MqttEvent) -> Option<Event> {
        match ev {
            MqttEvent::Incoming(Packet::ConnAck(ack)) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                return Some(Event::ConnectAck {
                    session_present: ack.session_present,
                });
            }
            MqttEvent::Incoming(Packet::SubAck(ack)) => {
                self.metrics.subscribed.store(true, Ordering::Relaxed);
                for (code, f) in ack.return_codes.iter().zip(&self.filters) {
                    match code {
                        SubscribeReasonCode::Failure => {
                            tracing::error!(broker = %self.name, filter = %f.path, "the broker refused the subscription")
                        }
                        SubscribeReasonCode::Success(q) => {
                            tracing::debug!(broker = %self.name, filter = %f.path, qos = ?q, "subscribed")
                        }
                    }
                }
            }
            MqttEvent::Incoming(Packet::Publish(publish)) => {
                inc(&self.metrics.messages_received);
                // Shutting down: not acknowledged, so the broker redelivers it.
                if let Some(tx) = &self.in_tx {
                    let msg = Incoming {
                        publish,
                        generation: self.generation.load(Ordering::SeqCst),
                    };
                    tokio::select! {
                        _ = tx.send(msg) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
            }
            MqttEvent::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid)) => {
                lock(&self.acks).nudge_sent(pkid);
            }
            _ => {}
        }
        None
    }

    /// Hands on messages read from a connection that is gone; their acks will be stale.
    async fn store_read(&mut self, dead_generation: u64, read: Vec<Publish>) {
        let Some(tx) = &self.in_tx else { return };
        if !read.is_empty() {
            tracing::info!(broker = %self.name, messages = read.len(), "storing messages read before the connection was lost (their acks are stale)");
        }
        for publish in read {
            inc(&self.metrics.messages_received);
            let msg = Incoming {
                publish,
                generation: dead_generation,
            };
            tokio::select! {
                _ = tx.send(msg) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn apply(&mut self, action: Action, error: Option<&ConnectionError>) {
        match action {
            Action::Log(change) => self.record(change, error),
            Action::Subscribe => {
                if let Err(e) = self.client.try_subscribe_many(self.filters.clone()) {
                    tracing::error!(broker = %self.name, error = %e, "could not queue the subscriptions");
                }
            }
            Action::ForgetConnection => {
                let (dead, read) =
                    forget_connection(&mut self.eventloop, &self.acks, &self.generation);
                self.metrics.connected.store(false, Ordering::Relaxed);
                self.metrics.subscribed.store(false, Ordering::Relaxed);
                self.store_read(dead, read).await;
            }
            Action::StopIngest => self.in_tx = None,
            Action::Disconnect => self.disconnect().await,
            Action::Stop => {}
        }
    }

    /// One log line per change, and the connection counters.
    fn record(&self, change: Change, error: Option<&ConnectionError>) {
        let (name, endpoint) = (&self.name, &self.endpoint);
        let error = error.map(describe).unwrap_or_default();
        match change {
            Change::Connected { session_present } => {
                self.metrics.connected.store(true, Ordering::Relaxed);
                inc(&self.metrics.connects);
                tracing::info!(broker = %name, endpoint, session_present, "connected to MQTT broker");
            }
            Change::Lost => {
                inc(&self.metrics.disconnects);
                tracing::warn!(broker = %name, endpoint, error, "lost the MQTT broker; reconnecting with backoff");
            }
            Change::Unreachable => {
                tracing::warn!(broker = %name, endpoint, error, "cannot reach the MQTT broker; retrying with backoff");
            }
            Change::RetryFailed => {
                tracing::debug!(broker = %name, error, "reconnect attempt failed");
            }
            Change::DrainGaveUp => {
                tracing::warn!(broker = %name, "shutdown: gave up waiting for acknowledgements; the broker will redeliver");
            }
        }
    }

    /// Sends the queued acks and a DISCONNECT; gives the socket a moment to carry them.
    async fn disconnect(&mut self) {
        let current = self.generation.load(Ordering::SeqCst);
        let (eventloop, acks, buf) = (&mut self.eventloop, &self.acks, &mut self.ack_buf);
        let flush = async {
            loop {
                write_acks(eventloop, acks, buf, current, &self.metrics).await?;
                if lock(acks).is_idle() {
                    break;
                }
                // A nudge is still in rumqttc's channel: let it through first.
                if let MqttEvent::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid)) =
                    eventloop.poll().await?
                {
                    lock(acks).nudge_sent(pkid);
                }
            }
            if self.client.try_disconnect().is_ok() {
                while !matches!(
                    eventloop.poll().await?,
                    MqttEvent::Outgoing(Outgoing::Disconnect)
                ) {}
            }
            Ok::<(), ConnectionError>(())
        };
        let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, flush).await;
    }
}

/// After a connection error: no ack rumqttc still holds for the dead connection may reach the
/// next one. An ack request (a nudge) can land in rumqttc's channel after its own clean-up, and
/// its clean-up keeps PUBRECs for the next connection. Owed acks become stale. Done under the ack
/// queue's lock, which the acker holds while it sends a nudge.
///
/// Messages read before the failure but not handed on yet are returned, with the generation of
/// the dead connection: Ferry stores them (a broker that keeps no queue would not send them
/// again) and their acks are stale, so at worst they arrive twice.
fn forget_connection(
    eventloop: &mut EventLoop,
    acks: &Mutex<AckQueue>,
    generation: &AtomicU64,
) -> (u64, Vec<Publish>) {
    let mut q = lock(acks);
    let dead = generation.fetch_add(1, Ordering::SeqCst);
    q.connection_lost();
    eventloop.clean(); // again: moves what reached the channel since into `pending`
    eventloop
        .pending
        .retain(|r| !matches!(r, Request::PubAck(_) | Request::PubRec(_)));
    let read = eventloop
        .state
        .events
        .drain(..)
        .filter_map(|e| match e {
            MqttEvent::Incoming(Packet::Publish(p)) => Some(p),
            _ => None,
        })
        .collect();
    (dead, read)
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
    use rumqttc::{MqttOptions, QoS};

    #[test]
    fn a_lost_connection_leaves_no_ack_for_the_next_one_and_hands_on_what_it_read() {
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
            .push_back(MqttEvent::Incoming(Packet::Publish(p)));

        let (dead, read) = forget_connection(&mut eventloop, &acks, &generation);

        assert_eq!(generation.load(Ordering::SeqCst), 4);
        assert!(eventloop.state.events.is_empty());
        assert_eq!(
            dead, 3,
            "the message keeps the dead connection's generation"
        );
        assert_eq!(
            read.iter().map(|p| p.pkid).collect::<Vec<_>>(),
            [10],
            "a message read before the failure is handed on, not dropped"
        );
        assert_eq!(eventloop.pending.len(), 1, "{:?}", eventloop.pending);
        assert!(matches!(eventloop.pending[0], Request::Subscribe(_)));
        assert!(
            lock(&acks).is_idle(),
            "the queue no longer waits for the lost nudge"
        );
    }
}
