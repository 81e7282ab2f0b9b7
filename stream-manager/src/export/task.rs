//! One export's loop: runs what [`ExportMachine`] decides (reads, bandwidth grants, sends,
//! the retry wait, reachability probes) side by side, feeds their outcomes back one at a time,
//! stores checkpoints, and publishes the status after each step. Everything under way ends on
//! shutdown, in one place (the `select!` of the loop); only a commit is finished first.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::machine::{Action, BatchShape, Event, ExportMachine, PROBE_INTERVAL};
use super::status::ExportStatusHandle;
use super::{Bandwidth, Batch, Sink};
use crate::definition::ExportDefinition;
use crate::error::Error;
use crate::manager::StreamManager;
use crate::stream::{ReadOptions, Stream};
use crate::time::lock;

/// Runs one export until `shutdown` completes or the stream goes away.
pub async fn run_export(
    manager: Arc<StreamManager>,
    stream_name: String,
    def: ExportDefinition,
    sink: Arc<dyn Sink>,
    bandwidth: Bandwidth,
    status: ExportStatusHandle,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut machine = ExportMachine::new(&stream_name, &def, sink.clone());
    let publish = |m: &ExportMachine| *lock(&status) = m.status().clone();
    publish(&machine);
    let started = manager.stream(&stream_name).and_then(|stream| {
        let checkpoint = start_position(&manager, &stream, &stream_name, &def)?;
        Ok((stream, checkpoint))
    });
    let (stream, checkpoint) = match started {
        Ok(s) => s,
        Err(e) => {
            machine.stop(Some(e.to_string()));
            return publish(&machine);
        }
    };
    let reader = Reader {
        shape: BatchShape::new(&def, sink.limits()),
        stream,
        sink: sink.clone(),
    };
    let mut io = UnderWay::new(&reader, &*sink, &bandwidth, def.priority);
    let mut actions = VecDeque::from(machine.start(checkpoint));
    loop {
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Pause => {
                    publish(&machine);
                    drop(io); // batches still in flight are given up: the checkpoint is before them
                    return shutdown.await;
                }
                Action::Stop => return publish(&machine),
                // Not cut short by shutdown: it is quick, and a restart resends less for it.
                Action::Commit(next) => {
                    commit(&manager, &stream_name, &def.identifier, next).await;
                    actions.extend(machine.handle(Event::Committed));
                }
                other => io.start(other, &machine),
            }
        }
        publish(&machine);
        let event = tokio::select! {
            event = poll_fn(|cx| io.poll_event(cx)) => event,
            () = shutdown.as_mut() => {
                machine.stop(None);
                return publish(&machine);
            }
        };
        actions.extend(machine.handle(event));
    }
}

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the export has under way, each reporting an [`Event`] when done.
struct UnderWay<'a> {
    reader: &'a Reader,
    sink: &'a dyn Sink,
    bandwidth: &'a Bandwidth,
    priority: u8,
    read: Option<Pending<'a, Event>>,
    acquire: Option<Pending<'a, ()>>,
    sends: Vec<Pending<'a, Event>>,
    wait: Option<Pin<Box<Sleep>>>,
    probe: Option<Pending<'a, Event>>,
}

impl<'a> UnderWay<'a> {
    fn new(reader: &'a Reader, sink: &'a dyn Sink, bandwidth: &'a Bandwidth, priority: u8) -> Self {
        UnderWay {
            reader,
            sink,
            bandwidth,
            priority,
            read: None,
            acquire: None,
            sends: Vec::new(),
            wait: None,
            probe: None,
        }
    }

    fn start(&mut self, action: Action, machine: &ExportMachine) {
        match action {
            Action::StartRead { from, after } => {
                let reader = self.reader;
                self.read = Some(Box::pin(async move {
                    if !after.is_zero() {
                        tokio::time::sleep(after).await;
                    }
                    read_outcome(reader.start(from)).await
                }));
            }
            Action::Acquire { bytes } => {
                self.acquire = Some(Box::pin(self.bandwidth.acquire(self.priority, bytes)));
            }
            Action::Send { from } => {
                let Some(batch) = machine.batch(from) else {
                    return tracing::error!(from, "export asked to send a batch it does not hold");
                };
                let sink = self.sink;
                self.sends.push(Box::pin(async move {
                    match sink.send(&batch).await {
                        Ok(()) => Event::Sent { from },
                        Err(error) => Event::SendFailed { from, error },
                    }
                }));
            }
            Action::Wait(d) => self.wait = Some(Box::pin(tokio::time::sleep(d))),
            Action::Probe { after } => {
                self.probe = self.sink.probe().map(|probe| -> Pending<'a, Event> {
                    Box::pin(async move {
                        tokio::time::sleep(after).await;
                        let started = Instant::now();
                        let answer = tokio::time::timeout(PROBE_INTERVAL, probe).await;
                        Event::Probed {
                            reachable: answer.unwrap_or(false),
                            took: started.elapsed(),
                        }
                    })
                });
            }
            Action::Commit(_) | Action::Pause | Action::Stop => {
                tracing::error!(?action, "export action run out of turn");
            }
        }
    }

    /// The first outcome that is there.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Some(event) = poll_slot(&mut self.read, cx) {
            return Poll::Ready(event);
        }
        if poll_slot(&mut self.acquire, cx).is_some() {
            return Poll::Ready(Event::Acquired);
        }
        for i in 0..self.sends.len() {
            if let Poll::Ready(event) = self.sends[i].as_mut().poll(cx) {
                drop(self.sends.swap_remove(i));
                return Poll::Ready(event);
            }
        }
        if poll_slot(&mut self.wait, cx).is_some() {
            return Poll::Ready(Event::Waited);
        }
        match poll_slot(&mut self.probe, cx) {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// Polls the future in `slot`, if any, and empties the slot once it is done.
fn poll_slot<F: Future + Unpin>(slot: &mut Option<F>, cx: &mut Context<'_>) -> Option<F::Output> {
    let Poll::Ready(out) = Pin::new(slot.as_mut()?).poll(cx) else {
        return None;
    };
    *slot = None;
    Some(out)
}

/// Reads a batch and encodes its request body, in a task of its own so that the next batch is
/// read and encoded while the current one is sent.
struct Reader {
    stream: Stream,
    sink: Arc<dyn Sink>,
    shape: BatchShape,
}

type ReadTask = JoinHandle<Result<Batch, Error>>;

impl Reader {
    fn start(&self, from: u64) -> ReadTask {
        let stream = self.stream.clone();
        let sink = self.sink.clone();
        let BatchShape {
            max_records,
            max_bytes,
            interval,
        } = self.shape;
        // With a full batch already stored (a backlog), reading and encoding happen on a
        // blocking thread in one hop; otherwise the read waits (without polling) for records.
        if stream.durable_end().saturating_sub(from) >= max_records as u64 {
            tokio::task::spawn_blocking(move || {
                let records = stream.read_now(from, max_records, max_bytes)?;
                let body = sink.encode(&records);
                Ok(Batch { records, body })
            })
        } else {
            tokio::spawn(async move {
                let opts = ReadOptions {
                    from,
                    min_count: max_records,
                    max_count: max_records,
                    max_bytes,
                    timeout: interval,
                };
                let records = stream.read(opts).await?;
                let body = sink.encode(&records);
                Ok(Batch { records, body })
            })
        }
    }
}

async fn read_outcome(read: ReadTask) -> Event {
    match read.await {
        Ok(Ok(batch)) => Event::BatchRead(batch),
        Ok(Err(e)) => Event::ReadFailed(e),
        Err(e) => Event::ReadFailed(Error::Internal(format!("export read task failed: {e}"))),
    }
}

/// The checkpoint, else `start_sequence_number`, else the oldest record stored.
fn start_position(
    manager: &StreamManager,
    stream: &Stream,
    name: &str,
    def: &ExportDefinition,
) -> Result<u64, Error> {
    if let Some(c) = manager.with_catalog(name, |c, id| c.checkpoint(id, &def.identifier))? {
        return Ok(c);
    }
    match def.start_sequence_number {
        Some(s) => Ok(s),
        None => Ok(stream.describe()?.first_sequence_number),
    }
}

/// Stores the checkpoint (one SQLite transaction: a WAL append, not fsynced) on the blocking
/// pool, so that a busy catalog never stalls the runtime. The caller awaits it before the next
/// one, so commits never overtake each other. A failure is logged and made good by the next
/// commit; until then a restart resends from the older checkpoint.
async fn commit(manager: &Arc<StreamManager>, stream: &str, export: &str, next: u64) {
    let (m, s, e) = (manager.clone(), stream.to_owned(), export.to_owned());
    let stored = tokio::task::spawn_blocking(move || {
        m.with_catalog(&s, |c, id| c.set_checkpoint(id, &e, next))
    })
    .await
    .unwrap_or_else(|e| Err(Error::Internal(format!("checkpoint commit failed: {e}"))));
    if let Err(e) = stored {
        tracing::error!(stream, export, error = %e, "could not store the export checkpoint");
    }
}

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;
