//! The allocator setting a long-running server needs (Linux with glibc).
//!
//! glibc serves an allocation of 128 KiB or more with its own `mmap` and unmaps it when freed,
//! but the first time such a block is freed it raises that threshold to the block's size
//! (dynamic mmap threshold, up to 32 MiB). After the first 1 MB request body, every later
//! body buffer and parse of that size comes from a malloc arena instead, and each thread's
//! arena keeps the freed pages: in the serving soak (benches/README.md) resident memory grew
//! from 76 MB to 139 MB in two minutes and was still climbing. [`return_large_buffers`] fixes
//! the threshold at 256 KiB, so large buffers always go back to the kernel when freed, and puts
//! the trim threshold back at its default 128 KiB (the dynamic raise doubles it with the mmap
//! threshold: a large block freed while the bundle loaded left the heap's free top untrimmed).
//! With both, the same soak levelled off at about 100 MB within a minute.
//!
//! Process-wide and done once, when the first [`super::Server`] starts. Elsewhere (other C
//! libraries, other systems) it does nothing.

/// Fixes glibc's mmap threshold at 256 KiB and its trim threshold at its default 128 KiB, once
/// per process (see the module docs).
pub(crate) fn return_large_buffers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_thresholds);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_thresholds() {
    const MMAP: libc::c_int = 256 << 10;
    const TRIM: libc::c_int = 128 << 10;
    for (name, param, value) in [
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, MMAP),
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, TRIM),
    ] {
        // SAFETY: mallopt only changes glibc's allocator parameters (thread-safe: it takes the
        // arena locks); it returns 0 when it refuses a value, and nothing depends on it.
        if unsafe { libc::mallopt(param, value) } == 0 {
            tracing::debug!("mallopt({name}, {value}) refused; freed bodies may stay resident");
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() {}
