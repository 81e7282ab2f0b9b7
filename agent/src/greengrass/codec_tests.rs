//! The codec against the byte captures of the protocol spec (made with the official Python
//! SDK 1.1.2 and cbor2), and hostile input.

use bytes::Bytes;
use ferry_stream_manager::{Persistence, StrategyOnFull};

use super::cbor::Out;
use super::export_messages::{ConfigKind, ExportConfigs, StatusConfig};
use super::frame::{self, parse_header};
use super::handshake::ProtocolVersion;
use super::messages::{decode_connect, decode_request, op, Decoded, Request, Status};
use super::responses::{Body, Response};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// `{requestId:"r1", name:"s1", payload:b"hi"}` as the SDK sends it.
const APPEND_CAPTURE: &str = "00 00 00 22 04 a3 69 72 65 71 75 65 73 74 49 64 62 72 31 64 6e 61 6d 65 62 73 31 67 70 61 79 6c 6f 61 64 42 68 69";

#[test]
fn the_captured_append_frame_decodes_to_an_append_of_two_bytes() {
    let bytes = hex(APPEND_CAPTURE);
    let h = parse_header(bytes[..5].try_into().unwrap(), 1024).unwrap();
    assert_eq!(h.op, op::APPEND);
    let payload = &bytes[5..];
    assert_eq!(payload.len(), h.payload_len);
    assert_eq!(
        decode_request(h.op, payload),
        Decoded::Request {
            request_id: "r1".into(),
            request: Request::Append {
                name: "s1".into(),
                payload: Bytes::from_static(b"hi")
            }
        }
    );
}

#[test]
fn a_successful_append_answer_matches_the_captured_bytes() {
    let r = Response::ok(9, "r1".into(), Body::SequenceNumber(0));
    let mut want = hex("00 00 00 27 09 a3 69");
    want.extend_from_slice(b"requestId");
    want.extend(hex("62 72 31 66"));
    want.extend_from_slice(b"status");
    want.extend(hex("00 6e"));
    want.extend_from_slice(b"sequenceNumber");
    want.push(0);
    assert_eq!(r.encode(ProtocolVersion::V1_1_0), want);
}

#[test]
fn a_failed_append_answer_matches_the_captured_bytes() {
    let r = Response::error(9, "r1".into(), Status::ResourceNotFound, "nf");
    let mut want = hex("00 00 00 27 09 a3 69");
    want.extend_from_slice(b"requestId");
    want.extend(hex("62 72 31 66"));
    want.extend_from_slice(b"status");
    want.extend(hex("05 6c"));
    want.extend_from_slice(b"errorMessage");
    want.extend(hex("62 6e 66"));
    assert_eq!(r.encode(ProtocolVersion::V1_1_0), want);
}

/// The captured Connect payload (127 bytes; the frame length is 128).
fn connect_payload(token: Option<&str>) -> Vec<u8> {
    let mut o = Out::default();
    o.map(4 + usize::from(token.is_some()));
    o.text("requestId")
        .text("00000000-0000-4000-8000-000000000001");
    o.text("protocolVersion").text("1.1.0");
    o.text("otherSupportedProtocolVersions")
        .array(1)
        .text("1.0.0");
    o.text("sdkVersion").text("1.1.2");
    if let Some(t) = token {
        o.text("authToken").text(t);
    }
    o.0
}

#[test]
fn the_captured_connect_request_is_127_bytes_and_decodes() {
    let p = connect_payload(None);
    assert_eq!(p.len(), 127);
    assert_eq!(&p[..2], &[0xa4, 0x69]);
    let c = decode_connect(&p).unwrap();
    assert_eq!(c.request_id, "00000000-0000-4000-8000-000000000001");
    assert_eq!(c.protocol_version, "1.1.0");
    assert_eq!(c.other_supported_protocol_versions, vec!["1.0.0"]);
    assert_eq!(c.auth_token, None);
    assert_eq!(
        decode_connect(&connect_payload(Some("t")))
            .unwrap()
            .auth_token,
        Some("t".into())
    );
    assert_eq!(
        decode_connect(&connect_payload(Some("")))
            .unwrap()
            .auth_token,
        None,
        "the Java SDK's empty token is no token"
    );
}

fn create_payload(extra: impl FnOnce(&mut Out) -> usize) -> Vec<u8> {
    let mut def = Out::default();
    let n = extra(&mut def);
    let mut o = Out::default();
    o.map(2).text("requestId").text("c1").text("definition");
    o.map(2 + n)
        .text("name")
        .text("s")
        .text("strategyOnFull")
        .uint(1);
    o.0.extend_from_slice(&def.0);
    o.0
}

#[test]
fn a_definition_decodes_with_its_limits_and_enums() {
    let p = create_payload(|o| {
        o.text("maxSize").uint(65_536);
        o.text("streamSegmentSize").uint(4096);
        o.text("timeToLiveMillis").uint(60_000);
        o.text("persistence").uint(1);
        o.text("flushOnWrite").bool(true);
        5
    });
    let Decoded::Request {
        request: Request::Create(d),
        ..
    } = decode_request(op::CREATE, &p)
    else {
        panic!("not a create")
    };
    assert_eq!(d.name, "s");
    assert_eq!(d.strategy_on_full, StrategyOnFull::OverwriteOldestData);
    assert_eq!(d.max_size, Some(65_536));
    assert_eq!(d.stream_segment_size, Some(4096));
    assert_eq!(d.time_to_live_millis, Some(60_000));
    assert_eq!(d.persistence, Some(Persistence::Memory));
    assert_eq!(d.flush_on_write, Some(true));
    assert_eq!(d.exports, ExportConfigs::default());
}

#[test]
fn a_definition_with_export_configs_decodes_them_and_ignores_empty_lists() {
    let p = create_payload(|o| {
        o.text("exportDefinition").map(4);
        o.text("kinesis").array(1).map(6);
        o.text("identifier").text("k");
        o.text("kinesisStreamName").text("ks");
        o.text("batchSize").uint(10);
        o.text("batchIntervalMillis").uint(60_000);
        o.text("priority").uint(1);
        o.text("disabled").bool(true);
        o.text("http").array(0);
        o.text("IotSitewise").array(0);
        o.text("s3TaskExecutor").array(1).map(3);
        o.text("identifier").text("s3");
        o.text("sizeThresholdForMultipartUploadBytes").uint(5 << 20);
        o.text("statusConfig").map(2);
        o.text("statusLevel").uint(2);
        o.text("statusStreamName").text("st");
        1
    });
    let Decoded::Request {
        request: Request::Create(d),
        ..
    } = decode_request(op::CREATE, &p)
    else {
        panic!("not a create")
    };
    assert!(
        d.exports.refused.is_empty(),
        "an empty IotSitewise list is no export"
    );
    let [k, s3] = &d.exports.configs[..] else {
        panic!("{:?}", d.exports)
    };
    assert_eq!(
        k.kind,
        ConfigKind::Kinesis {
            stream_name: "ks".into()
        }
    );
    assert_eq!(
        (
            k.batch_size,
            k.batch_interval_millis,
            k.priority,
            k.disabled
        ),
        (Some(10), Some(60_000), Some(1), Some(true))
    );
    assert_eq!(
        s3.kind,
        ConfigKind::S3Task {
            size_threshold_for_multipart_upload_bytes: Some(5 << 20),
            status_config: Some(StatusConfig {
                status_level: Some(2),
                status_stream_name: Some("st".into())
            })
        }
    );
}

#[test]
fn refused_export_kinds_are_named_and_values_outside_the_sdk_ranges_name_their_key() {
    let p = create_payload(|o| {
        o.text("exportDefinition").map(1);
        o.text("iotAnalytics")
            .array(1)
            .map(1)
            .text("identifier")
            .text("a");
        1
    });
    let Decoded::Request {
        request: Request::Create(d),
        ..
    } = decode_request(op::CREATE, &p)
    else {
        panic!("not a create")
    };
    assert_eq!(d.exports.refused, vec!["iotAnalytics"]);
    for (key, value) in [
        ("batchSize", 501),
        ("batchIntervalMillis", 59_999),
        ("priority", 11),
    ] {
        let p = create_payload(|o| {
            o.text("exportDefinition").map(1);
            o.text("kinesis").array(1).map(3);
            o.text("identifier").text("k");
            o.text("kinesisStreamName").text("ks");
            o.text(key).uint(value);
            1
        });
        let Decoded::Invalid { message, .. } = decode_request(op::CREATE, &p) else {
            panic!("{key} {value} was accepted")
        };
        assert!(
            message.starts_with(&format!(
                "definition.exportDefinition.kinesis[0].{key} is {value}"
            )),
            "{message}"
        );
    }
    let p = create_payload(|o| {
        o.text("exportDefinition").map(1);
        o.text("kinesis")
            .array(1)
            .map(1)
            .text("identifier")
            .text("bad/id");
        1
    });
    assert!(
        matches!(decode_request(op::CREATE, &p), Decoded::Invalid { message, .. } if message.contains("identifier"))
    );
}

#[test]
fn a_definition_without_strategy_or_with_a_bad_enum_is_an_invalid_request() {
    let mut o = Out::default();
    o.map(2).text("requestId").text("c1").text("definition");
    o.map(1).text("name").text("s");
    let Decoded::Invalid {
        request_id,
        response_op,
        message,
    } = decode_request(op::CREATE, &o.0)
    else {
        panic!("not invalid")
    };
    assert_eq!((request_id.as_str(), response_op), ("c1", 7));
    assert!(message.contains("strategyOnFull"), "{message}");
    let p = create_payload(|o| {
        o.text("persistence").uint(7);
        1
    });
    assert!(
        matches!(decode_request(op::CREATE, &p), Decoded::Invalid { message, .. } if message.contains("persistence"))
    );
}

#[test]
fn read_options_accept_integral_floats_and_null_as_absent() {
    let mut o = Out::default();
    o.map(3)
        .text("requestId")
        .text("r")
        .text("streamName")
        .text("s");
    o.text("readMessagesOptions").map(3);
    o.text("minMessageCount")
        .0
        .extend_from_slice(&[0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0]); // 2.0
    o.text("maxMessageCount").0.push(0xf6); // null
    o.text("readTimeoutMillis").uint(500);
    let Decoded::Request {
        request: Request::Read { options, .. },
        ..
    } = decode_request(op::READ, &o.0)
    else {
        panic!("not a read")
    };
    assert_eq!(options.min_message_count, Some(2));
    assert_eq!(options.max_message_count, None);
    assert_eq!(options.read_timeout_millis, Some(500));
}

#[test]
fn negative_counts_and_text_payloads_are_invalid_requests() {
    let mut o = Out::default();
    o.map(3)
        .text("requestId")
        .text("r")
        .text("streamName")
        .text("s");
    o.text("readMessagesOptions")
        .map(1)
        .text("minMessageCount")
        .int(-1);
    assert!(matches!(
        decode_request(op::READ, &o.0),
        Decoded::Invalid {
            response_op: 10,
            ..
        }
    ));
    let mut o = Out::default();
    o.map(3).text("requestId").text("r").text("name").text("s");
    o.text("payload").text("not bytes");
    assert!(matches!(
        decode_request(op::APPEND, &o.0),
        Decoded::Invalid { response_op: 9, .. }
    ));
}

#[test]
fn an_unknown_op_with_a_request_id_is_answered_as_an_unknown_operation() {
    let mut o = Out::default();
    o.map(1).text("requestId").text("u1");
    assert_eq!(
        decode_request(42, &o.0),
        Decoded::UnknownOp {
            request_id: "u1".into(),
            op: 42
        }
    );
    let frame = Response::unknown_operation("u1".into(), 42).encode(ProtocolVersion::V1_1_0);
    assert_eq!(frame[4], op::UNKNOWN_OPERATION_ERROR);
    let v = super::cbor::decode(&frame[5..]).unwrap();
    assert_eq!(v.get("status"), Some(&super::cbor::Val::Int(18)));
}

#[test]
fn a_request_without_a_request_id_or_with_broken_cbor_cannot_be_answered() {
    let mut o = Out::default();
    o.map(1).text("name").text("s");
    assert!(matches!(
        decode_request(op::DELETE, &o.0),
        Decoded::Unanswerable(_)
    ));
    let full = hex(APPEND_CAPTURE);
    for cut in 5..full.len() {
        assert!(
            matches!(
                decode_request(op::APPEND, &full[5..cut]),
                Decoded::Unanswerable(_)
            ),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        decode_request(op::LIST, &[0x01]),
        Decoded::Unanswerable(_)
    ));
}

#[test]
fn a_1_0_0_session_never_gets_a_status_above_14() {
    let r = Response::error(16, "u".into(), Status::UpdateNotAllowed, "no");
    let v10 = r.encode(ProtocolVersion::V1_0_0);
    let v = super::cbor::decode(&v10[5..]).unwrap();
    assert_eq!(v.get("status"), Some(&super::cbor::Val::Int(1)));
    let v11 = r.encode(ProtocolVersion::V1_1_0);
    let v = super::cbor::decode(&v11[5..]).unwrap();
    assert_eq!(v.get("status"), Some(&super::cbor::Val::Int(17)));
}

#[test]
fn empty_lists_are_sent_and_never_left_out() {
    let frame =
        Response::ok(10, "r".into(), Body::Messages(vec![])).encode(ProtocolVersion::V1_1_0);
    let v = super::cbor::decode(&frame[5..]).unwrap();
    assert_eq!(v.get("messages"), Some(&super::cbor::Val::Array(vec![])));
    assert!(!frame.contains(&0xf6), "no null anywhere");
    let frame = Response::ok(12, "r".into(), Body::Streams(vec![])).encode(ProtocolVersion::V1_1_0);
    let v = super::cbor::decode(&frame[5..]).unwrap();
    assert_eq!(v.get("streams"), Some(&super::cbor::Val::Array(vec![])));
}

#[test]
fn a_frame_header_is_checked_before_its_payload_is_read() {
    // 2^30 announced: refused by size with nothing allocated.
    let bytes = [0x40, 0, 0, 0, op::APPEND];
    assert!(matches!(
        parse_header(bytes, 16 << 20),
        Err(frame::FrameError::TooLarge { .. })
    ));
}
