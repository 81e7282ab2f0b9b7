//! The life of one broker connection as a pure state machine: connecting, connected, waiting
//! out a reconnect delay, draining on shutdown. No I/O and no clock of its own: the event-loop
//! task (event_loop.rs) feeds it what happened and when, and carries out the actions it returns.
//!
//! ```text
//!            ConnectAck                      ConnectionError
//! Connecting ─────────▶ Connected{since} ──────────────────▶ Backoff{until}
//!     ▲                                                          │
//!     └──────────────────────── Tick (until passed) ─────────────┘
//! ShutdownRequested (any state): draining, until DrainDone or the drain deadline ──▶ Stopped
//! ```
//! Draining is a mode beside the connection's state, not a state of its own: a connection lost
//! while draining is still retried, so that the acks that became durable can be sent, until the
//! drain deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// A connection that lasted this long resets the reconnect backoff. Shorter ones do not: a
/// broker that accepts and then drops the connection straight away must not be hammered at the
/// shortest delay.
pub(super) const STABLE_CONNECTION: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Waiting for a CONNACK. `retrying`: an attempt has failed since the last connection, so
    /// further failures are no news (logged at debug level).
    Connecting {
        retrying: bool,
    },
    Connected {
        since: Instant,
    },
    /// Waiting out a reconnect delay; nothing is polled meanwhile.
    Backoff {
        until: Instant,
    },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    ConnectAck {
        session_present: bool,
    },
    /// The connection failed or was lost (a failed ack write included).
    ConnectionError,
    /// Time passed: a reconnect delay or the drain deadline may be over.
    Tick,
    ShutdownRequested,
    /// The ingest and ack tasks have finished: every ack that will ever be owed is queued.
    DrainDone,
}

/// A change worth one log line (and, for some, a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Connected {
        session_present: bool,
    },
    /// A connection that had been up was lost.
    Lost,
    /// The first attempt since start-up failed.
    Unreachable,
    /// Another attempt failed; no news (debug level).
    RetryFailed,
    /// The drain deadline passed before every ack was sent.
    DrainGaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Log(Change),
    /// Queue the subscriptions.
    Subscribe,
    /// Nothing rumqttc still holds for the dead connection may reach the next one.
    ForgetConnection,
    /// Stop taking messages: the ingest task finishes what it has, then the ack task does.
    StopIngest,
    /// Send the acks that are durable and a DISCONNECT, then stop.
    Disconnect,
    /// Stop; there is no connection to close.
    Stop,
}

#[derive(Debug)]
pub(super) struct Connection {
    state: State,
    backoff: Backoff,
    /// Whether the subscriptions were ever queued: the first connection subscribes even when
    /// the broker kept the session, in case the configuration changed.
    subscribed_once: bool,
    drain_timeout: Duration,
    drain_deadline: Option<Instant>,
}

impl Connection {
    pub fn new(reconnect_min: Duration, reconnect_max: Duration, drain_timeout: Duration) -> Self {
        Connection {
            state: State::Connecting { retrying: false },
            backoff: Backoff::new(reconnect_min, reconnect_max),
            subscribed_once: false,
            drain_timeout,
            drain_deadline: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Set once shutdown was requested.
    pub fn drain_deadline(&self) -> Option<Instant> {
        self.drain_deadline
    }

    /// When the event loop must deliver a `Tick` if nothing else happens first.
    pub fn wake_at(&self) -> Option<Instant> {
        let until = match self.state {
            State::Backoff { until } => Some(until),
            _ => None,
        };
        match (until, self.drain_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        if self.state == State::Stopped {
            return Vec::new();
        }
        match event {
            Event::ConnectAck { session_present } => self.connected(session_present, now),
            Event::ConnectionError => self.failed(now),
            Event::Tick => self.tick(now),
            Event::ShutdownRequested => {
                if self.drain_deadline.is_some() {
                    return Vec::new();
                }
                self.drain_deadline = Some(now + self.drain_timeout);
                vec![Action::StopIngest]
            }
            Event::DrainDone => vec![self.stop()],
        }
    }

    fn connected(&mut self, session_present: bool, now: Instant) -> Vec<Action> {
        self.state = State::Connected { since: now };
        let mut actions = vec![Action::Log(Change::Connected { session_present })];
        // A broker that kept our session kept our subscriptions.
        if !self.subscribed_once || !session_present {
            actions.push(Action::Subscribe);
            self.subscribed_once = true;
        }
        actions
    }

    fn failed(&mut self, now: Instant) -> Vec<Action> {
        let change = match self.state {
            State::Connected { since } => {
                if now.duration_since(since) >= STABLE_CONNECTION {
                    self.backoff.reset();
                }
                Change::Lost
            }
            State::Connecting { retrying: false } => Change::Unreachable,
            State::Connecting { retrying: true } | State::Backoff { .. } | State::Stopped => {
                Change::RetryFailed
            }
        };
        self.state = State::Backoff {
            until: now + self.backoff.next_delay(),
        };
        vec![Action::ForgetConnection, Action::Log(change)]
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        if self.drain_deadline.is_some_and(|d| now >= d) {
            return vec![Action::Log(Change::DrainGaveUp), self.stop()];
        }
        if let State::Backoff { until } = self.state {
            if now >= until {
                self.state = State::Connecting { retrying: true };
            }
        }
        Vec::new()
    }

    fn stop(&mut self) -> Action {
        let connected = matches!(self.state, State::Connected { .. });
        self.state = State::Stopped;
        if connected {
            Action::Disconnect
        } else {
            Action::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(1000);
    const DRAIN: Duration = Duration::from_secs(3);

    /// The machine and a clock of the test's own: the machine reads no clock, so the test
    /// decides what time it is (no paused runtime needed).
    struct Harness {
        c: Connection,
        now: Instant,
    }

    impl Harness {
        fn new() -> Self {
            Self::with(MIN, MAX)
        }

        fn with(min: Duration, max: Duration) -> Self {
            Harness {
                c: Connection::new(min, max, DRAIN),
                now: Instant::now(),
            }
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
        }

        fn handle(&mut self, event: Event) -> Vec<Action> {
            self.c.handle(event, self.now)
        }

        fn connect(&mut self, session_present: bool) -> Vec<Action> {
            self.handle(Event::ConnectAck { session_present })
        }

        /// Fails the connection now; returns the reconnect delay the machine chose.
        fn fail(&mut self) -> Duration {
            let actions = self.handle(Event::ConnectionError);
            assert_eq!(actions[0], Action::ForgetConnection);
            match self.c.state() {
                State::Backoff { until } => until - self.now,
                s => panic!("not backing off: {s:?}"),
            }
        }

        /// Lets the reconnect delay pass, as the event loop does.
        fn wait_out_backoff(&mut self) {
            let wake = self.c.wake_at().expect("a backoff has a wake-up time");
            self.now = wake;
            assert!(self.handle(Event::Tick).is_empty());
            assert_eq!(self.c.state(), State::Connecting { retrying: true });
        }
    }

    fn assert_in_band(delay: Duration, step: Duration) {
        assert!(
            delay >= step / 2 && delay <= step,
            "{delay:?} outside [{:?}, {step:?}]",
            step / 2
        );
    }

    #[test]
    fn a_broker_that_drops_at_once_gets_growing_delays() {
        let mut h = Harness::new();
        for step in [100, 200, 400, 800, 1000, 1000] {
            h.connect(true);
            h.advance(Duration::from_millis(10));
            assert_in_band(h.fail(), Duration::from_millis(step));
            h.wait_out_backoff();
        }
    }

    #[test]
    fn a_connection_that_lasted_five_seconds_resets_the_backoff() {
        let mut h = Harness::new();
        for _ in 0..4 {
            h.fail();
            h.wait_out_backoff();
        }
        h.connect(true);
        h.advance(STABLE_CONNECTION - Duration::from_millis(1));
        assert_in_band(h.fail(), Duration::from_millis(1000));
        h.wait_out_backoff();
        h.connect(true);
        h.advance(STABLE_CONNECTION);
        assert_in_band(h.fail(), MIN);
    }

    #[test]
    fn failures_are_logged_once_per_state_change() {
        let mut h = Harness::new();
        let log = |h: &mut Harness| h.handle(Event::ConnectionError)[1];
        assert_eq!(log(&mut h), Action::Log(Change::Unreachable));
        h.wait_out_backoff();
        assert_eq!(log(&mut h), Action::Log(Change::RetryFailed));
        h.wait_out_backoff();
        assert_eq!(
            h.connect(false)[0],
            Action::Log(Change::Connected {
                session_present: false
            })
        );
        assert_eq!(log(&mut h), Action::Log(Change::Lost));
        h.wait_out_backoff();
        assert_eq!(log(&mut h), Action::Log(Change::RetryFailed));
    }

    #[test]
    fn subscriptions_are_renewed_only_when_the_session_was_not_kept() {
        let mut h = Harness::new();
        let subscribes = |a: &[Action]| a.contains(&Action::Subscribe);
        assert!(
            subscribes(&h.connect(true)),
            "the first connection subscribes even on a kept session (the config may have changed)"
        );
        for (session_present, want) in [(true, false), (false, true), (true, false)] {
            h.fail();
            h.wait_out_backoff();
            assert_eq!(subscribes(&h.connect(session_present)), want);
        }
    }

    #[test]
    fn shutdown_drains_then_disconnects() {
        let mut h = Harness::new();
        h.connect(true);
        assert_eq!(h.handle(Event::ShutdownRequested), vec![Action::StopIngest]);
        let deadline = h.now + DRAIN;
        assert_eq!(h.c.drain_deadline(), Some(deadline));
        assert_eq!(h.c.wake_at(), Some(deadline));
        assert!(h.handle(Event::ShutdownRequested).is_empty(), "once");
        h.advance(Duration::from_secs(1));
        assert!(h.handle(Event::Tick).is_empty());
        assert!(matches!(h.c.state(), State::Connected { .. }));
        assert_eq!(h.handle(Event::DrainDone), vec![Action::Disconnect]);
        assert_eq!(h.c.state(), State::Stopped);
        h.advance(DRAIN);
        assert!(h.handle(Event::Tick).is_empty(), "stopped for good");
    }

    #[test]
    fn a_drain_that_runs_out_of_time_gives_up_and_still_disconnects() {
        let mut h = Harness::new();
        h.connect(true);
        h.handle(Event::ShutdownRequested);
        h.advance(DRAIN - Duration::from_millis(1));
        assert!(h.handle(Event::Tick).is_empty());
        h.advance(Duration::from_millis(1));
        assert_eq!(
            h.handle(Event::Tick),
            vec![Action::Log(Change::DrainGaveUp), Action::Disconnect]
        );
    }

    #[test]
    fn a_connection_lost_while_draining_is_retried_until_the_deadline() {
        let two = Duration::from_secs(2);
        let mut h = Harness::with(two, two);
        h.connect(true);
        h.handle(Event::ShutdownRequested);
        let deadline = h.now + DRAIN;
        h.fail();
        h.wait_out_backoff(); // 1 to 2 s
        h.connect(true);
        h.advance(Duration::from_secs(1));
        h.fail(); // 1 to 2 s more: past the deadline
        assert_eq!(
            h.c.wake_at(),
            Some(deadline),
            "the deadline cuts the delay short"
        );
        h.now = deadline;
        assert_eq!(
            h.handle(Event::Tick),
            vec![Action::Log(Change::DrainGaveUp), Action::Stop],
            "no connection: nothing to disconnect"
        );
    }

    #[test]
    fn shutdown_while_waiting_to_reconnect_stops_once_drained() {
        let mut h = Harness::new();
        h.fail();
        assert_eq!(h.handle(Event::ShutdownRequested), vec![Action::StopIngest]);
        assert_eq!(h.handle(Event::DrainDone), vec![Action::Stop]);
    }
}
