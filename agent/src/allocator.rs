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
//! it turns off glibc's adaptive `mmap` threshold, so that one is pinned at 1 MiB: bigger
//! allocations (large S3 objects) still get their own mapping and go back to the system at
//! once. The cost is at most 2 MiB of free memory kept per arena, which shows in RSS only
//! where an arena really reached that size.

/// Applies the tuning; a no-op where the C library is not glibc (musl builds, other systems).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD_BYTES: libc::c_int = 2 << 20;
        const MMAP_THRESHOLD_BYTES: libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes allocator parameters; called before any other thread
        // exists. A refusal (return value 0) leaves glibc's defaults, which are correct, only
        // slower.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}
