//! The stream manager: opens the data directory, keeps the catalog and the open streams in step,
//! and runs time-based retention.
//!
//! ```text
//! <data_dir>/LOCK              advisory lock: one process per data directory; holds its PID
//! <data_dir>/catalog.sqlite    definitions, sequence floors, export checkpoints
//! <data_dir>/streams/<id>/     one directory of segments per file stream (id from the catalog)
//! ```
//! Streams are stored under their catalog id rather than their name, so a deleted and re-created
//! stream never meets the old one's files. Catalog changes commit before files are created or
//! removed; a directory with no catalog row is a leftover of an interrupted delete and is removed.
//!
//! Every change of the set of definitions (create, update, delete) bumps a generation number
//! published on a watch channel ([`StreamManager::watch_definitions`]), so whatever follows the
//! definitions (the export supervisor) reacts to a change whoever made it.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::definition::{Persistence, StreamDefinition};
use crate::error::{Error, Result};
use crate::storage::{FileSystem, StdFs};
use crate::stream::{lock, sweep_ttl, Clock, SeqReserver, Stream, StreamDescription};

pub struct ManagerOptions {
    pub fs: Arc<dyn FileSystem>,
    pub clock: Clock,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            fs: Arc::new(StdFs),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            }),
        }
    }
}

struct Entry {
    id: i64,
    stream: Stream,
}

pub struct StreamManager {
    data_dir: PathBuf,
    catalog: Arc<Mutex<Catalog>>,
    streams: Mutex<HashMap<String, Entry>>,
    /// Generation of the definitions: bumped after every create, update and delete.
    definitions: tokio::sync::watch::Sender<u64>,
    opts: ManagerOptions,
    _lock: File,
}

impl StreamManager {
    pub fn open(data_dir: &Path, opts: ManagerOptions) -> Result<StreamManager> {
        let streams_dir = data_dir.join("streams");
        std::fs::create_dir_all(&streams_dir).map_err(|e| Error::io(&streams_dir, e))?;
        let lock_file = lock_data_dir(data_dir)?;
        let catalog = Arc::new(Mutex::new(Catalog::open(&data_dir.join("catalog.sqlite"))?));
        let mgr = StreamManager {
            data_dir: data_dir.to_owned(),
            catalog,
            streams: Mutex::new(HashMap::new()),
            definitions: tokio::sync::watch::Sender::new(0),
            opts,
            _lock: lock_file,
        };
        let stored = lock(&mgr.catalog).streams()?;
        let mut map = HashMap::new();
        for s in stored {
            s.definition.validate().map_err(|e| Error::CatalogCorrupt {
                name: s.definition.name.clone(),
                reason: e.to_string(),
            })?;
            let stream = mgr.open_stream(s.id, s.definition.clone(), s.seq_floor)?;
            map.insert(s.definition.name, Entry { id: s.id, stream });
        }
        mgr.remove_orphans(&map)?;
        *lock(&mgr.streams) = map;
        Ok(mgr)
    }

    fn stream_dir(&self, id: i64) -> PathBuf {
        self.data_dir.join("streams").join(id.to_string())
    }

    fn open_stream(&self, id: i64, def: StreamDefinition, seq_floor: u64) -> Result<Stream> {
        let reserver: Option<SeqReserver> = match def.persistence {
            Persistence::Memory => {
                let catalog = self.catalog.clone();
                Some(Arc::new(move |floor| {
                    lock(&catalog).set_seq_floor(id, floor)
                }))
            }
            Persistence::File => None,
        };
        Stream::open(
            def,
            self.stream_dir(id),
            self.opts.fs.clone(),
            self.opts.clock.clone(),
            seq_floor,
            reserver,
        )
    }

    fn remove_orphans(&self, known: &HashMap<String, Entry>) -> Result<()> {
        let dir = self.data_dir.join("streams");
        let ids: std::collections::HashSet<String> =
            known.values().map(|e| e.id.to_string()).collect();
        for name in self.opts.fs.list(&dir).map_err(|e| Error::io(&dir, e))? {
            if !ids.contains(&name) {
                tracing::info!(dir = %dir.join(&name).display(), "removing files of a deleted stream");
                self.opts
                    .fs
                    .remove_dir_all(&dir.join(&name))
                    .map_err(|e| Error::io(dir.join(&name), e))?;
            }
        }
        Ok(())
    }

    pub fn create_stream(&self, def: StreamDefinition) -> Result<Stream> {
        let def = def.with_fitting_segments();
        def.validate()?;
        let mut streams = lock(&self.streams);
        if streams.contains_key(&def.name) {
            return Err(Error::StreamExists(def.name));
        }
        let id = lock(&self.catalog).insert_stream(&def)?;
        match self.open_stream(id, def.clone(), 0) {
            Ok(stream) => {
                streams.insert(
                    def.name,
                    Entry {
                        id,
                        stream: stream.clone(),
                    },
                );
                drop(streams);
                self.definitions_changed();
                Ok(stream)
            }
            Err(e) => {
                let _ = lock(&self.catalog).delete_stream(id);
                let _ = self.opts.fs.remove_dir_all(&self.stream_dir(id));
                Err(e)
            }
        }
    }

    /// Creates the stream, or updates it when it exists with another definition.
    pub fn ensure_stream(&self, def: StreamDefinition) -> Result<Stream> {
        match self.stream(&def.name) {
            Ok(s) => {
                if s.state().def != def.clone().with_fitting_segments() {
                    self.update_stream(def)?;
                }
                Ok(s)
            }
            Err(Error::StreamNotFound(_)) => self.create_stream(def),
            Err(e) => Err(e),
        }
    }

    pub fn update_stream(&self, def: StreamDefinition) -> Result<()> {
        let def = def.with_fitting_segments();
        def.validate()?;
        let streams = lock(&self.streams);
        let entry = streams
            .get(&def.name)
            .ok_or_else(|| Error::StreamNotFound(def.name.clone()))?;
        let old = entry.stream.state().def.clone();
        entry.stream.update(def.clone())?;
        if let Err(e) = lock(&self.catalog).update_stream(entry.id, &def) {
            let _ = entry.stream.update(old);
            return Err(e);
        }
        drop(streams);
        self.definitions_changed();
        Ok(())
    }

    pub fn delete_stream(&self, name: &str) -> Result<()> {
        let entry = lock(&self.streams)
            .remove(name)
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))?;
        lock(&self.catalog).delete_stream(entry.id)?;
        entry.stream.mark_deleted();
        self.definitions_changed();
        let dir = self.stream_dir(entry.id);
        self.opts
            .fs
            .remove_dir_all(&dir)
            .map_err(|e| Error::io(dir, e))
    }

    fn definitions_changed(&self) {
        self.definitions.send_modify(|g| *g += 1);
    }

    /// Follows definition changes: the value is a generation number, bumped after every create,
    /// update and delete (whoever made it).
    pub fn watch_definitions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.definitions.subscribe()
    }

    /// Every stream's definition, sorted by name (memory only: no disk access).
    pub fn definitions(&self) -> Vec<StreamDefinition> {
        let streams: Vec<Stream> = lock(&self.streams)
            .values()
            .map(|e| e.stream.clone())
            .collect();
        let mut defs: Vec<StreamDefinition> = streams.iter().map(|s| s.definition()).collect();
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        defs
    }

    pub fn stream(&self, name: &str) -> Result<Stream> {
        lock(&self.streams)
            .get(name)
            .map(|e| e.stream.clone())
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))
    }

    /// Stream names, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.streams).keys().cloned().collect();
        names.sort();
        names
    }

    pub fn describe(&self, name: &str) -> Result<StreamDescription> {
        self.stream(name)?.describe()
    }

    /// Catalog access for the exporter's checkpoints; returns the stream's catalog id too.
    pub fn with_catalog<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Catalog, i64) -> Result<T>,
    ) -> Result<T> {
        let id = lock(&self.streams)
            .get(name)
            .map(|e| e.id)
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))?;
        f(&mut lock(&self.catalog), id)
    }

    /// Applies every stream's time to live once. Returns the number of records removed.
    /// Blocking (it may read old segments): async code uses [`StreamManager::run_retention`].
    pub fn enforce_ttl(&self) -> u64 {
        let streams: Vec<Stream> = lock(&self.streams)
            .values()
            .map(|e| e.stream.clone())
            .collect();
        sweep_ttl(&streams)
    }

    /// Runs the time-to-live sweep every `interval` until `shutdown` completes. Each sweep runs
    /// on the blocking pool (it reads and drops segments), not on the runtime's workers.
    pub async fn run_retention(&self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {
                    let streams: Vec<Stream> = lock(&self.streams)
                        .values()
                        .map(|e| e.stream.clone())
                        .collect();
                    match tokio::task::spawn_blocking(move || sweep_ttl(&streams)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(records = n, "removed records past their time to live"),
                        Err(e) => {
                            let e = Error::Internal(format!("time-to-live sweep task failed: {e}"));
                            tracing::error!(error = %e, "time-to-live sweep skipped");
                        }
                    }
                }
            }
        }
    }

    /// Makes every written record durable and stops the streams' syncers.
    pub fn close(&self) {
        for e in lock(&self.streams).values() {
            e.stream.close();
        }
    }
}

/// Takes the data directory's lock and writes this process's PID into the lock file, so a
/// second Ferry can say which process holds the directory. The file is never truncated before
/// the lock is held: that would erase the holder's PID.
fn lock_data_dir(data_dir: &Path) -> Result<File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    if file.try_lock().is_err() {
        let mut text = String::new();
        let holder = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse::<u32>().ok());
        return Err(Error::DataDirLocked {
            path: data_dir.to_owned(),
            holder,
        });
    }
    let pid = std::process::id();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{pid}"))
        .map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

impl Drop for StreamManager {
    fn drop(&mut self) {
        self.close();
    }
}
