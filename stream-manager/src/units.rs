//! Sizes and durations as people write them, where a number is also accepted: a key named
//! `..._bytes` takes `1048576` or `"1MiB"` (`"256 MiB"`, `"4KiB"`, `"1GB"`, `"500B"`: binary
//! units KiB MiB GiB TiB are powers of 1024, decimal kB MB GB TB of 1000), a key named `..._ms`
//! takes `60000` or `"60s"` (`"500ms"`, `"7d"`, `"1h 30m"`, as `humantime` reads them). Stored
//! and shown values are plain numbers.

use serde::Deserializer;

/// A number, or text that `parse` turns into one.
struct NumberOrText {
    parse: fn(&str) -> Result<u64, String>,
    expecting: &'static str,
}

impl<'de> serde::de::Visitor<'de> for NumberOrText {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; {}", self.expecting)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
        Err(E::custom(format!("{v} is not whole; {}", self.expecting)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

const BYTES: NumberOrText = NumberOrText {
    parse: parse_bytes,
    expecting: "expected a number of bytes or a size such as \"256MiB\"",
};
const MILLIS: NumberOrText = NumberOrText {
    parse: parse_millis,
    expecting: "expected milliseconds or a duration such as \"30s\" or \"7d\"",
};

/// `Some` of a number or text; `None` for null or a missing key.
struct Optional(NumberOrText);

impl<'de> serde::de::Visitor<'de> for Optional {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0.expecting)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(self.0).map(Some)
    }
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
        _ => {
            return Err(format!(
            "{text:?} is not a size: use a number of bytes or e.g. \"512KiB\", \"256MiB\", \"1GB\""
        ))
        }
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
    d.deserialize_any(BYTES)
}

pub fn bytes_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = bytes(d)?;
    usize::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} bytes is too large here")))
}

pub fn bytes_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_option(Optional(BYTES))
}

pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(MILLIS)
}

pub fn millis_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_option(Optional(MILLIS))
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
        #[derive(serde::Deserialize)]
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
