//! The few fd-based operations this crate needs that goguard-fs does not offer: open a file
//! or directory for reading, list a directory, unlink an entry after checking it is the one
//! that was listed, and read/write `trim.txt` under Go's own lock. Same discipline as
//! goguard-fs: every lookup is `openat2` relative to an already opened directory fd with
//! `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV`, and
//! `O_NOFOLLOW`.
//!
//! Must never follow a symlink, leave the directory it is given, cross a mount, or unlink
//! anything but a single-component name relative to a directory fd (never a path, never a
//! directory).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

/// The `RESOLVE_*` flags of every lookup (as goguard-fs uses them).
pub const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// `openat2(dir, rel, flags|O_NOFOLLOW|O_CLOEXEC, RESOLVE)`, retrying on EINTR/EAGAIN.
/// `rel` must be relative without `..` (the kernel refuses an escape anyway).
pub fn openat2_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel:?}: not a path beneath the directory"),
        ));
    }
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    loop {
        match rustix::fs::openat2(dir, rel.as_os_str(), flags, mode, RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens a directory beneath `dir` for listing (`O_RDONLY|O_DIRECTORY`).
pub fn open_dir(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    openat2_beneath(dir, rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
}

/// Opens a regular file beneath `dir` for reading. `O_NONBLOCK` so a FIFO planted in its
/// place cannot block us; anything but a regular file is refused after the open.
pub fn open_file(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<File> {
    open_regular(dir, rel, OFlags::empty())
}

fn open_regular(dir: BorrowedFd<'_>, rel: &Path, extra: OFlags) -> io::Result<File> {
    let fd = openat2_beneath(
        dir,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | extra,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel:?}: not a regular file"),
        ));
    }
    // Back to blocking reads for a regular file (O_NONBLOCK has no effect on them anyway).
    Ok(File::from(fd))
}

/// Reads at most `limit` bytes of a regular file beneath `dir` (one more tells the caller it
/// was longer).
pub fn read_small(dir: BorrowedFd<'_>, rel: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let f = open_file(dir, rel)?;
    let mut buf = Vec::with_capacity(limit.min(4096) + 1);
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The whole of a regular file beneath `dir` when it holds at most `limit` bytes; a longer
/// one is an [`io::ErrorKind::FileTooLarge`] error naming the limit (never read further).
pub fn read_bounded(dir: BorrowedFd<'_>, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = open_file(dir, rel)?;
    let size = f.metadata()?.len();
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes: not read"),
        )
    };
    if size > limit {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read_small`] without updating the file's atime (`O_NOATIME`: reading a cache entry
/// to decide whether to keep it must not dirty its inode). `O_NOATIME` needs the file's owner
/// or `CAP_FOWNER`; without them (`EPERM`) the file is read the ordinary way.
pub fn read_small_noatime(dir: BorrowedFd<'_>, rel: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let f = match open_regular(dir, rel, OFlags::NOATIME) {
        Err(e) if e.raw_os_error() == Some(Errno::PERM.raw_os_error()) => open_file(dir, rel)?,
        r => r?,
    };
    let mut buf = Vec::with_capacity(limit.min(4096) + 1);
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Metadata of one directory entry, not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    /// File type.
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// Inode number.
    pub ino: u64,
    /// Device (for the same-filesystem check).
    pub dev: u64,
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)`. `name` is a `&CStr`, or a `&str` that rustix
/// turns into a C string on the stack (no allocation for a short name).
pub fn stat_at(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> io::Result<EntryStat> {
    let st = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::TYPE | StatxFlags::SIZE | StatxFlags::MTIME | StatxFlags::INO,
    )?;
    let mtime = if st.stx_mtime.tv_sec >= 0 {
        UNIX_EPOCH + Duration::new(st.stx_mtime.tv_sec as u64, st.stx_mtime.tv_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(st.stx_mtime.tv_sec.unsigned_abs())
            + Duration::from_nanos(u64::from(st.stx_mtime.tv_nsec))
    };
    Ok(EntryStat {
        kind: FileType::from_raw_mode(u32::from(st.stx_mode)),
        size: st.stx_size,
        mtime,
        ino: st.stx_ino,
        dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
    })
}

/// Names in the directory `dir` (without `.` and `..`), read with `getdents64`.
pub fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::CString>> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Calls `f(name, d_type)` for every entry of the directory `dir` (without `.` and `..`),
/// read with `getdents64`, without collecting the names. `d_type` is [`FileType::Unknown`]
/// where the filesystem does not fill it in; callers that need the type must `statx` then.
pub fn for_each_entry(
    dir: BorrowedFd<'_>,
    mut f: impl FnMut(&std::ffi::CStr, FileType) -> io::Result<()>,
) -> io::Result<()> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        f(name, ent.file_type())?;
    }
    Ok(())
}

/// What [`unlink_listed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// Removed.
    Removed,
    /// Already gone.
    Gone,
    /// The name now refers to another inode: left alone.
    Replaced,
    /// Its mtime changed since it was listed (a build used it): left alone.
    Touched,
    /// Not a regular file (a symlink, a directory...): left alone.
    NotAFile,
}

/// Unlinks the regular file `name` in `dir` if it is still the inode `ino` with mtime
/// `mtime`, as listed. `name` must be a single component.
pub fn unlink_listed(
    dir: BorrowedFd<'_>,
    name: &str,
    ino: u64,
    mtime: SystemTime,
) -> io::Result<UnlinkOutcome> {
    if name.contains('/') || name == "." || name == ".." || name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: not a single file name"),
        ));
    }
    let st = match stat_at(dir, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UnlinkOutcome::Gone),
        Err(e) => return Err(e),
    };
    if st.kind != FileType::RegularFile {
        return Ok(UnlinkOutcome::NotAFile);
    }
    if st.ino != ino {
        return Ok(UnlinkOutcome::Replaced);
    }
    if st.mtime != mtime {
        return Ok(UnlinkOutcome::Touched);
    }
    // unlinkat without AT_REMOVEDIR: never removes a directory, never follows a symlink.
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Ok(UnlinkOutcome::Removed),
        Err(Errno::NOENT) => Ok(UnlinkOutcome::Gone),
        Err(e) => Err(e.into()),
    }
}

/// Reads a lock-protected small file (`trim.txt`) as Go's `lockedfile.Read` does: open,
/// `flock(LOCK_SH)`, read. `None` when it does not exist. At most `limit` + 1 bytes.
pub fn read_locked(dir: BorrowedFd<'_>, name: &str, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let f = match open_file(dir, Path::new(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    flock_retry(f.as_fd(), FlockOperation::LockShared)?;
    let mut buf = Vec::new();
    (&f).take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Writes a small file (`trim.txt`) as Go's `lockedfile.Write(name, content, 0666)` does:
/// open `O_WRONLY|O_CREATE` (mode 0666 less the umask), `flock(LOCK_EX)`, truncate, write,
/// close. Go's readers take the shared lock, so they never see a half-written file; the
/// inode (and its owner, label and ACL) is kept. A file we create is given `owner` (uid,
/// gid) when set, so a root daemon does not leave a root-owned file in a user's cache.
pub fn write_locked(
    dir: BorrowedFd<'_>,
    name: &str,
    content: &[u8],
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let rel = Path::new(OsStr::from_bytes(name.as_bytes()));
    let (fd, created) = match openat2_beneath(
        dir,
        rel,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o666),
    ) {
        Ok(fd) => (fd, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
            openat2_beneath(dir, rel, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty())?,
            false,
        ),
        Err(e) => return Err(e),
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: not a regular file"),
        ));
    }
    if created {
        if let Some((uid, gid)) = owner {
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )?;
        }
    }
    flock_retry(fd.as_fd(), FlockOperation::LockExclusive)?;
    rustix::fs::ftruncate(&fd, 0)?;
    let mut f = File::from(fd);
    f.write_all(content)?;
    // Closing releases the lock.
    Ok(())
}

/// How long a lock on `trim.txt` is waited for. Go holds it for microseconds; a user who
/// holds it longer (`flock -x trim.txt sleep 240`) must not hold a daemon thread hostage.
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `flock(op)`, retried without blocking until [`LOCK_TIMEOUT`]; then `WouldBlock` with a
/// message that says what holds it.
fn flock_retry(fd: BorrowedFd<'_>, op: FlockOperation) -> io::Result<()> {
    let nonblocking = match op {
        FlockOperation::LockShared => FlockOperation::NonBlockingLockShared,
        FlockOperation::LockExclusive => FlockOperation::NonBlockingLockExclusive,
        other => other,
    };
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
    loop {
        match rustix::fs::flock(fd, nonblocking) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(Errno::WOULDBLOCK) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "still locked by another process after {}s (a go command, or a user \
                         holding it); try again later",
                        LOCK_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn refuses_symlinks_escapes_and_replaced_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("outside"), b"x").unwrap();
        std::os::unix::fs::symlink("../outside", d.join("sub/link")).unwrap();
        std::os::unix::fs::symlink(d, d.join("sub/dirlink")).unwrap();
        std::fs::write(d.join("sub/file"), b"hello").unwrap();
        let root = File::open(d.join("sub")).unwrap();
        let fd = root.as_fd();

        assert!(open_file(fd, Path::new("link")).is_err());
        assert!(open_file(fd, Path::new("dirlink/outside")).is_err());
        assert!(open_file(fd, Path::new("../outside")).is_err());
        assert_eq!(read_small(fd, Path::new("file"), 3).unwrap(), b"hell");
        assert_eq!(
            read_small_noatime(fd, Path::new("file"), 9).unwrap(),
            b"hello"
        );
        assert!(read_small_noatime(fd, Path::new("link"), 9).is_err());
        assert_eq!(read_bounded(fd, Path::new("file"), 5).unwrap(), b"hello");
        assert_eq!(
            read_bounded(fd, Path::new("file"), 4).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );

        // A symlink is never unlinked through this API, and never followed.
        let st = stat_at(fd, c"link").unwrap();
        assert_eq!(
            unlink_listed(fd, "link", st.ino, st.mtime).unwrap(),
            UnlinkOutcome::NotAFile
        );
        assert!(d.join("outside").exists());
        let st = stat_at(fd, c"file").unwrap();
        assert_eq!(
            unlink_listed(fd, "file", st.ino + 1, st.mtime).unwrap(),
            UnlinkOutcome::Replaced
        );
        assert_eq!(
            unlink_listed(fd, "file", st.ino, st.mtime + Duration::from_secs(1)).unwrap(),
            UnlinkOutcome::Touched
        );
        assert_eq!(
            unlink_listed(fd, "file", st.ino, st.mtime).unwrap(),
            UnlinkOutcome::Removed
        );
        assert_eq!(
            unlink_listed(fd, "file", st.ino, st.mtime).unwrap(),
            UnlinkOutcome::Gone
        );
        assert!(unlink_listed(fd, "../outside", 0, UNIX_EPOCH).is_err());
    }

    #[test]
    fn locked_write_keeps_inode_and_replaces_content() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = File::open(tmp.path()).unwrap();
        assert_eq!(read_locked(dir.as_fd(), "trim.txt", 64).unwrap(), None);
        write_locked(dir.as_fd(), "trim.txt", b"1234567890", None).unwrap();
        let ino = std::fs::metadata(tmp.path().join("trim.txt")).unwrap();
        write_locked(dir.as_fd(), "trim.txt", b"42", None).unwrap();
        let after = std::fs::metadata(tmp.path().join("trim.txt")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(ino.ino(), after.ino());
        assert_eq!(
            read_locked(dir.as_fd(), "trim.txt", 64).unwrap().unwrap(),
            b"42"
        );
    }
}
