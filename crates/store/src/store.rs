//! Opening the state database: file creation with mode 0600, pragmas, schema migration.
//!
//! [`Store::open`] creates the directory (mode 0700) and the file (mode 0600) if missing,
//! refuses to go through a symlink, switches to WAL, sets `synchronous` and the busy
//! timeout, and migrates the schema. It must never open a database written by a newer
//! goguard or by another application for writing, and never loosen the file's mode.
//!
//! # Durability choice
//! WAL with `synchronous=NORMAL` (the default here) makes every committed transaction
//! survive a crash of the process (`kill -9`, panic, OOM kill): the commit has reached the
//! kernel before `COMMIT` returns, and the kernel keeps it. Only a power loss or kernel crash
//! can drop the last few commits; because the audit cursor is committed in the same
//! transaction as the denials it produced, such a rollback loses data and cursor together,
//! and the tailer re-reads those events from the log: still no double count. What FULL adds
//! is that the latest commits (status changes, journal entries) survive a power loss too, at
//! the price of an fsync per commit: choose it with [`StoreOptions::synchronous`].

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StoreError};
use crate::schema::{self, APPLICATION_ID, SCHEMA_VERSION};

/// How hard SQLite syncs at commit. See the module docs for the trade-off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Commits survive process crashes; a power loss may roll back the last few
    /// (consistently, cursor included).
    #[default]
    Normal,
    /// Commits also survive a power loss; one fsync per commit.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Options of [`Store::open_with`]. `Default` is what goguardd uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Sync level at commit.
    pub synchronous: Synchronous,
    /// How long a write waits for another connection's lock before failing with
    /// [`StoreError::Locked`].
    pub busy_timeout: Duration,
    /// Caps the database at this many pages (`PRAGMA max_page_count`; pages are 4 KiB).
    /// Writes past it fail with [`StoreError::DiskFull`], as on a full disk. `None`: no cap.
    pub max_page_count: Option<u32>,
    /// Let a commit checkpoint the WAL when it has grown past 1,000 pages (SQLite's
    /// default). A checkpoint syncs the database file, so the commit that runs it waits for
    /// the disk; a caller on a latency-sensitive path turns this off and runs
    /// [`Checkpointer::checkpoint`] from another thread instead.
    pub checkpoint_on_commit: bool,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            max_page_count: None,
            checkpoint_on_commit: true,
        }
    }
}

/// A second connection to a store's database that only checkpoints its WAL: a passive
/// checkpoint runs beside the store's writers (WAL lets it), so the fsync it costs is paid
/// by the thread that calls it, never by a commit.
pub struct Checkpointer {
    conn: Connection,
    path: PathBuf,
}

impl Checkpointer {
    /// Copies what it can of the WAL into the database (`PRAGMA wal_checkpoint(PASSIVE)`)
    /// and returns the frames in the WAL and how many were checkpointed.
    pub fn checkpoint(&self) -> Result<(i64, i64)> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(|e| {
                StoreError::from_sqlite(&self.path, "checkpointing the WAL", Duration::ZERO, e)
            })
    }
}

/// goguardd's state database. One `Store` is one SQLite connection: it is `Send` but not
/// `Sync`; the daemon keeps it behind a mutex or in a dedicated thread.
pub struct Store {
    /// The connection; statements are prepared once and cached on it.
    pub(crate) conn: Connection,
    /// Database path, for error context.
    pub(crate) path: PathBuf,
    /// Busy timeout in force, for error context.
    pub(crate) busy_timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| StoreError::CreateDir {
                        path: parent.to_path_buf(),
                        source,
                    })?;
            }
        }
        prepare_file(&path, true)?;
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.clone().into_os_string();
            companion.push(suffix);
            prepare_file(Path::new(&companion), false)?;
        }

        let sqlite_err = |op| {
            let path = path.clone();
            let busy = options.busy_timeout;
            move |e| StoreError::from_sqlite(&path, op, busy, e)
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(&path, flags)
            .map_err(sqlite_err("opening the database"))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(sqlite_err("setting the busy timeout"))?;
        conn.set_prepared_statement_cache_capacity(64);

        let header = schema::read_header(&conn).map_err(sqlite_err("reading the header"))?;
        if header.application_id != 0 && header.application_id != APPLICATION_ID {
            return Err(StoreError::ForeignDatabase {
                path,
                found: header.application_id,
            });
        }
        if header.user_version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found: header.user_version,
                supported: SCHEMA_VERSION,
            });
        }

        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sqlite_err("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::WalUnavailable { path, mode });
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
            .map_err(sqlite_err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite_err("enabling foreign keys"))?;
        // Keep the WAL file from staying huge after a burst: truncate it to 64 MiB at
        // checkpoints.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sqlite_err("setting journal_size_limit"))?;
        if let Some(pages) = options.max_page_count {
            conn.pragma_update(None, "max_page_count", pages)
                .map_err(sqlite_err("setting max_page_count"))?;
        }

        if !options.checkpoint_on_commit {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sqlite_err("turning off checkpoints at commit"))?;
        }

        schema::migrate(&mut conn, header.user_version)
            .map_err(|(op, e)| StoreError::from_sqlite(&path, op, options.busy_timeout, e))?;

        Ok(Store {
            conn,
            path,
            busy_timeout: options.busy_timeout,
        })
    }

    /// A [`Checkpointer`] for this store's database (a second connection; open it after the
    /// store, which created and migrated the file).
    pub fn checkpointer(&self) -> Result<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| {
            StoreError::from_sqlite(
                &self.path,
                "opening a checkpoint connection",
                self.busy_timeout,
                e,
            )
        })?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(|e| {
                StoreError::from_sqlite(
                    &self.path,
                    "setting journal_size_limit",
                    self.busy_timeout,
                    e,
                )
            })?;
        Ok(Checkpointer {
            conn,
            path: self.path.clone(),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (`PRAGMA user_version`): always
    /// [`SCHEMA_VERSION`] once open.
    pub fn schema_version(&self) -> Result<u32> {
        schema::read_header(&self.conn)
            .map(|h| h.user_version)
            .map_err(self.err("reading the schema version"))
    }

    /// Runs SQLite's `quick_check` and returns the problems it found (empty: healthy).
    /// For `goguardctl doctor`; it reads the whole file.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(self.err("checking integrity"))?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(self.err("checking integrity"))?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    /// An error mapper naming `op`, for `map_err`.
    pub(crate) fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::from_sqlite(&self.path, op, self.busy_timeout, e)
    }
}

/// Makes sure `path` is a regular file (not a symlink) with mode 0600, creating it when
/// `create` is true and it is missing. Missing companions (`-wal`, `-shm`) are fine: SQLite
/// creates them with the main file's mode.
fn prepare_file(path: &Path, create: bool) -> Result<()> {
    let err = |source| StoreError::FileMode {
        path: path.to_path_buf(),
        source,
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
                op: "opening the database file for writing",
                source: Box::new(e),
            });
        }
        Err(e) => return Err(err(e)),
    };
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(err(io::Error::other("not a regular file")));
    }
    if meta.permissions().mode() & 0o7777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn open_creates_dir_and_file_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/sub/goguard.db");
        let store = Store::open(&db).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("state/sub")), 0o700);
        // WAL companions inherit the main file's mode.
        assert_eq!(mode(&dir.path().join("state/sub/goguard.db-wal")), 0o600);
        assert_eq!(mode(&dir.path().join("state/sub/goguard.db-shm")), 0o600);
        assert!(store.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn open_tightens_a_loose_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("goguard.db");
        drop(Store::open(&db).unwrap());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&db).unwrap());
        assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn open_refuses_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        drop(Store::open(&real).unwrap());
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = Store::open(&link).unwrap_err();
        assert!(matches!(err, StoreError::FileMode { .. }), "{err}");
    }

    #[test]
    fn sync_and_wal_pragmas_are_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let full = StoreOptions {
            synchronous: Synchronous::Full,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("a.db"), &full).unwrap();
        let q = |name: &str| -> String {
            store
                .conn
                .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(q("journal_mode"), r#"Text("wal")"#);
        assert_eq!(q("synchronous"), "Integer(2)");
        assert_eq!(q("foreign_keys"), "Integer(1)");
        assert_eq!(q("busy_timeout"), "Integer(5000)");
        let normal = Store::open(dir.path().join("b.db")).unwrap();
        let sync: i64 = normal
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }
}
