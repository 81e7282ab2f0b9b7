//! One export's loop: read from the checkpoint, send, commit the checkpoint, repeat; with
//! retries, the permanent-error policy, retention gaps and a status others can read.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{Bandwidth, Batch, Sink, SinkError};
use crate::backoff::Backoff;
use crate::definition::{ExportDefinition, PermanentErrorPolicy};
use crate::error::Error;
use crate::manager::StreamManager;
use crate::stream::{ReadOptions, Stream};
use crate::time::{lock, now_ms};

/// What an export is doing and has done since Ferry started (the checkpoint survives restarts).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExportStatus {
    pub stream: String,
    pub identifier: String,
    pub kind: String,
    pub priority: u8,
    /// `starting`, `running`, `retrying`, `paused`, `disabled` or `stopped`.
    pub state: String,
    /// The next sequence number to send: everything before it was confirmed by the sink.
    pub checkpoint: u64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub records_sent: u64,
    pub bytes_sent: u64,
    pub batches_sent: u64,
    pub retries: u64,
    /// Records retention removed before they were exported.
    pub records_dropped_by_retention: u64,
    /// Records skipped after a permanent error (policy `skip`).
    pub records_skipped: u64,
}

pub type ExportStatusHandle = Arc<Mutex<ExportStatus>>;

const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(1000);

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
    let set = |f: &dyn Fn(&mut ExportStatus)| f(&mut lock(&status));
    set(&|s| {
        s.stream = stream_name.clone();
        s.identifier = def.identifier.clone();
        s.kind = def.kind.name().to_string();
        s.priority = def.priority;
        s.state = if def.disabled { "disabled" } else { "starting" }.into();
    });
    let stream = match manager.stream(&stream_name) {
        Ok(s) => s,
        Err(e) => return set(&|s| stop(s, &e.to_string())),
    };
    let mut next = match start_position(&manager, &stream, &stream_name, &def) {
        Ok(n) => n,
        Err(e) => return set(&|s| stop(s, &e.to_string())),
    };
    set(&|s| s.checkpoint = next);
    if def.disabled {
        return;
    }
    let limits = sink.limits();
    let max_count = def
        .batch_size
        .map_or(limits.max_records, |b| (b as usize).min(limits.max_records))
        .max(1);
    let max_bytes = def
        .batch_bytes
        .map_or(limits.max_bytes, |b| b.min(limits.max_bytes));
    let interval = def
        .batch_interval_ms
        .map_or(DEFAULT_BATCH_INTERVAL, Duration::from_millis);
    set(&|s| s.state = "running".into());
    let read_from = |from: u64| {
        let stream = stream.clone();
        let sink = sink.clone();
        let opts = ReadOptions {
            from,
            min_count: max_count,
            max_count,
            max_bytes,
            timeout: interval,
        };
        // Started now, so that the next batch is read and encoded while the current one is
        // sent. With a full batch already stored (a backlog), reading and encoding happen on a
        // blocking thread in one hop; otherwise the read waits (without polling) for records.
        if stream.durable_end().saturating_sub(from) >= max_count as u64 {
            tokio::task::spawn_blocking(move || {
                let records = stream.read_now(from, max_count, max_bytes)?;
                let body = sink.encode(&records);
                Ok::<_, Error>(Batch { records, body })
            })
        } else {
            tokio::spawn(async move {
                let records = stream.read(opts).await?;
                let body = sink.encode(&records);
                Ok::<_, Error>(Batch { records, body })
            })
        }
    };
    let mut prefetch = None;
    loop {
        let pending = prefetch.take().unwrap_or_else(|| read_from(next));
        let read = tokio::select! {
            r = pending => r.unwrap_or_else(|e| Err(Error::Internal(format!("export read task failed: {e}")))),
            _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
        };
        let (mut batch, mut body) = match read {
            Ok(Batch { records, body }) => (records, body),
            Err(Error::SequenceTrimmed { oldest, .. }) => {
                let lost = oldest - next;
                tracing::warn!(stream = %stream_name, export = %def.identifier, records = lost, "retention removed records before they were exported");
                set(&|s| s.records_dropped_by_retention += lost);
                next = oldest;
                commit(&manager, &stream_name, &def.identifier, next).await;
                set(&|s| s.checkpoint = next);
                continue;
            }
            Err(e @ (Error::StreamDeleted(_) | Error::StreamNotFound(_))) => {
                return set(&|s| stop(s, &e.to_string()))
            }
            Err(e) => {
                set(&|s| s.last_error = Some(e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
                }
            }
        };
        if batch.is_empty() {
            continue;
        }
        // Records too large for the sink can never be sent: a permanent error of their own.
        let too_big = batch
            .iter()
            .filter(|r| r.payload.len() as u64 > limits.max_record_bytes)
            .count() as u64;
        if too_big > 0 {
            let reason = format!(
                "{too_big} record(s) larger than the sink's {} bytes per record",
                limits.max_record_bytes
            );
            if def.on_permanent_error == PermanentErrorPolicy::Pause {
                return pause(
                    &status,
                    &stream_name,
                    &def.identifier,
                    &reason,
                    &mut shutdown,
                )
                .await;
            }
            batch.retain(|r| r.payload.len() as u64 <= limits.max_record_bytes);
            body = sink.encode(&batch);
            set(&|s| s.records_skipped += too_big);
        }
        let end = match batch.last() {
            Some(last) => last.sequence_number + 1,
            None => next, // everything skipped: only the checkpoint moves
        };
        prefetch = Some(read_from(end));
        let mut batch = Batch {
            records: batch,
            body,
        };
        if !batch.records.is_empty() {
            let bytes: u64 = batch.records.iter().map(|r| r.payload.len() as u64).sum();
            tokio::select! {
                _ = bandwidth.acquire(def.priority, bytes) => {}
                _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
            }
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            loop {
                let sent = tokio::select! {
                    r = sink.send(&batch) => r,
                    _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
                };
                match sent {
                    Ok(()) => {
                        set(&|s| {
                            s.state = "running".into();
                            s.records_sent += batch.records.len() as u64;
                            s.bytes_sent += bytes;
                            s.batches_sent += 1;
                            s.last_success_ms = Some(now_ms());
                        });
                        break;
                    }
                    Err(SinkError::Retryable {
                        reason,
                        retry_after,
                    }) => {
                        let delay = backoff.next_delay().max(retry_after.unwrap_or_default());
                        let first = lock(&status).state != "retrying";
                        if first {
                            tracing::warn!(stream = %stream_name, export = %def.identifier, error = %reason, "sink unavailable; retrying with backoff, the stream keeps buffering");
                        }
                        set(&|s| {
                            s.state = "retrying".into();
                            s.retries += 1;
                            s.last_error = Some(reason.clone());
                        });
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
                        }
                    }
                    Err(SinkError::Partial { failed, reason }) => {
                        // Only the refused records go again, in their order.
                        let mut i = 0;
                        batch.records.retain(|_| {
                            i += 1;
                            failed.binary_search(&(i - 1)).is_ok()
                        });
                        batch.body = sink.encode(&batch.records);
                        set(&|s| {
                            s.retries += 1;
                            s.last_error = Some(reason.clone());
                        });
                        if batch.records.is_empty() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff.next_delay()) => {}
                            _ = &mut shutdown => return set(&|s| s.state = "stopped".into()),
                        }
                    }
                    Err(SinkError::Permanent { reason }) => {
                        if def.on_permanent_error == PermanentErrorPolicy::Pause {
                            return pause(
                                &status,
                                &stream_name,
                                &def.identifier,
                                &reason,
                                &mut shutdown,
                            )
                            .await;
                        }
                        tracing::warn!(stream = %stream_name, export = %def.identifier, records = batch.records.len(), error = %reason, "sink refused a batch for good; skipped (on_permanent_error = skip)");
                        set(&|s| {
                            s.records_skipped += batch.records.len() as u64;
                            s.last_error = Some(reason.clone());
                        });
                        break;
                    }
                }
            }
        }
        next = end;
        commit(&manager, &stream_name, &def.identifier, next).await;
        set(&|s| s.checkpoint = next);
    }
}

fn stop(s: &mut ExportStatus, reason: &str) {
    s.state = "stopped".into();
    s.last_error = Some(reason.to_string());
}

async fn pause(
    status: &ExportStatusHandle,
    stream: &str,
    export: &str,
    reason: &str,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) {
    tracing::error!(
        stream,
        export,
        error = reason,
        "sink refused a batch for good; export paused (on_permanent_error = pause)"
    );
    {
        let mut s = lock(status);
        s.state = "paused".into();
        s.last_error = Some(reason.to_string());
    }
    shutdown.await;
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

/// Stores the checkpoint (one SQLite transaction: a WAL append, not fsynced). A failure is
/// logged and retried by the next commit; until then a restart resends from the older one.
async fn commit(manager: &Arc<StreamManager>, stream: &str, export: &str, next: u64) {
    // A WAL append without fsync (synchronous=NORMAL): short enough to run in place.
    if let Err(e) = manager.with_catalog(stream, |c, id| c.set_checkpoint(id, export, next)) {
        tracing::error!(stream, export, error = %e, "could not store the export checkpoint");
    }
}
