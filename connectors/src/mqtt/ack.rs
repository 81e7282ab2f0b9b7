//! The acker: sends PUBACKs in the order messages arrived, each once its records are durable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::mpsc;

use super::ingest::AckJob;
use super::metrics::{inc, IngestMetrics};

/// An ack owed to the broker: all an ack needs is the packet id, the QoS and the connection.
#[derive(Debug, Clone, Copy)]
struct OwedAck {
    pkid: u16,
    qos: QoS,
    generation: u64,
}

/// Sends acks in order. It never blocks on the event loop's request channel: rumqttc serves
/// that channel only between reads, so while a broker floods the connection the channel can
/// fill up, and an acker waiting on it would stall the ingest task and, through it, the event
/// loop. Acks that do not fit wait here (a few bytes each) and are retried shortly.
pub(super) async fn ack_loop(
    mut rx: mpsc::Receiver<AckJob>,
    client: AsyncClient,
    generation: Arc<AtomicU64>,
    metrics: Arc<IngestMetrics>,
) {
    let mut owed: VecDeque<OwedAck> = VecDeque::new();
    let mut open = true;
    while open || !owed.is_empty() {
        send_owed(&mut owed, &client, &generation, &metrics);
        let job = if owed.is_empty() {
            rx.recv().await
        } else if open {
            tokio::select! {
                job = rx.recv() => job,
                _ = tokio::time::sleep(Duration::from_millis(2)) => continue,
            }
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        let Some(job) = job else {
            open = false;
            continue;
        };
        let (publish, gen) = match job {
            AckJob::Now(p, g) => (p, g),
            AckJob::AfterDurable {
                publish,
                generation: g,
                pending,
            } => {
                let records = pending.len() as u64;
                let mut durable = true;
                for p in pending {
                    if let Err(e) = p.durable().await {
                        tracing::error!(topic = %publish.topic, error = %e, "record not durable; the message stays unacknowledged");
                        durable = false;
                    }
                }
                if !durable {
                    continue;
                }
                inc(&metrics.messages_stored);
                metrics
                    .records_appended
                    .fetch_add(records, Ordering::Relaxed);
                metrics
                    .bytes_stored
                    .fetch_add(publish.payload.len() as u64 * records, Ordering::Relaxed);
                (publish, g)
            }
        };
        if publish.qos != QoS::AtMostOnce {
            owed.push_back(OwedAck {
                pkid: publish.pkid,
                qos: publish.qos,
                generation: gen,
            });
        }
    }
}

fn send_owed(
    owed: &mut VecDeque<OwedAck>,
    client: &AsyncClient,
    generation: &AtomicU64,
    metrics: &IngestMetrics,
) {
    while let Some(a) = owed.front().copied() {
        if a.generation != generation.load(Ordering::SeqCst) {
            inc(&metrics.stale_acks);
            owed.pop_front();
            continue;
        }
        let mut p = Publish::new("", a.qos, Vec::new());
        p.pkid = a.pkid;
        match client.try_ack(&p) {
            Ok(()) => {
                owed.pop_front();
            }
            Err(rumqttc::ClientError::TryRequest(_)) => return, // full: retry shortly
            Err(e) => {
                tracing::debug!(error = %e, "event loop gone; acks dropped (the broker redelivers)");
                owed.clear();
                return;
            }
        }
    }
}
