//! Deserializes an export's `settings` object so that an error names the setting it is about
//! (`settings.timeout_ms`): serde_json's own errors for a `Value` name no field. Every value is
//! handed to the settings struct through a deserializer that tags its errors with its key, and
//! an unknown or missing field keeps its name apart from the message.

use std::fmt;

use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

use super::export::ExportConfigError;

/// The settings struct `T` from `settings`; an error's key is `settings.{the setting}` (just
/// `settings` when serde does not say which, e.g. a wrong type in a flattened field).
pub(super) fn parse<T: DeserializeOwned>(
    settings: &Map<String, Value>,
) -> Result<T, ExportConfigError> {
    let entries = settings
        .iter()
        .map(|(key, value)| (key.as_str(), Keyed { key, value }));
    T::deserialize(MapDeserializer::new(entries)).map_err(|e| {
        let key = e.key.map_or_else(
            || "settings".to_string(),
            |setting| format!("settings.{setting}"),
        );
        ExportConfigError::new(key, e.reason)
    })
}

#[derive(Debug)]
pub(super) struct KeyedError {
    key: Option<String>,
    reason: String,
}

impl fmt::Display for KeyedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for KeyedError {}

impl de::Error for KeyedError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let reason = msg.to_string();
        // A struct with flattened fields reports an unknown one only through this message.
        let key = reason
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_string());
        match key {
            Some(key) => KeyedError {
                key: Some(key),
                reason: "unknown setting".into(),
            },
            None => KeyedError { key: None, reason },
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        KeyedError {
            key: Some(field.to_string()),
            reason: format!("unknown setting (expected one of: {})", expected.join(", ")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        KeyedError {
            key: Some(field.to_string()),
            reason: "required setting is missing".into(),
        }
    }
}

/// One setting's value, whose errors carry the setting's name.
#[derive(Clone, Copy)]
struct Keyed<'a> {
    key: &'a str,
    value: &'a Value,
}

impl Keyed<'_> {
    fn error(self, e: serde_json::Error) -> KeyedError {
        KeyedError {
            key: Some(self.key.to_string()),
            reason: e.to_string(),
        }
    }
}

impl<'a> IntoDeserializer<'a, KeyedError> for Keyed<'a> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! forward_keyed {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'a>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, KeyedError> {
            de::Deserializer::$method(self.value, $($arg,)* visitor).map_err(|e| self.error(e))
        }
    )*};
}

impl<'a> de::Deserializer<'a> for Keyed<'a> {
    type Error = KeyedError;

    forward_keyed! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }
}
