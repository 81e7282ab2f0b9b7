//! Reading a definition back from the catalog. A stored export that this version refuses (an
//! older Ferry accepted export kinds and settings that are now checked when they parse) must
//! not keep its stream, or every stream, from opening: the stream opens without that export,
//! and the caller logs what was left out and why.

use super::{ExportDefinition, StreamDefinition};

/// An export left out of a stored definition, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedExport {
    pub identifier: String,
    pub reason: String,
}

/// Parses a stored definition; exports that no longer parse are left out and returned.
pub fn parse_stored(json: &str) -> Result<(StreamDefinition, Vec<DroppedExport>), String> {
    let first = match serde_json::from_str::<StreamDefinition>(json) {
        Ok(def) => return Ok((def, Vec::new())),
        Err(e) => e.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut dropped = Vec::new();
    if let Some(exports) = value.get_mut("exports").and_then(|e| e.as_array_mut()) {
        exports.retain(
            |e| match serde_json::from_value::<ExportDefinition>(e.clone()) {
                Ok(_) => true,
                Err(err) => {
                    dropped.push(DroppedExport {
                        identifier: e["identifier"].as_str().unwrap_or("").to_string(),
                        reason: err.to_string(),
                    });
                    false
                }
            },
        );
    }
    if dropped.is_empty() {
        return Err(first);
    }
    let def = serde_json::from_value(value).map_err(|_| first)?;
    Ok((def, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_export_this_version_refuses_is_left_out_and_the_rest_kept() {
        let json = r#"{"name":"s","max_size_bytes":4096,"exports":[
            {"identifier":"old","kind":"ftp","settings":{}},
            {"identifier":"ok","kind":"http","settings":{"url":"http://127.0.0.1:9/"}}]}"#;
        let (def, dropped) = parse_stored(json).unwrap();
        assert_eq!(def.max_size_bytes, 4096);
        assert_eq!(def.exports.len(), 1);
        assert_eq!(def.exports[0].identifier, "ok");
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].identifier, "old");
        assert!(dropped[0].reason.contains("ftp"), "{}", dropped[0].reason);
    }

    #[test]
    fn a_definition_broken_elsewhere_is_still_an_error() {
        assert!(parse_stored(r#"{"name":"s","max_size":1}"#).is_err());
        assert!(parse_stored("not json").is_err());
    }
}
