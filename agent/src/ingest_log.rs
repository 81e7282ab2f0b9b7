//! The periodic ingestion log line: each broker connection's counters, with the rate since the
//! last line, so an operator sees ingestion progress without a metrics system. A connection
//! whose counters did not change since its last line stays quiet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_connectors::mqtt::{IngestMetrics, IngestSnapshot};
use tokio_util::sync::CancellationToken;

/// What a connection's last line said, to decide whether a new one is due.
struct Last {
    snapshot: IngestSnapshot,
    at: Instant,
}

/// Logs every `every` until `stop`.
pub async fn run(
    metrics: Vec<(String, Arc<IngestMetrics>)>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut last: Vec<Last> = metrics
        .iter()
        .map(|_| Last {
            snapshot: IngestSnapshot::default(),
            at: Instant::now(),
        })
        .collect();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for ((name, m), last) in metrics.iter().zip(last.iter_mut()) {
            let s = m.snapshot();
            if !changed(&last.snapshot, &s) {
                continue;
            }
            let stored = s.messages_stored - last.snapshot.messages_stored;
            let rate = stored as f64 / last.at.elapsed().as_secs_f64();
            tracing::info!(
                broker = %name,
                connected = s.connected,
                received = s.messages_received,
                stored = s.messages_stored,
                rate_per_s = rate.round() as u64,
                rejected = s.rejected_oversized + s.rejected_unroutable + s.rejected_invalid,
                dropped_qos0 = s.dropped_qos0,
                dropped_full = s.dropped_full,
                diverted = s.diverted,
                backpressure_waits = s.backpressure_waits,
                "ingestion"
            );
            *last = Last {
                snapshot: s,
                at: Instant::now(),
            };
        }
    }
}

/// Whether anything worth a line happened: a counter moved or the connection state changed.
fn changed(before: &IngestSnapshot, now: &IngestSnapshot) -> bool {
    before != now
}

/// The one summary line per connection at shutdown.
pub fn summary(metrics: &[(String, Arc<IngestMetrics>)]) {
    for (name, m) in metrics {
        let s = m.snapshot();
        tracing::info!(
            broker = %name,
            received = s.messages_received,
            stored = s.messages_stored,
            oversized = s.rejected_oversized,
            unroutable = s.rejected_unroutable,
            invalid = s.rejected_invalid,
            dropped_full = s.dropped_full,
            diverted = s.diverted,
            dropped_qos0 = s.dropped_qos0,
            backpressure_waits = s.backpressure_waits,
            stale_acks = s.stale_acks,
            "ingestion summary"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_after_a_rejected_message_logs_nothing_more() {
        // One message received and rejected: received (1) never equals stored (0) again, which
        // used to make every interval log a line.
        let after = IngestSnapshot {
            connected: true,
            messages_received: 1,
            rejected_unroutable: 1,
            ..Default::default()
        };
        assert!(changed(&IngestSnapshot::default(), &after));
        assert!(!changed(&after, &after), "an idle interval must stay quiet");
    }

    #[test]
    fn a_lost_connection_is_worth_a_line_even_without_traffic() {
        let before = IngestSnapshot {
            connected: true,
            ..Default::default()
        };
        let after = IngestSnapshot {
            connected: false,
            disconnects: 1,
            ..before
        };
        assert!(changed(&before, &after));
    }
}
