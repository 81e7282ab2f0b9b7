//! The CBOR subset the Greengrass protocol uses, decoded into a small borrowed value tree and
//! encoded by hand.
//!
//! Input (from any SDK): one CBOR item, normally a map with text keys; integers of any width
//! (major types 0/1), floats (JS clients send numbers; an exact integer value is accepted where
//! an integer is expected), booleans, null/undefined (read as "absent"), byte and text strings
//! (definite or chunked), arrays and maps (definite or indefinite: Jackson writes indefinite
//! maps). Tags are skipped. Decoding never allocates from a length field: byte and text strings
//! borrow the input, and arrays and maps grow one element at a time, each element consuming at
//! least one input byte, so memory stays proportional to the (already bounded) frame. Nesting
//! is limited to [`MAX_DEPTH`] levels.
//!
//! Output (to the SDKs): definite-length maps and arrays, minimal-length integers, byte strings
//! for payloads, never `null` (absent fields are left out).

use std::borrow::Cow;

use minicbor::data::Type;
use minicbor::Decoder;

/// Deepest nesting the decoder follows (the protocol needs 4).
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Int(i128),
    Float(f64),
    Bool(bool),
    /// `null`, `undefined` and simple values: all read as "not provided".
    Null,
    Bytes(Cow<'a, [u8]>),
    Text(Cow<'a, str>),
    Array(Vec<Val<'a>>),
    Map(Vec<(Val<'a>, Val<'a>)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("CBOR nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} bytes after the CBOR item")]
    Trailing(usize),
}

impl From<minicbor::decode::Error> for CborError {
    fn from(e: minicbor::decode::Error) -> Self {
        CborError::Malformed(e.to_string())
    }
}

/// Decodes `bytes`, which must hold exactly one item.
pub fn decode(bytes: &[u8]) -> Result<Val<'_>, CborError> {
    let mut d = Decoder::new(bytes);
    let v = item(&mut d, 0)?;
    match bytes.len() - d.position() {
        0 => Ok(v),
        n => Err(CborError::Trailing(n)),
    }
}

fn item<'a>(d: &mut Decoder<'a>, depth: usize) -> Result<Val<'a>, CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep);
    }
    Ok(match d.datatype()? {
        Type::Bool => Val::Bool(d.bool()?),
        Type::Null => {
            d.null()?;
            Val::Null
        }
        Type::Undefined => {
            d.undefined()?;
            Val::Null
        }
        Type::Simple => {
            d.simple()?;
            Val::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 | Type::I8 | Type::I16 | Type::I32 => {
            Val::Int(i128::from(d.int()?))
        }
        Type::I64 | Type::Int => Val::Int(i128::from(d.int()?)),
        Type::F16 => Val::Float(f64::from(d.f16()?)),
        Type::F32 => Val::Float(f64::from(d.f32()?)),
        Type::F64 => Val::Float(d.f64()?),
        Type::Bytes => Val::Bytes(Cow::Borrowed(d.bytes()?)),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for chunk in d.bytes_iter()? {
                out.extend_from_slice(chunk?);
            }
            Val::Bytes(Cow::Owned(out))
        }
        Type::String => Val::Text(Cow::Borrowed(d.str()?)),
        Type::StringIndef => {
            let mut out = String::new();
            for chunk in d.str_iter()? {
                out.push_str(chunk?);
            }
            Val::Text(Cow::Owned(out))
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            let mut items = Vec::new();
            while more(d, len, items.len())? {
                items.push(item(d, depth + 1)?);
            }
            Val::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            let mut entries = Vec::new();
            while more(d, len, entries.len())? {
                let k = item(d, depth + 1)?;
                let v = item(d, depth + 1)?;
                entries.push((k, v));
            }
            Val::Map(entries)
        }
        Type::Tag => {
            d.tag()?;
            item(d, depth + 1)?
        }
        Type::Break => return Err(CborError::Malformed("unexpected break".into())),
        Type::Unknown(b) => return Err(CborError::Malformed(format!("unknown byte {b:#04x}"))),
    })
}

/// Whether another element follows: a count for definite containers, the break byte (which
/// is consumed) for indefinite ones.
fn more(d: &mut Decoder<'_>, len: Option<u64>, have: usize) -> Result<bool, CborError> {
    match len {
        Some(n) => Ok((have as u64) < n),
        None => {
            if d.datatype()? == Type::Break {
                d.set_position(d.position() + 1);
                Ok(false)
            } else {
                Ok(true)
            }
        }
    }
}

/// The `requestId` of a map whose tail may be missing (a frame too large to read whole, of
/// which only a prefix was kept). `None` when it is not among the entries that are complete.
pub fn find_request_id(prefix: &[u8]) -> Option<String> {
    let mut d = Decoder::new(prefix);
    let len = d.map().ok()?;
    let mut seen = 0usize;
    while more(&mut d, len, seen).ok()? {
        let k = item(&mut d, 1).ok()?;
        let v = item(&mut d, 1).ok()?;
        if let (Val::Text(k), Val::Text(v)) = (&k, v) {
            if k == "requestId" {
                return Some(v.into_owned());
            }
        }
        seen += 1;
    }
    None
}

impl<'a> Val<'a> {
    /// The value under text key `key` of a map; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&Val<'a>> {
        let Val::Map(entries) = self else { return None };
        entries.iter().find_map(|(k, v)| match (k, v) {
            (_, Val::Null) => None,
            (Val::Text(t), v) if t == key => Some(v),
            _ => None,
        })
    }
}

/// A CBOR writer for the server's answers (infallible: it writes into a `Vec`).
#[derive(Debug, Default)]
pub struct Out(pub Vec<u8>);

impl Out {
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => self.0.push(m | n as u8),
            24..=0xff => self.0.extend_from_slice(&[m | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(m | 25);
                self.0.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(m | 26);
                self.0.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    pub fn map(&mut self, entries: usize) -> &mut Self {
        self.head(5, entries as u64);
        self
    }

    pub fn array(&mut self, items: usize) -> &mut Self {
        self.head(4, items as u64);
        self
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n);
        self
    }

    pub fn int(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            self.head(0, n as u64);
        } else {
            // CBOR stores -1 - n for negative integers.
            self.head(1, (-1 - n) as u64);
        }
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.0.push(if b { 0xf5 } else { 0xf4 });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_encoded_at_their_shortest_width() {
        let mut o = Out::default();
        o.uint(0)
            .uint(23)
            .uint(24)
            .uint(256)
            .uint(65_536)
            .uint(1 << 32);
        o.int(-1).int(-25);
        assert_eq!(
            o.0,
            [
                &[0x00, 0x17, 0x18, 24, 0x19, 1, 0, 0x1a, 0, 1, 0, 0][..],
                &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0x38, 24][..],
            ]
            .concat()
        );
    }

    #[test]
    fn what_the_encoder_writes_the_decoder_reads_back() {
        let mut o = Out::default();
        o.map(3).text("a").bytes(b"hi").text("b").int(-7).text("c");
        o.array(2).bool(true).text("x");
        let v = decode(&o.0).unwrap();
        assert_eq!(v.get("a"), Some(&Val::Bytes(Cow::Borrowed(b"hi"))));
        assert_eq!(v.get("b"), Some(&Val::Int(-7)));
        assert_eq!(
            v.get("c"),
            Some(&Val::Array(vec![Val::Bool(true), Val::Text("x".into())]))
        );
    }

    #[test]
    fn indefinite_maps_and_chunked_strings_as_jackson_writes_them_are_read() {
        // {_ "k": (_ "ab", "c"), "n": null }
        let bytes = [
            0xbf, 0x61, b'k', 0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff, 0x61, b'n', 0xf6, 0xff,
        ];
        let v = decode(&bytes).unwrap();
        assert_eq!(v.get("k"), Some(&Val::Text("abc".into())));
        assert_eq!(v.get("n"), None, "null reads as absent");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut o = Out::default();
        o.map(1).text("payload").bytes(&[7; 40]);
        for cut in 0..o.0.len() {
            assert!(decode(&o.0[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_byte_string_claiming_a_gigabyte_fails_without_allocating_it() {
        // map(1) "p": bytes(len 2^30) with 3 bytes of content.
        let bytes = [0xa1, 0x61, b'p', 0x5a, 0x40, 0, 0, 0, 1, 2, 3];
        assert!(matches!(decode(&bytes), Err(CborError::Malformed(_))));
        // An array claiming 2^32 elements ends at the end of the input.
        assert!(decode(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let mut bytes = vec![0x81; MAX_DEPTH + 2];
        bytes.push(0x01);
        assert_eq!(decode(&bytes), Err(CborError::TooDeep));
        let mut ok = vec![0x81; MAX_DEPTH];
        ok.push(0x01);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn bytes_after_the_item_are_refused() {
        assert_eq!(decode(&[0xa0, 0x00]), Err(CborError::Trailing(1)));
    }

    #[test]
    fn the_request_id_is_found_in_the_prefix_of_a_cut_off_map() {
        let mut o = Out::default();
        o.map(3).text("requestId").text("r9").text("name").text("s");
        o.text("payload").bytes(&[0; 100]);
        assert_eq!(find_request_id(&o.0[..30]).as_deref(), Some("r9"));
        assert_eq!(find_request_id(&o.0[..5]), None);
    }
}
