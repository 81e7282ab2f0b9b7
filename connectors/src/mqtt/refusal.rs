//! What a stream's refusal of a message means, as a pure function: hold the ack back and retry
//! (the refusal may pass: backpressure), or give the message up, acknowledged and counted under
//! its reason (retrying cannot help, and an unacknowledged message would be redelivered
//! forever). Only a refusal that is known to be permanent gives a QoS 1/2 message up.

use ferry_stream_manager::Error as StreamError;
use rumqttc::QoS;

use super::topic::OnFull;

/// Why a message was not stored. Each reason has its own counter in
/// [`IngestMetrics`](super::metrics::IngestMetrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Larger than the connection's `max_message_size_bytes`.
    Oversized,
    /// No route matches its topic, or its route names a stream that does not exist.
    Unroutable,
    /// The stream refuses the record for good (larger than the stream, or not encodable).
    Invalid,
    /// A QoS 0 message whose stream refused it for now: QoS 0 promises no redelivery.
    DroppedQos0,
    /// Its stream was full (`reject_new_data`) and its route says `on_full = "drop"`.
    StreamFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Keep the ack back and retry with backoff.
    HoldBack,
    /// Acknowledge (QoS 1/2) and count under the reason; never counted as stored.
    GiveUp(Reason),
    /// Store it in this stream instead (the route's `on_full = { divert = ... }`).
    Divert(String),
}

/// What to do with a message whose append failed with `error`; `on_full` is its route's choice
/// for a full stream.
pub(super) fn verdict(error: &StreamError, qos: QoS, on_full: &OnFull) -> Verdict {
    if let StreamError::StreamFull { .. } = error {
        match on_full {
            OnFull::Drop => return Verdict::GiveUp(Reason::StreamFull),
            OnFull::Divert(to) => return Verdict::Divert(to.clone()),
            OnFull::Hold => {}
        }
    }
    let permanent = match error {
        StreamError::RecordTooLarge { .. } | StreamError::InvalidRecord(_) => Some(Reason::Invalid),
        StreamError::StreamNotFound(_) | StreamError::StreamDeleted(_) => Some(Reason::Unroutable),
        // May pass: space freed by retention or an export, a disk that recovers, a stream that
        // is reopened. (Disk full is an `Io` error.)
        StreamError::StreamFull { .. }
        | StreamError::Io { .. }
        | StreamError::StorageFailed { .. }
        | StreamError::Catalog(_)
        | StreamError::CatalogCorrupt { .. }
        | StreamError::Internal(_) => None,
        // An append does not return these; should one appear, holding the ack back loses
        // nothing, where giving the message up would.
        StreamError::InvalidDefinition(_)
        | StreamError::StreamExists(_)
        | StreamError::SequenceTrimmed { .. }
        | StreamError::InvalidRead(_)
        | StreamError::ExportNotFound { .. }
        | StreamError::DataDirLocked { .. } => None,
    };
    match (permanent, qos) {
        (Some(reason), _) => Verdict::GiveUp(reason),
        (None, QoS::AtMostOnce) => Verdict::GiveUp(Reason::DroppedQos0),
        (None, _) => Verdict::HoldBack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StreamError {
        StreamError::StreamFull {
            name: "s".into(),
            bytes: 10,
            max_size_bytes: 10,
        }
    }

    #[test]
    fn a_full_stream_drops_diverts_or_holds_as_the_route_says() {
        assert_eq!(
            verdict(&full(), QoS::AtLeastOnce, &OnFull::Drop),
            Verdict::GiveUp(Reason::StreamFull)
        );
        assert_eq!(
            verdict(&full(), QoS::AtLeastOnce, &OnFull::Divert("o".into())),
            Verdict::Divert("o".into())
        );
        assert_eq!(
            verdict(&full(), QoS::AtLeastOnce, &OnFull::Hold),
            Verdict::HoldBack
        );
        assert_eq!(
            verdict(&full(), QoS::AtMostOnce, &OnFull::Hold),
            Verdict::GiveUp(Reason::DroppedQos0)
        );
    }

    #[test]
    fn the_route_choice_applies_to_a_full_stream_only() {
        let disk_full = StreamError::StorageFailed {
            name: "s".into(),
            reason: "x".into(),
        };
        assert_eq!(
            verdict(&disk_full, QoS::AtLeastOnce, &OnFull::Drop),
            Verdict::HoldBack
        );
    }

    fn io(kind: std::io::ErrorKind) -> StreamError {
        StreamError::Io {
            path: "/data/s/0.seg".into(),
            source: kind.into(),
        }
    }

    fn transient_errors() -> Vec<StreamError> {
        vec![
            StreamError::StreamFull {
                name: "s".into(),
                bytes: 10,
                max_size_bytes: 10,
            },
            io(std::io::ErrorKind::StorageFull),
            io(std::io::ErrorKind::PermissionDenied),
            StreamError::StorageFailed {
                name: "s".into(),
                reason: "fsync failed".into(),
            },
            catalog_error(),
            StreamError::CatalogCorrupt {
                name: "s".into(),
                reason: "unreadable JSON".into(),
            },
            StreamError::Internal("worker task panicked".into()),
        ]
    }

    /// A real one: a catalog that cannot be opened (its path is a directory).
    fn catalog_error() -> StreamError {
        let dir = tempfile::tempdir().unwrap();
        let e = ferry_stream_manager::catalog::Catalog::open(dir.path()).err();
        match e {
            Some(e @ StreamError::Catalog(_)) => e,
            other => panic!("expected a catalog error, got {other:?}"),
        }
    }

    #[test]
    fn a_transient_error_holds_the_ack_back_instead_of_dropping_the_message() {
        for e in transient_errors() {
            assert_eq!(
                verdict(&e, QoS::AtLeastOnce, &OnFull::Hold),
                Verdict::HoldBack,
                "{e}"
            );
            assert_eq!(
                verdict(&e, QoS::ExactlyOnce, &OnFull::Hold),
                Verdict::HoldBack,
                "{e}"
            );
        }
    }

    #[test]
    fn a_transient_error_drops_a_qos0_message_counted_as_such() {
        for e in transient_errors() {
            assert_eq!(
                verdict(&e, QoS::AtMostOnce, &OnFull::Hold),
                Verdict::GiveUp(Reason::DroppedQos0),
                "{e}"
            );
        }
    }

    #[test]
    fn a_permanent_refusal_is_given_up_under_its_own_reason() {
        let too_large = StreamError::RecordTooLarge {
            size: 2000,
            limit: 1000,
            what: "the stream's max_size_bytes",
        };
        let cases = [
            (too_large, Reason::Invalid),
            (StreamError::InvalidRecord("bad".into()), Reason::Invalid),
            (StreamError::StreamNotFound("s".into()), Reason::Unroutable),
            (StreamError::StreamDeleted("s".into()), Reason::Unroutable),
        ];
        for (e, reason) in cases {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                assert_eq!(
                    verdict(&e, qos, &OnFull::Hold),
                    Verdict::GiveUp(reason),
                    "{e}"
                );
            }
        }
    }
}
