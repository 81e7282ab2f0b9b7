//! Shared small primitives: the wall clock in milliseconds and a poison-tolerant mutex lock.
//! Every crate of Ferry uses these instead of keeping its own copy.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it. Callers keep the data
/// consistent across every early return, so a panic elsewhere must not take the daemon down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
