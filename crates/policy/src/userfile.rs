//! Reading a file a user controls, as root, without letting that user hang, starve or
//! misdirect the daemon (docs/SECURITY.md, rule 5): environment.d files, the `go env -w`
//! file (wherever `GOENV` points), `$GOROOT/go.env`.
//!
//! - never blocks: the path is `lstat`ed first and must be a regular file (a FIFO, socket or
//!   device is refused before it is opened), then opened `O_RDONLY|O_NONBLOCK|O_NOFOLLOW|
//!   O_NOCTTY` and checked again on the fd (same inode, still a regular file);
//! - bounded: a file larger than the cap is refused, and never more than the cap is read;
//! - with the reader's permissions: a file is read for a user only when its mode bits let
//!   that user read it (owner, primary group, or others), so `GOENV=/home/v/.config/go/env`
//!   (0600, another user's) reads nothing. Supplementary groups and ACLs are not consulted:
//!   the check can only refuse more than the kernel would, never less.
//!
//! This module must never follow a symlink at the last component, read a non-regular file,
//! or read more than its cap.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest environment.d or go env file read (Go's own env files are a few hundred
/// bytes; systemd has no limit, but a 1 GiB sparse file must not be read into memory).
pub const MAX_ENV_FILE: u64 = 256 * 1024;

/// Whose read permissions apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// The user's uid.
    pub uid: u32,
    /// The user's primary gid.
    pub gid: u32,
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It does not exist (or a directory on the way does not).
    Missing,
    /// Not a regular file (FIFO, socket, device, directory, symlink).
    NotRegular,
    /// Larger than the cap.
    TooLarge(u64),
    /// The reader may not read it.
    NotReadable,
    /// It changed between the check and the open, or another I/O error.
    Io(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("does not exist"),
            Refusal::NotRegular => f.write_str("is not a regular file"),
            Refusal::TooLarge(n) => write!(f, "is {n} bytes, over the {MAX_ENV_FILE}-byte limit"),
            Refusal::NotReadable => f.write_str("is not readable by its user"),
            Refusal::Io(e) => f.write_str(e),
        }
    }
}

/// Whether mode bits let `reader` read a file owned by `uid`:`gid` (pure).
pub fn may_read(reader: &Reader, uid: u32, gid: u32, mode: u32) -> bool {
    if reader.uid == uid {
        mode & 0o400 != 0
    } else if reader.gid == gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

/// Reads `path` as text under the rules of the module doc; `reader` `None` skips only the
/// permission check (the caller reads its own files). Invalid UTF-8 is replaced.
pub fn read(path: &Path, reader: Option<&Reader>, max: u64) -> Result<String, Refusal> {
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Refusal::Missing
        } else {
            Refusal::Io(e.to_string())
        }
    };
    let before = std::fs::symlink_metadata(path).map_err(io)?;
    if !before.file_type().is_file() {
        return Err(Refusal::NotRegular);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() || meta.ino() != before.ino() || meta.dev() != before.dev() {
        return Err(Refusal::NotRegular);
    }
    if let Some(r) = reader
        && !may_read(r, meta.uid(), meta.gid(), meta.mode())
    {
        return Err(Refusal::NotReadable);
    }
    if meta.len() > max {
        return Err(Refusal::TooLarge(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(Refusal::TooLarge(buf.len() as u64));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn permission_bits_by_class() {
        let r = Reader {
            uid: 1000,
            gid: 1000,
        };
        assert!(may_read(&r, 1000, 5, 0o400));
        assert!(!may_read(&r, 1000, 5, 0o044)); // the owner class decides for the owner
        assert!(may_read(&r, 0, 1000, 0o040));
        assert!(!may_read(&r, 1001, 1001, 0o600));
        assert!(may_read(&r, 1001, 1001, 0o604));
    }

    #[test]
    fn fifos_big_files_and_symlinks_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo.conf");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(read(&fifo, None, MAX_ENV_FILE), Err(Refusal::NotRegular));
        let big = d.path().join("big.conf");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(1 << 30).unwrap(); // sparse: 1 GiB, no blocks
        assert!(matches!(
            read(&big, None, MAX_ENV_FILE),
            Err(Refusal::TooLarge(_))
        ));
        let ok = d.path().join("ok.conf");
        std::fs::write(&ok, "A=b\n").unwrap();
        assert_eq!(read(&ok, None, MAX_ENV_FILE).unwrap(), "A=b\n");
        let link = d.path().join("link.conf");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert_eq!(read(&link, None, MAX_ENV_FILE), Err(Refusal::NotRegular));
        assert_eq!(
            read(&d.path().join("nope"), None, MAX_ENV_FILE),
            Err(Refusal::Missing)
        );
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = Reader {
            uid: 4_000_000,
            gid: 4_000_000,
        };
        assert_eq!(
            read(&ok, Some(&other), MAX_ENV_FILE),
            Err(Refusal::NotReadable)
        );
    }
}
