//! Where the log went: the configured path, its rotated siblings (`audit.log.1`,
//! `audit.log.2`, ... and any other name starting with the log's name), and which file to read
//! after the one just finished.
//!
//! This module only stats, lists the log's directory and opens files read-only. It never
//! follows a symlink among the siblings (only the configured path itself may be one), never
//! opens anything that is not a regular file, and never looks outside the log's directory.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::cursor::FileId;
use crate::error::with_path;

/// How often the directory is listed again when the log rotated while it was being looked at.
const STABLE_TRIES: usize = 8;

/// The configured log path, split once into the directory to search and the name to match.
#[derive(Debug, Clone)]
pub(crate) struct LogPath {
    /// As configured; opened (following a symlink, if it is one) for the current log.
    path: PathBuf,
    /// Its parent directory, where rotated siblings live.
    dir: PathBuf,
    /// Its file name: siblings are names that start with it.
    name: OsString,
}

/// A file opened for reading, with its identity and size at the time it was opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) id: FileId,
    pub(crate) len: u64,
}

/// A rotated sibling holding a given file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Where it is now.
    pub(crate) path: PathBuf,
    /// `N` when the name is `<log name>.N`.
    pub(crate) number: Option<u32>,
}

/// What to read after the current file's end.
#[derive(Debug)]
pub(crate) enum Next {
    /// The path still names the current file: wait for it to grow.
    Same,
    /// The path does not exist and no newer rotated file does either.
    Missing,
    /// The current file was renamed, but to where could not be told yet (see
    /// [`next_after`]): ask again later.
    Unplaced,
    /// The oldest file created after the current one, opened.
    File {
        opened: Opened,
        /// True when it is the file at the configured path (still being written), false for
        /// a rotated sibling (complete).
        at_path: bool,
    },
}

impl LogPath {
    pub(crate) fn new(path: PathBuf) -> io::Result<LogPath> {
        let name = path.file_name().map(|n| n.to_owned()).ok_or_else(|| {
            with_path(
                "following",
                &path,
                io::Error::new(io::ErrorKind::InvalidInput, "the log path has no file name"),
            )
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(LogPath { path, dir, name })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Identity of the file at the path, without opening it.
    pub(crate) fn stat_path(&self) -> io::Result<Option<FileId>> {
        match fs::metadata(&self.path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path("checking", &self.path, e)),
        }
    }

    /// Opens the file at the path; `None` if there is none. Anything but a regular file there
    /// is an error.
    pub(crate) fn open_path(&self) -> io::Result<Option<Opened>> {
        match open_regular(&self.path, true) {
            Ok(Some(o)) => Ok(Some(o)),
            Ok(None) => Err(with_path(
                "opening",
                &self.path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path("opening", &self.path, e)),
        }
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.name.clone();
        name.push(format!(".{n}"));
        self.dir.join(name)
    }
}

/// Splits a sibling's name: `None` if it is not a sibling of `log_name` at all, `Some(Some(N))`
/// for `<log_name>.N`, `Some(None)` for any other name starting with `log_name`.
fn sibling_number(log_name: &[u8], candidate: &[u8]) -> Option<Option<u32>> {
    let rest = candidate.strip_prefix(log_name)?;
    if rest.is_empty() {
        return None;
    }
    let Some(digits) = rest.strip_prefix(b".") else {
        return Some(None);
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Some(None);
    }
    Some(
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok()),
    )
}

/// Numbered siblings probed by name before listing the directory: `.1` to `.9` always, and
/// on past that while they exist.
const PROBE_ALWAYS: u32 = 9;

/// No numbered sibling beyond this is probed by name (the listing still finds it).
const PROBE_LIMIT: u32 = 10_000;

/// What `lstat` says is at `path`: `Some(id)` for a regular file, `None` for nothing or
/// anything else.
fn regular_at(path: &Path) -> io::Result<Option<FileId>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(FileId::of(&m))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path("checking", path, e)),
    }
}

/// Looks for `id` at `<log>.1`, `<log>.2`, ... by name. Rotation moves a file only upwards,
/// one number at a time, and this probe moves upwards too, so a file being rotated while it
/// is looked for cannot jump over the probe (a directory listing could miss it).
fn probe_numbered(log: &LogPath, id: FileId) -> io::Result<Option<Found>> {
    for n in 1..=PROBE_LIMIT {
        let path = log.numbered(n);
        match regular_at(&path)? {
            Some(at) if at == id => {
                return Ok(Some(Found {
                    path,
                    number: Some(n),
                }));
            }
            Some(_) => {}
            None if n >= PROBE_ALWAYS => return Ok(None),
            None => {}
        }
    }
    Ok(None)
}

/// Looks for `id` among every name in the log's directory that starts with the log's name.
fn list_siblings(log: &LogPath, id: FileId) -> io::Result<Option<Found>> {
    let entries = match fs::read_dir(&log.dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path("listing", &log.dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| with_path("listing", &log.dir, e))?;
        if entry.ino() != id.ino {
            continue;
        }
        let name = entry.file_name();
        let Some(number) = sibling_number(log.name.as_bytes(), name.as_bytes()) else {
            continue;
        };
        // lstat: a symlink to the file is not the file.
        if regular_at(&entry.path())? == Some(id) {
            return Ok(Some(Found {
                path: entry.path(),
                number,
            }));
        }
    }
    Ok(None)
}

/// Where the file `id` is among the rotated siblings, looked for once.
fn locate(log: &LogPath, id: FileId) -> io::Result<Option<Found>> {
    match probe_numbered(log, id)? {
        Some(found) => Ok(Some(found)),
        None => list_siblings(log, id),
    }
}

/// Opens a rotated sibling: regular files only, never through a symlink. `None` if it is not
/// there (any more) or is something else.
pub(crate) fn open_sibling(path: &Path) -> io::Result<Option<Opened>> {
    match open_regular(path, false) {
        Ok(o) => Ok(o),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            Ok(None)
        }
        Err(e) => Err(with_path("opening", path, e)),
    }
}

/// Opens `path` read-only without blocking (a FIFO must not hang the follower); `Ok(None)` if
/// it is not a regular file.
fn open_regular(path: &Path, follow: bool) -> io::Result<Option<Opened>> {
    let mut flags = libc::O_NONBLOCK;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(Opened {
        id: FileId::of(&meta),
        len: meta.len(),
        file,
    }))
}

/// Is `path` (not followed) the file `id`?
fn is_at(path: &Path, id: FileId) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(FileId::of(&m) == id),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(with_path("checking", path, e)),
    }
}

/// The file to read after `current` has been read to its end.
///
/// If the path still names `current`, that is [`Next::Same`]. Otherwise `current` was renamed
/// or deleted. Renamed to `<log>.N` (auditd), the files created after it are `<log>.M` for
/// `M < N`, newest last, then the path: the highest such `M` present comes next. Renamed to
/// any other name, or deleted, the next file is the one at the path.
///
/// The answer is only trusted if, once the next file is open, `current` is still at `.N` and
/// every name between the two is still empty. auditd renames from the highest number down, so
/// a rotation that overlapped the look-up has moved one of them by then, and the look-up is
/// done again; a file can never be skipped that way.
///
/// `still_linked` says `current` has a name somewhere (`st_nlink > 0`). If it was not found
/// all the same, the answer is [`Next::Unplaced`], unless `give_up` is set (the caller has
/// waited long enough: it was moved elsewhere), in which case the file at the path is next.
pub(crate) fn next_after(
    log: &LogPath,
    current: FileId,
    still_linked: bool,
    give_up: bool,
) -> io::Result<Next> {
    if log.stat_path()? == Some(current) {
        return Ok(Next::Same);
    }
    'look: for _ in 0..STABLE_TRIES {
        let found = locate(log, current)?;
        if found.is_none() && still_linked && !give_up {
            continue;
        }
        let at = found.as_ref().and_then(|f| f.number);

        // The highest number below `at` holding a file, else the path (number 0).
        let mut next = None;
        for m in (1..at.unwrap_or(1)).rev() {
            let path = log.numbered(m);
            if regular_at(&path)?.is_none() {
                continue;
            }
            match open_sibling(&path)? {
                Some(opened) if opened.id != current => {
                    next = Some((
                        Next::File {
                            opened,
                            at_path: false,
                        },
                        m,
                    ));
                    break;
                }
                // It moved since it was seen: look again.
                _ => continue 'look,
            }
        }
        let (next, below) = match next {
            Some(next) => next,
            None => match log.open_path()? {
                Some(opened) if opened.id == current => return Ok(Next::Same),
                Some(opened) => (
                    Next::File {
                        opened,
                        at_path: true,
                    },
                    0,
                ),
                None => (Next::Missing, 0),
            },
        };

        if let Some(found) = &found {
            if !is_at(&found.path, current)? {
                continue;
            }
            if let Some(at) = at {
                for k in below + 1..at {
                    if regular_at(&log.numbered(k))?.is_some() {
                        continue 'look;
                    }
                }
            }
        }
        return Ok(next);
    }
    // The names kept changing under us, or the file is somewhere we cannot see.
    Ok(Next::Unplaced)
}

/// Finds the rotated sibling that is the file `id` (by name, then by listing the directory,
/// a few times, since a listing taken during renames can miss an entry).
pub(crate) fn find(log: &LogPath, id: FileId) -> io::Result<Option<Found>> {
    for _ in 0..STABLE_TRIES {
        if let Some(found) = locate(log, id)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names() {
        let n = b"audit.log";
        assert_eq!(sibling_number(n, b"audit.log"), None);
        assert_eq!(sibling_number(n, b"other.log.1"), None);
        assert_eq!(sibling_number(n, b"audit.log.1"), Some(Some(1)));
        assert_eq!(sibling_number(n, b"audit.log.12"), Some(Some(12)));
        assert_eq!(sibling_number(n, b"audit.log.1.gz"), Some(None));
        assert_eq!(sibling_number(n, b"audit.log-20250101"), Some(None));
        assert_eq!(sibling_number(n, b"audit.log."), Some(None));
        assert_eq!(sibling_number(n, b"audit.log.99999999999"), Some(None));
    }

    #[test]
    fn path_without_parent_searches_the_current_directory() {
        let log = LogPath::new(PathBuf::from("audit.log")).unwrap();
        assert_eq!(log.dir, PathBuf::from("."));
        assert_eq!(log.numbered(3), PathBuf::from("./audit.log.3"));
        assert!(LogPath::new(PathBuf::from("/")).is_err());
    }
}
