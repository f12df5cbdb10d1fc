//! The allocator settings CPU neural training needs (Linux with glibc).
//!
//! A training step on the CPU allocates and frees tensors of several MiB (TabM on 5 folds:
//! `[5 · 8, 256, 256]` f32 = 10 MiB each) thousands of times an epoch. glibc's defaults give
//! the freed top of the heap back to the kernel (`M_TRIM_THRESHOLD`, 128 KiB, raised
//! dynamically) and serve some sizes with fresh `mmap`s, so every step faults the same pages in
//! again: measured 5.8 million page faults and 11.5 s of system time in a 44 s TabM epoch.
//! [`keep_freed_memory`] raises the trim threshold to 1 GiB, pads heap growth by 64 MiB and
//! fixes the mmap threshold at glibc's maximum (32 MiB), after which the same epoch spent 0.8 s
//! in the kernel and 21% less wall time. The cost: up to about 1 GiB of freed memory stays
//! with the process instead of returning to the system.
//!
//! Process-wide and done once, the first time a population trains on the CPU. Elsewhere (other
//! C libraries, other systems) it does nothing.

/// Raises glibc's trim and mmap thresholds once per process (see the module docs).
pub(crate) fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_thresholds);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_thresholds() {
    const TRIM: libc::c_int = 1 << 30;
    const TOP_PAD: libc::c_int = 64 << 20;
    const MMAP: libc::c_int = 32 << 20;
    for (name, param, value) in [
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, TRIM),
        ("M_TOP_PAD", libc::M_TOP_PAD, TOP_PAD),
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, MMAP),
    ] {
        // SAFETY: mallopt only changes glibc's allocator parameters (thread-safe: it takes the
        // arena locks); it returns 0 when it refuses a value, and nothing depends on it.
        if unsafe { libc::mallopt(param, value) } == 0 {
            tracing::debug!("mallopt({name}, {value}) refused; CPU training may fault more pages");
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() {}
