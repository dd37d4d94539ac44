//! goguardd's state in an embedded SQLite database: denial alerts, the audit cursor, and
//! the repair journal.
//!
//! The central promise: [`Store::record_batch`] counts a batch of denial observations and
//! moves the audit cursor past them in one transaction, so a crash at any instant (even
//! `kill -9` mid-commit) neither loses an event nor counts one twice. The
//! `tests/crash.rs` test kills a writer process at random moments to hold it to that.
//!
//! This crate must never depend on the audit parser or any other goguard crate: it defines
//! its own plain row types ([`DenialObservation`], [`AuditCursor`], ...) and the daemon maps
//! parser values into them. It decides nothing about policy; it stores and returns.
//!
//! # Layout
//! - [`error`]: [`StoreError`], with SQLite result codes classified into what an operator
//!   can act on (disk full, read-only, corrupt, locked by another process).
//! - `types`: the plain request and row types.
//! - `store`: [`Store::open`]: file mode 0600, WAL, `synchronous`, busy timeout, migration
//!   (and the durability reasoning).
//! - `schema`: the migrations, an append-only list; `PRAGMA user_version` counts them.
//! - `denials`: `record_batch`, `load_cursor`, listing with keyset pages, triage, retention.
//! - `page_token`: opaque page tokens bound to their filter.
//! - `journal`: the append-only repair journal, written ahead: a change's intent is
//!   stored before the change ([`Store::record_intents`]) and replaced by its journal row,
//!   or dropped, in one transaction once it was tried ([`Store::settle_intents`]).
//! - `quarantine`: the repair loop guard's quarantines, so a restart does not end one.
//! - `hygiene`: the record of cache trims and module-cache verifications.
//!
//! # Schema (version 1)
//! - `denials(id, scontext, tcontext, tclass, permissions, target, comm, count, first_seen,
//!   last_seen, last_event_id, last_raw, exe, go_related, status, fixed_by_repair →
//!   journal.id, status_changed_at, updated_at)`, unique on the six key columns.
//! - `audit_cursor(log_path PK, dev, ino, offset, last_event_id, updated_at)`.
//! - `journal(id, at, path, root, kind, before, after, cause, requester_uid, dry_run)`.
//! - `quarantine(path, kind, root, since, until)`, primary key (path, kind) (migration 3).
//! - `hygiene_runs(id, at, kind, root, cause, requester_uid, dry_run, entries_removed,
//!   bytes_freed, modules_verified, modules_bad, detail)` (migration 4).
//! - indexes `journal_by_at (at)` and `journal_by_root (root, at)` for filtered journal
//!   reads (migration 5).
//! - `journal_intents(id, at, path, root, kind, target, before, cause, requester_uid)`:
//!   changes about to be made, whose outcome is not recorded yet (migration 6).
//!
//! Times are unix seconds as `f64`: `first_seen`/`last_seen` come from audit event
//! timestamps, `updated_at`/`status_changed_at` from the wall clock.

mod denials;
pub mod error;
mod hygiene;
mod journal;
mod page_token;
mod quarantine;
mod schema;
mod store;
mod types;

pub use error::{Result, StoreError};
pub use hygiene::{HygieneKind, HygieneRun};
pub use quarantine::Quarantine;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::{Checkpointer, Store, StoreOptions, Synchronous};
pub use types::{
    AuditCursor, DenialFilter, DenialKey, DenialObservation, DenialRow, JournalEntry,
    JournalFilter, JournalIntent, JournalRow, Page, PageRequest, PendingIntent, RecordedDenial,
    RetentionOutcome, Status, StatusCounts, UnknownStatus,
};
