//! Runs independent jobs, one per index (a `00`..`ff` directory of a cache), on a few scoped
//! threads and returns their results in index order, so whatever is built from them is the
//! same as from a sequential loop.
//!
//! Must never share anything between jobs but what the caller's closure borrows (read-only,
//! `Sync`), nor return results out of order; a panicking job panics the caller (scoped
//! threads), it is never swallowed.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads trim a cache: twice the cores, 2 to 4. The work is mostly waiting on
/// the filesystem (an ext4 mounted with `discard` discards a file's blocks synchronously in
/// its `unlinkat`), so threads overlap those waits while using little CPU; each directory
/// is independent.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get().saturating_mul(2))
        .clamp(2, 4)
}

/// Runs `job(i)` for every `i` in `0..n` on `workers` threads (taking the next index as
/// each finishes), and returns the results in index order.
pub fn run_in_order<T: Send>(n: usize, workers: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return done;
            }
            done.push((i, job(i)));
        }
    };
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.clamp(1, n.max(1)))
            .map(|_| s.spawn(worker))
            .collect();
        for h in handles {
            let done = match h.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            for (i, t) in done {
                slots[i] = Some(t);
            }
        }
    });
    slots
        .into_iter()
        .map(|t| t.expect("every index ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_index_order() {
        for workers in [1, 2, 4, 300] {
            let got = run_in_order(256, workers, |i| i * 2);
            assert_eq!(got, (0..256).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(run_in_order(0, 4, |i| i).is_empty());
    }
}
