//! The system calls the watcher makes: inotify, opening directories beneath a root, reading
//! event batches. Thin wrappers, no decisions.
//!
//! Never follows a symlink beneath a root and never crosses a mount: every directory inside a
//! root is opened with `openat2` relative to the root's fd with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, and the watch is placed on
//! that open directory through `/proc/self/fd/N` (so the kernel resolves nothing by name a
//! second time). Holds no memory beyond the caller's buffers.

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// One event copied out of the read buffer; its name lives in the batch's name arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEvent {
    pub(crate) wd: i32,
    pub(crate) mask: ReadFlags,
    /// Start and length of the name in the arena; `None` for an event on the watched
    /// directory itself.
    pub(crate) name: Option<(u32, u32)>,
}

/// A new non-blocking, close-on-exec inotify instance.
pub(crate) fn init() -> rustix::io::Result<OwnedFd> {
    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
}

/// Watches the directory open as `dir` (through its `/proc/self/fd` link, which only ever
/// names that directory). `scratch` is reused to format the link's path.
pub(crate) fn add_watch_fd(
    inotify: &OwnedFd,
    dir: &OwnedFd,
    mask: WatchFlags,
    scratch: &mut String,
) -> rustix::io::Result<i32> {
    scratch.clear();
    let _ = write!(scratch, "/proc/self/fd/{}", dir.as_raw_fd());
    inotify::add_watch(inotify, scratch.as_str(), mask)
}

/// Watches `path` by name (ancestors of roots that do not exist yet).
pub(crate) fn add_watch_path(
    inotify: &OwnedFd,
    path: &Path,
    mask: WatchFlags,
) -> rustix::io::Result<i32> {
    inotify::add_watch(inotify, path, mask)
}

/// Removes a watch; the kernel may already have (EINVAL), which is fine.
pub(crate) fn rm_watch(inotify: &OwnedFd, wd: i32) {
    let _ = inotify::remove_watch(inotify, wd);
}

/// Opens a root directory (`O_PATH`). The root's own path is resolved like any path the
/// administrator configured; only what lies beneath it is guarded.
pub(crate) fn open_root(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// (st_dev, st_ino) of an open directory.
pub(crate) fn dir_id(fd: &OwnedFd) -> rustix::io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Opens the directory `rel` beneath `root` for reading ("" is the root itself). Fails with
/// ELOOP if any component is a symlink, EXDEV if it lies on another mount, ENOTDIR if it is
/// not a directory, ENOENT if it is gone.
pub(crate) fn open_beneath(root: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV,
    )
}

/// Whether the entry `name` of the open directory `dir` is a directory (not following a
/// symlink). Used when `d_type` is unknown.
pub(crate) fn is_dir_at(dir: impl AsFd, name: &std::ffi::CStr) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .unwrap_or(false)
}

/// Reads one buffer of events from the non-blocking inotify fd into `batch`, names into
/// `names`. `WouldBlock` if nothing is waiting.
pub(crate) fn read_events(
    inotify: &OwnedFd,
    buf: &mut [MaybeUninit<u8>],
    batch: &mut Vec<RawEvent>,
    names: &mut Vec<u8>,
) -> std::io::Result<()> {
    batch.clear();
    names.clear();
    let mut reader = inotify::Reader::new(inotify.as_fd(), buf);
    loop {
        match reader.next() {
            Ok(ev) => {
                let name = ev.file_name().map(|n| {
                    let bytes = n.to_bytes();
                    let start = names.len() as u32;
                    names.extend_from_slice(bytes);
                    (start, bytes.len() as u32)
                });
                batch.push(RawEvent {
                    wd: ev.wd(),
                    mask: ev.events(),
                    name,
                });
            }
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) if batch.is_empty() => {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Err(Errno::AGAIN) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if reader.is_buffer_empty() {
            return Ok(());
        }
    }
}
