//! [`RootDir`]: a cache root opened once, and the only way to reach entries beneath it.
//!
//! The root is opened with `O_PATH|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC` (its own last component
//! must not be a symlink; the components above it are the admin's and are resolved normally)
//! and its (dev, ino, mount id) recorded. Every entry is then reached with
//! `openat2(root_fd, rel, O_PATH|O_NOFOLLOW|O_CLOEXEC,
//! RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV)`.
//!
//! This module must never accept an absolute path or a `..` component (checked lexically,
//! before the kernel's own checks), follow a symlink anywhere in a relative path, or cross a
//! mount point.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::entry::{Entry, Meta};
use crate::error::{FsError, Op, Result};

/// The `RESOLVE_*` flags of every lookup beneath a root.
pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// A directory tree the daemon may change, opened once.
#[derive(Debug)]
pub struct RootDir {
    /// `O_PATH|O_DIRECTORY` fd every lookup starts from.
    fd: OwnedFd,
    /// The root's absolute path as given (made absolute, not canonicalized); used for
    /// file_contexts lookups and messages, never to reach entries.
    path: PathBuf,
    /// The root's identity at open time.
    meta: Meta,
}

impl RootDir {
    /// Opens `path` as a root. A relative `path` is taken from the current directory.
    pub fn open(path: impl AsRef<Path>) -> Result<RootDir> {
        let given = path.as_ref();
        let path = if given.is_absolute() {
            given.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|source| FsError::OpenRoot {
                    path: given.to_path_buf(),
                    source,
                })?
                .join(given)
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(&path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                let is_link = rustix::fs::lstat(&path)
                    .map(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Symlink
                    })
                    .unwrap_or(false);
                return Err(if is_link {
                    FsError::RootIsSymlink { path }
                } else {
                    FsError::OpenRoot {
                        path,
                        source: e.into(),
                    }
                });
            }
        };
        let meta = Meta::of_fd(fd.as_fd()).map_err(|e| FsError::OpenRoot {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(RootDir { fd, path, meta })
    }

    /// The root's absolute path as given to [`RootDir::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's metadata at open time (its dev, ino, mount id).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The root's `O_PATH` fd.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `root.path()` joined with `rel` (for labels and messages; never used to open).
    pub fn abs_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens the entry at `rel` (`""` or `"."` is the root itself) as an `O_PATH` fd, never
    /// following a symlink (a trailing symlink is opened as the link), never leaving the root
    /// or crossing a mount.
    pub fn open_entry(&self, rel: impl AsRef<Path>) -> Result<Entry> {
        let rel = rel.as_ref();
        check_rel(Op::Open, rel)?;
        let fd = openat2_beneath(
            self.fd.as_fd(),
            rel,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Op::Open,
        )?;
        Entry::from_fd(fd, rel.to_path_buf())
    }

    /// Opens the directory at `rel` for reading (`O_RDONLY|O_DIRECTORY|O_NOFOLLOW`), with the
    /// same confinement as [`RootDir::open_entry`].
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<OwnedFd> {
        let rel = rel.as_ref();
        check_rel(Op::ReadDir, rel)?;
        openat2_beneath(
            self.fd.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Op::ReadDir,
        )
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Rejects absolute paths and `..` components.
pub(crate) fn check_rel(op: Op, rel: &Path) -> Result<()> {
    let bad = rel.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    });
    if bad || rel.as_os_str().as_bytes().first() == Some(&b'/') {
        return Err(FsError::NotBeneath {
            op,
            path: rel.to_path_buf(),
        });
    }
    Ok(())
}

/// `openat2(dir, rel, flags, RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV)`, with the
/// kernel's refusals mapped to typed errors.
pub(crate) fn openat2_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    op: Op,
) -> Result<OwnedFd> {
    let rel_os: &OsStr = if rel.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        rel.as_os_str()
    };
    loop {
        match rustix::fs::openat2(dir, rel_os, flags, Mode::empty(), RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(e) => return Err(map_resolve_error(op, rel, e)),
        }
    }
}

/// Maps an `openat2` error with our `RESOLVE_*` flags to a typed error.
pub(crate) fn map_resolve_error(op: Op, rel: &Path, e: Errno) -> FsError {
    let path = rel.to_path_buf();
    match e {
        // RESOLVE_NO_SYMLINKS, or O_DIRECTORY|O_NOFOLLOW on a symlink.
        Errno::LOOP => FsError::Symlink { op, path },
        // `..`/absolute were refused lexically, so EXDEV is a mount crossing.
        Errno::XDEV => FsError::CrossesMount { op, path },
        _ => FsError::io(op, path, e),
    }
}

/// `statx(fd, "", AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn statx_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<rustix::fs::Statx> {
    rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        crate::entry::STATX_MASK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_checks() {
        assert!(check_rel(Op::Open, Path::new("a/b")).is_ok());
        assert!(check_rel(Op::Open, Path::new("")).is_ok());
        assert!(check_rel(Op::Open, Path::new("./a")).is_ok());
        assert!(check_rel(Op::Open, Path::new("a/../b")).is_err());
        assert!(check_rel(Op::Open, Path::new("..")).is_err());
        assert!(check_rel(Op::Open, Path::new("/etc")).is_err());
    }
}
