//! The store's typed errors, and the one place where SQLite result codes are classified.
//!
//! Every error that comes from SQLite or the filesystem carries the database path and the
//! operation that failed, so a log line alone says what went wrong and where. Conditions an
//! operator can act on (disk full, read-only or corrupt file, another process holding the
//! lock) have variants of their own; the daemon maps each variant to a gRPC status in one
//! exhaustive `match`. This module must never swallow an error or turn one into a panic.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::ErrorCode;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory meant to hold the database could not be created.
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Cause reported by the OS.
        source: io::Error,
    },

    /// The database file could not be created or given mode 0600.
    #[error("cannot prepare database file {path} with mode 0600: {source}")]
    FileMode {
        /// The database file (or its `-wal` / `-shm` companion).
        path: PathBuf,
        /// Cause reported by the OS.
        source: io::Error,
    },

    /// The disk (or the configured size cap) is full (`SQLITE_FULL`). The transaction that
    /// hit it was rolled back: what was committed before is intact.
    #[error("disk full while {op} in {path}; nothing of this operation was stored: {source}")]
    DiskFull {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The database, its directory or its filesystem is read-only (`SQLITE_READONLY*`,
    /// `EROFS`).
    #[error("database {path} is read-only while {op}: {source}")]
    ReadOnly {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error or the OS's.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The file is corrupt or is not an SQLite database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    #[error("database {path} is corrupt or not a database ({op}): {source}")]
    Corrupt {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The file is an SQLite database that belongs to another application.
    #[error("database {path} belongs to another application (application_id {found:#x})")]
    ForeignDatabase {
        /// Database path.
        path: PathBuf,
        /// The `application_id` found in the file header.
        found: i32,
    },

    /// Another process (or connection) holds the write lock for longer than the busy timeout
    /// (`SQLITE_BUSY`, `SQLITE_LOCKED`): typically a second goguardd on the same state dir.
    #[error(
        "database {path} is locked by another process (waited {busy_timeout:?}) while {op}: {source}"
    )]
    Locked {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// How long SQLite waited before giving up.
        busy_timeout: Duration,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The database file cannot be opened at all (`SQLITE_CANTOPEN`): missing directory,
    /// permissions, or a symlink where the database should be.
    #[error("cannot open database {path} while {op}: {source}")]
    CannotOpen {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The database was written by a newer goguard; it is left untouched.
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this goguard knows; \
         refusing to touch it"
    )]
    SchemaTooNew {
        /// Database path.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },

    /// SQLite refused to switch to WAL mode (the store's crash safety depends on it).
    #[error("database {path} cannot use WAL journaling (journal_mode is {mode:?})")]
    WalUnavailable {
        /// Database path.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },

    /// A page token was not produced by this store for this filter (bad input from a client:
    /// the API maps it to `INVALID_ARGUMENT`).
    #[error("invalid page token: {reason}")]
    InvalidPageToken {
        /// Why the token was rejected.
        reason: &'static str,
    },

    /// An argument is out of its domain (non-finite time, negative age, ...): bad input,
    /// `INVALID_ARGUMENT` at the API.
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// Name of the argument.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// No denial has this id.
    #[error("no denial with id {id}")]
    DenialNotFound {
        /// The id asked for.
        id: i64,
    },

    /// No journal entry has this id (when linking a denial to the repair that fixed it).
    #[error("no repair journal entry with id {id}")]
    JournalEntryNotFound {
        /// The id asked for.
        id: i64,
    },

    /// A stored value does not decode (for example an unknown status text): the file was
    /// edited by hand or by a newer goguard.
    #[error("database {path}: invalid value {value:?} in {table}.{column}")]
    InvalidData {
        /// Database path.
        path: PathBuf,
        /// Table of the value.
        table: &'static str,
        /// Column of the value.
        column: &'static str,
        /// The value as found.
        value: String,
    },

    /// Any other SQLite failure.
    #[error("database {path}: error while {op}: {source}")]
    Sqlite {
        /// Database path.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Classifies an SQLite error into the variant an operator can act on.
    pub(crate) fn from_sqlite(
        path: &std::path::Path,
        op: &'static str,
        busy_timeout: Duration,
        source: rusqlite::Error,
    ) -> StoreError {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, op, source },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
                path,
                op,
                source: Box::new(source),
            },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path, op, source }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
                path,
                op,
                busy_timeout,
                source,
            },
            Some(ErrorCode::CannotOpen) => StoreError::CannotOpen { path, op, source },
            _ => StoreError::Sqlite { path, op, source },
        }
    }

    /// True when the error names a denial or journal entry that does not exist
    /// (`NOT_FOUND` at the API).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::DenialNotFound { .. } | StoreError::JournalEntryNotFound { .. }
        )
    }

    /// True for errors caused by the caller's input rather than by the store: these map to
    /// `INVALID_ARGUMENT` (or, for [`StoreError::is_not_found`], `NOT_FOUND`) and leave the
    /// store healthy.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidPageToken { .. }
                | StoreError::InvalidArgument { .. }
                | StoreError::DenialNotFound { .. }
                | StoreError::JournalEntryNotFound { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    fn classify(code: i32) -> StoreError {
        StoreError::from_sqlite(
            std::path::Path::new("/x.db"),
            "testing",
            Duration::from_secs(1),
            failure(code),
        )
    }

    #[test]
    fn sqlite_codes_map_to_actionable_variants() {
        assert!(matches!(
            classify(ffi::SQLITE_FULL),
            StoreError::DiskFull { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_READONLY),
            StoreError::ReadOnly { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_READONLY_DIRECTORY),
            StoreError::ReadOnly { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_CORRUPT),
            StoreError::Corrupt { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_NOTADB),
            StoreError::Corrupt { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_BUSY),
            StoreError::Locked { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_LOCKED),
            StoreError::Locked { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_CANTOPEN),
            StoreError::CannotOpen { .. }
        ));
        assert!(matches!(
            classify(ffi::SQLITE_IOERR),
            StoreError::Sqlite { .. }
        ));
    }

    #[test]
    fn caller_errors_are_told_apart() {
        let nf = StoreError::DenialNotFound { id: 3 };
        assert!(nf.is_not_found() && nf.is_caller_error());
        let token = StoreError::InvalidPageToken { reason: "x" };
        assert!(!token.is_not_found() && token.is_caller_error());
        assert!(!classify(ffi::SQLITE_FULL).is_caller_error());
    }

    #[test]
    fn messages_name_path_and_operation() {
        let msg = classify(ffi::SQLITE_FULL).to_string();
        assert!(msg.contains("/x.db"), "{msg}");
        assert!(msg.contains("testing"), "{msg}");
        assert!(msg.contains("disk full"), "{msg}");
    }
}
