//! A depth-first walk of everything beneath a root, through directory fds.
//!
//! Each directory is read with `getdents64` on its own fd (`rustix::fs::Dir`), each entry is
//! `statx`ed relative to that fd with `AT_SYMLINK_NOFOLLOW`, and subdirectories are opened
//! relative to their parent's fd with `openat2(RESOLVE_BENEATH|NO_SYMLINKS|NO_XDEV)` and
//! checked to be the inode that was statted. Paths from the root are only re-resolved when
//! more than [`WalkOptions::max_open_dirs`] directories are open: the shallowest open ones are
//! then closed and reopened by path beneath the root (and re-verified) when the walk returns
//! to them.
//!
//! The walk must never descend into a symlink or into another filesystem or mount (an entry
//! whose device or mount id differs from its directory's is reported to
//! [`Visitor::mount_point`], not entered), and must never hold more than `max_open_dirs`
//! directory fds.

use std::ffi::{CStr, OsStr};
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, OFlags};
use rustix::io::Errno;

use crate::entry::{Entry, Meta, STATX_MASK};
use crate::error::{FsError, Op, Result};
use crate::root::{RootDir, openat2_beneath};

/// How to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Most directory fds open at once (at least 2).
    pub max_open_dirs: usize,
    /// Deepest level visited (the root is 0, its children 1); `None` = unlimited.
    pub max_depth: Option<usize>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_open_dirs: 256,
            max_depth: None,
        }
    }
}

/// What the visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on (and descend if this is a directory).
    Continue,
    /// Do not descend into this directory.
    SkipSubtree,
    /// End the walk.
    Stop,
}

/// One visited entry. Borrowed from the walk: valid during the visitor call only.
#[derive(Debug)]
pub struct WalkEntry<'a> {
    /// Path relative to the root (`""` for the root itself).
    pub rel: &'a Path,
    /// Its name within its directory (`"."` for the root).
    pub name: &'a CStr,
    /// Its metadata (`statx` without following symlinks).
    pub meta: Meta,
    /// Depth: 0 for the root, 1 for its children.
    pub depth: usize,
    /// The fd of the directory holding it (the root's fd for the root).
    pub dir_fd: BorrowedFd<'a>,
}

impl WalkEntry<'_> {
    /// Opens this entry as an [`Entry`] relative to its directory's fd (one path component,
    /// no symlink, no mount crossing), checking it is still the inode that was visited.
    ///
    /// A regular file or directory is opened `O_RDONLY|O_NONBLOCK|O_NOCTTY|O_NOFOLLOW`
    /// (one open, then `f*` calls, instead of `O_PATH` plus `/proc/self/fd` paths); a swap to
    /// a FIFO or socket in between is harmless with those flags and caught by the identity
    /// check. Other kinds get an `O_PATH` fd.
    pub fn open(&self) -> Result<Entry> {
        use crate::entry::FileKind;
        let name = Path::new(OsStr::from_bytes(self.name.to_bytes()));
        // Regular files and directories are opened O_RDONLY|O_NONBLOCK (so changes use f*
        // calls directly); anything else, or a refusal to read, gets an O_PATH fd.
        let io_flags = match self.meta.kind {
            FileKind::File => Some(OFlags::empty()),
            FileKind::Dir => Some(OFlags::DIRECTORY),
            _ => None,
        };
        if let Some(extra) = io_flags {
            let flags = OFlags::RDONLY
                | OFlags::NONBLOCK
                | OFlags::NOCTTY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | extra;
            match openat2_beneath(self.dir_fd, name, flags, Op::Open) {
                Ok(fd) => return self.check(Entry::from_io_fd(fd, self.rel.to_path_buf())?),
                Err(FsError::Io { source, .. })
                    if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {}
                Err(e) => return Err(relabel_path(e, self.rel)),
            }
        }
        let fd = openat2_beneath(
            self.dir_fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Op::Open,
        )
        .map_err(|e| relabel_path(e, self.rel))?;
        self.check(Entry::from_fd(fd, self.rel.to_path_buf())?)
    }

    fn check(&self, entry: Entry) -> Result<Entry> {
        if !entry.meta().same_inode(&self.meta) || entry.meta().kind != self.meta.kind {
            return Err(FsError::Raced {
                op: Op::Open,
                path: self.rel.to_path_buf(),
            });
        }
        Ok(entry)
    }

    /// Reads this entry's `security.selinux` into `buf` (without the trailing NUL) without
    /// opening it: `getxattrat(DIRFD, NAME, AT_SYMLINK_NOFOLLOW)` (Linux 6.13+), else
    /// `lgetxattr("/proc/self/fd/DIRFD/NAME")`: one component beneath the pinned directory,
    /// never followed. Returns `false` when the entry has no label.
    /// Read-only; changes go through [`WalkEntry::open`].
    pub fn read_label(&self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        if buf.capacity() < 256 {
            buf.reserve(256);
        }
        loop {
            let res = match crate::sys::getxattrat_nofollow(
                self.dir_fd,
                self.name,
                c"security.selinux",
                buf,
            ) {
                Some(r) => r,
                None => {
                    // Kernel without getxattrat (before 6.13): through the pinned directory.
                    let mut path = Vec::with_capacity(32 + self.name.to_bytes().len());
                    let _ = write!(path, "/proc/self/fd/{}/", self.dir_fd.as_raw_fd());
                    path.extend_from_slice(self.name.to_bytes());
                    let path = OsStr::from_bytes(&path);
                    rustix::fs::lgetxattr(
                        path,
                        "security.selinux",
                        rustix::buffer::spare_capacity(&mut *buf),
                    )
                }
            };
            match res {
                Ok(_) => {
                    if buf.last() == Some(&0) {
                        buf.pop();
                    }
                    return Ok(true);
                }
                Err(Errno::NODATA) => return Ok(false),
                Err(Errno::RANGE) => buf.reserve(buf.capacity() * 2),
                Err(e) => return Err(FsError::io(Op::GetLabel, self.rel, e)),
            }
        }
    }

    /// This entry's label as text, `None` when unlabeled (see [`WalkEntry::read_label`]).
    pub fn label(&self) -> Result<Option<String>> {
        let mut buf = Vec::new();
        Ok(self
            .read_label(&mut buf)?
            .then(|| String::from_utf8_lossy(&buf).into_owned()))
    }
}

fn relabel_path(e: FsError, rel: &Path) -> FsError {
    let path = rel.to_path_buf();
    match e {
        FsError::Symlink { op, .. } => FsError::Symlink { op, path },
        FsError::CrossesMount { op, .. } => FsError::CrossesMount { op, path },
        FsError::Io { op, source, .. } => FsError::Io { op, path, source },
        other => other,
    }
}

/// Receives the walk's entries.
pub trait Visitor {
    /// Called for the root and every entry beneath it on the root's mount.
    fn entry(&mut self, entry: &WalkEntry<'_>) -> Control;

    /// Called for an entry on another filesystem or mount: it is neither visited nor entered.
    fn mount_point(&mut self, _entry: &WalkEntry<'_>) {}

    /// Called for an error on one entry or directory; the walk goes on unless `Stop`.
    fn error(&mut self, _error: FsError) -> Control {
        Control::Continue
    }
}

/// A [`Visitor`] made of a closure over entries (mount points and errors are only counted).
pub struct FnVisitor<F>(pub F);

impl<F: FnMut(&WalkEntry<'_>) -> Control> Visitor for FnVisitor<F> {
    fn entry(&mut self, entry: &WalkEntry<'_>) -> Control {
        (self.0)(entry)
    }
}

/// Counts from one walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Entries passed to [`Visitor::entry`], the root included.
    pub entries: u64,
    /// Of which directories.
    pub dirs: u64,
    /// Of which regular files.
    pub files: u64,
    /// Of which symlinks.
    pub symlinks: u64,
    /// Entries on another filesystem or mount, not entered.
    pub mount_points: u64,
    /// Entries that vanished between readdir and stat.
    pub vanished: u64,
    /// Errors passed to [`Visitor::error`].
    pub errors: u64,
    /// Directories reopened by path because too many were open.
    pub reopened: u64,
}

/// One open (or parked) directory of the walk.
struct Frame {
    /// Reader; `None` while parked to stay under `max_open_dirs`.
    dir: Option<Dir>,
    /// Cookie to resume reading at after a reopen (offset of the next entry).
    resume: i64,
    /// Length of the walk's rel-path buffer for this directory.
    rel_len: usize,
    /// Identity, re-checked on reopen.
    meta: Meta,
    /// Depth of this directory.
    depth: usize,
}

/// Walks everything beneath `root`, depth-first, calling `visitor`.
pub fn walk(root: &RootDir, opts: &WalkOptions, visitor: &mut dyn Visitor) -> WalkStats {
    let mut stats = WalkStats::default();
    let rel: Vec<u8> = Vec::with_capacity(512);

    // The root itself.
    let root_meta = match Meta::of_fd(root.as_fd()) {
        Ok(m) => m,
        Err(e) => {
            stats.errors += 1;
            visitor.error(FsError::io(Op::Stat, "", e));
            return stats;
        }
    };
    let root_entry = WalkEntry {
        rel: Path::new(""),
        name: c".",
        meta: root_meta,
        depth: 0,
        dir_fd: root.as_fd(),
    };
    count(&mut stats, &root_meta);
    if visitor.entry(&root_entry) != Control::Continue || !root_meta.is_dir() {
        return stats;
    }
    if opts.max_depth == Some(0) {
        return stats;
    }
    let dir = match open_dir_reader(root.as_fd(), c".", &root_meta, Path::new("")) {
        Ok(d) => d,
        Err(e) => {
            stats.errors += 1;
            visitor.error(e);
            return stats;
        }
    };
    let stack = vec![Frame {
        dir: Some(dir),
        resume: 0,
        rel_len: 0,
        meta: root_meta,
        depth: 0,
    }];
    run(root, opts, visitor, &mut stats, rel, stack);
    stats
}

/// The walk's loop: reads the frames on `stack` depth-first until it is empty. Returns
/// true when the visitor said [`Control::Stop`].
fn run(
    root: &RootDir,
    opts: &WalkOptions,
    visitor: &mut dyn Visitor,
    stats: &mut WalkStats,
    mut rel: Vec<u8>,
    mut stack: Vec<Frame>,
) -> bool {
    let max_open = opts.max_open_dirs.max(2);
    let mut open_count = stack.iter().filter(|f| f.dir.is_some()).count();
    while let Some(top) = stack.last_mut() {
        rel.truncate(top.rel_len);
        if top.dir.is_none() {
            match reopen(root, &rel, top) {
                Ok(()) => {
                    stats.reopened += 1;
                    open_count += 1;
                }
                Err(e) => {
                    stats.errors += 1;
                    stack.pop();
                    if visitor.error(e) == Control::Stop {
                        return true;
                    }
                    continue;
                }
            }
        }
        let dir = top.dir.as_mut().expect("open above");
        let item = match dir.read() {
            None => {
                stack.pop();
                open_count -= 1;
                continue;
            }
            Some(Err(e)) => {
                stats.errors += 1;
                let rel_path = Path::new(OsStr::from_bytes(&rel)).to_path_buf();
                stack.pop();
                open_count -= 1;
                if visitor.error(FsError::io(Op::ReadDir, rel_path, e)) == Control::Stop {
                    return true;
                }
                continue;
            }
            Some(Ok(item)) => item,
        };
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        top.resume = item.offset();
        let depth = top.depth + 1;
        let parent_meta = top.meta;
        let dir_fd = top
            .dir
            .as_ref()
            .expect("open")
            .fd()
            .expect("linux Dir has an fd");

        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.to_bytes());
        let rel_path = Path::new(OsStr::from_bytes(&rel));

        let meta = match rustix::fs::statx(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK) {
            Ok(st) => Meta::from_statx(&st),
            Err(Errno::NOENT) => {
                stats.vanished += 1;
                continue;
            }
            Err(e) => {
                stats.errors += 1;
                if visitor.error(FsError::io(Op::Stat, rel_path, e)) == Control::Stop {
                    return true;
                }
                continue;
            }
        };
        let entry = WalkEntry {
            rel: rel_path,
            name,
            meta,
            depth,
            dir_fd,
        };
        if meta.dev != parent_meta.dev || (meta.mnt_id != 0 && meta.mnt_id != parent_meta.mnt_id) {
            stats.mount_points += 1;
            visitor.mount_point(&entry);
            continue;
        }
        count(stats, &meta);
        let ctl = visitor.entry(&entry);
        if ctl == Control::Stop {
            return true;
        }
        let descend = ctl == Control::Continue
            && meta.is_dir()
            && opts.max_depth.is_none_or(|max| depth < max);
        if !descend {
            continue;
        }
        let child = match open_dir_reader(dir_fd, name, &meta, rel_path) {
            Ok(d) => d,
            Err(e) => {
                stats.errors += 1;
                if visitor.error(e) == Control::Stop {
                    return true;
                }
                continue;
            }
        };
        drop(item);
        if open_count >= max_open {
            // Park the shallowest open directory; it is reopened by path when we return.
            if let Some(f) = stack.iter_mut().find(|f| f.dir.is_some()) {
                f.dir = None;
                open_count -= 1;
            }
        }
        stack.push(Frame {
            dir: Some(child),
            resume: 0,
            rel_len: rel.len(),
            meta,
            depth,
        });
        open_count += 1;
    }
    false
}

/// Walks like [`walk`], with the root's subdirectories shared among `threads` threads.
///
/// The calling thread visits the root and its direct entries with the first visitor; each
/// thread (the caller's included) then takes whole subdirectories of the root, one at a time,
/// and walks them with a visitor of its own from `make`. Every entry is visited exactly once,
/// under the same rules as [`walk`] (no symlinks followed, no mount crossed, each directory
/// checked to be the inode that was statted). Visitors run concurrently, so their order across
/// subtrees is unspecified; a `Stop` from any of them ends the walk after the subtrees in
/// progress. Returns the visitors (for merging results) and the summed counts.
pub fn walk_parallel<V, F>(
    root: &RootDir,
    opts: &WalkOptions,
    threads: usize,
    make: F,
) -> (Vec<V>, WalkStats)
where
    V: Visitor + Send,
    F: Fn() -> V + Sync,
{
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Forwards to the first visitor and keeps the root's subdirectories to share out.
    struct TopLevel<'v, V> {
        inner: &'v mut V,
        subdirs: Vec<(Vec<u8>, Meta)>,
    }
    impl<V: Visitor> Visitor for TopLevel<'_, V> {
        fn entry(&mut self, e: &WalkEntry<'_>) -> Control {
            let ctl = self.inner.entry(e);
            if ctl == Control::Continue && e.depth == 1 && e.meta.is_dir() {
                self.subdirs.push((e.name.to_bytes().to_vec(), e.meta));
            }
            ctl
        }
        fn mount_point(&mut self, e: &WalkEntry<'_>) {
            self.inner.mount_point(e)
        }
        fn error(&mut self, e: FsError) -> Control {
            self.inner.error(e)
        }
    }

    let mut first = make();
    let mut top = TopLevel {
        inner: &mut first,
        subdirs: Vec::new(),
    };
    let top_opts = WalkOptions {
        max_depth: Some(1),
        ..opts.clone()
    };
    let mut stats = walk(root, &top_opts, &mut top);
    let subdirs = top.subdirs;
    if opts.max_depth.is_some_and(|d| d <= 1) || subdirs.is_empty() {
        return (vec![first], stats);
    }
    let next = AtomicUsize::new(0);
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let totals = Mutex::new(Vec::new());
    let work = |visitor: &mut V| {
        let mut local = WalkStats::default();
        while !stopped.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((name, meta)) = subdirs.get(i) else {
                break;
            };
            let Ok(c_name) = std::ffi::CString::new(name.clone()) else {
                continue;
            };
            let rel_path = Path::new(OsStr::from_bytes(name));
            match open_dir_reader(root.as_fd(), &c_name, meta, rel_path) {
                Ok(dir) => {
                    let frame = Frame {
                        dir: Some(dir),
                        resume: 0,
                        rel_len: name.len(),
                        meta: *meta,
                        depth: 1,
                    };
                    if run(root, opts, visitor, &mut local, name.clone(), vec![frame]) {
                        stopped.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    local.errors += 1;
                    if visitor.error(e) == Control::Stop {
                        stopped.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        totals.lock().expect("stats lock").push(local);
    };
    let threads = threads.max(1);
    let mut rest: Vec<V> = (1..threads).map(|_| make()).collect();
    std::thread::scope(|scope| {
        for v in rest.iter_mut() {
            scope.spawn(|| work(v));
        }
        work(&mut first);
    });
    for t in totals.into_inner().expect("stats lock") {
        stats.entries += t.entries;
        stats.dirs += t.dirs;
        stats.files += t.files;
        stats.symlinks += t.symlinks;
        stats.mount_points += t.mount_points;
        stats.vanished += t.vanished;
        stats.errors += t.errors;
        stats.reopened += t.reopened;
    }
    let mut all = vec![first];
    all.extend(rest);
    (all, stats)
}

fn count(stats: &mut WalkStats, meta: &Meta) {
    use crate::entry::FileKind;
    stats.entries += 1;
    match meta.kind {
        FileKind::Dir => stats.dirs += 1,
        FileKind::File => stats.files += 1,
        FileKind::Symlink => stats.symlinks += 1,
        _ => {}
    }
}

/// Opens directory `name` of `dir` for reading and checks it is the inode `expect`.
fn open_dir_reader(dir: BorrowedFd<'_>, name: &CStr, expect: &Meta, rel: &Path) -> Result<Dir> {
    let fd: OwnedFd = openat2_beneath(
        dir,
        Path::new(OsStr::from_bytes(name.to_bytes())),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Op::ReadDir,
    )
    .map_err(|e| relabel_path(e, rel))?;
    verify(fd.as_fd(), expect, rel)?;
    Dir::new(fd).map_err(|e| FsError::io(Op::ReadDir, rel, e))
}

fn verify(fd: BorrowedFd<'_>, expect: &Meta, rel: &Path) -> Result<()> {
    let got = Meta::of_fd(fd).map_err(|e| FsError::io(Op::Stat, rel, e))?;
    if !got.same_inode(expect) {
        return Err(FsError::Raced {
            op: Op::ReadDir,
            path: rel.to_path_buf(),
        });
    }
    Ok(())
}

/// Reopens a parked frame by its path beneath the root and seeks back to where it was.
fn reopen(root: &RootDir, rel: &[u8], frame: &mut Frame) -> Result<()> {
    let rel = Path::new(OsStr::from_bytes(rel));
    let fd = root.open_dir(rel)?;
    verify(fd.as_fd(), &frame.meta, rel)?;
    let mut dir = Dir::new(fd).map_err(|e| FsError::io(Op::ReadDir, rel, e))?;
    if frame.resume != 0 {
        dir.seek(frame.resume)
            .map_err(|e| FsError::io(Op::ReadDir, rel, e))?;
    }
    frame.dir = Some(dir);
    Ok(())
}
