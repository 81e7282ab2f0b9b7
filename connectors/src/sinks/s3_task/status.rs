//! The status messages of S3 tasks: JSON of Greengrass' `StatusMessage`, which apps read from
//! the status stream with `Util.deserialize_json_bytes_to_obj(payload, StatusMessage)`:
//!
//! ```json
//! {"eventType": 0, "statusLevel": 2, "status": 0,
//!  "statusContext": {"s3ExportTaskDefinition": {...the task...}, "exportIdentifier": "S3X",
//!                    "streamName": "s", "sequenceNumber": 3},
//!  "message": "...", "timestampEpochMs": 1700000000000}
//! ```
//! `status`: 0 Success, 1 Failure, 2 InProgress, 3 Warning (4 Canceled is never written:
//! Ferry has no task TTL). Each status has a level (Failure ERROR, Warning WARN, the others
//! INFO) and is written only when that level is within the export's `status_level`.

use bytes::Bytes;
use ferry_stream_manager::definition::StatusLevel;
use serde::Serialize;

use super::task::TaskDefinition;
use crate::sinks::local_streams::LocalStreams;

/// Greengrass' `EventType.S3Task`, the only event type.
const EVENT_S3_TASK: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Success,
    Failure,
    InProgress,
    Warning,
}

impl TaskStatus {
    fn code(self) -> u8 {
        match self {
            TaskStatus::Success => 0,
            TaskStatus::Failure => 1,
            TaskStatus::InProgress => 2,
            TaskStatus::Warning => 3,
        }
    }

    pub fn level(self) -> StatusLevel {
        match self {
            TaskStatus::Failure => StatusLevel::Error,
            TaskStatus::Warning => StatusLevel::Warn,
            TaskStatus::Success | TaskStatus::InProgress => StatusLevel::Info,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusMessage<'a> {
    event_type: u8,
    status_level: u8,
    status: u8,
    status_context: StatusContext<'a>,
    message: &'a str,
    timestamp_epoch_ms: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusContext<'a> {
    /// Left out when the message was not a readable task.
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_export_task_definition: Option<&'a TaskDefinition>,
    export_identifier: &'a str,
    stream_name: &'a str,
    sequence_number: u64,
}

/// What one status message is about.
pub struct Event<'a> {
    pub status: TaskStatus,
    pub task: Option<&'a TaskDefinition>,
    pub sequence_number: u64,
    pub message: &'a str,
    pub timestamp_ms: i64,
}

/// The JSON payload of a status message.
pub fn encode(export: &str, stream: &str, e: &Event<'_>) -> Bytes {
    let msg = StatusMessage {
        event_type: EVENT_S3_TASK,
        status_level: e.status.level().code(),
        status: e.status.code(),
        status_context: StatusContext {
            s3_export_task_definition: e.task,
            export_identifier: export,
            stream_name: stream,
            sequence_number: e.sequence_number,
        },
        message: e.message,
        timestamp_epoch_ms: e.timestamp_ms,
    };
    // Plain structs of strings and integers always serialize.
    Bytes::from(serde_json::to_vec(&msg).unwrap_or_default())
}

/// Where an export's status messages go, and how many.
pub struct StatusWriter {
    pub streams: Option<LocalStreams>,
    pub status_stream: Option<String>,
    pub level: StatusLevel,
    pub export: String,
    pub stream: String,
}

impl StatusWriter {
    /// Appends the status message if its level is wanted. A status that cannot be written (the
    /// status stream was deleted, or is full) is logged: the upload itself is not undone.
    pub async fn write(&self, e: Event<'_>) {
        let (Some(streams), Some(target)) = (&self.streams, &self.status_stream) else {
            return;
        };
        if e.status.level() > self.level {
            return;
        }
        let payload = encode(&self.export, &self.stream, &e);
        if let Err(err) = streams.append(target, payload).await {
            tracing::warn!(stream = %self.stream, export = %self.export, status_stream = %target, error = %err, "could not write an S3 task's status message");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_message_has_the_keys_and_integers_the_sdk_decodes() {
        let task = TaskDefinition {
            input_url: "file:/tmp/a.csv".into(),
            bucket: "my-bucket".into(),
            key: "k".into(),
            user_metadata: None,
        };
        let e = Event {
            status: TaskStatus::Success,
            task: Some(&task),
            sequence_number: 3,
            message: "done",
            timestamp_ms: 1_700_000_000_000,
        };
        let v: serde_json::Value = serde_json::from_slice(&encode("S3X", "s", &e)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"eventType": 0, "statusLevel": 2, "status": 0,
                "statusContext": {"s3ExportTaskDefinition": {"inputUrl": "file:/tmp/a.csv", "bucket": "my-bucket", "key": "k"},
                                  "exportIdentifier": "S3X", "streamName": "s", "sequenceNumber": 3},
                "message": "done", "timestampEpochMs": 1_700_000_000_000i64})
        );
    }

    #[test]
    fn failures_are_errors_and_warnings_warn() {
        assert_eq!(TaskStatus::Failure.level(), StatusLevel::Error);
        assert_eq!(TaskStatus::Warning.level(), StatusLevel::Warn);
        assert_eq!(TaskStatus::InProgress.level(), StatusLevel::Info);
    }
}
