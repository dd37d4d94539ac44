//! The repair journal: an append-only record of every change a repair made or planned.
//!
//! Entries are only ever inserted: nothing in this crate updates or deletes a journal row
//! (retention included), so the journal stays a trustworthy account of what goguard did.
//! Ids are `AUTOINCREMENT`, never reused, and denials link to them through
//! `denials.fixed_by_repair`.

use rusqlite::params;

use crate::denials::{u64_from_sql, u64_to_sql};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::types::{JournalEntry, JournalRow};

impl Store {
    /// Appends `entry` and returns its id.
    pub fn append_journal(&mut self, entry: &JournalEntry) -> Result<i64> {
        if !entry.at.is_finite() {
            return Err(StoreError::InvalidArgument {
                name: "at",
                reason: format!("{} is not a finite number", entry.at),
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO journal (at, path, root, kind, before, after, cause, requester_uid, \
                 dry_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        entry.at,
                        entry.path,
                        entry.root,
                        entry.kind,
                        entry.before,
                        entry.after,
                        entry.cause,
                        entry.requester_uid.map(u64::from).map(u64_to_sql),
                        entry.dry_run,
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(self.err("appending to the repair journal"))
    }

    /// Appends `entries` in one transaction (all or none) and returns their
    /// ids: a burst of repairs costs one commit, not one each.
    pub fn append_journal_batch(&mut self, entries: &[JournalEntry]) -> Result<Vec<i64>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("starting a journal batch"))?;
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.append_journal(entry) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(self.err("committing a journal batch"))?;
        Ok(ids)
    }

    /// The id of the latest applied change journaled for `path`, if any.
    pub fn last_journal_id_for_path(&self, path: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(
                "SELECT id FROM journal WHERE path = ?1 AND dry_run = 0 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([path], |r| r.get::<_, i64>(0)).optional())
            .map_err(self.err("reading the repair journal"))
    }

    /// The `limit` most recent journal entries, newest first.
    pub fn list_journal(&self, limit: u32) -> Result<Vec<JournalRow>> {
        let op = "reading the repair journal";
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id, at, path, root, kind, before, after, cause, requester_uid, dry_run \
                 FROM journal ORDER BY id DESC LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map([limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        JournalEntry {
                            at: r.get(1)?,
                            path: r.get(2)?,
                            root: r.get(3)?,
                            kind: r.get(4)?,
                            before: r.get(5)?,
                            after: r.get(6)?,
                            cause: r.get(7)?,
                            requester_uid: None,
                            dry_run: r.get(9)?,
                        },
                        r.get::<_, Option<i64>>(8)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err(op))?;
        rows.into_iter()
            .map(|(id, mut entry, uid)| {
                entry.requester_uid = uid
                    .map(|u| {
                        u32::try_from(u64_from_sql(u)).map_err(|_| StoreError::InvalidData {
                            path: self.path.clone(),
                            table: "journal",
                            column: "requester_uid",
                            value: u.to_string(),
                        })
                    })
                    .transpose()?;
                Ok(JournalRow { id, entry })
            })
            .collect()
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("s.db")).unwrap();
        let entry = |at: f64| JournalEntry {
            at,
            path: "/r/x".into(),
            root: "/r".into(),
            kind: "chown".into(),
            before: "0:0".into(),
            after: "1000:1000".into(),
            cause: "self-heal: foreign_owner".into(),
            requester_uid: None,
            dry_run: false,
        };
        let ids = store
            .append_journal_batch(&[entry(1.0), entry(2.0)])
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[1] > ids[0]);
        let err = store.append_journal_batch(&[entry(3.0), entry(f64::NAN)]);
        assert!(err.is_err());
        assert_eq!(
            store.list_journal(10).unwrap().len(),
            2,
            "the failed batch left nothing"
        );
        assert_eq!(
            store.last_journal_id_for_path("/r/x").unwrap(),
            Some(ids[1])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, uid: Option<u32>) -> JournalEntry {
        JournalEntry {
            at: 1_700_000_000.5,
            path: path.into(),
            root: "/home/u/.cache/go-build".into(),
            kind: "mode".into(),
            before: "0700".into(),
            after: "0770".into(),
            cause: "drift: group lost write".into(),
            requester_uid: uid,
            dry_run: uid.is_some(),
        }
    }

    #[test]
    fn append_then_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.db")).unwrap();
        let a = store.append_journal(&entry("/a", None)).unwrap();
        let b = store.append_journal(&entry("/b", Some(u32::MAX))).unwrap();
        assert!(b > a);
        let rows = store.list_journal(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, b);
        assert_eq!(rows[0].entry, entry("/b", Some(u32::MAX)));
        assert_eq!(rows[1].entry, entry("/a", None));
        assert_eq!(store.list_journal(1).unwrap().len(), 1);
        assert!(store.list_journal(0).unwrap().is_empty());
    }

    #[test]
    fn rejects_non_finite_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.db")).unwrap();
        let mut e = entry("/a", None);
        e.at = f64::NAN;
        assert!(matches!(
            store.append_journal(&e),
            Err(StoreError::InvalidArgument { name: "at", .. })
        ));
    }
}
