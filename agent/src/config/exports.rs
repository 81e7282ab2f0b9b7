//! The exports declared in the configuration (`[[streams.exports]]`), checked so that an error
//! names the setting at fault: `streams[0].exports[1].settings.url`.

use ferry_connectors::sinks::{self, SinkEnv};
use ferry_stream_manager::definition::{ExportDefinition, RawExportDefinition};
use ferry_stream_manager::StreamDefinition;
use serde::Deserialize;

/// Where export `j` of stream `i` sits, and `key` within it.
fn key_of(i: usize, j: usize, key: &str) -> String {
    format!("streams[{i}].exports[{j}].{key}")
}

/// Converts each export of the file on its own, before the whole document is deserialized:
/// that would stop at the first broken export naming only the export, not the setting. An
/// export that does not even parse as one is left to the whole document's deserialization,
/// whose error names the key.
pub(super) fn check_definitions(built: &config::Config) -> Result<(), (String, String)> {
    #[derive(Deserialize)]
    struct StreamExports {
        #[serde(default)]
        exports: Vec<RawExportDefinition>,
    }
    let Ok(streams) = built.get::<Vec<StreamExports>>("streams") else {
        return Ok(());
    };
    for (i, s) in streams.into_iter().enumerate() {
        for (j, raw) in s.exports.into_iter().enumerate() {
            ExportDefinition::try_from(raw).map_err(|e| (key_of(i, j, &e.key), e.reason))?;
        }
    }
    Ok(())
}

/// What needs no environment, for definitions however they were made.
pub(super) fn validate(streams: &[StreamDefinition]) -> Result<(), (String, String)> {
    for (i, s) in streams.iter().enumerate() {
        for (j, e) in s.exports.iter().enumerate() {
            e.validate()
                .map_err(|err| (key_of(i, j, &err.key), err.reason))?;
        }
    }
    Ok(())
}

/// Whether every export could start in `env` (region, credentials, certificate files), so a
/// broken one is refused before anything starts.
pub(super) fn check_sinks(
    streams: &[StreamDefinition],
    env: &SinkEnv,
) -> Result<(), (String, String)> {
    for (i, s) in streams.iter().enumerate() {
        for (j, e) in s.exports.iter().enumerate() {
            sinks::check(e, &s.name, env).map_err(|err| (key_of(i, j, &err.key), err.reason))?;
        }
    }
    Ok(())
}
