//! An optional global byte-rate cap shared by every export, granted highest priority first:
//! while a priority-1 export waits for bandwidth, no lower-priority export is served; exports of
//! equal priority take turns in arrival order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::stream::lock;

struct State {
    tokens: f64,
    last: Instant,
    /// Waiting exports: (priority, ticket) -> bytes wanted. The smallest key is served first.
    waiting: BTreeMap<(u8, u64), u64>,
    next_ticket: u64,
}

#[derive(Clone)]
pub struct Bandwidth {
    bytes_per_second: Option<f64>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Bandwidth {
    /// `None`: no cap.
    pub fn new(bytes_per_second: Option<u64>) -> Self {
        Bandwidth {
            bytes_per_second: bytes_per_second.map(|b| b as f64),
            state: Arc::new(Mutex::new(State {
                tokens: 0.0,
                last: Instant::now(),
                waiting: BTreeMap::new(),
                next_ticket: 0,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Waits until `bytes` may be sent by an export of `priority` (1 highest).
    pub async fn acquire(&self, priority: u8, bytes: u64) {
        let Some(rate) = self.bytes_per_second else {
            return;
        };
        // Tokens accumulate for at most one second, so a long idle link does not allow a burst
        // that ignores priorities.
        let burst = rate.max(bytes as f64);
        let key = {
            let mut st = lock(&self.state);
            st.next_ticket += 1;
            let key = (priority, st.next_ticket);
            st.waiting.insert(key, bytes);
            key
        };
        let _ticket = Ticket { bw: self, key };
        loop {
            let wait = {
                let mut st = lock(&self.state);
                let now = Instant::now();
                let elapsed = now.duration_since(st.last).as_secs_f64();
                st.tokens = (st.tokens + elapsed * rate).min(burst);
                st.last = now;
                let first = st.waiting.keys().next().copied();
                if first == Some(key) && st.tokens >= bytes as f64 {
                    st.tokens -= bytes as f64;
                    return; // the ticket leaves the line and wakes the next
                }
                if first == Some(key) {
                    Some(Duration::from_secs_f64((bytes as f64 - st.tokens) / rate))
                } else {
                    None
                }
            };
            let notified = self.changed.notified();
            match wait {
                Some(d) => {
                    let _ = tokio::time::timeout(d, notified).await;
                }
                // Not first in line: wait for the line to move (or re-check now and then, in
                // case a waiter ahead was cancelled).
                None => {
                    let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                }
            }
        }
    }
}

/// A place in the line; leaving the line (also by cancellation) lets the next one through.
struct Ticket<'a> {
    bw: &'a Bandwidth,
    key: (u8, u64),
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        lock(&self.bw.state).waiting.remove(&self.key);
        self.bw.changed.notify_waiters();
    }
}
