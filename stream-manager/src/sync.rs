//! Group commit. Appenders write to the page cache and ask for a round; one syncer thread per
//! file stream takes every file written since its last round, does the file-system work that
//! rolls and retention left (see log/rotation.rs), fsyncs the files (and the directory when a
//! segment was created or removed), then publishes the new durable end. While one round runs,
//! more appends pile up and the next round covers them all: one fsync per round, not per
//! record. A `flush_on_write` append asks for a round of its own instead and is acknowledged
//! only after that round. Every fsync, rename and removal runs on this thread, never on an
//! appender's (which may be an async runtime worker).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::stream::{lock, Inner, Log};

/// The syncer's requests: a pure state machine, driven by [`syncer_loop`].
#[derive(Debug, Default)]
pub(crate) struct SyncFlags {
    /// Something was written (or dropped) for group commit since the last round started.
    group: bool,
    /// Rounds owed to `flush_on_write` appends, one each.
    owed: u64,
    /// Own-round tickets handed out, and served by the rounds started so far.
    issued: u64,
    served: u64,
    shutdown: bool,
}

/// A round for the syncer to run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Round {
    /// Own-round tickets up to this one are served when the round succeeds.
    serves_upto: u64,
    /// The round run at shutdown; the syncer stops after it.
    last: bool,
}

impl SyncFlags {
    /// Asks for a group-commit round. True when the syncer may be asleep and must be woken.
    fn request_group(&mut self) -> bool {
        let wake = !self.pending();
        self.group = true;
        wake
    }

    /// Asks for a round of its own: returns its ticket, and whether to wake the syncer.
    fn request_own(&mut self) -> (u64, bool) {
        let wake = !self.pending();
        self.owed += 1;
        self.issued += 1;
        (self.issued, wake)
    }

    fn pending(&self) -> bool {
        self.group || self.owed > 0 || self.shutdown
    }

    /// The next round, or `None` to sleep. A round covers everything written before it starts,
    /// so it answers every group request made so far; own rounds are served one per round
    /// (the fsync count `flush_on_write` promises), and the last round serves them all.
    fn next_round(&mut self) -> Option<Round> {
        if self.shutdown {
            self.group = false;
            self.owed = 0;
            self.served = self.issued;
            return Some(Round {
                serves_upto: self.served,
                last: true,
            });
        }
        if !self.group && self.owed == 0 {
            return None;
        }
        self.group = false;
        if self.owed > 0 {
            self.owed -= 1;
            self.served += 1;
        }
        Some(Round {
            serves_upto: self.served,
            last: false,
        })
    }
}

/// Asks for a group-commit round (an append, or retention that dropped segments).
pub(crate) fn request_sync(inner: &Inner) {
    // A request still pending will be served by the next round anyway: no wake-up needed.
    if lock(&inner.sync_flags).request_group() {
        inner.sync_cv.notify_one();
    }
}

/// Asks for a round of its own for a `flush_on_write` append; returns the ticket to wait for.
pub(crate) fn request_own_round(inner: &Inner) -> u64 {
    let (ticket, wake) = lock(&inner.sync_flags).request_own();
    if wake {
        inner.sync_cv.notify_one();
    }
    ticket
}

pub(crate) fn stop_syncer(inner: &Inner) {
    lock(&inner.sync_flags).shutdown = true;
    inner.sync_cv.notify_one();
}

pub(crate) fn syncer_loop(inner: &Inner) {
    loop {
        let round = {
            let mut flags = lock(&inner.sync_flags);
            loop {
                if let Some(round) = flags.next_round() {
                    break round;
                }
                flags = inner.sync_cv.wait(flags).unwrap_or_else(|p| p.into_inner());
            }
        };
        sync_round(inner, round.serves_upto);
        if round.last {
            discard_spare(inner);
            return;
        }
        make_spare(inner);
    }
}

/// One round: take what was written, do the owed file work and the fsyncs, publish. Only the
/// syncer runs rounds, one at a time, so a round never publishes a durable end that covers
/// files another round has yet to fsync.
fn sync_round(inner: &Inner, serves_upto: u64) {
    let (work, fs, failed) = {
        let mut st = lock(&inner.state);
        let failed = st.failed.is_some();
        match &mut st.log {
            Log::File(l) => (l.take_sync_work(), l.fs().clone(), failed),
            Log::Memory(_) => return,
        }
    };
    if failed {
        // Nothing more can be promised, but retention still removes what it dropped.
        return work.remove_dropped(&inner.name, &*fs);
    }
    if let Err(e) = work.perform(&inner.name, &*fs) {
        return mark_failed(inner, &e);
    }
    // Before publishing, so that describe is exact for every acknowledged append.
    let found = work.probe.as_ref().and_then(|p| match p.read() {
        Ok(found) => Some((p, found)),
        Err(e) => {
            tracing::warn!(stream = %inner.name, error = %e, "could not read the oldest record's timestamp");
            None
        }
    });
    {
        let mut st = lock(&inner.state);
        st.counters.sync_rounds += 1;
        if let (Some((probe, found)), Log::File(l)) = (found, &mut st.log) {
            l.settle_oldest(probe, found);
        }
    }
    inner.progress.send_if_modified(|p| {
        let advance = work.upto > p.durable_end || serves_upto > p.own_rounds;
        p.durable_end = p.durable_end.max(work.upto);
        p.own_rounds = p.own_rounds.max(serves_upto);
        advance
    });
}

/// After a failed round (an fsync, or naming a new segment) the kernel may have dropped the
/// dirty pages, so nothing written since the last good round can be promised: the stream
/// refuses writes until it is reopened.
fn mark_failed(inner: &Inner, e: &std::io::Error) {
    let reason = format!("fsync failed: {e}");
    tracing::error!(stream = %inner.name, error = %e, "fsync failed; the stream refuses writes until reopened");
    lock(&inner.state).failed = Some(reason.clone());
    inner
        .progress
        .send_modify(|p| p.failed = Some(reason.into()));
}

/// Makes the files of the next roll ahead of time, without holding the stream's lock.
fn make_spare(inner: &Inner) {
    let plan = {
        let mut st = lock(&inner.state);
        if st.failed.is_some() || st.deleted {
            return;
        }
        match &mut st.log {
            Log::File(l) => l.spare_wanted(),
            Log::Memory(_) => None,
        }
    };
    let Some(plan) = plan else { return };
    match plan.create() {
        Ok(spare) => {
            if let Log::File(l) = &mut lock(&inner.state).log {
                l.install_spare(spare);
            }
        }
        Err(e) => {
            tracing::debug!(stream = %inner.name, error = %e, "could not make a spare segment; the next roll makes its own")
        }
    }
}

fn discard_spare(inner: &Inner) {
    let taken = match &mut lock(&inner.state).log {
        Log::File(l) => l.take_spare().map(|s| (s, l.fs().clone())),
        Log::Memory(_) => None,
    };
    if let Some((spare, fs)) = taken {
        spare.discard(&*fs);
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives a future to completion on the current thread. The futures used here (tokio's watch
/// channel) need no runtime, so blocking callers need not own one.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_requests_made_during_a_round_share_the_next_one() {
        let mut f = SyncFlags::default();
        assert_eq!(f.next_round(), None);
        assert!(f.request_group(), "an idle syncer is woken");
        assert!(
            !f.request_group(),
            "a pending request needs no second wake-up"
        );
        assert_eq!(f.next_round().map(|r| r.serves_upto), Some(0));
        assert_eq!(
            f.next_round(),
            None,
            "both requests were served by one round"
        );
    }

    #[test]
    fn every_own_round_request_gets_a_round_of_its_own() {
        let mut f = SyncFlags::default();
        let tickets: Vec<u64> = (0..3).map(|_| f.request_own().0).collect();
        assert_eq!(tickets, vec![1, 2, 3]);
        f.request_group();
        let served: Vec<u64> =
            std::iter::from_fn(|| f.next_round().map(|r| r.serves_upto)).collect();
        assert_eq!(
            served,
            vec![1, 2, 3],
            "three rounds, the group request rode along"
        );
    }

    #[test]
    fn the_last_round_serves_every_ticket_still_owed() {
        let mut f = SyncFlags::default();
        f.request_own();
        f.request_own();
        f.shutdown = true;
        assert_eq!(
            f.next_round(),
            Some(Round {
                serves_upto: 2,
                last: true
            })
        );
    }
}
