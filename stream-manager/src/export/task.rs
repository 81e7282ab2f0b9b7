//! One export's loop: performs what [`ExportMachine`] decides (read, wait for bandwidth, send,
//! wait, commit the checkpoint) and reports the outcomes back, publishing the status after each
//! step. Every wait of the loop ends early on shutdown, in one place ([`until_shutdown`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::machine::{Action, BatchShape, Event, ExportMachine};
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
    let mut read = None;
    let mut action = machine.start(checkpoint);
    loop {
        publish(&machine);
        let event = match action {
            Action::Pause => return shutdown.await,
            Action::Stop => return,
            Action::StartRead { from } => {
                read = Some(reader.start(from));
                Some(Event::ReadStarted)
            }
            // Not cut short by shutdown: it is quick, and a restart resends less for it.
            Action::Commit(next) => {
                commit(&manager, &stream_name, &def.identifier, next).await;
                Some(Event::Committed)
            }
            Action::AwaitRead => until_shutdown(&mut shutdown, read_outcome(read.take())).await,
            Action::Acquire { bytes } => {
                let acquired = bandwidth.acquire(def.priority, bytes);
                until_shutdown(&mut shutdown, acquired)
                    .await
                    .map(|()| Event::Acquired)
            }
            Action::Send => until_shutdown(&mut shutdown, sink.send(machine.batch()))
                .await
                .map(|sent| sent.map_or_else(Event::SendFailed, |()| Event::Sent)),
            Action::Wait(d) => until_shutdown(&mut shutdown, tokio::time::sleep(d))
                .await
                .map(|()| Event::Waited),
        };
        let Some(event) = event else {
            machine.stop(None);
            return publish(&machine);
        };
        action = machine.handle(event);
    }
}

/// `fut`'s output, or `None` if shutdown came first.
async fn until_shutdown<T>(
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        out = fut => Some(out),
        () = shutdown.as_mut() => None,
    }
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

async fn read_outcome(read: Option<ReadTask>) -> Event {
    let Some(read) = read else {
        return Event::ReadFailed(Error::Internal("no export read under way".into()));
    };
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
mod tests;
