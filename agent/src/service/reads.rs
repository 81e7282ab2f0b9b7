//! Reads for every front end: a one-shot read that may wait (long poll) and a follower that
//! hands out records as they arrive. Both end early, with what there is, when Ferry stops
//! taking data, so a waiting reader never delays shutdown.

use std::time::Duration;

use ferry_stream_manager::{Error, ReadOptions, Record, Stream};
use tokio_util::sync::CancellationToken;

use super::views::{RecordView, RecordsRead};
use super::Service;

/// Longest a single read may wait; longer waits are a client's loop.
pub const MAX_WAIT_MS: u64 = 300_000;
pub const MAX_READ_COUNT: usize = 10_000;
pub const DEFAULT_READ_COUNT: usize = 100;
/// A follower re-arms its wait this often, so a front end can notice a vanished client.
const FOLLOW_POLL: Duration = Duration::from_secs(15);

/// A read as a front end receives it; missing values take the defaults.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    /// Default: the oldest record still available.
    pub from: Option<u64>,
    /// Default 1 (capped at `max_count`).
    pub min_count: Option<usize>,
    /// Default 100, at most 10,000.
    pub max_count: Option<usize>,
    /// 0 or missing: no byte limit (at least one record is returned).
    pub max_bytes: Option<u64>,
    /// How long to wait for `min_count` records; default 0, at most 300,000.
    pub wait_ms: Option<u64>,
}

impl Service {
    fn read_options(&self, stream: &Stream, req: &ReadRequest) -> Result<ReadOptions, Error> {
        let from = match req.from {
            Some(f) => f,
            None => stream.describe()?.first_sequence_number,
        };
        let max_count = req
            .max_count
            .unwrap_or(DEFAULT_READ_COUNT)
            .clamp(1, MAX_READ_COUNT);
        Ok(ReadOptions {
            from,
            min_count: req.min_count.unwrap_or(1).min(max_count),
            max_count,
            max_bytes: req.max_bytes.unwrap_or(0),
            timeout: Duration::from_millis(req.wait_ms.unwrap_or(0).min(MAX_WAIT_MS)),
        })
    }

    /// Reads, waiting up to `wait_ms` for `min_count` records.
    pub async fn read(&self, name: &str, req: &ReadRequest) -> Result<RecordsRead, Error> {
        let (from, records) = self.read_records(name, req).await?;
        let next = records.last().map_or(from, |r| r.sequence_number + 1);
        Ok(RecordsRead {
            next_sequence_number: next,
            records: records.iter().map(RecordView::from).collect(),
        })
    }

    /// [`Service::read`] without the JSON view: the position read from, and the records.
    pub async fn read_records(
        &self,
        name: &str,
        req: &ReadRequest,
    ) -> Result<(u64, Vec<Record>), Error> {
        let stream = self.manager.stream(name)?;
        let opts = self.read_options(&stream, req)?;
        // A long poll ends early at shutdown with what is there, so it never delays the exit.
        let records = tokio::select! {
            r = stream.read(opts.clone()) => r,
            _ = self.stop_ingress.cancelled() => {
                stream.read_now(opts.from, opts.max_count, opts.max_bytes)
            }
        }?;
        Ok((opts.from, records))
    }

    /// Starts following a stream from `req.from`. A position retention already removed fails
    /// here, before a front end commits to a streaming answer.
    pub fn follow(&self, name: &str, req: &ReadRequest) -> Result<Follower, Error> {
        let stream = self.manager.stream(name)?;
        let opts = self.read_options(&stream, req)?;
        stream.read_now(opts.from, 0, 0)?;
        Ok(Follower {
            stream,
            next: opts.from,
            opts,
            stop: self.stop_ingress.clone(),
            failed: false,
        })
    }
}

/// Hands out a stream's records in order as they become durable.
pub struct Follower {
    stream: Stream,
    next: u64,
    opts: ReadOptions,
    stop: CancellationToken,
    failed: bool,
}

impl Follower {
    /// The next records (possibly none after a quiet poll interval); `None` once Ferry stops
    /// taking data or after an error was returned (e.g. the follower fell behind retention, or
    /// the stream was deleted).
    pub async fn next_batch(&mut self) -> Option<Result<Vec<Record>, Error>> {
        if self.failed {
            return None;
        }
        let read = ReadOptions {
            from: self.next,
            min_count: 1,
            timeout: FOLLOW_POLL,
            ..self.opts.clone()
        };
        let result = tokio::select! {
            r = self.stream.read(read) => r,
            _ = self.stop.cancelled() => return None,
        };
        match result {
            Ok(records) => {
                if let Some(last) = records.last() {
                    self.next = last.sequence_number + 1;
                }
                Some(Ok(records))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
