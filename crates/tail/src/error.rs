//! Context for I/O errors: which operation on which path failed. The `io::ErrorKind` of the
//! cause is kept, so callers can still match on it, and the cause stays reachable through
//! `Error::source`.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An I/O error with the operation and path it happened on.
#[derive(Debug)]
struct PathError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `source` with what was being done (`op`, e.g. "reading") to which `path`.
pub(crate) fn with_path(op: &'static str, path: &Path, source: io::Error) -> io::Error {
    io::Error::new(
        source.kind(),
        PathError {
            op,
            path: path.to_owned(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kind_cause_and_names_the_path() {
        let e = with_path(
            "opening",
            Path::new("/var/log/audit/audit.log"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .starts_with("opening /var/log/audit/audit.log: ")
        );
        let inner = e.get_ref().and_then(|e| e.source()).unwrap();
        assert!(inner.downcast_ref::<io::Error>().is_some());
    }
}
