//! The crate's typed error: which operation failed, on which path (relative to the root),
//! and why, with the refusals (symlink, escape, mount crossing, race) kept apart from plain
//! I/O errors so callers can count and report them.
//!
//! Errors must never carry an absolute path of an entry: paths are relative to the root the
//! operation was confined to (the root itself is named only by [`FsError::OpenRoot`]).

use std::io;
use std::path::PathBuf;

use crate::acl::AclError;

/// The operation that failed, for error messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening the root or an entry beneath it.
    Open,
    /// Reading metadata.
    Stat,
    /// Listing a directory during a walk.
    ReadDir,
    /// Changing owner or group.
    Chown,
    /// Changing mode bits.
    Chmod,
    /// Reading `security.selinux`.
    GetLabel,
    /// Writing `security.selinux`.
    SetLabel,
    /// Reading a POSIX ACL.
    GetAcl,
    /// Writing a POSIX ACL.
    SetAcl,
    /// Removing a POSIX ACL.
    RemoveAcl,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::Stat => "stat",
            Op::ReadDir => "readdir",
            Op::Chown => "chown",
            Op::Chmod => "chmod",
            Op::GetLabel => "get label",
            Op::SetLabel => "set label",
            Op::GetAcl => "get ACL",
            Op::SetAcl => "set ACL",
            Op::RemoveAcl => "remove ACL",
        })
    }
}

/// Everything that can go wrong beneath a root.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The root could not be opened (missing, not a directory, ...).
    #[error("open root {path}: {source}")]
    OpenRoot {
        /// The root as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A user's root is not reached safely from its anchor (a symlink on the way, a
    /// directory owned by someone else or writable by others): goguardd refuses to act there.
    #[error("{path}: {reason}")]
    UnsafeUserRoot {
        /// The root as given.
        path: PathBuf,
        /// Which component and why.
        reason: String,
    },
    /// The root's own last component is a symlink.
    #[error("root {path} is a symlink; refusing to follow it")]
    RootIsSymlink {
        /// The root as given.
        path: PathBuf,
    },
    /// The path is absolute or has a `..` component.
    #[error("{op} {path:?}: path must be relative to the root, without '..'")]
    NotBeneath {
        /// What was attempted.
        op: Op,
        /// The offending path.
        path: PathBuf,
    },
    /// A symlink is in the way (mid-path, or where a directory was expected).
    #[error("{op} {path:?}: a symlink is in the way; not followed")]
    Symlink {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
    },
    /// Reaching the path would cross a mount point.
    #[error("{op} {path:?}: crosses a mount point; not crossed")]
    CrossesMount {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
    },
    /// The operation does not apply to this kind of file (e.g. chmod of a symlink).
    #[error("{op} {path:?}: refused on a {kind}")]
    Refused {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
        /// The kind of file, e.g. "symlink".
        kind: &'static str,
    },
    /// The entry changed identity between two steps (it was replaced while we worked).
    #[error("{op} {path:?}: entry was replaced while being worked on")]
    Raced {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
    },
    /// An ACL xattr or an ACL edit was invalid.
    #[error("{op} {path:?}: {source}")]
    Acl {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: AclError,
    },
    /// A security context that is not `user:role:type[:range]`.
    #[error("{op} {path:?}: invalid security context {context:?}")]
    BadContext {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
        /// The rejected text.
        context: String,
    },
    /// Any other system error.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was attempted.
        op: Op,
        /// Path relative to the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// True when the entry does not exist (ENOENT), e.g. removed during a walk.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// True for the safety refusals: symlink, escape, mount crossing, race, wrong file kind.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FsError::RootIsSymlink { .. }
                | FsError::NotBeneath { .. }
                | FsError::Symlink { .. }
                | FsError::CrossesMount { .. }
                | FsError::Refused { .. }
                | FsError::Raced { .. }
        )
    }

    pub(crate) fn io(op: Op, path: impl Into<PathBuf>, err: rustix::io::Errno) -> FsError {
        FsError::Io {
            op,
            path: path.into(),
            source: err.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = FsError> = std::result::Result<T, E>;
