//! Group commit. Appenders write to the page cache and raise a flag; one syncer thread per file
//! stream takes every file written since its last round, fsyncs them (and the directory when a
//! segment was created or removed), then publishes the new durable end. While one fsync runs,
//! more appends pile up and the next round covers them all: one fsync per round, not per record.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::log::SyncWork;
use crate::storage::FileSystem;
use crate::stream::{lock, Inner, Log};

#[derive(Debug, Default)]
pub(crate) struct SyncFlags {
    requested: bool,
    shutdown: bool,
}

pub(crate) fn request_sync(inner: &Inner) {
    let already = std::mem::replace(&mut lock(&inner.sync_flags).requested, true);
    // A request still pending will be served by the next round anyway: no wake-up needed.
    if !already {
        inner.sync_cv.notify_one();
    }
}

pub(crate) fn stop_syncer(inner: &Inner) {
    lock(&inner.sync_flags).shutdown = true;
    inner.sync_cv.notify_one();
}

pub(crate) fn syncer_loop(inner: &Inner) {
    loop {
        {
            let mut flags = lock(&inner.sync_flags);
            while !flags.requested && !flags.shutdown {
                flags = inner.sync_cv.wait(flags).unwrap_or_else(|p| p.into_inner());
            }
            let stop = flags.shutdown;
            flags.requested = false;
            if stop {
                drop(flags);
                sync_round(inner);
                return;
            }
        }
        sync_round(inner);
    }
}

/// One round: take what was written, fsync it, publish. Rounds are serialised (`sync_lock`) so a
/// round can never publish a durable end that covers files another round has yet to fsync.
pub(crate) fn sync_round(inner: &Inner) {
    let _round = lock(&inner.sync_lock);
    let (work, fs) = {
        let mut st = lock(&inner.state);
        if st.failed.is_some() {
            return;
        }
        match &mut st.log {
            Log::File(l) => (l.take_sync_work(), l.fs().clone()),
            Log::Memory(_) => return,
        }
    };
    run_sync(inner, &*fs, work);
}

/// Fsyncs the files of `work` and publishes the durable end, or marks the stream failed: after a
/// failed fsync the kernel may have dropped the dirty pages, so nothing written since the last
/// good round can be promised, and the stream refuses writes until it is reopened.
fn run_sync(inner: &Inner, fs: &dyn FileSystem, work: SyncWork) {
    let result = work
        .files
        .iter()
        .try_for_each(|f| f.sync_data())
        .and_then(|_| work.dir.as_deref().map_or(Ok(()), |d| fs.sync_dir(d)));
    match result {
        Ok(()) => {
            lock(&inner.state).counters.sync_rounds += 1;
            inner.progress.send_if_modified(|p| {
                let advance = work.upto > p.durable_end;
                p.durable_end = p.durable_end.max(work.upto);
                advance
            });
        }
        Err(e) => {
            let reason = format!("fsync failed: {e}");
            tracing::error!(stream = %inner.name, error = %e, "fsync failed; the stream refuses writes until reopened");
            lock(&inner.state).failed = Some(reason.clone());
            inner
                .progress
                .send_modify(|p| p.failed = Some(reason.into()));
        }
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
