//! The one place where Ferry's error codes ([`Error::code`]) become the protocol's status
//! codes.
//!
//! ```text
//! stream_not_found, stream_deleted                              5 ResourceNotFound
//! invalid_definition, invalid_record, invalid_read, stream_exists  3 InvalidRequest
//! record_too_large                                              4 RequestPayloadTooLarge
//! stream_full (reject_new_data)                                 1 UnknownFailure (the message says "full")
//! anything else (storage_failed, io_error, disk_full, catalog_error, internal, ...):
//!   in a read 14 MessageStoreReadError, in an update 16 UpdateFailed, otherwise 1 UnknownFailure
//! ```
//! Greengrass has no "stream full" code; AWS's own choice is unknown, so Ferry answers 1
//! (which every SDK raises as `UnknownFailureException`) with a message naming the full stream.
//! A read from a trimmed sequence number is not an error in this protocol: the handler starts
//! at the oldest message instead, so `sequence_trimmed` only falls through here as a store
//! error.

use ferry_stream_manager::Error;

use super::messages::Status;

/// Which operation failed: some store failures have an operation's own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Update,
    Other,
}

pub fn status_of(e: &Error, operation: Operation) -> Status {
    match e.code() {
        "stream_not_found" | "stream_deleted" => Status::ResourceNotFound,
        "invalid_definition" | "invalid_record" | "invalid_read" | "stream_exists" => {
            Status::InvalidRequest
        }
        "record_too_large" => Status::RequestPayloadTooLarge,
        "stream_full" => Status::UnknownFailure,
        _ => match operation {
            Operation::Read => Status::MessageStoreReadError,
            Operation::Update => Status::UpdateFailed,
            Operation::Other => Status::UnknownFailure,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_deleted_stream_is_resource_not_found() {
        for e in [
            Error::StreamNotFound("s".into()),
            Error::StreamDeleted("s".into()),
        ] {
            assert_eq!(status_of(&e, Operation::Read), Status::ResourceNotFound);
        }
    }

    #[test]
    fn refused_input_is_an_invalid_request_and_an_oversized_record_too_large() {
        assert_eq!(
            status_of(&Error::StreamExists("s".into()), Operation::Other),
            Status::InvalidRequest
        );
        assert_eq!(
            status_of(&Error::InvalidDefinition("x".into()), Operation::Update),
            Status::InvalidRequest
        );
        let big = Error::RecordTooLarge {
            size: 9,
            limit: 1,
            what: "w",
        };
        assert_eq!(
            status_of(&big, Operation::Other),
            Status::RequestPayloadTooLarge
        );
    }

    #[test]
    fn a_full_stream_is_an_unknown_failure() {
        let full = Error::StreamFull {
            name: "s".into(),
            bytes: 1,
            max_size_bytes: 1,
        };
        assert_eq!(status_of(&full, Operation::Other), Status::UnknownFailure);
    }

    #[test]
    fn store_failures_take_the_code_of_the_operation_that_met_them() {
        let e = Error::Internal("boom".into());
        assert_eq!(
            status_of(&e, Operation::Read),
            Status::MessageStoreReadError
        );
        assert_eq!(status_of(&e, Operation::Update), Status::UpdateFailed);
        assert_eq!(status_of(&e, Operation::Other), Status::UnknownFailure);
    }
}
