//! Sizes and durations as people write them, where a number is also accepted: a key named
//! `..._bytes` takes `1048576` or `"1MiB"` (`"256 MiB"`, `"4KiB"`, `"1GB"`, `"500B"`: binary
//! units KiB MiB GiB TiB are powers of 1024, decimal kB MB GB TB of 1000), a key named `..._ms`
//! takes `60000` or `"60s"` (`"500ms"`, `"7d"`, `"1h 30m"`, as `humantime` reads them). Stored
//! and shown values are plain numbers.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

/// Parses `"256MiB"` and the like (see the module comment); a bare number is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!(
            "{text:?} is not a size: use a number of bytes or e.g. \"512KiB\", \"256MiB\", \"1GB\""
        )),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size: no number before the unit"))?;
    let bytes = value * factor as f64;
    if !(0.0..=u64::MAX as f64).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(format!("{text:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parses `"7d"`, `"500ms"`, `"1h 30m"` into milliseconds; a bare number is milliseconds.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    humantime::parse_duration(t)
        .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
        .map_err(|e| format!("{text:?} is not a duration ({e}): use milliseconds or e.g. \"500ms\", \"30s\", \"7d\""))
}

pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

pub fn bytes_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = bytes(d)?;
    usize::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} bytes is too large here")))
}

pub fn bytes_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(t)) => parse_bytes(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => parse_millis(&t).map_err(serde::de::Error::custom),
    }
}

pub fn millis_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(t)) => parse_millis(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("256MiB", 256 << 20),
            ("256 MiB", 256 << 20),
            ("4KiB", 4096),
            ("1.5KiB", 1536),
            ("1GB", 1_000_000_000),
            ("500B", 500),
            ("2gib", 2 << 30),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "MiB", "12 parsecs", "0.3B", "-1KiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        for (text, ms) in [
            ("60000", 60_000),
            ("500ms", 500),
            ("30s", 30_000),
            ("7d", 604_800_000),
            ("1h 30m", 5_400_000),
        ] {
            assert_eq!(parse_millis(text), Ok(ms), "{text}");
        }
        assert!(parse_millis("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn a_definition_takes_numbers_or_text() {
        #[derive(Deserialize)]
        struct D {
            #[serde(deserialize_with = "bytes")]
            max_size_bytes: u64,
            #[serde(default, deserialize_with = "millis_opt")]
            time_to_live_ms: Option<u64>,
        }
        let d: D = serde_json::from_str(r#"{"max_size_bytes": "16MiB", "time_to_live_ms": "7d"}"#)
            .unwrap();
        assert_eq!(
            (d.max_size_bytes, d.time_to_live_ms),
            (16 << 20, Some(604_800_000))
        );
        let d: D = serde_json::from_str(r#"{"max_size_bytes": 4096}"#).unwrap();
        assert_eq!((d.max_size_bytes, d.time_to_live_ms), (4096, None));
        let err = serde_json::from_str::<D>(r#"{"max_size_bytes": "lots"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("lots"), "{err}");
    }
}
