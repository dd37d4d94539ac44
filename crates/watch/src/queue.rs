//! The bounded queue of notices waiting for `Watcher::next`, with per-batch coalescing.
//!
//! Pure data structure, no I/O. It never grows beyond `cap` droppable notices: past that a
//! notice is counted and dropped, and one [`Notice::Overflow`] is queued in its place (the
//! daemon then rescans everything, so nothing is silently lost). `RootAppeared`, `RootGone`
//! and `Overflow` are never dropped; there are at most a few per root, so they stay bounded.
//!
//! Coalescing: within one batch (one read of the inotify fd and the scans it caused), a
//! `Changed` notice equal to one already queued is dropped. The first occurrence keeps its
//! place. Nothing is merged across batches, so the daemon sees every batch's changes.

use std::collections::{HashSet, VecDeque};
use std::mem::size_of;
use std::path::PathBuf;

use crate::notice::{Change, Notice};
use crate::tree::malloc_size;

#[derive(Debug)]
pub(crate) struct NoticeQueue {
    queue: VecDeque<Notice>,
    /// Most droppable notices held.
    cap: usize,
    /// Whether to de-duplicate `Changed` notices within a batch.
    coalesce: bool,
    /// `Changed` notices queued in the current batch; holds only queued ones, so it is
    /// bounded by `cap`.
    seen: HashSet<(u32, PathBuf, Change, bool)>,
    /// An `Overflow` is waiting in the queue: a second one would say nothing new.
    overflow_queued: bool,
    /// Notices dropped because the queue was full.
    pub(crate) dropped: u64,
}

impl NoticeQueue {
    pub(crate) fn new(cap: usize, coalesce: bool) -> Self {
        NoticeQueue {
            queue: VecDeque::new(),
            cap: cap.max(1),
            coalesce,
            seen: HashSet::new(),
            overflow_queued: false,
            dropped: 0,
        }
    }

    /// Starts a new coalescing batch.
    pub(crate) fn begin_batch(&mut self) {
        self.seen.clear();
        if self.seen.capacity() > 4096 {
            self.seen.shrink_to(4096);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Notice> {
        let n = self.queue.pop_front()?;
        if n == Notice::Overflow {
            self.overflow_queued = false;
        }
        if self.queue.is_empty() && self.queue.capacity() > 4096 {
            self.queue.shrink_to(4096);
        }
        Some(n)
    }

    /// Drops the queued notices of a root that is no longer watched.
    pub(crate) fn forget_root(&mut self, root: u32) {
        self.queue.retain(|n| match n {
            Notice::Changed { root_id, .. }
            | Notice::NewDirScanned { root_id, .. }
            | Notice::RootAppeared { root_id }
            | Notice::RootGone { root_id }
            | Notice::WatchLimit { root_id, .. } => *root_id != root,
            Notice::Overflow => true,
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn push(&mut self, notice: Notice) {
        match &notice {
            Notice::Overflow => {
                if !self.overflow_queued {
                    self.overflow_queued = true;
                    self.queue.push_back(notice);
                }
            }
            Notice::RootAppeared { .. } | Notice::RootGone { .. } => self.queue.push_back(notice),
            Notice::Changed {
                root_id,
                rel_path,
                what,
                is_dir,
            } => {
                let key = (*root_id, rel_path.clone(), *what, *is_dir);
                if self.coalesce && self.seen.contains(&key) {
                    return;
                }
                if self.make_room() {
                    if self.coalesce {
                        self.seen.insert(key);
                    }
                    self.queue.push_back(notice);
                }
            }
            Notice::NewDirScanned { .. } | Notice::WatchLimit { .. } => {
                if self.make_room() {
                    self.queue.push_back(notice);
                }
            }
        }
    }

    /// True if a droppable notice fits; otherwise counts the drop and queues an `Overflow`.
    fn make_room(&mut self) -> bool {
        if self.queue.len() < self.cap {
            return true;
        }
        self.dropped += 1;
        self.push(Notice::Overflow);
        false
    }

    pub(crate) fn bytes_estimate(&self) -> usize {
        let paths: usize = self
            .queue
            .iter()
            .map(|n| match n {
                Notice::Changed { rel_path, .. }
                | Notice::NewDirScanned { rel_path, .. }
                | Notice::WatchLimit { rel_path, .. } => malloc_size(rel_path.as_os_str().len()),
                _ => 0,
            })
            .sum();
        self.queue.capacity() * size_of::<Notice>()
            + paths
            + self.seen.capacity() * (size_of::<(u32, PathBuf, Change, bool)>() + 1 + 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(p: &str, what: Change) -> Notice {
        Notice::Changed {
            root_id: 1,
            rel_path: p.into(),
            what,
            is_dir: false,
        }
    }

    #[test]
    fn duplicates_within_a_batch_are_merged() {
        let mut q = NoticeQueue::new(100, true);
        q.begin_batch();
        q.push(changed("a", Change::Attrib));
        q.push(changed("b", Change::Attrib));
        q.push(changed("a", Change::Attrib));
        q.push(changed("a", Change::Written));
        assert_eq!(q.len(), 3);
        q.begin_batch();
        q.push(changed("a", Change::Attrib));
        assert_eq!(q.len(), 4);
        assert_eq!(q.pop(), Some(changed("a", Change::Attrib)));
        assert_eq!(q.pop(), Some(changed("b", Change::Attrib)));
    }

    #[test]
    fn without_coalescing_everything_is_kept() {
        let mut q = NoticeQueue::new(100, false);
        q.begin_batch();
        q.push(changed("a", Change::Attrib));
        q.push(changed("a", Change::Attrib));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_full_queue_drops_and_queues_one_overflow() {
        let mut q = NoticeQueue::new(2, true);
        q.begin_batch();
        for p in ["a", "b", "c", "d", "e"] {
            q.push(changed(p, Change::Created));
        }
        q.push(Notice::RootGone { root_id: 1 });
        assert_eq!(q.dropped, 3);
        let all: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            all,
            [
                changed("a", Change::Created),
                changed("b", Change::Created),
                Notice::Overflow,
                Notice::RootGone { root_id: 1 },
            ]
        );
        // Once the overflow was taken, a new one can be queued.
        q.push(Notice::Overflow);
        q.push(Notice::Overflow);
        assert_eq!(q.len(), 1);
    }
}
