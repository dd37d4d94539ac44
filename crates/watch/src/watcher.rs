//! [`Watcher`]: one inotify instance watching every directory of every cache root, turning
//! kernel events into [`Notice`]s.
//!
//! What it keeps: the watch map ([`WatchTree`]), the identity (dev, inode) of each watched
//! root directory, the ancestor watches of roots that do not exist yet, and a bounded notice
//! queue. No fd stays open on a root (it would hold back `IN_DELETE_SELF`); a walk opens the
//! root path, checks it is still the watched directory, and opens everything beneath it. What it must never do: follow a symlink or cross a mount beneath a
//! root (see `sys`), keep a watch on a directory that left its root (a directory renamed or
//! moved away loses its subtree's watches at once), hold more than `max_watches` watches or
//! `max_pending` droppable notices, or stay silent about lost events (`Overflow`,
//! `WatchLimit`).
//!
//! Renames: a directory renamed away (`IN_MOVED_FROM`) has its subtree's watches removed; a
//! directory renamed in (`IN_MOVED_TO`) is watched and scanned like a new one, its entries
//! reported as created. So paths in the map are always current, at the cost of a rescan.
//!
//! After a kernel queue overflow the map may be stale (a missed rename would leave watches on
//! a directory outside its root), so every root's watches are dropped and placed again.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;

use rustix::fs::inotify::{ReadFlags, WatchFlags};
use rustix::fs::{Dir, FileType};
use rustix::io::Errno;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::notice::{
    AddReport, Change, MAX_REPORTED_MOUNTS, Notice, WatchConfig, WatchError, WatchStats,
};
use crate::queue::NoticeQueue;
use crate::sys::{self, RawEvent};
use crate::tree::{NO_PARENT, WatchTree};

/// Events asked for on every directory inside a root.
const TREE_MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::ONLYDIR)
    .union(WatchFlags::EXCL_UNLINK);

/// Events asked for on the nearest existing ancestor of a root that does not exist yet.
/// `MASK_ADD`: the same directory may also be watched as part of another root.
const ANCESTOR_MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR)
    .union(WatchFlags::MASK_ADD);

/// How many times resolving a pending root may chase a path that keeps changing.
const RESOLVE_ATTEMPTS: usize = 32;

/// Watches cache roots recursively and reports what changed where.
///
/// Create it inside a tokio runtime (the inotify fd is registered with its reactor).
/// `add_root` and `next` make blocking system calls (open, getdents, inotify_add_watch);
/// walking a large new tree takes about 10 µs per directory. Run the watcher in its own task
/// on a multi-threaded runtime.
#[derive(Debug)]
pub struct Watcher {
    /// The inotify instance, readable when events wait.
    inotify: AsyncFd<OwnedFd>,
    /// One read of the inotify fd: one coalescing batch.
    buf: Box<[MaybeUninit<u8>]>,
    /// The events of the last read, copied out so the map can change while they are applied.
    batch: Vec<RawEvent>,
    /// The names of `batch`'s events.
    names: Vec<u8>,
    /// wd → (root, directory) for every watched directory.
    tree: WatchTree,
    roots: HashMap<u32, Root>,
    /// wd → watched ancestor of one or more pending roots.
    ancestors: HashMap<i32, Ancestor>,
    queue: NoticeQueue,
    config: WatchConfig,
    counters: Counters,
    /// Roots whose walk a limit stopped since they were added: their later limit hits are
    /// logged at debug only (one user making thousands of directories past their share
    /// must not flood the log).
    limited: HashSet<u32>,
    /// Reused to format `/proc/self/fd/N`.
    scratch: String,
}

#[derive(Debug)]
struct Root {
    /// Absolute, normalized path given to `add_root`.
    path: PathBuf,
    state: RootState,
}

#[derive(Debug)]
enum RootState {
    /// The root exists and its top directory is watched. No fd is kept open on it: an open
    /// fd would hold back `IN_DELETE_SELF` until it is closed.
    Watching {
        /// wd of the root's top directory.
        top: i32,
        /// Identity of the watched top directory: a later open of the root path must find
        /// the same directory, or the root was replaced.
        id: DirId,
    },
    /// The root does not exist; `ancestor` (if a watch could be placed) is the wd of its
    /// nearest existing ancestor.
    Pending { ancestor: Option<i32> },
    /// The root exists but its top could not be watched (limit, permission): only periodic
    /// rescans see it.
    Unwatched,
}

/// (st_dev, st_ino) of a directory.
type DirId = (u64, u64);

#[derive(Debug)]
struct Ancestor {
    /// The ancestor's path: a proper prefix of each of `roots`' paths.
    path: PathBuf,
    /// Pending roots waiting beneath it.
    roots: Vec<u32>,
}

#[derive(Debug, Default)]
struct Counters {
    overflows: u64,
    limit_hits: u64,
    mounts_skipped: u64,
    unreadable_dirs: u64,
}

/// What one walk did.
#[derive(Debug, Default)]
struct Walk {
    dirs: usize,
    limit_hit: bool,
    other_mounts: Vec<PathBuf>,
    unreadable: usize,
    /// wd of the first directory watched (the walk's start), if it was.
    start_wd: Option<i32>,
}

/// How a freshly watched directory fits into the map.
enum Placed {
    /// Recorded now: scan it.
    New,
    /// Already recorded at this very place (scanned when it was).
    Already,
    /// The same directory is already watched as part of another root: leave it there.
    Foreign,
    /// The same directory was recorded elsewhere in this root (renamed, and the
    /// `IN_MOVED_FROM` is still to come): its old subtree was dropped; watch it again.
    Moved,
}

impl Watcher {
    /// A watcher with no roots. Must be called inside a tokio runtime.
    pub fn new(config: WatchConfig) -> io::Result<Watcher> {
        let fd = sys::init()?;
        // SAFETY: `OwnedFd` owns a valid fd, and the `AsyncFd` owns the `OwnedFd`: nothing
        // else can close or replace the fd while it is registered.
        let inotify = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        let buf_len = config.read_buffer_bytes.clamp(4096, 1 << 20);
        Ok(Watcher {
            inotify,
            buf: vec![MaybeUninit::new(0u8); buf_len].into_boxed_slice(),
            batch: Vec::new(),
            names: Vec::new(),
            tree: WatchTree::default(),
            roots: HashMap::new(),
            ancestors: HashMap::new(),
            queue: NoticeQueue::new(config.max_pending, config.coalesce),
            config,
            counters: Counters::default(),
            limited: HashSet::new(),
            scratch: String::with_capacity(32),
        })
    }

    /// Starts watching the root `path` (absolute, without `.` or `..`) under `root_id`: every
    /// directory beneath it, recursively, on the root's own mount. Entries that already exist
    /// are not reported (the daemon scans a root it adds). If the path does not exist yet,
    /// its nearest existing ancestor is watched and `RootAppeared` follows when it does.
    pub fn add_root(&mut self, root_id: u32, path: &Path) -> Result<AddReport, WatchError> {
        if self.roots.contains_key(&root_id) {
            return Err(WatchError::DuplicateRoot { root_id });
        }
        let normal = path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !normal {
            return Err(WatchError::BadRootPath {
                path: path.to_owned(),
            });
        }
        self.roots.insert(
            root_id,
            Root {
                path: path.to_owned(),
                state: RootState::Pending { ancestor: None },
            },
        );
        let result = self.resolve(root_id, true);
        if result.is_err() {
            self.roots.remove(&root_id);
        }
        result
    }

    /// Changes the watches every root is guaranteed (see [`WatchConfig::root_share`]).
    /// Watches a root already holds beyond its cap are kept; the cap limits what it adds
    /// from now on.
    pub fn set_root_share(&mut self, share: usize) {
        self.config.root_share = share.max(1);
    }

    /// The most watches root `root_id` may hold now: its share, or half of what the other
    /// roots leave of `max_watches`, whichever is more. With one huge tree it takes half the
    /// budget at most; every root gets at least its share (until the budget itself is spent).
    pub fn root_cap(&self, root_id: u32) -> usize {
        let others = self.watch_count() - self.tree.root_len(root_id);
        self.config
            .root_share
            .max(self.config.max_watches.saturating_sub(others) / 2)
    }

    /// Watches root `root_id` holds.
    pub fn root_watches(&self, root_id: u32) -> usize {
        self.tree.root_len(root_id)
    }

    /// Stops watching a root and forgets its queued notices. False if it was not watched.
    pub fn remove_root(&mut self, root_id: u32) -> bool {
        let Some(root) = self.roots.remove(&root_id) else {
            return false;
        };
        self.limited.remove(&root_id);
        match root.state {
            RootState::Watching { top, .. } => self.drop_subtree(top),
            RootState::Pending { ancestor: Some(wd) } => self.detach_ancestor(wd, root_id),
            RootState::Pending { ancestor: None } | RootState::Unwatched => {}
        }
        self.queue.forget_root(root_id);
        true
    }

    /// The next notice. Cancel-safe: usable in `select!`; nothing is lost if the future is
    /// dropped. An error means the inotify fd itself failed: the watcher is unusable.
    pub async fn next(&mut self) -> io::Result<Notice> {
        loop {
            if let Some(n) = self.queue.pop() {
                return Ok(n);
            }
            self.read_batch().await?;
            self.apply_batch();
        }
    }

    /// The next notice if one is ready now, without waiting: queued notices first, then one
    /// non-blocking read of the inotify fd. For draining a burst after [`Watcher::next`]
    /// returned, without a timer per notice. An error means the inotify fd itself failed.
    pub fn try_next(&mut self) -> io::Result<Option<Notice>> {
        if let Some(n) = self.queue.pop() {
            return Ok(Some(n));
        }
        // Reading past the `AsyncFd` is safe: a readiness left set only causes one spurious
        // wake-up in `read_batch`, which then sees `WouldBlock` and clears it.
        match sys::read_events(
            self.inotify.get_ref(),
            &mut self.buf,
            &mut self.batch,
            &mut self.names,
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
        self.apply_batch();
        Ok(self.queue.pop())
    }

    /// inotify watches held, without walking the map (see [`Watcher::stats`]).
    pub fn watches(&self) -> usize {
        self.watch_count()
    }

    /// Current counters and sizes. Walks the map to estimate its memory (about 1 ms per
    /// 100,000 directories).
    pub fn stats(&self) -> WatchStats {
        let ancestors: usize = self
            .ancestors
            .values()
            .map(|a| 64 + a.path.as_os_str().len() + a.roots.capacity() * 4)
            .sum();
        let roots: usize = self
            .roots
            .values()
            .map(|r| 64 + r.path.as_os_str().len())
            .sum();
        WatchStats {
            watches: self.watch_count(),
            roots: self.roots.len(),
            pending_roots: self
                .roots
                .values()
                .filter(|r| matches!(r.state, RootState::Pending { .. }))
                .count(),
            overflows: self.counters.overflows,
            dropped_notices: self.queue.dropped,
            limit_hits: self.counters.limit_hits,
            mounts_skipped: self.counters.mounts_skipped,
            unreadable_dirs: self.counters.unreadable_dirs,
            map_bytes_estimate: self.tree.bytes_estimate()
                + self.queue.bytes_estimate()
                + ancestors
                + roots
                + self.buf.len()
                + self.batch.capacity() * mem::size_of::<RawEvent>()
                + self.names.capacity(),
        }
    }

    /// inotify watches held: watched directories plus ancestor-only watches.
    fn watch_count(&self) -> usize {
        self.tree.len()
            + self
                .ancestors
                .keys()
                .filter(|wd| !self.tree.contains(**wd))
                .count()
    }

    async fn read_batch(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.inotify.readable().await?;
            let read = guard.try_io(|fd| {
                sys::read_events(
                    fd.get_ref(),
                    &mut self.buf,
                    &mut self.batch,
                    &mut self.names,
                )
            });
            match read {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Applies the events of the last read, in order.
    fn apply_batch(&mut self) {
        self.queue.begin_batch();
        let batch = mem::take(&mut self.batch);
        let names = mem::take(&mut self.names);
        let mut overflowed = false;
        for ev in &batch {
            let name = ev
                .name
                .map(|(start, len)| &names[start as usize..(start + len) as usize]);
            if ev.mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                self.counters.overflows += 1;
                tracing::warn!("inotify queue overflowed: events were lost");
                self.queue.push(Notice::Overflow);
                overflowed = true;
                continue;
            }
            if self.ancestors.contains_key(&ev.wd) {
                self.on_ancestor_event(ev.wd, ev.mask, name);
            }
            if self.tree.contains(ev.wd) {
                self.on_tree_event(ev.wd, ev.mask, name);
            }
        }
        self.batch = batch;
        self.names = names;
        if overflowed {
            self.rewatch_all();
        }
    }

    /// Drops every root's watches and places them again from the filesystem as it is now.
    fn rewatch_all(&mut self) {
        let ids: Vec<u32> = self.roots.keys().copied().collect();
        for root_id in ids {
            let Some(root) = self.roots.get_mut(&root_id) else {
                continue;
            };
            let old = mem::replace(&mut root.state, RootState::Pending { ancestor: None });
            match old {
                RootState::Watching { top, .. } => self.drop_subtree(top),
                RootState::Pending { ancestor: Some(wd) } => self.detach_ancestor(wd, root_id),
                RootState::Pending { ancestor: None } | RootState::Unwatched => {}
            }
            // `initial`: the daemon rescans everything on `Overflow` anyway, so no
            // `RootAppeared`; errors leave the root pending or unwatched.
            if self.resolve(root_id, true).is_err()
                && let Some(root) = self.roots.get_mut(&root_id)
            {
                root.state = RootState::Unwatched;
            }
        }
    }

    /// An event on a directory inside a root.
    fn on_tree_event(&mut self, wd: i32, mask: ReadFlags, name: Option<&[u8]>) {
        let Some(node) = self.tree.get(wd) else {
            return;
        };
        let root_id = node.root_id;
        let is_top = node.parent == NO_PARENT;
        if mask.contains(ReadFlags::IGNORED) {
            // The kernel dropped the watch: the directory is gone or its fs was unmounted.
            if is_top {
                self.root_gone(root_id);
            } else {
                self.drop_subtree(wd);
            }
            return;
        }
        let Some(name) = name else {
            // The watched directory itself. Below the top, its parent reports the same.
            if is_top {
                if mask
                    .intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT)
                {
                    self.root_gone(root_id);
                } else if mask.contains(ReadFlags::ATTRIB) {
                    self.queue.push(Notice::Changed {
                        root_id,
                        rel_path: PathBuf::new(),
                        what: Change::Attrib,
                        is_dir: true,
                    });
                }
            }
            return;
        };
        let what = if mask.contains(ReadFlags::CREATE) {
            Change::Created
        } else if mask.contains(ReadFlags::MOVED_TO) {
            Change::MovedIn
        } else if mask.contains(ReadFlags::MOVED_FROM) {
            Change::MovedOut
        } else if mask.contains(ReadFlags::DELETE) {
            Change::Removed
        } else if mask.contains(ReadFlags::ATTRIB) {
            Change::Attrib
        } else if mask.contains(ReadFlags::CLOSE_WRITE) {
            Change::Written
        } else {
            return;
        };
        let is_dir = mask.contains(ReadFlags::ISDIR);
        let rel_path = self.tree.rel_path(wd).join(OsStr::from_bytes(name));
        if is_dir
            && matches!(what, Change::MovedOut | Change::Removed)
            && let Some(child) = self.tree.child(wd, name)
        {
            self.drop_subtree(child);
        }
        let new_dir = is_dir && matches!(what, Change::Created | Change::MovedIn);
        self.queue.push(Notice::Changed {
            root_id,
            rel_path: rel_path.clone(),
            what,
            is_dir,
        });
        if new_dir {
            self.watch_new_dir(root_id, wd, rel_path);
        }
    }

    /// An event on the watched ancestor of pending roots.
    fn on_ancestor_event(&mut self, wd: i32, mask: ReadFlags, name: Option<&[u8]>) {
        let Some(anc) = self.ancestors.get(&wd) else {
            return;
        };
        let gone = mask.intersects(
            ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT,
        );
        let roots: Vec<u32> = if gone {
            anc.roots.clone()
        } else if let (Some(name), true) = (
            name,
            mask.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO),
        ) {
            anc.roots
                .iter()
                .copied()
                .filter(|r| self.next_component(*r, &anc.path) == Some(name))
                .collect()
        } else {
            Vec::new()
        };
        if mask.contains(ReadFlags::IGNORED) {
            // The kernel dropped it; nothing to remove.
            self.ancestors.remove(&wd);
            for r in &roots {
                if let Some(root) = self.roots.get_mut(r) {
                    root.state = RootState::Pending { ancestor: None };
                }
            }
        }
        for r in roots {
            // Errors only on the first resolution (add_root).
            let _ = self.resolve(r, false);
        }
    }

    /// The component of root `root_id`'s path right after `ancestor`.
    fn next_component(&self, root_id: u32, ancestor: &Path) -> Option<&[u8]> {
        let root = self.roots.get(&root_id)?;
        let rest = root.path.strip_prefix(ancestor).ok()?;
        match rest.components().next()? {
            Component::Normal(n) => Some(n.as_bytes()),
            _ => None,
        }
    }

    /// The root directory is gone: drop its watches, say so, wait for it to come back.
    fn root_gone(&mut self, root_id: u32) {
        let Some(root) = self.roots.get_mut(&root_id) else {
            return;
        };
        let old = mem::replace(&mut root.state, RootState::Pending { ancestor: None });
        tracing::info!(root_id, path = %root.path.display(), "cache root is gone");
        if let RootState::Watching { top, .. } = old {
            self.drop_subtree(top);
        }
        self.queue.push(Notice::RootGone { root_id });
        let _ = self.resolve(root_id, false);
    }

    /// Watches the root if its path names a directory now, or else its nearest existing
    /// ancestor. `initial`: called by `add_root` (errors are returned, no `RootAppeared`).
    fn resolve(&mut self, root_id: u32, initial: bool) -> Result<AddReport, WatchError> {
        let mut report = AddReport::default();
        let Some(root) = self.roots.get_mut(&root_id) else {
            return Ok(report);
        };
        if let RootState::Pending { ancestor: Some(wd) } = root.state {
            root.state = RootState::Pending { ancestor: None };
            self.detach_ancestor(wd, root_id);
        }
        let path = self.roots[&root_id].path.clone();
        for _ in 0..RESOLVE_ATTEMPTS {
            match sys::open_root(&path) {
                Ok(fd) => {
                    let id = sys::dir_id(&fd);
                    let walk = self.walk(root_id, &fd, NO_PARENT, PathBuf::new(), false);
                    let state = match (walk.start_wd, id) {
                        (Some(top), Ok(id)) => RootState::Watching { top, id },
                        _ => RootState::Unwatched,
                    };
                    if let Some(root) = self.roots.get_mut(&root_id) {
                        root.state = state;
                    }
                    if !initial {
                        tracing::info!(root_id, path = %path.display(), "cache root appeared");
                        self.queue.push(Notice::RootAppeared { root_id });
                    }
                    report.dirs_watched = walk.dirs;
                    report.limit_hit = walk.limit_hit;
                    report.other_mounts = walk.other_mounts;
                    report.unreadable_dirs = walk.unreadable;
                    return Ok(report);
                }
                Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(e) if initial => {
                    return Err(WatchError::Io {
                        op: "open root",
                        path,
                        source: e.into(),
                    });
                }
                Err(e) => {
                    tracing::warn!(root_id, path = %path.display(), error = %e,
                        "cache root exists but cannot be opened; not watched");
                    if let Some(root) = self.roots.get_mut(&root_id) {
                        root.state = RootState::Unwatched;
                    }
                    return Ok(report);
                }
            }
            report.pending = true;
            let anc = deepest_existing_dir(&path);
            if self.watch_count() >= self.config.max_watches {
                self.limit(root_id, PathBuf::new(), false, &mut report.limit_hit);
                return Ok(report);
            }
            let wd = match sys::add_watch_path(self.inotify.get_ref(), &anc, ANCESTOR_MASK) {
                Ok(wd) => wd,
                Err(Errno::NOSPC) => {
                    self.limit(root_id, PathBuf::new(), false, &mut report.limit_hit);
                    return Ok(report);
                }
                Err(Errno::NOENT | Errno::NOTDIR) => continue,
                Err(e) => {
                    tracing::warn!(root_id, path = %anc.display(), error = %e,
                        "cannot watch the ancestor of a missing cache root");
                    return Ok(report);
                }
            };
            self.ancestors
                .entry(wd)
                .or_insert_with(|| Ancestor {
                    path: anc.clone(),
                    roots: Vec::new(),
                })
                .roots
                .push(root_id);
            if let Some(root) = self.roots.get_mut(&root_id) {
                root.state = RootState::Pending { ancestor: Some(wd) };
            }
            // The next component may have appeared before the watch was in place.
            if deepest_existing_dir(&path) == anc {
                return Ok(report);
            }
            if let Some(root) = self.roots.get_mut(&root_id) {
                root.state = RootState::Pending { ancestor: None };
            }
            self.detach_ancestor(wd, root_id);
        }
        tracing::warn!(root_id, path = %path.display(), "cache root path keeps changing; not watched");
        Ok(report)
    }

    /// A directory `rel_path` appeared in the watched directory `parent`: watch and scan it.
    fn watch_new_dir(&mut self, root_id: u32, parent: i32, rel_path: PathBuf) {
        let Some(root) = self.roots.get(&root_id) else {
            return;
        };
        let RootState::Watching { id, .. } = root.state else {
            return;
        };
        match sys::open_root(&root.path) {
            Ok(fd) if sys::dir_id(&fd).is_ok_and(|now| now == id) => {
                self.walk(root_id, &fd, parent, rel_path, true);
            }
            // The root path names another directory now, or nothing: the watched one was
            // renamed or deleted, and its own event may still be held back.
            Ok(_) | Err(Errno::NOENT | Errno::NOTDIR) => self.root_gone(root_id),
            Err(e) => {
                // Out of fds, or the like: the daemon must look for itself.
                tracing::warn!(root_id, path = %rel_path.display(), error = %e,
                    "cannot scan a new directory");
                self.counters.unreadable_dirs += 1;
                self.queue.push(Notice::Overflow);
            }
        }
    }

    /// Watches the directory `start` (beneath `root_fd`; its parent is `parent`) and every
    /// directory beneath it, depth first. With `report`, queues `NewDirScanned` for each
    /// directory watched and `Changed { Created }` for each entry found in it.
    fn walk(
        &mut self,
        root_id: u32,
        root_fd: &OwnedFd,
        parent: i32,
        start: PathBuf,
        report: bool,
    ) -> Walk {
        let mut walk = Walk::default();
        let mut stack = vec![(parent, start)];
        let mut first = true;
        while let Some((parent, rel)) = stack.pop() {
            let is_first = mem::take(&mut first);
            if self
                .config
                .interrupt
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
            {
                break;
            }
            if self.watch_count() >= self.config.max_watches {
                self.limit(root_id, rel, false, &mut walk.limit_hit);
                break;
            }
            if self.tree.root_len(root_id) >= self.root_cap(root_id) {
                self.limit(root_id, rel, true, &mut walk.limit_hit);
                break;
            }
            let dir = match sys::open_beneath(root_fd, &rel) {
                Ok(dir) => dir,
                // Gone again, or replaced by a symlink or a file: its parent reports that.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(Errno::XDEV) => {
                    tracing::debug!(root_id, path = %rel.display(), "mount point not crossed");
                    self.counters.mounts_skipped += 1;
                    if walk.other_mounts.len() < MAX_REPORTED_MOUNTS {
                        walk.other_mounts.push(rel);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(root_id, path = %rel.display(), error = %e, "cannot open directory");
                    self.counters.unreadable_dirs += 1;
                    walk.unreadable += 1;
                    continue;
                }
            };
            let name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
            let mut wd = match self.add_tree_watch(&dir) {
                Ok(wd) => wd,
                Err(Errno::NOSPC) => {
                    self.limit(root_id, rel, false, &mut walk.limit_hit);
                    break;
                }
                Err(e) => {
                    tracing::debug!(root_id, path = %rel.display(), error = %e, "cannot watch directory");
                    self.counters.unreadable_dirs += 1;
                    walk.unreadable += 1;
                    continue;
                }
            };
            match self.place(root_id, parent, name, wd) {
                Placed::New => {}
                Placed::Already | Placed::Foreign => continue,
                Placed::Moved => {
                    wd = match self.add_tree_watch(&dir) {
                        Ok(wd) => wd,
                        Err(_) => continue,
                    };
                    if !matches!(self.place(root_id, parent, name, wd), Placed::New) {
                        continue;
                    }
                }
            }
            if is_first {
                walk.start_wd = Some(wd);
            }
            walk.dirs += 1;
            if report {
                self.queue.push(Notice::NewDirScanned {
                    root_id,
                    rel_path: rel.clone(),
                });
            }
            let mut entries = match Dir::new(dir) {
                Ok(d) => d,
                Err(_) => continue,
            };
            while let Some(entry) = entries.read() {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::debug!(root_id, path = %rel.display(), error = %e, "cannot read directory");
                        self.counters.unreadable_dirs += 1;
                        walk.unreadable += 1;
                        break;
                    }
                };
                let ename = entry.file_name().to_bytes();
                if ename == b"." || ename == b".." {
                    continue;
                }
                let is_dir = match entry.file_type() {
                    FileType::Directory => true,
                    FileType::Unknown => entries
                        .fd()
                        .is_ok_and(|fd| sys::is_dir_at(fd, entry.file_name())),
                    _ => false,
                };
                let child = rel.join(OsStr::from_bytes(ename));
                if report {
                    self.queue.push(Notice::Changed {
                        root_id,
                        rel_path: child.clone(),
                        what: Change::Created,
                        is_dir,
                    });
                }
                if is_dir {
                    stack.push((wd, child));
                }
            }
        }
        walk
    }

    fn add_tree_watch(&mut self, dir: &OwnedFd) -> rustix::io::Result<i32> {
        sys::add_watch_fd(self.inotify.get_ref(), dir, TREE_MASK, &mut self.scratch)
    }

    /// Records a freshly watched directory.
    fn place(&mut self, root_id: u32, parent: i32, name: &[u8], wd: i32) -> Placed {
        if let Some(node) = self.tree.get(wd) {
            if node.parent == parent && *node.name == *name {
                return Placed::Already;
            }
            if node.root_id != root_id || node.parent == NO_PARENT {
                return Placed::Foreign;
            }
            self.drop_subtree(wd);
            return Placed::Moved;
        }
        if parent == NO_PARENT {
            self.tree.insert_top(wd, root_id);
            return Placed::New;
        }
        // A stale entry of the same name (another inode): its removal is still queued.
        if let Some(old) = self.tree.child(parent, name) {
            self.drop_subtree(old);
        }
        if self.tree.insert_child(wd, parent, name) {
            Placed::New
        } else {
            self.release_wd(wd);
            Placed::Foreign
        }
    }

    /// Records that the watch budget, the root's share of it (`root_share`) or the kernel
    /// limit stopped watching at `rel_path`.
    fn limit(&mut self, root_id: u32, rel_path: PathBuf, root_share: bool, hit: &mut bool) {
        if self.limited.insert(root_id) {
            tracing::warn!(root_id, path = %rel_path.display(), watches = self.watch_count(),
                root_watches = self.tree.root_len(root_id),
                max_watches = self.config.max_watches,
                root_cap = self.root_cap(root_id),
                root_share, "inotify watch limit reached");
        } else {
            tracing::debug!(root_id, path = %rel_path.display(), root_share,
                "inotify watch limit reached again");
        }
        self.counters.limit_hits += 1;
        *hit = true;
        self.queue.push(Notice::WatchLimit {
            root_id,
            rel_path,
            root_share,
        });
    }

    /// Forgets `wd` and everything beneath it and removes their watches.
    fn drop_subtree(&mut self, wd: i32) {
        let mut removed = Vec::new();
        self.tree.remove_subtree(wd, &mut removed);
        for w in removed {
            self.release_wd(w);
        }
    }

    /// Removes the kernel watch `wd` unless an ancestor role still needs it.
    fn release_wd(&mut self, wd: i32) {
        if !self.ancestors.contains_key(&wd) {
            sys::rm_watch(self.inotify.get_ref(), wd);
        }
    }

    /// Root `root_id` no longer waits beneath ancestor `wd`.
    fn detach_ancestor(&mut self, wd: i32, root_id: u32) {
        let Some(anc) = self.ancestors.get_mut(&wd) else {
            return;
        };
        anc.roots.retain(|r| *r != root_id);
        if anc.roots.is_empty() {
            self.ancestors.remove(&wd);
            if !self.tree.contains(wd) {
                sys::rm_watch(self.inotify.get_ref(), wd);
            }
        }
    }
}

/// The deepest proper ancestor of `path` that is an existing directory ("/" at worst).
fn deepest_existing_dir(path: &Path) -> PathBuf {
    path.ancestors()
        .skip(1)
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_dir()))
        .unwrap_or(Path::new("/"))
        .to_owned()
}
