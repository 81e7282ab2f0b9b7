//! What /proc says about a process: CPU time used and memory (shared by both load tools).

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state field; utime
    // and stime are fields 14 and 15 of /proc/PID/stat, i.e. 11 and 12 from there.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.get(10).unwrap_or(&0) + f.get(11).unwrap_or(&0)) as f64 / 100.0
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`), in KiB; 0 if it cannot be read.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
