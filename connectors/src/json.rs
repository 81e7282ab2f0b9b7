//! The export JSON form of a record (HTTP sink). It carries the payload once: `payload` when
//! it is valid UTF-8, `payload_base64` otherwise, so a text payload is not sent twice. (The
//! local API's form, with both, is the agent's `service::views::RecordView`.)

use base64::Engine;
use ferry_stream_manager::Record;

pub const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Appends the record's export JSON (one line, no newline) to `buf`: the same bytes serde_json
/// writes for `{"sequence_number", "timestamp_ms", "metadata", "payload" | "payload_base64"}`,
/// written by hand because the exporter writes millions a second and serde_json inspects every
/// byte of a string one at a time for escaping, where most payloads need none (see
/// `write_json_str`).
pub fn write_export_json(buf: &mut Vec<u8>, r: &Record) {
    let mut num = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"sequence_number\":");
    buf.extend_from_slice(num.format(r.sequence_number).as_bytes());
    buf.extend_from_slice(b",\"timestamp_ms\":");
    buf.extend_from_slice(num.format(r.timestamp_ms).as_bytes());
    buf.extend_from_slice(b",\"metadata\":{");
    for (i, (k, v)) in r.metadata.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_json_str(buf, k);
        buf.push(b':');
        write_json_str(buf, v);
    }
    buf.push(b'}');
    match std::str::from_utf8(&r.payload) {
        Ok(text) => {
            buf.extend_from_slice(b",\"payload\":");
            write_json_str(buf, text);
        }
        Err(_) => {
            buf.extend_from_slice(b",\"payload_base64\":\"");
            let start = buf.len();
            buf.resize(
                start + base64::encoded_len(r.payload.len(), true).unwrap_or(0),
                0,
            );
            let n = BASE64
                .encode_slice(&r.payload, &mut buf[start..])
                .unwrap_or(0);
            buf.truncate(start + n);
            buf.push(b'"');
        }
    }
    buf.push(b'}');
}

/// A JSON string, escaped exactly as serde_json escapes it (`"`, `\\` and control characters).
/// The check for anything to escape is a branch-free pass the compiler vectorises; only a
/// string that needs escaping goes through serde_json.
fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    let needs_escape = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    } else {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    /// What serde_json writes for the export form: the reference the hand-written one must match.
    #[derive(Serialize)]
    struct Reference<'a> {
        sequence_number: u64,
        timestamp_ms: i64,
        metadata: &'a BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_base64: Option<String>,
    }

    fn reference(r: &Record) -> Vec<u8> {
        let text = std::str::from_utf8(&r.payload).ok();
        let out = Reference {
            sequence_number: r.sequence_number,
            timestamp_ms: r.timestamp_ms,
            metadata: &r.metadata,
            payload: text,
            payload_base64: text.is_none().then(|| BASE64.encode(&r.payload)),
        };
        serde_json::to_vec(&out).unwrap()
    }

    #[test]
    fn the_export_json_is_byte_for_byte_what_serde_json_writes() {
        let payloads: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain sensor reading 21.5".to_vec(),
            br#"{"t":21.5,"unit":"C"}"#.to_vec(),
            b"back\\slash and \"quotes\"".to_vec(),
            b"tab\tnew\nline\r\x00\x1f\x7f end".to_vec(),
            "ünïcödé ✓ 🚀".as_bytes().to_vec(),
            vec![0xff, 0xfe, 0x00, 0x80],
            (0..=255u8).collect(),
            vec![b'p'; 1000],
        ];
        let metadatas: Vec<BTreeMap<String, String>> = vec![
            BTreeMap::new(),
            [("topic".to_string(), "sensors/a/temp".to_string())].into(),
            [
                ("topic".to_string(), "odd \"topic\"\n".to_string()),
                ("z".to_string(), String::new()),
            ]
            .into(),
        ];
        for (i, payload) in payloads.iter().enumerate() {
            for metadata in &metadatas {
                let r = Record {
                    sequence_number: u64::MAX - i as u64,
                    timestamp_ms: if i % 2 == 0 { 1_795_000_000_000 } else { -5 },
                    metadata: metadata.clone(),
                    payload: payload.clone().into(),
                };
                let mut ours = b"prefix".to_vec();
                write_export_json(&mut ours, &r);
                let expected = [b"prefix".to_vec(), reference(&r)].concat();
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&expected)
                );
                assert_eq!(ours, expected);
            }
        }
    }
}
