//! The database schema as an ordered list of migrations, and the code that applies them.
//!
//! `PRAGMA user_version` holds the number of migrations applied; migration `i` (1-based)
//! takes the schema from version `i - 1` to `i`, inside its own `BEGIN IMMEDIATE`
//! transaction together with the `user_version` bump, so a crash leaves either the old or
//! the new version, never half of one. `PRAGMA application_id` marks the file as goguard's.
//! Invariants: a published migration must never be edited or reordered (only appended to);
//! a database with a newer version than [`SCHEMA_VERSION`] must never be written to.

use rusqlite::{Connection, TransactionBehavior};

/// `PRAGMA application_id` of a goguard state database (`"ggrd"`).
pub const APPLICATION_ID: i32 = 0x6767_7264;

/// One step of the schema's history.
pub(crate) struct Migration {
    /// What the step does; names the operation in the error when it fails.
    pub(crate) description: &'static str,
    /// The SQL, run as one batch.
    pub(crate) sql: &'static str,
}

/// The schema's history, oldest first. Append only.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        description: "denials, audit cursor, repair journal",
        sql: r#"
CREATE TABLE journal (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             REAL    NOT NULL,
    path           TEXT    NOT NULL,
    root           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    before         TEXT    NOT NULL,
    after          TEXT    NOT NULL,
    cause          TEXT    NOT NULL,
    requester_uid  INTEGER CHECK (requester_uid IS NULL OR requester_uid BETWEEN 0 AND 4294967295),
    dry_run        INTEGER NOT NULL CHECK (dry_run IN (0, 1))
);
CREATE INDEX journal_path ON journal (path);

CREATE TABLE denials (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    scontext           TEXT    NOT NULL,
    tcontext           TEXT    NOT NULL,
    tclass             TEXT    NOT NULL,
    permissions        TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    comm               TEXT    NOT NULL,
    count              INTEGER NOT NULL CHECK (count >= 1),
    first_seen         REAL    NOT NULL,
    last_seen          REAL    NOT NULL,
    last_event_id      TEXT    NOT NULL,
    last_raw           TEXT    NOT NULL,
    exe                TEXT,
    go_related         INTEGER NOT NULL CHECK (go_related IN (0, 1)),
    status             TEXT    NOT NULL DEFAULT 'new'
                       CHECK (status IN ('new', 'fixed', 'acknowledged', 'ignored')),
    fixed_by_repair    INTEGER REFERENCES journal (id),
    status_changed_at  REAL,
    updated_at         REAL    NOT NULL,
    UNIQUE (scontext, tcontext, tclass, permissions, target, comm)
);
CREATE INDEX denials_by_last_seen ON denials (last_seen DESC, id DESC);

CREATE TABLE audit_cursor (
    log_path       TEXT    PRIMARY KEY NOT NULL,
    dev            INTEGER NOT NULL,
    ino            INTEGER NOT NULL,
    offset         INTEGER NOT NULL,
    last_event_id  TEXT,
    updated_at     REAL    NOT NULL
);
"#,
    },
    Migration {
        description: "replay keys of the audit cursor",
        sql: r#"
ALTER TABLE audit_cursor ADD COLUMN replay_keys TEXT NOT NULL DEFAULT '';
"#,
    },
    Migration {
        description: "repair loop-guard quarantines that outlive a restart",
        sql: r#"
CREATE TABLE quarantine (
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    root        TEXT NOT NULL,
    since       REAL NOT NULL,
    until       REAL NOT NULL,
    PRIMARY KEY (path, kind)
);
"#,
    },
    Migration {
        description: "cache hygiene runs (trims and module verifications)",
        sql: r#"
CREATE TABLE hygiene_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    at                REAL    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('trim', 'verify')),
    root              TEXT    NOT NULL,
    cause             TEXT    NOT NULL,
    requester_uid     INTEGER CHECK (requester_uid IS NULL OR requester_uid BETWEEN 0 AND 4294967295),
    dry_run           INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    entries_removed   INTEGER NOT NULL DEFAULT 0,
    bytes_freed       INTEGER NOT NULL DEFAULT 0,
    modules_verified  INTEGER NOT NULL DEFAULT 0,
    modules_bad       INTEGER NOT NULL DEFAULT 0,
    detail            TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX hygiene_runs_by_root ON hygiene_runs (kind, root, at DESC);
"#,
    },
    Migration {
        // The journal is never pruned, so reading it must not scan it: `--since` walks
        // `journal_by_at` backwards from the newest row and stops at the limit; a user's
        // view (only the roots they own) is a range of `journal_by_root` per root. Both
        // indexes cover the rowid, so neither query reads a row it does not return.
        description: "journal reads by time and by root",
        sql: r#"
CREATE INDEX journal_by_at ON journal (at);
CREATE INDEX journal_by_root ON journal (root, at);
"#,
    },
    Migration {
        // Write-ahead journaling: a change is written here before it is made and moved
        // to `journal` (or dropped, when it was not made) once it was tried, in one
        // transaction. A row left here after a crash is settled at the next start by
        // looking at the file.
        description: "journal intents (changes about to be made)",
        sql: r#"
CREATE TABLE journal_intents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             REAL    NOT NULL,
    path           TEXT    NOT NULL,
    root           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    before         TEXT    NOT NULL,
    cause          TEXT    NOT NULL,
    requester_uid  INTEGER CHECK (requester_uid IS NULL OR requester_uid BETWEEN 0 AND 4294967295)
);
"#,
    },
];

/// Schema version of a fully migrated database.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Outcome of [`read_version`].
pub(crate) struct Header {
    /// `PRAGMA user_version`.
    pub(crate) user_version: u32,
    /// `PRAGMA application_id`.
    pub(crate) application_id: i32,
}

/// Reads the header fields the store cares about.
pub(crate) fn read_header(conn: &Connection) -> rusqlite::Result<Header> {
    let user_version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    Ok(Header {
        // user_version is a signed 32-bit field; goguard only ever writes small positives.
        user_version: u32::try_from(user_version).unwrap_or(u32::MAX),
        application_id,
    })
}

/// Applies every migration after `from`, each in its own immediate transaction. On failure
/// returns the description of the migration that failed with SQLite's error.
pub(crate) fn migrate(
    conn: &mut Connection,
    from: u32,
) -> Result<(), (&'static str, rusqlite::Error)> {
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = index as u32 + 1;
        apply(conn, version, migration).map_err(|e| (migration.description, e))?;
    }
    Ok(())
}

fn apply(conn: &mut Connection, version: u32, migration: &Migration) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current < i64::from(version) {
        tx.execute_batch(migration.sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_in_order_and_set_the_header() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, 0).unwrap();
        let h = read_header(&conn).unwrap();
        assert_eq!(h.user_version, SCHEMA_VERSION);
        assert_eq!(h.application_id, APPLICATION_ID);
        // Running again is a no-op.
        migrate(&mut conn, h.user_version).unwrap();
        assert_eq!(read_header(&conn).unwrap().user_version, SCHEMA_VERSION);
    }

    #[test]
    fn every_migration_has_a_description() {
        assert!(MIGRATIONS.iter().all(|m| !m.description.is_empty()));
    }
}
