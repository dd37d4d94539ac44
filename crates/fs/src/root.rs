//! [`RootDir`]: a cache root opened once, and the only way to reach entries beneath it.
//!
//! The root is opened with `O_PATH|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC` (its own last component
//! must not be a symlink; the components above it are the admin's and are resolved normally)
//! and its (dev, ino, mount id) recorded. Every entry is then reached with
//! `openat2(root_fd, rel, O_PATH|O_NOFOLLOW|O_CLOEXEC,
//! RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV)`.
//!
//! A user's root ([`RootDir::open_for_user`]) is stricter: it is reached from its anchor (the
//! user's home, or an admin's prefix) one component at a time with `openat2(…,
//! RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, and every directory between the anchor and the root
//! must be owned by the user or root and not writable by others, so goguardd only changes
//! what the user could already remove or replace (docs/SECURITY.md).
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

    /// Opens a user's root `path`, which lies beneath `anchor`, for the user `uid`: the
    /// anchor is opened as a directory (its own path is the admin's: passwd's home or a
    /// configured prefix), then each component below it without following any symlink.
    /// When `anchor_is_users` (a home), the anchor must be owned by `uid` or root and not
    /// writable by others; every directory strictly between the anchor and the root must be
    /// too. The root itself may have any owner and mode (that is the drift goguardd heals),
    /// but must not be a symlink.
    pub fn open_for_user(
        anchor: &Path,
        path: &Path,
        uid: u32,
        anchor_is_users: bool,
    ) -> Result<RootDir> {
        match walk_anchored(anchor, path, uid, anchor_is_users)? {
            Anchored::Found(fd) => {
                let meta = Meta::of_fd(fd.as_fd()).map_err(|e| FsError::OpenRoot {
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
                Ok(RootDir {
                    fd,
                    path: path.to_path_buf(),
                    meta,
                })
            }
            Anchored::Missing(at) => Err(FsError::OpenRoot {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} does not exist", at.display()),
                ),
            }),
        }
    }

    /// The checks of [`RootDir::open_for_user`] without needing the root to exist yet: `Ok`
    /// when every existing directory on the way passes (a missing tail is fine: it is
    /// checked again when the root is opened).
    pub fn check_user_root(
        anchor: &Path,
        path: &Path,
        uid: u32,
        anchor_is_users: bool,
    ) -> Result<()> {
        walk_anchored(anchor, path, uid, anchor_is_users).map(|_| ())
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

enum Anchored {
    Found(OwnedFd),
    /// The first component that does not exist.
    Missing(PathBuf),
}

fn walk_anchored(anchor: &Path, path: &Path, uid: u32, anchor_is_users: bool) -> Result<Anchored> {
    let unsafe_root = |reason: String| FsError::UnsafeUserRoot {
        path: path.to_path_buf(),
        reason,
    };
    let rel = path
        .strip_prefix(anchor)
        .map_err(|_| unsafe_root(format!("not beneath {}", anchor.display())))?;
    check_rel(Op::Open, rel)?;
    if rel.as_os_str().is_empty() {
        return Err(unsafe_root("a root cannot be its anchor".into()));
    }
    let open_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = match rustix::fs::open(anchor, open_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Anchored::Missing(anchor.to_path_buf())),
        Err(e) => {
            return Err(FsError::OpenRoot {
                path: anchor.to_path_buf(),
                source: e.into(),
            });
        }
    };
    let trusted = |fd: BorrowedFd<'_>, at: &Path| -> Result<()> {
        let m = Meta::of_fd(fd).map_err(|e| FsError::io(Op::Stat, at, e))?;
        if m.uid != uid && m.uid != 0 {
            return Err(unsafe_root(format!(
                "{} is owned by uid {}, neither the user ({uid}) nor root",
                at.display(),
                m.uid
            )));
        }
        if m.mode & 0o002 != 0 {
            return Err(unsafe_root(format!(
                "{} is writable by others (mode {:04o})",
                at.display(),
                m.mode
            )));
        }
        Ok(())
    };
    if anchor_is_users {
        trusted(fd.as_fd(), anchor)?;
    }
    let comps: Vec<_> = rel.components().collect();
    let mut at = anchor.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        at.push(c);
        let last = i + 1 == comps.len();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH
            .union(ResolveFlags::NO_SYMLINKS)
            .union(ResolveFlags::NO_MAGICLINKS);
        let next = loop {
            match rustix::fs::openat2(fd.as_fd(), c.as_os_str(), flags, Mode::empty(), resolve) {
                Ok(next) => break next,
                Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
                Err(Errno::NOENT) => return Ok(Anchored::Missing(at)),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let is_link =
                        rustix::fs::statat(fd.as_fd(), c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .map(|st| {
                                rustix::fs::FileType::from_raw_mode(st.st_mode)
                                    == rustix::fs::FileType::Symlink
                            })
                            .unwrap_or(false);
                    return Err(unsafe_root(if is_link {
                        format!(
                            "{} is a symlink; goguardd never follows one to a user's cache",
                            at.display()
                        )
                    } else {
                        format!("{} is not a directory", at.display())
                    }));
                }
                Err(e) => return Err(FsError::io(Op::Open, rel, e)),
            }
        };
        if !last {
            trusted(next.as_fd(), &at)?;
        }
        fd = next;
    }
    Ok(Anchored::Found(fd))
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

/// Longest relative path handed to one `openat2` (the kernel refuses a path of `PATH_MAX`,
/// 4096 bytes, or more with `ENAMETOOLONG`).
const STEP_BYTES: usize = 3072;

/// `openat2(dir, rel, flags, RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV)`, with the
/// kernel's refusals mapped to typed errors.
///
/// A `rel` too long for one call (entries deeper than `PATH_MAX`) is reached in steps: each
/// run of whole components shorter than [`STEP_BYTES`] is opened `O_PATH|O_DIRECTORY`
/// relative to the previous step's fd with the same `RESOLVE_*` flags, so every step stays
/// beneath the last (and so beneath `dir`), follows no symlink and crosses no mount; the
/// last run is opened with `flags`. A single component is at most `NAME_MAX` (255) bytes.
pub(crate) fn openat2_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    op: Op,
) -> Result<OwnedFd> {
    if rel.as_os_str().len() >= STEP_BYTES {
        return openat2_in_steps(dir, rel, flags, op);
    }
    let rel_os: &OsStr = if rel.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        rel.as_os_str()
    };
    openat2_retry(dir, rel_os, flags).map_err(|e| map_resolve_error(op, rel, e))
}

fn openat2_retry(dir: BorrowedFd<'_>, rel: &OsStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    loop {
        match rustix::fs::openat2(dir, rel, flags, Mode::empty(), RESOLVE) {
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            r => return r,
        }
    }
}

/// [`openat2_beneath`] for a path of `STEP_BYTES` or more, in steps of whole components.
fn openat2_in_steps(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags, op: Op) -> Result<OwnedFd> {
    let steps = path_steps(rel);
    let mut held: Option<OwnedFd> = None;
    let last = steps.len() - 1;
    for (i, step) in steps.iter().enumerate() {
        let at = held.as_ref().map_or(dir, |fd| fd.as_fd());
        let step_flags = if i == last {
            flags
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let fd = openat2_retry(at, OsStr::from_bytes(step), step_flags)
            .map_err(|e| map_resolve_error(op, rel, e))?;
        held = Some(fd);
    }
    Ok(held.expect("at least one step"))
}

/// `rel` cut into runs of whole components, each shorter than [`STEP_BYTES`].
fn path_steps(rel: &Path) -> Vec<Vec<u8>> {
    let mut steps: Vec<Vec<u8>> = vec![Vec::new()];
    for c in rel.components() {
        let name = c.as_os_str().as_bytes();
        let cur = steps.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + name.len() >= STEP_BYTES {
            steps.push(name.to_vec());
        } else {
            if !cur.is_empty() {
                cur.push(b'/');
            }
            cur.extend_from_slice(name);
        }
    }
    steps
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

    #[test]
    fn long_paths_are_cut_at_whole_components() {
        let name = "n".repeat(200);
        let rel: PathBuf = std::iter::repeat_n(name.as_str(), 40).collect();
        let steps = path_steps(&rel);
        assert!(steps.len() >= 3, "{}", steps.len());
        assert!(
            steps
                .iter()
                .all(|s| s.len() < STEP_BYTES && !s.starts_with(b"/"))
        );
        assert_eq!(steps.join(&b'/'), rel.as_os_str().as_bytes());
    }

    #[test]
    fn entries_deeper_than_path_max_are_opened_in_steps_and_stay_confined() {
        let tmp = tempfile::tempdir().unwrap();
        let name = "d".repeat(200);
        let top = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let mut fd = top;
        for _ in 0..30 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(
                &fd,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
        }
        rustix::fs::openat(
            &fd,
            "f",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // A symlink to the outside half-way down.
        let mut mid = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        for _ in 0..20 {
            mid = rustix::fs::openat(&mid, name.as_str(), OFlags::RDONLY, Mode::empty()).unwrap();
        }
        rustix::fs::symlinkat("/", &mid, "up").unwrap();

        let root = RootDir::open(tmp.path()).unwrap();
        let deep: PathBuf = std::iter::repeat_n(name.as_str(), 30)
            .chain(["f"])
            .collect();
        assert!(deep.as_os_str().len() > 4096);
        let e = root.open_entry(&deep).unwrap();
        assert_eq!(e.meta().mode & 0o777, 0o600);
        let via_link: PathBuf = std::iter::repeat_n(name.as_str(), 20)
            .chain(["up", "etc"])
            .chain(std::iter::repeat_n("x", 2000))
            .collect();
        assert!(via_link.as_os_str().len() > 4096);
        assert!(matches!(
            root.open_entry(&via_link),
            Err(FsError::Symlink { .. })
        ));
    }
}
