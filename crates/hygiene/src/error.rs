//! [`HygieneError`]: what went wrong, on which path (relative to the root it was confined to),
//! during which step. Per-entry problems met while trimming or verifying are not errors: they
//! are reported in the results (a module that cannot be read is a verdict, not a failure of
//! the whole run). Only what stops a run (the root cannot be opened, `trim.txt` cannot be
//! written) is an error.

use std::io;
use std::path::PathBuf;

/// Errors that stop a trim or a verification run.
#[derive(Debug, thiserror::Error)]
pub enum HygieneError {
    /// A goguard-fs operation (open the root, open a directory beneath it) failed.
    #[error(transparent)]
    Fs(#[from] goguard_fs::FsError),
    /// A system call on an entry beneath the root failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was attempted ("unlink", "read", "write trim.txt", ...).
        op: &'static str,
        /// Path relative to the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The root is not a Go build cache (no `00`..`ff` directories at all).
    #[error("{path}: not a Go build cache (no 00..ff subdirectories)")]
    NotAGoCache {
        /// The root as given.
        path: PathBuf,
    },
    /// A file that had to be parsed (e.g. a go.sum) is malformed.
    #[error("{what} line {line}: {message}")]
    Parse {
        /// What was parsed ("go.sum").
        what: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl HygieneError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        HygieneError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = HygieneError> = std::result::Result<T, E>;
