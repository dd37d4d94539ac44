//! The repair journal: an append-only record of every change a repair made or planned.
//!
//! Entries are only ever inserted: nothing in this crate updates or deletes a journal row
//! (retention included), so the journal stays a trustworthy account of what goguard did.
//! Ids are `AUTOINCREMENT`, never reused, and denials link to them through
//! `denials.fixed_by_repair`. Reads are newest first, filtered in SQL by path prefix
//! (component-wise, no `LIKE`), time and root, each served by an index.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use crate::denials::{finite, path_prefix_condition, u64_from_sql, u64_to_sql};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::types::{JournalEntry, JournalFilter, JournalIntent, JournalRow, PendingIntent};

/// The SQL and parameters of a filtered journal read, newest first; `None` when nothing
/// can match (no roots allowed).
fn journal_query(filter: &JournalFilter, limit: u32) -> Result<Option<(String, Vec<Value>)>> {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(since) = filter.since {
        finite("since", since)?;
        conds.push("at >= ?".into());
        args.push(Value::Real(since));
    }
    if let Some((cond, values)) = filter
        .path_prefix
        .as_deref()
        .and_then(|p| path_prefix_condition("path", p))
    {
        conds.push(cond);
        args.extend(values);
    }
    if let Some(roots) = &filter.roots {
        if roots.is_empty() {
            return Ok(None);
        }
        conds.push(format!("root IN ({})", vec!["?"; roots.len()].join(", ")));
        args.extend(roots.iter().map(|r| Value::Text(r.clone())));
    }
    if let Some((at, id)) = filter.before {
        finite("before", at)?;
        // `at <= ?` first, so the time index bounds the range.
        conds.push("at <= ? AND (at < ? OR id < ?)".into());
        args.extend([Value::Real(at), Value::Real(at), Value::Integer(id)]);
    }
    let where_clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT id, at, path, root, kind, before, after, cause, requester_uid, dry_run \
         FROM journal {where_clause} ORDER BY at DESC, id DESC LIMIT ?"
    );
    args.push(Value::Integer(i64::from(limit)));
    Ok(Some((sql, args)))
}

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
        self.list_journal_matching(&JournalFilter::default(), limit)
    }

    /// The `limit` most recent journal entries matching `filter`, newest first (`at` desc,
    /// then `id` desc). Every filter is SQL over an index (see migration 5): nothing is
    /// filtered after a limit was applied, so `limit` rows come back whenever that many
    /// match.
    pub fn list_journal_matching(
        &self,
        filter: &JournalFilter,
        limit: u32,
    ) -> Result<Vec<JournalRow>> {
        let Some((sql, args)) = journal_query(filter, limit)? else {
            return Ok(Vec::new());
        };
        let op = "reading the repair journal";
        let rows = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params_from_iter(args.iter()), |r| {
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
                entry.requester_uid = self.requester_uid("journal", uid)?;
                Ok(JournalRow { id, entry })
            })
            .collect()
    }
}

/// Write-ahead journaling: intents before a change, outcomes after.
impl Store {
    /// Stores `intents` in one transaction (all or none) and returns their ids. Call
    /// before making the changes: once this returns, a crash cannot lose them.
    pub fn record_intents(&mut self, intents: &[JournalIntent]) -> Result<Vec<i64>> {
        if intents.is_empty() {
            return Ok(Vec::new());
        }
        for intent in intents {
            finite("at", intent.at)?;
        }
        self.in_transaction("recording journal intents", |store| {
            let mut ids = Vec::with_capacity(intents.len());
            let mut stmt = store.conn.prepare_cached(
                "INSERT INTO journal_intents (at, path, root, kind, target, before, cause, \
                 requester_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            )?;
            for i in intents {
                ids.push(stmt.query_row(
                    params![
                        i.at,
                        i.path,
                        i.root,
                        i.kind,
                        i.target,
                        i.before,
                        i.cause,
                        i.requester_uid.map(u64::from).map(u64_to_sql),
                    ],
                    |r| r.get(0),
                )?);
            }
            Ok(ids)
        })
    }

    /// Records the outcome of intents in one transaction: `rows` (the changes made) are
    /// appended to the journal and the intents `settled` are removed, together, so an
    /// intent is either still pending or replaced by what happened. Returns the rows' ids.
    pub fn settle_intents(&mut self, settled: &[i64], rows: &[JournalEntry]) -> Result<Vec<i64>> {
        if settled.is_empty() && rows.is_empty() {
            return Ok(Vec::new());
        }
        for row in rows {
            finite("at", row.at)?;
        }
        self.in_transaction("settling journal intents", |store| {
            {
                let mut del = store
                    .conn
                    .prepare_cached("DELETE FROM journal_intents WHERE id = ?1")?;
                for id in settled {
                    del.execute([id])?;
                }
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut ins = store.conn.prepare_cached(
                "INSERT INTO journal (at, path, root, kind, before, after, cause, requester_uid, \
                 dry_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            )?;
            for e in rows {
                ids.push(ins.query_row(
                    params![
                        e.at,
                        e.path,
                        e.root,
                        e.kind,
                        e.before,
                        e.after,
                        e.cause,
                        e.requester_uid.map(u64::from).map(u64_to_sql),
                        e.dry_run,
                    ],
                    |r| r.get(0),
                )?);
            }
            Ok(ids)
        })
    }

    /// Every intent whose outcome was never recorded, oldest first.
    pub fn pending_intents(&self) -> Result<Vec<PendingIntent>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id, at, path, root, kind, target, before, cause, requester_uid \
                 FROM journal_intents ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        JournalIntent {
                            at: r.get(1)?,
                            path: r.get(2)?,
                            root: r.get(3)?,
                            kind: r.get(4)?,
                            target: r.get(5)?,
                            before: r.get(6)?,
                            cause: r.get(7)?,
                            requester_uid: None,
                        },
                        r.get::<_, Option<i64>>(8)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err("reading journal intents"))?;
        rows.into_iter()
            .map(|(id, mut intent, uid)| {
                intent.requester_uid = self.requester_uid("journal_intents", uid)?;
                Ok(PendingIntent { id, intent })
            })
            .collect()
    }

    /// A stored `requester_uid` read back as a uid, or [`StoreError::InvalidData`].
    fn requester_uid(&self, table: &'static str, stored: Option<i64>) -> Result<Option<u32>> {
        stored
            .map(|u| {
                u32::try_from(u64_from_sql(u)).map_err(|_| StoreError::InvalidData {
                    path: self.path.clone(),
                    table,
                    column: "requester_uid",
                    value: u.to_string(),
                })
            })
            .transpose()
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction: committed when it returns `Ok`,
    /// rolled back otherwise.
    fn in_transaction<T>(
        &mut self,
        op: &'static str,
        work: impl FnOnce(&mut Store) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err(op))?;
        match work(self) {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(self.err(op)(e));
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.err(op)(e))
            }
        }
    }
}

#[cfg(test)]
mod intent_tests {
    use super::*;

    fn intent(path: &str) -> JournalIntent {
        JournalIntent {
            at: 10.0,
            path: path.into(),
            root: "/r".into(),
            kind: "chown".into(),
            target: "1000:-".into(),
            before: "0:0".into(),
            cause: "self-heal: owner".into(),
            requester_uid: Some(1000),
        }
    }

    fn row(path: &str) -> JournalEntry {
        JournalEntry {
            at: 11.0,
            path: path.into(),
            root: "/r".into(),
            kind: "chown".into(),
            before: "0:0".into(),
            after: "1000:0".into(),
            cause: "self-heal: owner".into(),
            requester_uid: Some(1000),
            dry_run: false,
        }
    }

    #[test]
    fn intents_stay_pending_until_settled_and_settling_writes_the_rows_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let ids = store
            .record_intents(&[intent("/r/a"), intent("/r/b"), intent("/r/c")])
            .unwrap();
        assert_eq!(ids.len(), 3);
        // A crash here: a new process sees all three, with every field.
        drop(store);
        let mut store = Store::open(&path).unwrap();
        let pending = store.pending_intents().unwrap();
        assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), ids);
        assert_eq!(pending[1].intent, intent("/r/b"));
        // a and c were made, b was not: two rows, no intent left.
        let rows = store
            .settle_intents(&ids, &[row("/r/a"), row("/r/c")])
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(store.pending_intents().unwrap().is_empty());
        let journal = store.list_journal(10).unwrap();
        let paths: Vec<_> = journal.iter().map(|r| r.entry.path.as_str()).collect();
        assert_eq!(paths, ["/r/c", "/r/a"]);
        assert_eq!(journal[0].entry.requester_uid, Some(1000));
    }

    #[test]
    fn a_bad_row_settles_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("s.db")).unwrap();
        let ids = store.record_intents(&[intent("/r/a")]).unwrap();
        let mut bad = row("/r/a");
        bad.at = f64::NAN;
        assert!(store.settle_intents(&ids, &[bad]).is_err());
        assert_eq!(store.pending_intents().unwrap().len(), 1);
        assert!(store.list_journal(10).unwrap().is_empty());
        let mut bad = intent("/r/b");
        bad.at = f64::INFINITY;
        assert!(store.record_intents(&[intent("/r/c"), bad]).is_err());
        assert_eq!(store.pending_intents().unwrap().len(), 1, "all or none");
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

    /// A row of `root` at `path` written at `at`.
    fn at(path: &str, root: &str, at: f64) -> JournalEntry {
        JournalEntry {
            at,
            path: path.into(),
            root: root.into(),
            ..entry(path, None)
        }
    }

    fn paths(store: &Store, filter: &JournalFilter, limit: u32) -> Vec<String> {
        store
            .list_journal_matching(filter, limit)
            .unwrap()
            .into_iter()
            .map(|r| r.entry.path)
            .collect()
    }

    #[test]
    fn path_prefix_is_component_wise_and_literal() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.db")).unwrap();
        let all = [
            "/a/b", "/a/b/c", "/a/b/c/d", "/a/bc", "/a/b.c", "/a/B", "/a/b%", "/a/b%/x", "/a/bX",
            "/a/b_", "/a/b_/y", "/a/%", "/a/_",
        ];
        for (i, p) in all.iter().enumerate() {
            store.append_journal(&at(p, "/a", i as f64)).unwrap();
        }
        let under = |p: &str| {
            let mut v = paths(
                &store,
                &JournalFilter {
                    path_prefix: Some(p.into()),
                    ..JournalFilter::default()
                },
                100,
            );
            v.sort();
            v
        };
        assert_eq!(under("/a/b"), ["/a/b", "/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/b/"), ["/a/b", "/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/b/c"), ["/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/B"), ["/a/B"], "case-sensitive");
        assert_eq!(under("/a/b%"), ["/a/b%", "/a/b%/x"], "% is literal");
        assert_eq!(under("/a/b_"), ["/a/b_", "/a/b_/y"], "_ is literal");
        assert_eq!(under("/a/%"), ["/a/%"]);
        assert_eq!(under("/a/_"), ["/a/_"]);
        assert_eq!(under("/a/b/c/d/e"), Vec::<String>::new());
        assert_eq!(under("/").len(), all.len());
        assert_eq!(under("").len(), all.len(), "empty prefix: no filter");
    }

    #[test]
    fn filters_combine_and_the_limit_applies_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("j.db")).unwrap();
        // Two roots, rows interleaved in time; ids do not follow time for the last two
        // (a clock stepped back), so the order is by time.
        let rows = [
            ("/u/gocache/00/a", "/u/gocache", 100.0),
            ("/v/gocache/00/b", "/v/gocache", 101.0),
            ("/u/gocache/01/c", "/u/gocache", 102.0),
            ("/v/gocache/01/d", "/v/gocache", 103.0),
            ("/u/gomod/x@v1/e", "/u/gomod", 105.0),
            ("/u/gocache/00/f", "/u/gocache", 104.0),
        ];
        for (p, r, t) in rows {
            store.append_journal(&at(p, r, t)).unwrap();
        }
        let all = JournalFilter::default();
        assert_eq!(
            paths(&store, &all, 100),
            [
                "/u/gomod/x@v1/e",
                "/u/gocache/00/f",
                "/v/gocache/01/d",
                "/u/gocache/01/c",
                "/v/gocache/00/b",
                "/u/gocache/00/a",
            ],
            "newest first by time"
        );
        assert_eq!(
            paths(&store, &all, 2),
            ["/u/gomod/x@v1/e", "/u/gocache/00/f"]
        );
        assert!(paths(&store, &all, 0).is_empty());

        let since = JournalFilter {
            since: Some(103.0),
            ..JournalFilter::default()
        };
        assert_eq!(
            paths(&store, &since, 100),
            ["/u/gomod/x@v1/e", "/u/gocache/00/f", "/v/gocache/01/d"],
            "at or after since"
        );

        // A user who owns /u's roots: the limit counts only their rows.
        let mine = JournalFilter {
            roots: Some(vec!["/u/gocache".into(), "/u/gomod".into()]),
            ..JournalFilter::default()
        };
        assert_eq!(
            paths(&store, &mine, 3),
            ["/u/gomod/x@v1/e", "/u/gocache/00/f", "/u/gocache/01/c"]
        );
        let none = JournalFilter {
            roots: Some(Vec::new()),
            ..JournalFilter::default()
        };
        assert!(paths(&store, &none, 100).is_empty(), "no roots: no rows");

        let combined = JournalFilter {
            path_prefix: Some("/u/gocache/00".into()),
            since: Some(101.0),
            roots: Some(vec!["/u/gocache".into()]),
            before: None,
        };
        assert_eq!(paths(&store, &combined, 100), ["/u/gocache/00/f"]);
        let elsewhere = JournalFilter {
            path_prefix: Some("/v".into()),
            roots: Some(vec!["/u/gocache".into()]),
            ..JournalFilter::default()
        };
        assert!(paths(&store, &elsewhere, 100).is_empty());

        // Paging: after (104.0, id of f) comes d, c, b, a; rows as old with a smaller id
        // follow, rows with a larger id do not.
        let f_id = store
            .last_journal_id_for_path("/u/gocache/00/f")
            .unwrap()
            .unwrap();
        let after_f = JournalFilter {
            before: Some((104.0, f_id)),
            ..JournalFilter::default()
        };
        assert_eq!(
            paths(&store, &after_f, 2),
            ["/v/gocache/01/d", "/u/gocache/01/c"]
        );
        store
            .append_journal(&at("/u/gocache/02/same-time", "/u/gocache", 104.0))
            .unwrap();
        assert_eq!(paths(&store, &after_f, 1), ["/v/gocache/01/d"]);
        let before_f = JournalFilter {
            before: Some((104.0, f_id + 100)),
            ..JournalFilter::default()
        };
        assert_eq!(
            paths(&store, &before_f, 2),
            ["/u/gocache/02/same-time", "/u/gocache/00/f"]
        );

        assert!(matches!(
            store.list_journal_matching(
                &JournalFilter {
                    since: Some(f64::NAN),
                    ..JournalFilter::default()
                },
                10
            ),
            Err(StoreError::InvalidArgument { name: "since", .. })
        ));
    }

    #[test]
    fn every_filtered_read_is_served_by_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("j.db")).unwrap();
        let roots = Some(vec!["/u/gocache".to_owned(), "/u/gomod".to_owned()]);
        let filters = [
            JournalFilter::default(),
            JournalFilter {
                since: Some(1.0),
                ..JournalFilter::default()
            },
            JournalFilter {
                path_prefix: Some("/u/gocache/00".into()),
                ..JournalFilter::default()
            },
            JournalFilter {
                roots: roots.clone(),
                ..JournalFilter::default()
            },
            JournalFilter {
                roots,
                since: Some(1.0),
                path_prefix: Some("/u/gocache".into()),
                before: Some((5.0, 7)),
            },
            JournalFilter {
                before: Some((5.0, 7)),
                ..JournalFilter::default()
            },
        ];
        for filter in filters {
            let (sql, args) = journal_query(&filter, 100).unwrap().unwrap();
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("INDEX"))
                    && !plan.iter().any(|step| step == "SCAN journal"),
                "{filter:?} reads the whole table: {plan:?}"
            );
        }
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn without_checkpoints_at_commit_the_checkpointer_does_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let options = StoreOptions {
            checkpoint_on_commit: false,
            ..Default::default()
        };
        let mut store = Store::open_with(&path, &options).unwrap();
        let checkpointer = store.checkpointer().unwrap();
        let row = JournalEntry {
            at: 1.0,
            path: "/r/".to_owned() + &"x".repeat(3000),
            root: "/r".into(),
            kind: "chown".into(),
            before: "1:1".into(),
            after: "0:0".into(),
            cause: "self-heal: owner".into(),
            requester_uid: None,
            dry_run: false,
        };
        // About 2,000 pages of commits: SQLite would have checkpointed at 1,000.
        for _ in 0..2000 {
            store.append_journal(&row).unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("s.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal > 1000 * 4096,
            "the WAL was checkpointed at commit: {wal} bytes"
        );
        let (frames, done) = checkpointer.checkpoint().unwrap();
        assert!(
            frames > 1000 && done == frames,
            "{frames} frames, {done} checkpointed"
        );
        assert_eq!(store.list_journal(3000).unwrap().len(), 2000);
    }
}
