//! A fault-injecting file system for tests: a FAKE, named as such, used only for faults a real
//! disk on a test machine cannot be made to produce on demand — running out of space part-way
//! through a write, and fsync failing. It also counts the bytes read, to show what start-up
//! and describe read, and notes the operations that can wait for the disk (fsync, create,
//! rename, remove, truncate) run on a watched thread, to show what an async runtime's thread
//! is spared. Built only with the cargo feature `fault-injection` (the crate's tests turn it on).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use crate::storage::{FileSystem, LogFile, StdFs};
use crate::time::lock;

/// Which thread is watched, what ran on it, and how often each operation ran at all.
#[derive(Debug, Default)]
struct Watch {
    thread: Mutex<Option<ThreadId>>,
    caught: Mutex<Vec<&'static str>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Watch {
    fn note(&self, op: &'static str) {
        *lock(&self.counts).entry(op).or_default() += 1;
        if *lock(&self.thread) == Some(std::thread::current().id()) {
            lock(&self.caught).push(op);
        }
    }
}

/// Wraps [`StdFs`]. `space_left_bytes` is a budget shared by every file: a write that would
/// exceed it writes what fits (a torn write, as a real full disk does) and fails with ENOSPC.
#[derive(Debug)]
pub struct FaultInjectingFs {
    space_left: Arc<AtomicI64>,
    fail_sync: Arc<AtomicBool>,
    bytes_read: Arc<AtomicU64>,
    watch: Arc<Watch>,
}

impl Default for FaultInjectingFs {
    fn default() -> Self {
        FaultInjectingFs {
            space_left: Arc::new(AtomicI64::new(i64::MAX)),
            fail_sync: Arc::new(AtomicBool::new(false)),
            bytes_read: Arc::new(AtomicU64::new(0)),
            watch: Arc::default(),
        }
    }
}

impl FaultInjectingFs {
    pub fn set_space_left_bytes(&self, bytes: i64) {
        self.space_left.store(bytes, Ordering::SeqCst);
    }
    pub fn set_fail_sync(&self, fail: bool) {
        self.fail_sync.store(fail, Ordering::SeqCst);
    }
    /// Bytes read through this file system so far (to show what start-up reads).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::SeqCst)
    }
    /// Notes from now on the blocking operations run on `thread` (`None`: on no thread).
    pub fn watch_thread(&self, thread: Option<ThreadId>) {
        *lock(&self.watch.thread) = thread;
    }
    /// The blocking operations that ran on the watched thread, in order.
    pub fn blocking_ops_on_watched_thread(&self) -> Vec<&'static str> {
        lock(&self.watch.caught).clone()
    }
    /// How often a blocking operation (`"sync_data"`, `"sync_dir"`, `"create"`, `"rename"`,
    /// `"remove_file"`, ...) ran so far, on any thread.
    pub fn op_count(&self, op: &str) -> u64 {
        lock(&self.watch.counts).get(op).copied().unwrap_or(0)
    }
}

struct FaultyFile {
    inner: Arc<dyn LogFile>,
    space_left: Arc<AtomicI64>,
    fail_sync: Arc<AtomicBool>,
    bytes_read: Arc<AtomicU64>,
    watch: Arc<Watch>,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl LogFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let n = self.inner.read_at(buf, pos)?;
        self.bytes_read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let want = buf.len() as i64;
        let before = self.space_left.fetch_sub(want, Ordering::SeqCst);
        if before >= want {
            return self.inner.write_all_at(buf, pos);
        }
        let fits = before.max(0) as usize;
        self.space_left.store(0, Ordering::SeqCst);
        self.inner.write_all_at(&buf[..fits], pos)?;
        Err(enospc())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.watch.note("sync_data");
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.watch.note("set_len");
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl FileSystem for FaultInjectingFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.watch.note("create_dir_all");
        StdFs.create_dir_all(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        self.watch.note(if create { "create" } else { "open" });
        Ok(Arc::new(FaultyFile {
            inner: StdFs.open(path, create)?,
            space_left: self.space_left.clone(),
            fail_sync: self.fail_sync.clone(),
            bytes_read: self.bytes_read.clone(),
            watch: self.watch.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.watch.note("remove_file");
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.watch.note("remove_dir_all");
        StdFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.watch.note("rename");
        StdFs.rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.watch.note("list");
        StdFs.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.watch.note("sync_dir");
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        StdFs.sync_dir(dir)
    }
}
