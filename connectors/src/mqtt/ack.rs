//! Acknowledgements: PUBACKs (PUBRECs for QoS 2) leave in the order messages arrived, each once
//! its records are durable, and many at a time.
//!
//! rumqttc writes and flushes every request from its channel on its own: one `write` system call,
//! and one wake-up of the broker, per acknowledged message. Under load that costs more CPU than
//! storing the message. So the acker task hands durable acks over in batches through an
//! [`AckQueue`] it shares with the event-loop task, which writes them straight onto the
//! connection between two polls and flushes once ([`write_acks`]).
//!
//! The event loop may be parked in `poll` waiting for the broker while the broker waits for acks
//! (its in-flight window is full). So the first ack of each batch goes through rumqttc's request
//! channel as a *nudge*: rumqttc sends it, `poll` returns `Outgoing::PubAck`, and the event-loop
//! task writes the rest. While a nudge is in flight the queue is not drained, which keeps acks in
//! arrival order (MQTT 3.1.1 §4.6).
//!
//! Acks carry the connection generation they belong to; an ack for a connection that is gone is
//! dropped and counted (its packet id would be meaningless), and the broker redelivers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, EventLoop, Packet, PubAck, PubRec, Publish, QoS};
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::ingest::AckJob;
use super::metrics::{inc, IngestMetrics};

/// How long a batch of acks may take to reach the socket before the connection counts as dead.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// An ack owed to the broker: all an ack needs is the packet id, the QoS and the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OwedAck {
    pub pkid: u16,
    pub qos: QoS,
    pub generation: u64,
}

impl OwedAck {
    fn packet(self) -> Packet {
        match self.qos {
            QoS::ExactlyOnce => Packet::PubRec(PubRec::new(self.pkid)),
            _ => Packet::PubAck(PubAck::new(self.pkid)),
        }
    }
}

/// Durable acks waiting for the event-loop task, in arrival order. Pure state: no I/O.
#[derive(Debug, Default)]
pub(super) struct AckQueue {
    ready: VecDeque<OwedAck>,
    /// The packet id of the nudge rumqttc holds, if any.
    nudge_in_flight: Option<u16>,
}

impl AckQueue {
    pub fn push(&mut self, acks: impl IntoIterator<Item = OwedAck>) {
        self.ready.extend(acks);
    }

    /// The ack to send through rumqttc's channel so that the event loop wakes up, if one is
    /// needed: none while another nudge is in flight, since its arrival drains the queue anyway.
    /// Returns it and how many stale acks were dropped.
    pub fn take_nudge(&mut self, generation: u64) -> (Option<OwedAck>, u64) {
        if self.nudge_in_flight.is_some() {
            return (None, 0);
        }
        let stale = self.drop_stale(generation);
        let nudge = self.ready.pop_front();
        self.nudge_in_flight = nudge.map(|a| a.pkid);
        (nudge, stale)
    }

    /// rumqttc's channel had no room: the nudge goes back to the front, to be retried.
    pub fn nudge_refused(&mut self, nudge: OwedAck) {
        self.ready.push_front(nudge);
        self.nudge_in_flight = None;
    }

    /// The event loop reported an ack written through rumqttc: if it is the nudge, the acks
    /// behind it may follow. (Anything else would be a leftover; it must not release them.)
    pub fn nudge_sent(&mut self, pkid: u16) {
        if self.nudge_in_flight == Some(pkid) {
            self.nudge_in_flight = None;
        }
    }

    /// The connection is gone, and the event-loop task has removed any nudge rumqttc still
    /// held; without this the queue would wait for that nudge forever.
    pub fn connection_lost(&mut self) {
        self.nudge_in_flight = None;
    }

    /// Moves every ack that may be written now into `out`; returns how many stale acks were
    /// dropped. Nothing may be written while a nudge is in flight: it has to go first.
    pub fn take_ready(&mut self, generation: u64, out: &mut Vec<OwedAck>) -> u64 {
        if self.nudge_in_flight.is_some() {
            return 0;
        }
        let stale = self.drop_stale(generation);
        out.extend(self.ready.drain(..));
        stale
    }

    /// Nothing waiting and no nudge in flight.
    pub fn is_idle(&self) -> bool {
        self.nudge_in_flight.is_none() && self.ready.is_empty()
    }

    /// Generations only grow, so stale acks are always at the front.
    fn drop_stale(&mut self, generation: u64) -> u64 {
        let mut stale = 0;
        while self
            .ready
            .front()
            .is_some_and(|a| a.generation != generation)
        {
            self.ready.pop_front();
            stale += 1;
        }
        stale
    }
}

pub(super) type SharedAckQueue = Arc<Mutex<AckQueue>>;

pub(super) use ferry_stream_manager::time::lock;

/// Turns ack jobs into owed acks once their records are durable and hands them to the queue a
/// batch at a time: whenever it would otherwise wait. It never blocks on rumqttc's request
/// channel: rumqttc serves that channel only between reads, so while a broker floods the
/// connection the channel can fill up, and waiting on it would stall the ingest task and,
/// through it, the event loop.
pub(super) async fn ack_loop(
    mut rx: mpsc::Receiver<AckJob>,
    client: AsyncClient,
    queue: SharedAckQueue,
    generation: Arc<AtomicU64>,
    metrics: Arc<IngestMetrics>,
) {
    let mut acker = Acker {
        client,
        queue,
        generation,
        metrics,
        batch: Vec::new(),
        nudge_refused: false,
    };
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                acker.hand_over(); // about to wait: let the event loop send what is ready
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(job) => job,
                        None => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(2)), if acker.nudge_refused => {
                        acker.hand_over();
                        continue;
                    }
                }
            }
        };
        let AckJob {
            publish,
            generation,
            pending,
            stored,
        } = job;
        let records = pending.len() as u64;
        let mut durable = true;
        for p in pending {
            let mut wait = std::pin::pin!(p.durable());
            let result = tokio::select! {
                biased;
                r = &mut wait => r,
                () = std::future::ready(()) => {
                    acker.hand_over(); // this one needs an fsync: send what we have first
                    wait.await
                }
            };
            if let Err(e) = result {
                tracing::error!(topic = %publish.topic, error = %e, "record not durable; the message stays unacknowledged");
                durable = false;
            }
        }
        if !durable {
            continue;
        }
        let m = &acker.metrics;
        m.records_appended.fetch_add(records, Ordering::Relaxed);
        m.bytes_stored
            .fetch_add(publish.payload.len() as u64 * records, Ordering::Relaxed);
        // A message given up in some stream was counted under its reason, not as stored.
        if stored {
            inc(&m.messages_stored);
        }
        if publish.qos != QoS::AtMostOnce {
            acker.batch.push(OwedAck {
                pkid: publish.pkid,
                qos: publish.qos,
                generation,
            });
        }
    }
    // Whatever is left is written by the event-loop task before it disconnects.
    lock(&acker.queue).push(acker.batch.drain(..));
}

struct Acker {
    client: AsyncClient,
    queue: SharedAckQueue,
    generation: Arc<AtomicU64>,
    metrics: Arc<IngestMetrics>,
    batch: Vec<OwedAck>,
    /// The last nudge found rumqttc's channel full; retry shortly.
    nudge_refused: bool,
}

impl Acker {
    /// The lock is held from reading the generation until the nudge is in rumqttc's channel:
    /// the event-loop task takes the same lock to declare a connection lost and empty that
    /// channel, so a nudge is either removed with the connection or carries the new generation
    /// (and is dropped as stale). `try_ack` never blocks.
    fn hand_over(&mut self) {
        let mut q = lock(&self.queue);
        let generation = self.generation.load(Ordering::SeqCst);
        q.push(self.batch.drain(..));
        let (nudge, stale) = q.take_nudge(generation);
        self.metrics.stale_acks.fetch_add(stale, Ordering::Relaxed);
        self.nudge_refused = false;
        let Some(nudge) = nudge else { return };
        let mut p = Publish::new("", nudge.qos, Vec::new());
        p.pkid = nudge.pkid;
        match self.client.try_ack(&p) {
            Ok(()) => {}
            Err(rumqttc::ClientError::TryRequest(_)) => {
                q.nudge_refused(nudge);
                self.nudge_refused = true;
            }
            Err(e) => {
                // The event loop is gone; its task writes or drops what the queue holds.
                tracing::debug!(error = %e, "event loop gone; ack left in the queue");
                q.nudge_refused(nudge);
            }
        }
    }
}

/// Writes every ack the queue allows onto the connection, with one flush. Called by the
/// event-loop task between polls, so nothing else touches the connection meanwhile. Acks of a
/// connection that is gone are dropped and counted; a write error means the connection is.
pub(super) async fn write_acks(
    eventloop: &mut EventLoop,
    queue: &Mutex<AckQueue>,
    buf: &mut Vec<OwedAck>,
    generation: u64,
    metrics: &IngestMetrics,
) -> Result<(), ConnectionError> {
    let stale = lock(queue).take_ready(generation, buf);
    metrics.stale_acks.fetch_add(stale, Ordering::Relaxed);
    if buf.is_empty() {
        return Ok(());
    }
    let Some(network) = eventloop.network.as_mut() else {
        let n = buf.len() as u64;
        buf.clear();
        metrics.stale_acks.fetch_add(n, Ordering::Relaxed);
        return Ok(());
    };
    // Writing can flush too (past tokio-util's 8 KiB buffer), so the timeout covers it all: a
    // broker that stops reading must not park this task, which also runs the keep-alive.
    let write = async {
        for ack in buf.drain(..) {
            network.write(ack.packet()).await?;
        }
        network.flush().await
    };
    match tokio::time::timeout(FLUSH_TIMEOUT, write).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ConnectionError::FlushTimeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(pkid: u16, generation: u64) -> OwedAck {
        OwedAck {
            pkid,
            qos: QoS::AtLeastOnce,
            generation,
        }
    }

    fn ready(q: &mut AckQueue, generation: u64) -> Vec<u16> {
        let mut out = Vec::new();
        q.take_ready(generation, &mut out);
        out.iter().map(|a| a.pkid).collect()
    }

    #[test]
    fn the_nudge_goes_first_and_the_rest_waits_for_it() {
        let mut q = AckQueue::default();
        q.push((1..=4).map(|p| ack(p, 1)));
        assert_eq!(q.take_nudge(1), (Some(ack(1, 1)), 0));
        assert!(
            ready(&mut q, 1).is_empty(),
            "nothing may overtake the nudge"
        );
        q.push([ack(5, 1)]);
        assert_eq!(q.take_nudge(1), (None, 0), "one nudge at a time");
        q.nudge_sent(7);
        assert!(
            ready(&mut q, 1).is_empty(),
            "a leftover ack is not the nudge"
        );
        q.nudge_sent(1);
        assert_eq!(ready(&mut q, 1), vec![2, 3, 4, 5]);
        assert!(q.is_idle());
    }

    #[test]
    fn a_refused_nudge_goes_back_to_the_front() {
        let mut q = AckQueue::default();
        q.push([ack(1, 1), ack(2, 1)]);
        let (nudge, _) = q.take_nudge(1);
        q.nudge_refused(nudge.unwrap());
        assert_eq!(ready(&mut q, 1), vec![1, 2]);
    }

    #[test]
    fn acks_of_a_closed_connection_are_dropped_and_counted() {
        let mut q = AckQueue::default();
        q.push([ack(1, 1), ack(2, 1), ack(3, 2)]);
        let mut out = Vec::new();
        assert_eq!(q.take_ready(2, &mut out), 2);
        assert_eq!(out, vec![ack(3, 2)]);
        q.push([ack(4, 2), ack(5, 3)]);
        assert_eq!(q.take_nudge(3), (Some(ack(5, 3)), 1));
    }

    #[test]
    fn a_lost_connection_releases_the_queue_from_its_nudge() {
        let mut q = AckQueue::default();
        q.push([ack(1, 1), ack(2, 1)]);
        let _ = q.take_nudge(1);
        q.push([ack(3, 2)]);
        q.connection_lost();
        assert_eq!(ready(&mut q, 2), vec![3]);
    }
}
