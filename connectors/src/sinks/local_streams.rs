//! The daemon's own streams, for sinks that write back into them: the S3 export task appends
//! each task's status messages to a status stream. Part of [`SinkEnv`](super::SinkEnv), set by
//! the binary; without it (a configuration check) such writes are left out.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use ferry_stream_manager::{Error, NewRecord, StreamManager};

#[derive(Clone)]
pub struct LocalStreams(Arc<StreamManager>);

impl LocalStreams {
    pub fn new(manager: Arc<StreamManager>) -> LocalStreams {
        LocalStreams(manager)
    }

    /// Appends one record to stream `name` and waits until it is durable.
    pub async fn append(&self, name: &str, payload: Bytes) -> Result<u64, Error> {
        let range = self
            .0
            .stream(name)?
            .append(vec![NewRecord::new(payload)])
            .await?;
        Ok(range.start)
    }

    /// Whether stream `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.0.stream(name).is_ok()
    }
}

impl fmt::Debug for LocalStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalStreams")
    }
}
