//! The values the watcher hands out: [`Notice`]s, reports, statistics, configuration and errors.
//!
//! Plain data only: nothing here touches the filesystem. A notice says *where* something
//! changed, never whether it matters; deciding drift is the daemon's job. Every path in a
//! notice is relative to its root and never names anything outside it.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// What the kernel saw happen to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// `IN_CREATE`, or an entry found while scanning a directory that was just watched.
    Created,
    /// `IN_ATTRIB`: owner, mode, ACL, SELinux label or any other xattr, link count, times.
    Attrib,
    /// `IN_CLOSE_WRITE`: a file opened for writing was closed.
    Written,
    /// `IN_DELETE`.
    Removed,
    /// `IN_MOVED_TO`: renamed into this place (from inside or outside the root).
    MovedIn,
    /// `IN_MOVED_FROM`: renamed away from this place.
    MovedOut,
}

/// One thing the daemon should look at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Notice {
    /// Something happened at `rel_path` (relative to the root; empty for the root itself).
    Changed {
        root_id: u32,
        rel_path: PathBuf,
        what: Change,
        is_dir: bool,
    },
    /// A directory that appeared after its root was added is now watched and was scanned;
    /// every entry found in it is reported as `Changed { what: Created }` right after.
    NewDirScanned { root_id: u32, rel_path: PathBuf },
    /// A root that did not exist (or was gone) exists now and is watched recursively.
    /// Its entries are not reported one by one: examine the whole root.
    RootAppeared { root_id: u32 },
    /// The root directory was deleted, renamed away or unmounted. Its watches are dropped;
    /// the watcher waits for the root path to reappear (then `RootAppeared`).
    RootGone { root_id: u32 },
    /// Events were lost (the kernel queue overflowed, or the watcher's own notice queue was
    /// full). Rescan every root. Never silenced; consecutive overflows are merged into one.
    Overflow,
    /// A directory at `rel_path` (and everything beneath it, and possibly more of the root)
    /// is not watched: the kernel's `max_user_watches` or the configured `max_watches` is
    /// exhausted, or (`root_share`) this root holds its share of them
    /// ([`crate::Watcher::root_cap`]). Rescan this root periodically instead.
    WatchLimit {
        root_id: u32,
        rel_path: PathBuf,
        /// The root's own share stopped it (other roots may still add watches).
        root_share: bool,
    },
}

/// Limits and tuning. Every field is bounded and has a default.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The most inotify watches this watcher holds, all roots together. The kernel's
    /// `fs.inotify.max_user_watches` is shared by every process of the same user (root!), so
    /// this should stay well below it.
    pub max_watches: usize,
    /// Bytes read from the inotify fd at once (at least 4 KiB). One read is one batch for
    /// coalescing. The kernel's own queue length is `fs.inotify.max_queued_events`.
    pub read_buffer_bytes: usize,
    /// The most notices waiting to be taken with `next()`. Beyond it notices are dropped and
    /// one `Overflow` is queued instead.
    pub max_pending: usize,
    /// Drop a `Changed` notice equal (root, path, what, is_dir) to one already queued from the
    /// same read batch.
    pub coalesce: bool,
    /// The watches every root may hold whatever the others do (its fair share of
    /// `max_watches`, e.g. `max_watches / roots`). A root may hold more only up to half of
    /// what the other roots leave of `max_watches` ([`crate::Watcher::root_cap`]), so one
    /// root with a huge tree never takes the budget of all, and spare budget is still used.
    /// Can be changed later with [`crate::Watcher::set_root_share`] as roots come and go.
    pub root_share: usize,
    /// When set and true, walks stop between directories (a stopping daemon must not wait
    /// for a huge tree to be watched).
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            max_watches: 131_072,
            read_buffer_bytes: 64 * 1024,
            max_pending: 16_384,
            coalesce: true,
            root_share: usize::MAX,
            interrupt: None,
        }
    }
}

/// What `add_root` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Directories now watched for this root (the root itself included).
    pub dirs_watched: usize,
    /// The watch budget or the kernel limit stopped the walk: part of the root is unwatched
    /// (a `WatchLimit` notice is queued too).
    pub limit_hit: bool,
    /// The root does not exist yet: its nearest existing ancestor is watched instead and
    /// `RootAppeared` will follow when it is created.
    pub pending: bool,
    /// Directories not watched because another filesystem or a bind mount is mounted
    /// there (relative paths, at most [`MAX_REPORTED_MOUNTS`]).
    pub other_mounts: Vec<PathBuf>,
    /// Directories that could not be opened (permission, I/O error) and are not watched.
    pub unreadable_dirs: usize,
}

/// How many mount points an [`AddReport`] lists at most.
pub const MAX_REPORTED_MOUNTS: usize = 16;

/// Counters and sizes, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// inotify watches held (directories of all roots plus ancestors of pending roots).
    pub watches: usize,
    /// Roots added and not removed, pending ones included.
    pub roots: usize,
    /// Roots waiting for their path to appear.
    pub pending_roots: usize,
    /// Kernel queue overflows (`IN_Q_OVERFLOW`) seen.
    pub overflows: u64,
    /// Notices dropped because the watcher's own queue was full (each run of drops queues
    /// one `Overflow`).
    pub dropped_notices: u64,
    /// Times the watch budget or the kernel limit stopped a walk.
    pub limit_hits: u64,
    /// Mount points beneath roots that were not crossed.
    pub mounts_skipped: u64,
    /// Directories that could not be opened or watched for another reason.
    pub unreadable_dirs: u64,
    /// Estimated heap bytes held by the watch map and the notice queue.
    pub map_bytes_estimate: usize,
}

/// Why `add_root` failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("root {root_id} is already watched")]
    DuplicateRoot { root_id: u32 },
    #[error("root path {} is not absolute and normalized (no `.` or `..`)", path.display())]
    BadRootPath { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
