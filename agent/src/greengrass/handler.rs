//! Runs one request on the [`Service`] and builds its answer. Reads follow the protocol:
//!
//! * start at `max(desiredStartSequenceNumber, oldest available)`: a trimmed start is not an
//!   error, the read begins at the oldest message retention kept;
//! * wait up to `readTimeoutMillis` for `minMessageCount` messages (default 1), then answer
//!   up to `maxMessageCount` (default `max(min, 1)`); fewer than the minimum is
//!   `NotEnoughMessages` (13), also when Ferry stops while the read waits;
//! * the answer stays within `greengrass.max_frame_bytes`: messages that would pass it are
//!   left for the next read, and a single message that cannot fit is
//!   `ResponsePayloadTooLarge` (7).

use std::sync::Arc;

use bytes::Bytes;
use ferry_stream_manager::{Error, NewRecord};

use super::export_model;
use super::export_settings::ExportSettings;
use super::messages::{MessageStreamDefinition, ReadMessagesOptions, Request, Status};
use super::model;
use super::responses::{message_encoded_len, Body, Response};
use super::status::{status_of, Operation};
use crate::service::{ExportControl, ReadRequest, Service, MAX_READ_COUNT};

/// Headroom for the answer's own keys around the messages.
const ANSWER_OVERHEAD: usize = 256;
/// A read restarts at the oldest message at most this often when retention keeps trimming.
const TRIMMED_RETRIES: usize = 3;

pub struct Handler {
    service: Arc<Service>,
    max_frame_bytes: usize,
    exports: ExportSettings,
}

/// An error answer's status and message.
type Failure = (Status, String);

impl Handler {
    pub fn new(service: Arc<Service>, max_frame_bytes: usize, exports: ExportSettings) -> Handler {
        Handler {
            service,
            max_frame_bytes,
            exports,
        }
    }

    pub async fn handle(&self, request_id: String, op: u8, request: Request) -> Response {
        match self.run(request).await {
            Ok(body) => Response::ok(op, request_id, body),
            Err((status, message)) => Response::error(op, request_id, status, message),
        }
    }

    async fn run(&self, request: Request) -> Result<Body, Failure> {
        let fail = |op| move |e: Error| (status_of(&e, op), e.to_string());
        match request {
            Request::Create(def) => {
                let exports =
                    export_model::exports(&[], &def.exports, &self.exports).map_err(invalid)?;
                self.check_status_streams(&def)?;
                let def = model::to_ferry(&def, exports).map_err(invalid)?;
                self.service
                    .create(def)
                    .await
                    .map_err(|e| definition_failure(&e, Operation::Other))?;
                Ok(Body::Empty)
            }
            Request::Update(def) => self.update(def).await,
            Request::Delete { name } => {
                self.service
                    .delete(&name)
                    .await
                    .map_err(fail(Operation::Other))?;
                Ok(Body::Empty)
            }
            Request::Append { name, payload } => self.append(&name, payload).await,
            Request::Read {
                stream_name,
                options,
            } => self.read(&stream_name, &options).await,
            Request::List => Ok(Body::Streams(self.service.stream_names())),
            Request::Describe { name } => {
                let view = self
                    .service
                    .describe(&name)
                    .map_err(fail(Operation::Other))?;
                Ok(Body::Info(Box::new(model::stream_info(&view))))
            }
        }
    }

    async fn update(&self, def: MessageStreamDefinition) -> Result<Body, Failure> {
        let fail = |e: Error| (status_of(&e, Operation::Update), e.to_string());
        let current = self.service.describe(&def.name).map_err(fail)?;
        let exports =
            export_model::exports(&current.definition.exports, &def.exports, &self.exports)
                .map_err(invalid)?;
        self.check_status_streams(&def)?;
        let new = model::to_ferry(&def, exports).map_err(invalid)?;
        if new.persistence != current.definition.persistence {
            return Err((
                Status::UpdateNotAllowed,
                format!(
                    "stream {:?}: persistence cannot change; create a new stream",
                    def.name
                ),
            ));
        }
        if new.strategy_on_full == ferry_stream_manager::StrategyOnFull::RejectNewData
            && new.max_size_bytes < current.status.total_bytes
        {
            return Err(invalid(format!(
                "maxSize {} is below the {} bytes stream {:?} holds (with RejectNewData nothing \
                 stored is dropped)",
                new.max_size_bytes, current.status.total_bytes, def.name
            )));
        }
        let restarts = moved_starts(&current.definition.exports, &new.exports);
        let end = current.status.next_sequence_number;
        if let Some((id, to)) = restarts.iter().find(|(_, to)| *to > end) {
            return Err(invalid(format!(
                "export {id:?}: startSequenceNumber {to} is past the stream's next sequence number {end}"
            )));
        }
        self.service
            .update(&def.name, new.into())
            .await
            .map_err(|e| definition_failure(&e, Operation::Update))?;
        // A changed start moves the export there (a stored checkpoint would win otherwise).
        for (id, to) in restarts {
            self.service
                .control_export(&def.name, &id, ExportControl::Reset { to })
                .await
                .map_err(fail)?;
        }
        Ok(Body::Empty)
    }

    /// Every status stream an S3 task config names must exist (Greengrass' rule).
    fn check_status_streams(&self, def: &MessageStreamDefinition) -> Result<(), Failure> {
        for name in export_model::status_streams(&def.exports) {
            if self.service.check_stream(name).is_err() {
                return Err(invalid(format!(
                    "statusConfig.statusStreamName {name:?}: no such stream (create the status \
                     stream before the stream that reports to it)"
                )));
            }
        }
        Ok(())
    }

    async fn append(&self, name: &str, payload: Bytes) -> Result<Body, Failure> {
        if payload.is_empty() {
            return Err(invalid("payload must hold at least one byte".into()));
        }
        let appended = self
            .service
            .append(name, vec![NewRecord::new(payload)])
            .await
            .map_err(|e| (status_of(&e, Operation::Other), e.to_string()))?;
        Ok(Body::SequenceNumber(appended.first_sequence_number))
    }

    async fn read(&self, name: &str, o: &ReadMessagesOptions) -> Result<Body, Failure> {
        let min = o.min_message_count.unwrap_or(1);
        let max = o.max_message_count.unwrap_or(min.max(1));
        if !(1..=i32::MAX as u64).contains(&min) || !(1..=i32::MAX as u64).contains(&max) {
            return Err(invalid(
                "minMessageCount and maxMessageCount must be 1 to 2^31-1".into(),
            ));
        }
        if max < min {
            return Err(invalid(format!(
                "maxMessageCount {max} is below minMessageCount {min}"
            )));
        }
        if min > MAX_READ_COUNT as u64 {
            return Err(invalid(format!(
                "minMessageCount {min} is above the {MAX_READ_COUNT} messages one read returns"
            )));
        }
        let fail = |e: Error| (status_of(&e, Operation::Read), e.to_string());
        let mut req = ReadRequest {
            from: Some(o.desired_start_sequence_number.unwrap_or(0)),
            min_count: Some(min as usize),
            max_count: Some(max.min(MAX_READ_COUNT as u64) as usize),
            max_bytes: Some(self.max_frame_bytes as u64),
            wait_ms: Some(o.read_timeout_millis.unwrap_or(0)),
        };
        let mut tries = 0;
        let records = loop {
            match self.service.read_records(name, &req).await {
                Err(Error::SequenceTrimmed { oldest, .. }) if tries < TRIMMED_RETRIES => {
                    tries += 1;
                    req.from = Some(oldest);
                }
                Err(e) => return Err(fail(e)),
                Ok((_, records)) => break records,
            }
        };
        let from = req.from.unwrap_or(0);
        if (records.len() as u64) < min && !self.cut_by_budget(name, from, min, records.len()) {
            return Err((
                Status::NotEnoughMessages,
                format!(
                    "{} of the {min} messages asked for from sequence number {from} of stream \
                     {name:?} were available within readTimeoutMillis",
                    records.len()
                ),
            ));
        }
        let stream_name: Arc<str> = name.into();
        let mut budget = self.max_frame_bytes.saturating_sub(ANSWER_OVERHEAD);
        let mut messages = Vec::with_capacity(records.len());
        for r in &records {
            let len = message_encoded_len(name, r.payload.len());
            if len > budget {
                break;
            }
            budget -= len;
            messages.push(model::message(&stream_name, r));
        }
        if messages.is_empty() {
            return Err((
                Status::ResponsePayloadTooLarge,
                format!(
                    "message {from} of stream {name:?} is larger than the {} bytes of an answer \
                     (greengrass.max_frame_bytes)",
                    self.max_frame_bytes
                ),
            ));
        }
        Ok(Body::Messages(messages))
    }

    /// True when fewer than `min` records came back only because of the byte budget: the
    /// stream does hold `min` of them from `from`.
    fn cut_by_budget(&self, name: &str, from: u64, min: u64, got: usize) -> bool {
        got > 0
            && self
                .service
                .describe(name)
                .is_ok_and(|v| v.status.next_sequence_number.saturating_sub(from) >= min)
    }
}

fn invalid(message: String) -> Failure {
    (Status::InvalidRequest, message)
}

/// A refused definition; an export's missing AWS setting names where this port's exports get
/// theirs.
fn definition_failure(e: &Error, operation: Operation) -> Failure {
    let mut message = e.to_string();
    if e.code() == "invalid_definition" && message.contains(".settings.") {
        message.push_str(
            " (exports defined through the Greengrass port take their AWS region, endpoint and \
             credentials from [greengrass.exports] in Ferry's configuration)",
        );
    }
    (status_of(e, operation), message)
}

/// Exports whose `start_sequence_number` an update sets to a new value: (identifier, start).
fn moved_starts(
    before: &[ferry_stream_manager::ExportDefinition],
    after: &[ferry_stream_manager::ExportDefinition],
) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|a| {
            let to = a.start_sequence_number?;
            let b = before.iter().find(|b| b.identifier == a.identifier)?;
            (b.start_sequence_number != Some(to)).then(|| (a.identifier.clone(), to))
        })
        .collect()
}
