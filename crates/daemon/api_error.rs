//! The one place the daemon's errors become gRPC statuses. Operations the service calls
//! (`healing`, `hygiene_task`, the store) fail with an [`OpError`]; `Status::from` matches
//! every variant, and every [`StoreError`] variant, without a wildcard, so a new error
//! cannot reach a client under a code nobody chose.
//!
//! Codes: the caller's input → INVALID_ARGUMENT; what was named is not there (an id, a
//! root dropped while the request ran) → NOT_FOUND; the files do not allow it now (a root
//! reached through a symlink) → FAILED_PRECONDITION; a full disk → RESOURCE_EXHAUSTED; a
//! corrupt database → DATA_LOSS; a store that cannot serve → UNAVAILABLE; a panicked task
//! (a bug) → INTERNAL.
//!
//! Must never: put another user's paths in a message (the errors are built for the caller
//! by the service), or log the caller's own mistakes as server errors.

use std::path::PathBuf;

use goguard_store::StoreError;
use tonic::{Code, Status};

/// How an operation the API asked for failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The root the request named was dropped (a reload, a user's changed environment)
    /// while the request ran.
    #[error(
        "{} is no longer a cache root goguardd guards (its configuration or its owner's \
         environment changed); see `goguardctl roots`",
        .0.display()
    )]
    RootGone(PathBuf),
    /// The root could not be opened safely (a symlink on its path, another filesystem):
    /// nothing was done. The text says why.
    #[error("nothing repaired: {0}")]
    RootUnsafe(String),
    /// The go.sum text the caller sent does not parse.
    #[error("the go.sum given is not valid: {0}")]
    BadGoSum(String),
    /// A blocking task panicked or was cancelled: a bug, reported as such.
    #[error("{what} failed: {source}")]
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
    /// The store failed, or refused the caller's input.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpError {
    /// A blocking task that did not return.
    pub fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> OpError {
        move |source| OpError::Task { what, source }
    }
}

impl From<OpError> for Status {
    fn from(e: OpError) -> Status {
        let code = match &e {
            OpError::RootGone(_) => Code::NotFound,
            OpError::RootUnsafe(_) => Code::FailedPrecondition,
            OpError::BadGoSum(_) => Code::InvalidArgument,
            OpError::Task { .. } => Code::Internal,
            OpError::Store(s) => store_code(s),
        };
        if matches!(
            code,
            Code::Internal | Code::Unavailable | Code::DataLoss | Code::ResourceExhausted
        ) {
            tracing::error!(error = %e, "request failed");
        }
        let message = match &e {
            OpError::Store(s) if !s.is_caller_error() => format!("the store failed: {s}"),
            _ => e.to_string(),
        };
        Status::new(code, message)
    }
}

/// The code of each store error.
fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::InvalidPageToken { .. } | StoreError::InvalidArgument { .. } => {
            Code::InvalidArgument
        }
        StoreError::DenialNotFound { .. } | StoreError::JournalEntryNotFound { .. } => {
            Code::NotFound
        }
        StoreError::DiskFull { .. } => Code::ResourceExhausted,
        StoreError::Corrupt { .. } | StoreError::InvalidData { .. } => Code::DataLoss,
        StoreError::CreateDir { .. }
        | StoreError::FileMode { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::ForeignDatabase { .. }
        | StoreError::Locked { .. }
        | StoreError::CannotOpen { .. }
        | StoreError::SchemaTooNew { .. }
        | StoreError::WalUnavailable { .. }
        | StoreError::Sqlite { .. } => Code::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn caller_mistakes_and_missing_things_are_told_apart() {
        let st = Status::from(OpError::Store(StoreError::DenialNotFound { id: 7 }));
        assert_eq!(st.code(), Code::NotFound);
        assert_eq!(st.message(), "no denial with id 7");
        let st = Status::from(OpError::Store(StoreError::InvalidPageToken {
            reason: "stale",
        }));
        assert_eq!(st.code(), Code::InvalidArgument);
        let st = Status::from(OpError::RootGone(PathBuf::from("/srv/cache")));
        assert_eq!(st.code(), Code::NotFound);
        assert!(
            st.message()
                .contains("/srv/cache is no longer a cache root")
        );
        assert!(st.message().contains("goguardctl roots"));
        let st = Status::from(OpError::RootUnsafe("a symlink on the path".into()));
        assert_eq!(st.code(), Code::FailedPrecondition);
        let st = Status::from(OpError::BadGoSum("line 3: no hash".into()));
        assert_eq!(st.code(), Code::InvalidArgument);
    }

    #[test]
    fn store_failures_are_the_servers_and_say_so() {
        let path = PathBuf::from("/var/lib/goguard/goguard.db");
        let full = StoreError::DiskFull {
            path: path.clone(),
            op: "recording denials",
            source: sqlite(13),
        };
        let st = Status::from(OpError::Store(full));
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert!(st.message().starts_with("the store failed: disk full"));
        let corrupt = StoreError::Corrupt {
            path: path.clone(),
            op: "reading",
            source: sqlite(11),
        };
        assert_eq!(Status::from(OpError::Store(corrupt)).code(), Code::DataLoss);
        let locked = StoreError::Locked {
            path,
            op: "writing",
            busy_timeout: std::time::Duration::from_secs(5),
            source: sqlite(5),
        };
        assert_eq!(
            Status::from(OpError::Store(locked)).code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn a_panicked_task_is_internal() {
        let join = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let st = Status::from(OpError::task("the repair task")(join));
        assert_eq!(st.code(), Code::Internal);
        assert!(st.message().starts_with("the repair task failed"));
    }
}
