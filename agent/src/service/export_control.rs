//! Operator control of one export, for every front end: pause and resume it, or move its
//! checkpoint (reset to a sequence number, or skip records). Unsticking an export that a
//! permanent error paused needs no hand-written definition.
//!
//! Pausing sets the export's `disabled` flag in its definition, so a paused export stays paused
//! across restarts. Moving the checkpoint stops the export's task first and waits for it, so the
//! task cannot commit an older checkpoint over the new one.

use ferry_stream_manager::{Error, StreamManager};
use serde::{Deserialize, Serialize};

use super::views::{StreamPatch, StreamView};
use super::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportControl {
    /// Stop sending (persistent: the definition says `disabled = true`).
    Pause,
    /// Send again: clears `disabled`, or restarts an export a permanent error paused.
    Resume,
    /// Go on from sequence number `to` (older ones are sent again, newer skipped).
    Reset { to: u64 },
    /// Skip the next `records` records from the current checkpoint.
    Skip { records: u64 },
}

impl Service {
    pub async fn control_export(
        &self,
        stream: &str,
        id: &str,
        action: ExportControl,
    ) -> Result<StreamView, Error> {
        let def = self.manager.stream(stream)?.definition();
        let Some(i) = def.exports.iter().position(|e| e.identifier == id) else {
            return Err(Error::ExportNotFound {
                stream: stream.to_string(),
                export: id.to_string(),
            });
        };
        match action {
            ExportControl::Pause | ExportControl::Resume => {
                let disable = action == ExportControl::Pause;
                if def.exports[i].disabled != disable {
                    let mut exports = def.exports;
                    exports[i].disabled = disable;
                    let patch = StreamPatch {
                        exports: Some(exports),
                        ..StreamPatch::default()
                    };
                    return self.update(stream, patch).await;
                }
                if !disable {
                    // Not disabled, so paused by a permanent error (or running): start over.
                    self.restart_export(stream, id, None).await?;
                }
            }
            ExportControl::Reset { to } => {
                let end = self.manager.stream(stream)?.durable_end();
                if to > end {
                    return Err(Error::InvalidDefinition(format!(
                        "cannot reset export {id:?} to {to}: stream {stream:?} ends at {end} (its next sequence number)"
                    )));
                }
                self.restart_export(stream, id, Some(Move::To(to))).await?;
            }
            ExportControl::Skip { records } => {
                self.restart_export(stream, id, Some(Move::Forward(records)))
                    .await?;
            }
        }
        self.describe(stream)
    }

    /// Restarts the export's task, moving its checkpoint in between when asked.
    async fn restart_export(&self, stream: &str, id: &str, how: Option<Move>) -> Result<(), Error> {
        let manager = self.manager.clone();
        let (s, e) = (stream.to_string(), id.to_string());
        let between = async move {
            let Some(how) = how else { return Ok(()) };
            tokio::task::spawn_blocking(move || move_checkpoint(&manager, &s, &e, how))
                .await
                .map_err(|err| Error::Internal(format!("checkpoint task failed: {err}")))?
        };
        match self.exports.restart(stream, id, between).await {
            Some(result) => result,
            None => Err(Error::ExportNotFound {
                stream: stream.to_string(),
                export: id.to_string(),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Move {
    To(u64),
    Forward(u64),
}

fn move_checkpoint(
    manager: &StreamManager,
    stream: &str,
    id: &str,
    how: Move,
) -> Result<(), Error> {
    manager.with_catalog(stream, |c, sid| {
        let to = match how {
            Move::To(to) => to,
            Move::Forward(n) => c.checkpoint(sid, id)?.unwrap_or(0).saturating_add(n),
        };
        c.set_checkpoint(sid, id, to)
    })
}
