//! Heap tuning for the command line: keep freed memory for reuse.
//!
//! The passes allocate and free many tensors of a few MB each (relevance sweeps,
//! calibration runs). glibc hands such blocks back to the kernel on
//! free (mmap above its threshold, heap trimming), so the next allocation of the same size
//! page-faults fresh zeroed pages again: a quarter of an explanation's time went to the
//! kernel. Raising both thresholds makes freed blocks reusable; the process keeps its peak
//! heap until it exits, which a one-shot command does soon anyway.

/// Makes glibc's malloc keep and reuse freed memory. Called once at the start of a
/// command; a no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters under glibc's own arena lock; a
    // refused value (its return 0) leaves the default in place, which is still correct.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
