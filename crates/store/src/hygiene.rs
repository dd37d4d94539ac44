//! The record of cache hygiene runs: GOCACHE trims and module-cache verifications, each with
//! what it removed or found. Rows are only inserted (like the repair journal).
//!
//! Plain storage: goguard-hygiene decides what to trim and what is corrupt; the daemon maps
//! its reports into [`HygieneRun`] rows. Times are unix seconds as `f64`.

use rusqlite::params;

use crate::denials::{u64_from_sql, u64_to_sql};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HygieneKind {
    /// A GOCACHE trim.
    Trim,
    /// A module-cache verification.
    Verify,
}

impl HygieneKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HygieneKind::Trim => "trim",
            HygieneKind::Verify => "verify",
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq)]
pub struct HygieneRun {
    /// Row id (0 before insertion).
    pub id: i64,
    /// When it finished.
    pub at: f64,
    /// Trim or verify.
    pub kind: HygieneKind,
    /// The cache root.
    pub root: String,
    /// `schedule` or `request`.
    pub cause: String,
    /// Who asked, for requests.
    pub requester_uid: Option<u32>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Trim: entries removed.
    pub entries_removed: u64,
    /// Trim: bytes freed.
    pub bytes_freed: u64,
    /// Verify: modules checked.
    pub modules_verified: u64,
    /// Verify: modules corrupt or incomplete.
    pub modules_bad: u64,
    /// A short account (the bad modules, or why a trim did not run).
    pub detail: String,
}

impl Store {
    /// Appends a run and returns its id.
    pub fn record_hygiene_run(&mut self, run: &HygieneRun) -> Result<i64> {
        if !run.at.is_finite() {
            return Err(StoreError::InvalidArgument {
                name: "at",
                reason: format!("{} is not a finite number", run.at),
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO hygiene_runs (at, kind, root, cause, requester_uid, dry_run, \
                 entries_removed, bytes_freed, modules_verified, modules_bad, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        run.at,
                        run.kind.as_str(),
                        run.root,
                        run.cause,
                        run.requester_uid.map(u64::from).map(u64_to_sql),
                        run.dry_run,
                        u64_to_sql(run.entries_removed),
                        u64_to_sql(run.bytes_freed),
                        u64_to_sql(run.modules_verified),
                        u64_to_sql(run.modules_bad),
                        run.detail,
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(self.err("recording a hygiene run"))
    }

    /// The latest run of `kind` on `root` that changed or checked something for real
    /// (dry runs are skipped), for schedules that must survive restarts.
    pub fn last_hygiene_run(
        &mut self,
        kind: HygieneKind,
        root: &str,
    ) -> Result<Option<HygieneRun>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, at, cause, requester_uid, entries_removed, bytes_freed, \
                 modules_verified, modules_bad, detail FROM hygiene_runs \
                 WHERE kind = ?1 AND root = ?2 AND dry_run = 0 ORDER BY at DESC, id DESC LIMIT 1",
            )
            .and_then(|mut s| {
                let mut rows = s.query(params![kind.as_str(), root])?;
                let Some(r) = rows.next()? else {
                    return Ok(None);
                };
                Ok(Some(HygieneRun {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    kind,
                    root: root.to_owned(),
                    cause: r.get(2)?,
                    requester_uid: r.get::<_, Option<i64>>(3)?.map(|v| u64_from_sql(v) as u32),
                    dry_run: false,
                    entries_removed: u64_from_sql(r.get(4)?),
                    bytes_freed: u64_from_sql(r.get(5)?),
                    modules_verified: u64_from_sql(r.get(6)?),
                    modules_bad: u64_from_sql(r.get(7)?),
                    detail: r.get(8)?,
                }))
            })
            .map_err(self.err("reading the last hygiene run"))?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at: f64, kind: HygieneKind, root: &str, dry_run: bool, removed: u64) -> HygieneRun {
        HygieneRun {
            id: 0,
            at,
            kind,
            root: root.into(),
            cause: "schedule".into(),
            requester_uid: Some(1000),
            dry_run,
            entries_removed: removed,
            bytes_freed: removed * 100,
            modules_verified: 0,
            modules_bad: 0,
            detail: String::new(),
        }
    }

    #[test]
    fn the_last_real_run_per_kind_and_root_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        {
            let mut store = Store::open(&db).unwrap();
            let a = store
                .record_hygiene_run(&run(10.0, HygieneKind::Trim, "/c", false, 3))
                .unwrap();
            let b = store
                .record_hygiene_run(&run(20.0, HygieneKind::Trim, "/c", false, 5))
                .unwrap();
            assert!(b > a);
            store
                .record_hygiene_run(&run(30.0, HygieneKind::Trim, "/c", true, 9))
                .unwrap();
            store
                .record_hygiene_run(&run(40.0, HygieneKind::Verify, "/c", false, 0))
                .unwrap();
            store
                .record_hygiene_run(&run(50.0, HygieneKind::Trim, "/other", false, 1))
                .unwrap();
            assert!(
                store
                    .record_hygiene_run(&run(f64::NAN, HygieneKind::Trim, "/c", false, 1))
                    .is_err()
            );
        }
        let mut store = Store::open(&db).unwrap();
        let last = store
            .last_hygiene_run(HygieneKind::Trim, "/c")
            .unwrap()
            .unwrap();
        assert_eq!(
            (last.at, last.entries_removed, last.bytes_freed),
            (20.0, 5, 500)
        );
        assert_eq!(last.requester_uid, Some(1000));
        let v = store
            .last_hygiene_run(HygieneKind::Verify, "/c")
            .unwrap()
            .unwrap();
        assert_eq!(v.at, 40.0);
        assert!(
            store
                .last_hygiene_run(HygieneKind::Verify, "/none")
                .unwrap()
                .is_none()
        );
    }
}
