//! Readiness and the process's own readings. `/healthz` (liveness) stays a constant answer;
//! readiness says whether Ferry is doing its job, with a reason for each thing that is not:
//! a broker connection down, a stream full (under `reject_new_data`) or failed, an export paused
//! or retrying, the data directory's disk nearly full. Everything here is read from memory,
//! `/proc` and one `statvfs`: a probe never reads records.

use std::path::Path;

use ferry_stream_manager::export::ExportState;
use serde::{Deserialize, Serialize};

use super::{Overview, Service};

/// Less free space than this on the data directory's file system makes Ferry not ready.
pub const MIN_FREE_DISK_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// One line per thing that keeps Ferry from being ready; empty when ready.
    pub reasons: Vec<String>,
}

/// The process's own resource use and the data directory's free space.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessReadings {
    pub resident_memory_bytes: u64,
    pub cpu_seconds: f64,
    /// `None` if the file system could not be asked.
    pub data_dir_free_bytes: Option<u64>,
}

impl Service {
    pub fn readiness(&self) -> Readiness {
        let reasons = not_ready_reasons(&self.overview(), self.process().data_dir_free_bytes);
        Readiness {
            status: if reasons.is_empty() {
                "ready"
            } else {
                "not_ready"
            }
            .into(),
            reasons,
        }
    }

    pub fn process(&self) -> ProcessReadings {
        ProcessReadings {
            resident_memory_bytes: resident_memory_bytes().unwrap_or(0),
            cpu_seconds: cpu_seconds().unwrap_or(0.0),
            data_dir_free_bytes: free_bytes(&self.data_dir),
        }
    }
}

fn not_ready_reasons(o: &Overview, free: Option<u64>) -> Vec<String> {
    let mut reasons = Vec::new();
    for (broker, s) in &o.ingest {
        if !s.connected {
            reasons.push(format!("MQTT connection {broker:?} is not connected"));
        }
    }
    for d in &o.streams {
        let name = &d.definition.name;
        if let Some(why) = &d.storage_failed {
            reasons.push(format!("stream {name:?} refuses writes: {why}"));
        }
        if d.full {
            reasons.push(format!(
                "stream {name:?} is full ({} of {} bytes) and refuses new data",
                d.total_bytes, d.definition.max_size_bytes
            ));
        }
    }
    for e in &o.exports {
        let s = &e.status;
        if matches!(s.state, ExportState::Paused | ExportState::Retrying) {
            let why = s.last_error.as_deref().unwrap_or("no error recorded");
            reasons.push(format!(
                "export {:?} of stream {:?} is {}: {why}",
                s.identifier, s.stream, s.state
            ));
        }
    }
    if let Some(free) = free.filter(|f| *f < MIN_FREE_DISK_BYTES) {
        reasons.push(format!(
            "the data directory's disk has {free} bytes free (less than {MIN_FREE_DISK_BYTES})"
        ));
    }
    reasons
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs for the call to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // utime and stime are fields 14 and 15; the command name before them may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((f.get(10)? + f.get(11)?) as f64 / ticks)
}

#[cfg(test)]
mod tests {
    use ferry_connectors::mqtt::IngestSnapshot;
    use ferry_stream_manager::export::ExportStatus;
    use ferry_stream_manager::StreamDefinition;

    use super::*;
    use crate::service::views::ExportView;

    fn description(
        def: StreamDefinition,
        total_bytes: u64,
    ) -> ferry_stream_manager::StreamDescription {
        ferry_stream_manager::StreamDescription {
            definition: def,
            first_sequence_number: 0,
            last_sequence_number: None,
            next_sequence_number: 0,
            total_bytes,
            records: 0,
            oldest_record_timestamp_ms: None,
            segments: 1,
            counters: Default::default(),
            storage_failed: None,
            full: false,
        }
    }

    #[test]
    fn everything_fine_is_ready() {
        let o = Overview {
            ingest: vec![(
                "local".into(),
                IngestSnapshot {
                    connected: true,
                    ..Default::default()
                },
            )],
            streams: vec![description(StreamDefinition::new("s"), 10)],
            exports: vec![],
        };
        assert!(not_ready_reasons(&o, Some(1 << 30)).is_empty());
    }

    #[test]
    fn each_problem_is_named_with_its_reason() {
        let mut full = description(StreamDefinition::new("alarms"), 995);
        full.full = true;
        let mut failed = description(StreamDefinition::new("broken"), 0);
        failed.storage_failed = Some("fsync failed: EIO".into());
        let paused = ExportStatus {
            stream: "s".into(),
            identifier: "e".into(),
            state: ExportState::Paused,
            last_error: Some("HTTP 400".into()),
            ..Default::default()
        };
        let o = Overview {
            ingest: vec![("plant".into(), IngestSnapshot::default())],
            streams: vec![full, failed],
            exports: vec![ExportView {
                status: paused,
                lag_records: 0,
                lag_bytes: 0,
            }],
        };
        let reasons = not_ready_reasons(&o, Some(1024)).join("\n");
        for part in [
            "\"plant\" is not connected",
            "\"alarms\" is full",
            "EIO",
            "is paused: HTTP 400",
            "1024 bytes free",
        ] {
            assert!(reasons.contains(part), "{part:?} missing from:\n{reasons}");
        }
    }

    #[test]
    fn the_process_reads_its_own_memory_cpu_and_disk() {
        assert!(resident_memory_bytes().unwrap() > 0);
        assert!(cpu_seconds().is_some());
        assert!(free_bytes(Path::new("/")).is_some());
        assert!(free_bytes(Path::new("/no/such/dir")).is_none());
    }
}
