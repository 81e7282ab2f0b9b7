//! The catalog: stream definitions, memory streams' sequence floors and (for the exporter)
//! export checkpoints, in SQLite (`catalog.sqlite` in the data directory, WAL journal).
//! Definitions are committed with `synchronous=FULL` (a committed change survives power loss);
//! checkpoints with `synchronous=NORMAL` (they survive a crash of the process; a power cut may
//! roll them back, which resends records but never skips any).
//!
//! Schema versions are numbered by `PRAGMA user_version`; [`MIGRATIONS`] holds one script per
//! version and each runs in the same transaction as the version bump, so an interrupted
//! migration leaves the previous version intact.

use std::path::Path;

use crate::time::now_ms;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use crate::definition::{parse_stored, StreamDefinition};
use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: streams and export checkpoints.
    "CREATE TABLE streams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        seq_floor INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE export_checkpoints (
        stream_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
        export_id TEXT NOT NULL,
        next_sequence_number INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (stream_id, export_id)
    );",
];

/// A stream as the catalog knows it.
#[derive(Debug, Clone)]
pub struct StoredStream {
    pub id: i64,
    pub definition: StreamDefinition,
    pub seq_floor: u64,
}

pub struct Catalog {
    conn: Connection,
    /// Export checkpoints are written often (once per batch) and only ever cost duplicates if
    /// one is lost, so they use their own connection with `synchronous=NORMAL`: a commit
    /// survives a process crash (it is in the WAL) but not necessarily a power cut.
    checkpoints: Connection,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let checkpoints = Connection::open(path)?;
        checkpoints.pragma_update(None, "synchronous", "NORMAL")?;
        checkpoints.pragma_update(None, "foreign_keys", "ON")?;
        checkpoints.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Catalog { conn, checkpoints })
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub fn streams(&self) -> Result<Vec<StoredStream>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, definition, seq_floor FROM streams ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, json, floor) = row?;
            let (definition, dropped) =
                parse_stored(&json).map_err(|reason| Error::CatalogCorrupt {
                    name: name.clone(),
                    reason,
                })?;
            for d in dropped {
                tracing::error!(stream = %name, export = %d.identifier, error = %d.reason, "a stored export is invalid for this version of Ferry; the stream opens without it (define it again to export)");
            }
            out.push(StoredStream {
                id,
                definition,
                seq_floor: floor as u64,
            });
        }
        Ok(out)
    }

    pub fn insert_stream(&mut self, def: &StreamDefinition) -> Result<i64> {
        let json =
            serde_json::to_string(def).map_err(|e| Error::InvalidDefinition(e.to_string()))?;
        let now = now_ms();
        match self.conn.execute(
            "INSERT INTO streams (name, definition, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?3)",
            params![def.name, json, now],
        ) {
            Ok(_) => Ok(self.conn.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(Error::StreamExists(def.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn update_stream(&mut self, id: i64, def: &StreamDefinition) -> Result<()> {
        let json =
            serde_json::to_string(def).map_err(|e| Error::InvalidDefinition(e.to_string()))?;
        self.conn.execute(
            "UPDATE streams SET definition = ?2, updated_at_ms = ?3 WHERE id = ?1",
            params![id, json, now_ms()],
        )?;
        Ok(())
    }

    /// Deletes a stream and, by cascade, its export checkpoints.
    pub fn delete_stream(&mut self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM streams WHERE id = ?1", params![id])?;
        Ok(())
    }

    pub fn set_seq_floor(&self, id: i64, floor: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE streams SET seq_floor = MAX(seq_floor, ?2) WHERE id = ?1",
            params![id, floor as i64],
        )?;
        Ok(())
    }

    /// Records that export `export_id` of stream `stream_id` has delivered everything before
    /// `next_sequence_number`.
    pub fn set_checkpoint(
        &mut self,
        stream_id: i64,
        export_id: &str,
        next_sequence_number: u64,
    ) -> Result<()> {
        // Cached: parsing the statement cost more than running it, once per exported batch.
        self.checkpoints.prepare_cached(
            "INSERT INTO export_checkpoints (stream_id, export_id, next_sequence_number, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stream_id, export_id) DO UPDATE SET
               next_sequence_number = excluded.next_sequence_number, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![stream_id, export_id, next_sequence_number as i64, now_ms()])?;
        Ok(())
    }

    pub fn checkpoint(&self, stream_id: i64, export_id: &str) -> Result<Option<u64>> {
        Ok(self
            .checkpoints
            .query_row(
                "SELECT next_sequence_number FROM export_checkpoints WHERE stream_id = ?1 AND export_id = ?2",
                params![stream_id, export_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|v| v as u64))
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(Error::CatalogCorrupt {
            name: String::new(),
            reason: format!(
                "catalog schema version {current} is newer than this build knows ({}); refusing to touch it",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, script) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let id = {
            let mut c = Catalog::open(&path).unwrap();
            assert_eq!(c.schema_version().unwrap(), MIGRATIONS.len() as i64);
            let id = c.insert_stream(&StreamDefinition::new("a")).unwrap();
            c.set_checkpoint(id, "e1", 42).unwrap();
            c.set_seq_floor(id, 7).unwrap();
            c.set_seq_floor(id, 3).unwrap();
            id
        };
        let c = Catalog::open(&path).unwrap();
        let streams = c.streams().unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].definition.name, "a");
        assert_eq!(streams[0].seq_floor, 7, "the floor never moves back");
        assert_eq!(c.checkpoint(id, "e1").unwrap(), Some(42));
    }

    #[test]
    fn a_duplicate_name_is_a_typed_error_and_delete_cascades() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let id = c.insert_stream(&StreamDefinition::new("a")).unwrap();
        assert!(matches!(
            c.insert_stream(&StreamDefinition::new("a")),
            Err(Error::StreamExists(_))
        ));
        c.set_checkpoint(id, "e", 1).unwrap();
        c.delete_stream(id).unwrap();
        assert_eq!(c.checkpoint(id, "e").unwrap(), None);
    }

    #[test]
    fn a_catalog_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        Catalog::open(&path)
            .unwrap()
            .conn
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Catalog::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
