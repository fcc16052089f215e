//! The `wf` binary's allocator: mimalloc instead of glibc's malloc.
//!
//! Under webhook load `wf dev` allocates and frees on the request threads and on the SQLite
//! writer thread at once, and glibc's malloc/free were ~15% of its CPU (perf). With mimalloc,
//! `scripts/bench-webhooks` gives ~13% more executions/s at c=16 for the same idle and peak RSS.
//! Two settings keep its memory where glibc's was:
//! - built with `no_thp` (Cargo.toml): transparent huge pages had put idle RSS at 33 MB, not 22;
//! - freed pages go back to the OS at once ([`return_freed_memory_at_once`]): with mimalloc's
//!   default delay (1 s, and only once the thread allocates again) `wf dev` kept ~70-110 MB after
//!   a template that hit its 64 MiB budget or a 100,000-item loop (`scripts/bad-input`), where
//!   glibc went back to ~25 MB. Measured: the same throughput with the delay at 0.

/// Every thread of the process allocates through mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its index in `enum mi_option_e` of mimalloc.h (v3, the version the
/// `mimalloc` crate builds). libmimalloc-sys's bindings name only older options; the test below
/// checks this index reads the purge delay's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is returned to the OS when it is freed, not after a delay. Called first in `main`.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets one process-wide option that mimalloc reads atomically; 0 is a valid delay.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // SAFETY: reads and sets a process-wide option (no other test of this binary uses it).
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        assert_eq!(
            before, expected,
            "index 15 is not mimalloc's purge delay (default 1,000 ms)"
        );
        return_freed_memory_at_once();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 0);
    }
}
