//! The one error type of this crate: a line (or record) that could not be read, with the
//! offending bytes and the reason.
//!
//! Errors are values, never panics and never log lines: the caller counts them (a metric) and
//! logs them rate-limited. This module must never do I/O or hold on to more than
//! [`MAX_KEPT_BYTES`] of the offending input, so one absurd line cannot pin megabytes.

use std::fmt;

/// At most this many bytes of the offending input are kept in a [`ParseError`].
pub const MAX_KEPT_BYTES: usize = 4096;

/// Why a line or record was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An empty or whitespace-only line. Not malformed: the assembler skips it silently.
    Blank,
    /// `----` or `time->...`: decoration that `ausearch` prints between events. Not malformed:
    /// the assembler skips it silently so pasted `ausearch` output can be explained.
    AusearchDecoration,
    /// A journal or dmesg style line (`AVC avc:  denied ...`, `audit: type=1400 audit(...)`)
    /// without the `type=... msg=audit(...)` header. `ausearch` ignores these too.
    JournalStyle,
    /// The line does not start with `type=`, `node=` or `host=`.
    NotARecord,
    /// `node=`/`host=` with no `type=` after it.
    BadNode,
    /// `type=` is empty or holds bytes that no record type name has.
    BadType,
    /// No `msg=audit(` after the type.
    MissingMsg,
    /// `msg=audit(` without the closing `)`.
    UnterminatedHeader,
    /// The time stamp inside `audit(...)` is neither `SECS.MILLIS` nor the `ausearch -i`
    /// form `MM/DD/YYYY HH:MM:SS.mmm`.
    BadTimestamp,
    /// The serial after the last `:` inside `audit(...)` is not a decimal number.
    BadSerial,
    /// An `avc:  denied|granted` message whose permission set `{ ... }` is missing, empty
    /// or unterminated.
    MalformedAvc,
}

impl ErrorKind {
    /// True for lines that are not records but are not malformed either (blank lines,
    /// `ausearch` separators); the assembler skips them without reporting an error.
    pub fn is_ignorable(self) -> bool {
        matches!(self, ErrorKind::Blank | ErrorKind::AusearchDecoration)
    }

    /// A short, stable description, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Blank => "blank line",
            ErrorKind::AusearchDecoration => "ausearch separator",
            ErrorKind::JournalStyle => "journal-style line without type=/msg=audit(...) header",
            ErrorKind::NotARecord => "line does not start with type=, node= or host=",
            ErrorKind::BadNode => "node= prefix without a record after it",
            ErrorKind::BadType => "invalid record type",
            ErrorKind::MissingMsg => "missing msg=audit(",
            ErrorKind::UnterminatedHeader => "unterminated msg=audit(...)",
            ErrorKind::BadTimestamp => "invalid time stamp in msg=audit(...)",
            ErrorKind::BadSerial => "invalid serial in msg=audit(...)",
            ErrorKind::MalformedAvc => "malformed avc: permission set",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line or record that was not accepted: the reason plus (up to [`MAX_KEPT_BYTES`] of) the
/// offending bytes, exactly as read (they need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Why it was rejected.
    pub kind: ErrorKind,
    /// The offending bytes (the line, or the record within the line), truncated to
    /// [`MAX_KEPT_BYTES`].
    pub bytes: Vec<u8>,
    /// True when `bytes` was cut to [`MAX_KEPT_BYTES`].
    pub truncated: bool,
}

impl ParseError {
    /// An error of `kind` that keeps (a bounded prefix of) `input`.
    pub fn new(kind: ErrorKind, input: &[u8]) -> ParseError {
        let truncated = input.len() > MAX_KEPT_BYTES;
        let keep = input.len().min(MAX_KEPT_BYTES);
        ParseError {
            kind,
            bytes: input[..keep].to_vec(),
            truncated,
        }
    }

    /// The offending bytes as text, for logs (invalid UTF-8 replaced).
    pub fn bytes_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print an unbounded line: 120 characters are enough to recognize it.
        let text = self.bytes_lossy();
        let mut shown: String = text.chars().take(120).collect();
        if shown.len() < text.len() || self.truncated {
            shown.push('…');
        }
        write!(f, "{}: {:?}", self.kind, shown)
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_prefix() {
        let long = vec![b'x'; MAX_KEPT_BYTES + 10];
        let e = ParseError::new(ErrorKind::NotARecord, &long);
        assert_eq!(e.bytes.len(), MAX_KEPT_BYTES);
        assert!(e.truncated);
        let short = ParseError::new(ErrorKind::BadType, b"type= msg");
        assert_eq!(short.bytes, b"type= msg");
        assert!(!short.truncated);
        assert!(short.to_string().starts_with("invalid record type"));
    }

    #[test]
    fn only_blank_and_decoration_are_ignorable() {
        assert!(ErrorKind::Blank.is_ignorable());
        assert!(ErrorKind::AusearchDecoration.is_ignorable());
        assert!(!ErrorKind::NotARecord.is_ignorable());
        assert!(!ErrorKind::MalformedAvc.is_ignorable());
    }
}
