//! Tuning of glibc's allocator for the daemon's allocation pattern.
//!
//! The exporter allocates a read buffer and a request body of some hundred KiB per batch, on
//! a blocking-pool thread, and frees them a moment later. glibc gives such threads their own
//! arenas and trims an arena's free top as soon as it exceeds 128 KiB (`M_TRIM_THRESHOLD`'s
//! default, which only adapts upward for `mmap`ed chunks, and these stay below the `mmap`
//! threshold). So every batch paid an `madvise(MADV_DONTNEED)` on free and a page fault per
//! 4 KiB page on the next batch's first write: measured, about a third of the exporter's CPU
//! time and the difference between 62–88% and ~100% of the sink's rate in
//! `ferry-export-bench`.
//!
//! Raising the trim threshold to 2 MiB keeps that memory in the arena between batches. Setting
//! it turns off glibc's adaptive `mmap` threshold, so that one is pinned at 1 MiB (512 KiB on
//! 32-bit, glibc's ceiling there): bigger allocations (large S3 objects) still get their own
//! mapping and go back to the system at once. The cost is at most twice that of free memory
//! kept per arena, which shows in RSS only where an arena really reached that size.

/// Applies the tuning; a no-op where the C library is not glibc (musl builds, other systems).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc refuses an mmap threshold above 512 KiB on 32-bit systems (armv7).
        const MMAP_THRESHOLD_BYTES: libc::c_int = if cfg!(target_pointer_width = "64") {
            1 << 20
        } else {
            512 << 10
        };
        const TRIM_THRESHOLD_BYTES: libc::c_int = 2 * MMAP_THRESHOLD_BYTES;
        // SAFETY: mallopt only changes allocator parameters; it is called before the runtime
        // starts any thread. The mmap threshold goes first and the trim threshold only if it
        // was accepted: setting either turns glibc's adaptive thresholds off, and a trim
        // threshold alone would freeze the mmap threshold at 128 KiB, which is slower than the
        // defaults. A refusal leaves the defaults: correct, only slower.
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        if accepted == 1 {
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) };
        } else {
            tracing::debug!("glibc refused the mmap threshold; allocator left at its defaults");
        }
    }
}
