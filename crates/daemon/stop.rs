//! The stop flag: set once SIGTERM or SIGINT arrived, polled by long work (scans,
//! repairs, walks, trims) between entries. A module of its own, below everything that
//! polls it; it never waits or signals anyone.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once SIGTERM or SIGINT arrived: long work (scans, repairs, walks) stops between
/// entries, journals what it did, and returns.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The stop flag itself, for code that polls it outside this crate (the watcher's walks).
pub fn stop_flag() -> &'static AtomicBool {
    &STOPPING
}

/// Whether goguardd is stopping.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Marks goguardd as stopping (the signal task).
pub fn request_stop() {
    STOPPING.store(true, Ordering::Relaxed);
}
