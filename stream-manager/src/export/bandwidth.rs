//! An optional global byte-rate cap shared by every export, granted highest priority first:
//! while a priority-1 export waits for bandwidth, no lower-priority export is served; exports of
//! equal priority take turns in arrival order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::time::lock;

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
            // Listening starts before the line is looked at: a change (a grant, a waiter
            // leaving, also by cancellation) between the look and the wait still wakes us.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let wait = {
                let mut st = lock(&self.state);
                let now = Instant::now();
                let elapsed = now.duration_since(st.last).as_secs_f64();
                st.tokens = (st.tokens + elapsed * rate).min(burst);
                st.last = now;
                if st.waiting.keys().next() != Some(&key) {
                    None // not first in line: wait for the line to move
                } else if st.tokens >= bytes as f64 {
                    st.tokens -= bytes as f64;
                    return; // the ticket leaves the line and wakes the next
                } else {
                    Some(Duration::from_secs_f64((bytes as f64 - st.tokens) / rate))
                }
            };
            match wait {
                Some(d) => {
                    let _ = tokio::time::timeout(d, changed).await;
                }
                None => changed.await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;

    type Log = Arc<Mutex<Vec<(&'static str, Duration)>>>;

    /// Starts an acquire that notes its name and time (since `t0`) once granted, and waits
    /// until it stands in line.
    async fn join_line(
        bw: &Bandwidth,
        log: &Log,
        t0: Instant,
        name: &'static str,
        priority: u8,
        bytes: u64,
    ) -> JoinHandle<()> {
        let before = lock(&bw.state).waiting.len();
        let (bw2, log) = (bw.clone(), log.clone());
        let task = tokio::spawn(async move {
            bw2.acquire(priority, bytes).await;
            lock(&log).push((name, t0.elapsed()));
        });
        let in_line = async {
            while lock(&bw.state).waiting.len() == before {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), in_line)
            .await
            .expect("the acquire never joined the line");
        task
    }

    async fn finish(tasks: Vec<JoinHandle<()>>) {
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(600), all)
            .await
            .expect("a waiter was never let through");
    }

    fn assert_at(log: &Log, want: &[(&str, u64)]) {
        let got = lock(log).clone();
        assert_eq!(
            got.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            want.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
        for ((name, at), (_, want_ms)) in got.iter().zip(want) {
            let want = Duration::from_millis(*want_ms);
            assert!(
                *at >= want && *at <= want + Duration::from_millis(5),
                "{name} went at {at:?}, expected {want:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_cap_nothing_waits() {
        let bw = Bandwidth::new(None);
        let t0 = Instant::now();
        bw.acquire(10, 1 << 40).await;
        bw.acquire(1, 1 << 40).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn under_a_cap_the_higher_priority_goes_first_though_it_came_later() {
        let bw = Bandwidth::new(Some(1000));
        let log = Log::default();
        let t0 = Instant::now();
        let low = join_line(&bw, &log, t0, "low", 9, 1000).await;
        let high = join_line(&bw, &log, t0, "high", 1, 1000).await;
        finish(vec![low, high]).await;
        assert_at(&log, &[("high", 1000), ("low", 2000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn equal_priorities_take_turns_in_arrival_order() {
        let bw = Bandwidth::new(Some(1000));
        let log = Log::default();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for name in ["a", "b", "c"] {
            tasks.push(join_line(&bw, &log, t0, name, 5, 500).await);
        }
        finish(tasks).await;
        assert_at(&log, &[("a", 500), ("b", 1000), ("c", 1500)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_lets_the_next_through() {
        let bw = Bandwidth::new(Some(1000));
        let log = Log::default();
        let t0 = Instant::now();
        let big = join_line(&bw, &log, t0, "big", 1, 5000).await;
        let next = join_line(&bw, &log, t0, "next", 2, 1000).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        big.abort();
        assert!(big.await.unwrap_err().is_cancelled());
        finish(vec![next]).await;
        // The tokens of the first second are the next waiter's: it goes at once when they are
        // there, not after the cancelled waiter's five seconds.
        assert_at(&log, &[("next", 1000)]);
        assert!(lock(&bw.state).waiting.is_empty());
    }
}
