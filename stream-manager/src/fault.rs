//! A fault-injecting file system for tests: a FAKE, named as such, used only for faults a real
//! disk on a test machine cannot be made to produce on demand — running out of space part-way
//! through a write, and fsync failing. It also counts the bytes read, to show what start-up reads.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::storage::{FileSystem, LogFile, StdFs};

/// Wraps [`StdFs`]. `space_left_bytes` is a budget shared by every file: a write that would
/// exceed it writes what fits (a torn write, as a real full disk does) and fails with ENOSPC.
#[derive(Debug)]
pub struct FaultInjectingFs {
    space_left: Arc<AtomicI64>,
    fail_sync: Arc<AtomicBool>,
    bytes_read: Arc<AtomicU64>,
}

impl Default for FaultInjectingFs {
    fn default() -> Self {
        FaultInjectingFs {
            space_left: Arc::new(AtomicI64::new(i64::MAX)),
            fail_sync: Arc::new(AtomicBool::new(false)),
            bytes_read: Arc::new(AtomicU64::new(0)),
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
}

struct FaultyFile {
    inner: Arc<dyn LogFile>,
    space_left: Arc<AtomicI64>,
    fail_sync: Arc<AtomicBool>,
    bytes_read: Arc<AtomicU64>,
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
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl FileSystem for FaultInjectingFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        Ok(Arc::new(FaultyFile {
            inner: StdFs.open(path, create)?,
            space_left: self.space_left.clone(),
            fail_sync: self.fail_sync.clone(),
            bytes_read: self.bytes_read.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        StdFs.sync_dir(dir)
    }
}
