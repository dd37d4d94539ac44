//! Where the follower is: [`FileId`] names one file by `(dev, ino)`, [`Cursor`] is a byte
//! position in one, [`Start`] says where a new [`Follower`](crate::Follower) begins.
//!
//! These are plain values: nothing here touches the filesystem. A cursor always points at the
//! start of a line (the byte after a `\n`, or 0), never into the middle of one, so resuming
//! from it can neither split nor repeat a line.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// One file on one filesystem, independent of its name: `(st_dev, st_ino)`.
///
/// Rotation renames a file without changing its `FileId`; that is how the follower tells
/// "the same log, renamed" from "a new log at the same path".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FileId {
    /// `st_dev` of the filesystem holding the file.
    pub dev: u64,
    /// `st_ino` of the file on that filesystem.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file described by `meta`.
    pub fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A resumable position: the next byte to read in the file `(dev, ino)`.
///
/// The daemon stores it (as three integers) after it has durably handled every line before
/// `offset`, and hands it back through [`Start::Resume`] after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Cursor {
    /// `st_dev` of the file the offset belongs to.
    pub dev: u64,
    /// `st_ino` of the file the offset belongs to.
    pub ino: u64,
    /// Byte offset of the first line not yet delivered.
    pub offset: u64,
}

impl Cursor {
    /// The file this cursor points into.
    pub fn file(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
        }
    }

    /// A cursor at `offset` in `file`.
    pub fn at(file: FileId, offset: u64) -> Cursor {
        Cursor {
            dev: file.dev,
            ino: file.ino,
            offset,
        }
    }
}

/// Where a new follower starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From byte 0 of the file now at the path.
    Beginning,
    /// From the start of the first line that is not complete yet in the file now at the path
    /// (its end, if it ends with `\n`). A log that does not exist yet is read from byte 0
    /// once it appears.
    End,
    /// From a cursor saved by an earlier run, following the log through any rotations that
    /// happened in between (like `ausearch --checkpoint`).
    Resume(Cursor),
}
