//! goguard-audit: reads Linux audit logs (`/var/log/audit/audit.log`, or pasted `ausearch`
//! output) and finds the SELinux denials that concern Go builds.
//!
//! Bytes in, values out: the daemon's tailer and the CLI's `explain` hand lines in, and get
//! events, AVCs, dedup keys and JSON records back. Lines need not be UTF-8.
//!
//! # Layout
//! - [`record`]: one line → [`Record`]s. [`parse_record`]`(&[u8]) -> Result<Record<'_>,
//!   ParseError>` (the first record of a line), [`parse_line`] (every record of a line; a
//!   line can hold two), [`Record::fields`]/[`Record::get`]/[`Record::get_decoded`],
//!   [`Value::decoded`] (hex), [`proctitle_display`]. Raw, `node=`/`host=`, enriched (0x1D),
//!   CRLF and `ausearch -i` formats.
//! - [`event`]: [`EventAssembler`] groups records by `(node, time stamp, serial)`:
//!   `EventAssembler::new(timeout)` or `with_config(`[`AssemblerConfig`]`)`,
//!   `push_line(&[u8], now: Duration) -> `[`Output`]` { events, errors }`,
//!   `flush_expired(now) -> Vec<AuditEvent>`, `flush_all() -> Vec<AuditEvent>`, `stats()`.
//!   An [`AuditEvent`] has an [`EventId`] `{ node, timestamp, time: EventTime { secs,
//!   millis }, serial }`, its `records()`, and `avcs()`/`try_avcs()`. [`Retention`] says
//!   what is kept: `All` (every record), `AvcEvents` (the daemon: only AVC events are ever
//!   opened), `AvcMaterial` (a streaming reader of a whole log such as `explain`: events
//!   counted and completed as with `All`, only AVC events copied and handed out).
//! - [`avc`]: [`Avc`], one SELinux decision with its event's SYSCALL/PATH/CWD/AVC_PATH/
//!   PROCTITLE joined in; [`Avc::from_record`], [`Avc::dedup_key`]` -> `[`DenialKey`].
//! - [`relevance`]: [`GoTools`] (`Default` = [`DEFAULT_GO_TOOLS`], or built from a
//!   `Vec<String>` of names and `*.test`-style patterns):
//!   `is_go_related(&Avc, roots: &[impl AsRef<Path>]) -> bool`, `relevance(..)` says why.
//! - [`json`]: [`JsonRecord`], what `goguardctl explain --json` prints per AVC:
//!   [`Avc::to_json_record`]`(go_related)`.
//! - [`error`]: [`ParseError`] `{ kind, bytes, truncated }`: what was rejected and why.
//! - [`parse_log`]`(&[u8]) -> (Vec<AuditEvent>, Vec<ParseError>)`: a whole log at once, for
//!   `explain` and tests; [`lines`] splits bytes at `\n`.
//!
//! # The daemon's loop
//! ```
//! use std::time::Duration;
//! use goguard_audit::{AssemblerConfig, EventAssembler, GoTools, Retention, DEFAULT_TIMEOUT};
//!
//! let mut config = AssemblerConfig::new(DEFAULT_TIMEOUT);
//! config.retention = Retention::AvcEvents; // never copy events without an AVC
//! let mut assembler = EventAssembler::with_config(config);
//! let tools = GoTools::default();
//! let roots = ["/home/a/.cache/go-build"];
//! let line = b"type=AVC msg=audit(1700000000.123:7): avc:  denied  { write } for  pid=9 comm=\"compile\" name=\"00\" scontext=a tcontext=b tclass=dir permissive=0";
//! let now = Duration::from_secs(1); // the caller's monotonic clock
//! let out = assembler.push_line(line, now);
//! assert!(out.errors.is_empty()); // else: count and log them, rate-limited
//! // ...and on a timer: assembler.flush_expired(now)
//! for event in assembler.flush_all() {
//!     for avc in event.avcs() {
//!         let go = tools.is_go_related(&avc, &roots);
//!         assert!(go);
//!         let _key = avc.dedup_key(); // what the store deduplicates by
//!         let _json = avc.to_json_record(go); // what `explain --json` prints
//!     }
//! }
//! ```
//!
//! # Never
//! No I/O, no clocks (the assembler takes `now`), no panics on any input (fuzzed:
//! `crates/audit/fuzz/run.sh`), no unbounded buffering (pending events, event size and
//! kept error bytes are capped), no logging: errors are returned for the caller to count
//! and log rate-limited.

pub mod avc;
pub mod error;
pub mod event;
pub mod json;
pub mod record;
pub mod relevance;

use std::time::Duration;

pub use avc::{Avc, AvcKind, Decision, DenialKey, PathSource};
pub use error::{ErrorKind, ParseError};
pub use event::{
    AssemblerConfig, AssemblerStats, AuditEvent, Completion, EventAssembler, EventId, Output,
    Retention,
};
pub use json::JsonRecord;
pub use record::{
    EventTime, Fields, Format, LineRecords, Quote, Record, Value, parse_line, parse_record,
    proctitle_display,
};
pub use relevance::{DEFAULT_GO_TOOLS, GoTools, Relevance};

/// How long an event waits for more records by default: 2 s on the log clock (and on the
/// wall clock when a caller passes one). The kernel writes an event's records together, so
/// this only matters for interleaved writers and quiet logs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses a whole log: every event (all records kept, [`Retention::All`]) in completion
/// order, and every malformed line. Events are grouped on the log clock only, so the
/// result does not depend on when it runs.
pub fn parse_log(bytes: &[u8]) -> (Vec<AuditEvent>, Vec<ParseError>) {
    let mut assembler = EventAssembler::new(DEFAULT_TIMEOUT);
    let mut out = Output::default();
    for line in lines(bytes) {
        assembler.push_line_into(line, Duration::ZERO, &mut out);
    }
    out.events.extend(assembler.flush_all());
    (out.events, out.errors)
}

/// The lines of `bytes`, split at `\n` (kept out of the line); a last line without `\n`
/// counts.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_log_groups_and_reports() {
        let log = b"type=SYSCALL msg=audit(1.000:1): pid=1\r\nnot a record\n\ntype=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=1 comm=\"vet\" scontext=a tcontext=b tclass=file\r\ntype=PATH msg=audit(9.000:2): name=\"/x\"";
        let (events, errors) = parse_log(log);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, ErrorKind::NotARecord);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.serial, 1);
        assert_eq!(events[0].completion, Completion::LogClock);
        assert_eq!(events[0].len(), 2);
        assert_eq!(events[0].avcs()[0].comm.as_deref(), Some("vet"));
        assert_eq!(events[1].completion, Completion::Flushed);
    }

    #[test]
    fn lines_split() {
        let v: Vec<&[u8]> = lines(b"a\n\nb").collect();
        assert_eq!(v, [&b"a"[..], b"", b"b"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"x\n").count(), 1);
    }
}
