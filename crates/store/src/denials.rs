//! Denial alerts: counting observations together with the audit cursor, listing, triage,
//! retention.
//!
//! The key invariant lives in [`Store::record_batch`]: the observations of a batch and the
//! cursor that follows them are committed in one `BEGIN IMMEDIATE` transaction, so after a
//! crash at any instant either all of them and the cursor are stored or none is, and an
//! event is neither lost nor counted twice. Nothing here may ever count an observation
//! outside a transaction that also moves the cursor, or move the cursor anywhere else.
//! Retention deletes denials only, never the cursor or the journal.
//!
//! Within a batch, observations are grouped by key and folded in order in memory
//! ([`Tally::count`] holds the counting rules), then each denial is written once: a storm of
//! one denial costs one lookup and one write per batch, and the outcome is exactly that of
//! recording the observations one at a time (a test holds it to that).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::error::{Result, StoreError};
use crate::page_token::{self, Resume};
use crate::store::Store;
use crate::types::{
    AuditCursor, DenialFilter, DenialKey, DenialObservation, DenialRow, Page, PageRequest,
    RecordedDenial, RetentionOutcome, Status, StatusCounts, normalize_permissions,
};

/// Columns of a [`DenialRow`], in the order [`RawDenial::from_row`] reads them.
const DENIAL_COLUMNS: &str = "id, scontext, tcontext, tclass, permissions, target, comm, count, \
     first_seen, last_seen, last_event_id, last_raw, exe, go_related, status, fixed_by_repair, \
     status_changed_at, updated_at";

/// Finds a denial by its key (served by the table's UNIQUE index).
const FIND_DENIAL: &str = "
SELECT id, count, first_seen, last_seen, last_event_id, last_raw, exe, go_related, status,
       status_changed_at
FROM denials
WHERE scontext = ?1 AND tcontext = ?2 AND tclass = ?3 AND permissions = ?4 AND target = ?5
  AND comm = ?6";

const INSERT_DENIAL: &str = "
INSERT INTO denials (scontext, tcontext, tclass, permissions, target, comm, count, first_seen,
                     last_seen, last_event_id, last_raw, exe, go_related, status,
                     status_changed_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

const UPDATE_DENIAL: &str = "
UPDATE denials SET count = ?2, first_seen = ?3, last_seen = ?4, last_event_id = ?5,
    last_raw = ?6, exe = ?7, go_related = ?8, status = ?9, status_changed_at = ?10,
    updated_at = ?11
WHERE id = ?1";

const UPSERT_CURSOR: &str = "
INSERT INTO audit_cursor (log_path, dev, ino, offset, last_event_id, updated_at, replay_keys)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (log_path) DO UPDATE SET
    dev = excluded.dev, ino = excluded.ino, offset = excluded.offset,
    last_event_id = excluded.last_event_id, updated_at = excluded.updated_at,
    replay_keys = excluded.replay_keys";

/// Wall-clock time, unix seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// SQLite integers are signed 64-bit: `u64` values are stored bit for bit.
pub(crate) fn u64_to_sql(v: u64) -> i64 {
    v as i64
}

/// Inverse of [`u64_to_sql`].
pub(crate) fn u64_from_sql(v: i64) -> u64 {
    v as u64
}

pub(crate) fn finite(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument {
            name,
            reason: format!("{v} is not a finite number"),
        })
    }
}

/// A denial's counted state while a batch is folded into it.
struct Tally {
    /// Row id; `None` until a denial first seen in this batch is inserted.
    id: Option<i64>,
    count: i64,
    first_seen: f64,
    last_seen: f64,
    last_event_id: String,
    last_raw: String,
    exe: Option<String>,
    go_related: bool,
    status: Status,
    status_changed_at: Option<f64>,
}

impl Tally {
    /// The state of a denial created by `obs`.
    fn first(obs: &DenialObservation) -> Tally {
        Tally {
            id: None,
            count: 1,
            first_seen: obs.seen_at,
            last_seen: obs.seen_at,
            last_event_id: obs.event_id.clone(),
            last_raw: obs.raw.clone(),
            exe: obs.exe.clone(),
            go_related: obs.go_related,
            status: Status::New,
            status_changed_at: None,
        }
    }

    /// Counts one more event. These are the counting rules:
    /// - the latest event (by audit timestamp; on a tie the later one in the log) gives
    ///   `last_seen`, `last_event_id`, `last_raw` and, when it has one, `exe`; an older one
    ///   (out of order) can only move `first_seen` back and fill a missing `exe`;
    /// - `go_related` is sticky: one go-related event makes the denial go-related;
    /// - a `fixed` denial seen after its fix did not stay fixed: back to `new`, keeping
    ///   `fixed_by_repair` to say which repair did not hold. `acknowledged` and `ignored`
    ///   are people's decisions and stay.
    fn count(&mut self, obs: &DenialObservation, now: f64) {
        self.count = self.count.saturating_add(1);
        if obs.seen_at >= self.last_seen {
            self.last_seen = obs.seen_at;
            self.last_event_id.clone_from(&obs.event_id);
            self.last_raw.clone_from(&obs.raw);
            if obs.exe.is_some() {
                self.exe.clone_from(&obs.exe);
            }
        } else {
            self.first_seen = self.first_seen.min(obs.seen_at);
            if self.exe.is_none() {
                self.exe.clone_from(&obs.exe);
            }
        }
        self.go_related |= obs.go_related;
        if self.status == Status::Fixed && obs.seen_at > self.status_changed_at.unwrap_or(0.0) {
            self.status = Status::New;
            self.status_changed_at = Some(now);
        }
    }
}

/// A denial as read, before its status text is checked.
struct RawDenial {
    row: DenialRow,
    status: String,
}

impl RawDenial {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawDenial> {
        Ok(RawDenial {
            row: DenialRow {
                id: r.get(0)?,
                key: DenialKey {
                    scontext: r.get(1)?,
                    tcontext: r.get(2)?,
                    tclass: r.get(3)?,
                    permissions: r.get(4)?,
                    target: r.get(5)?,
                    comm: r.get(6)?,
                },
                count: u64_from_sql(r.get(7)?),
                first_seen: r.get(8)?,
                last_seen: r.get(9)?,
                last_event_id: r.get(10)?,
                last_raw: r.get(11)?,
                exe: r.get(12)?,
                go_related: r.get(13)?,
                status: Status::New,
                fixed_by_repair: r.get(15)?,
                status_changed_at: r.get(16)?,
                updated_at: r.get(17)?,
            },
            status: r.get(14)?,
        })
    }

    fn check(self, path: &Path) -> Result<DenialRow> {
        let status = parse_status(path, self.status)?;
        Ok(DenialRow { status, ..self.row })
    }
}

fn parse_status(path: &Path, text: String) -> Result<Status> {
    text.parse().map_err(|_| StoreError::InvalidData {
        path: path.to_path_buf(),
        table: "denials",
        column: "status",
        value: text,
    })
}

/// SQL condition (with its parameters) for a component-wise path prefix on `column` (a
/// column name written by this crate, never input).
///
/// Not `LIKE`: it would need `%`/`_` escaped and is case-insensitive for ASCII in SQLite
/// (`/A` would match `/a`). Instead a byte-wise range: with BINARY collation (memcmp) the
/// strings that start with `p/` are exactly those in `[p + "/", p + "0")`, `'0'` being the
/// byte after `'/'`. No metacharacters, no escaping, exact bytes; an index on `column` serves
/// it.
pub(crate) fn path_prefix_condition(
    column: &'static str,
    prefix: &str,
) -> Option<(String, Vec<Value>)> {
    if prefix.is_empty() {
        return None;
    }
    let p = prefix.trim_end_matches('/');
    let range = format!("({column} >= ? AND {column} < ?)");
    let lo = Value::Text(format!("{p}/"));
    let hi = Value::Text(format!("{p}0"));
    if p.is_empty() {
        // "/" (or "//"): every absolute path.
        Some((range, vec![lo, hi]))
    } else {
        Some((
            format!("({column} = ? OR {range})"),
            vec![Value::Text(p.to_owned()), lo, hi],
        ))
    }
}

impl Store {
    /// Counts `observations` and moves the cursor of `cursor.log_path` to `cursor`, in one
    /// transaction: all or nothing (see the module docs). Returns, for each observation in
    /// order, the denial it was counted in, its count after it, and whether it created it.
    /// An empty batch just moves the cursor.
    pub fn record_batch(
        &mut self,
        observations: &[DenialObservation],
        cursor: &AuditCursor,
    ) -> Result<Vec<RecordedDenial>> {
        for obs in observations {
            finite("seen_at", obs.seen_at)?;
        }
        let op = "recording a batch of denials and the audit cursor";
        let at = now();
        let path = &self.path;
        let busy = self.busy_timeout;
        let err = |e| StoreError::from_sqlite(path, op, busy, e);

        // Group the batch by key, so that a storm of one denial costs one lookup and one
        // write, not one per event. The fold below applies the events in batch order, so
        // the outcome equals recording them one at a time.
        let permissions: Vec<Cow<'_, str>> = observations
            .iter()
            .map(|o| normalize_permissions(&o.key.permissions))
            .collect();
        let mut group_of_key: HashMap<[&str; 6], usize> = HashMap::new();
        let mut first_of_group: Vec<usize> = Vec::new();
        let group_of: Vec<usize> = observations
            .iter()
            .zip(&permissions)
            .enumerate()
            .map(|(i, (o, perms))| {
                let k = &o.key;
                let key = [
                    &*k.scontext,
                    &*k.tcontext,
                    &*k.tclass,
                    perms,
                    &*k.target,
                    &*k.comm,
                ];
                *group_of_key.entry(key).or_insert_with(|| {
                    first_of_group.push(i);
                    first_of_group.len() - 1
                })
            })
            .collect();

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut recorded = Vec::with_capacity(observations.len());
        {
            let mut find = tx.prepare_cached(FIND_DENIAL).map_err(err)?;
            let mut tallies: Vec<Option<Tally>> = Vec::with_capacity(first_of_group.len());
            for &i in &first_of_group {
                let k = &observations[i].key;
                let stored = find
                    .query_row(
                        params![
                            k.scontext,
                            k.tcontext,
                            k.tclass,
                            permissions[i],
                            k.target,
                            k.comm
                        ],
                        |r| {
                            Ok((
                                Tally {
                                    id: Some(r.get(0)?),
                                    count: r.get(1)?,
                                    first_seen: r.get(2)?,
                                    last_seen: r.get(3)?,
                                    last_event_id: r.get(4)?,
                                    last_raw: r.get(5)?,
                                    exe: r.get(6)?,
                                    go_related: r.get(7)?,
                                    status: Status::New,
                                    status_changed_at: r.get(9)?,
                                },
                                r.get::<_, String>(8)?,
                            ))
                        },
                    )
                    .optional()
                    .map_err(err)?;
                tallies.push(match stored {
                    Some((mut tally, status)) => {
                        tally.status = parse_status(path, status)?;
                        Some(tally)
                    }
                    None => None,
                });
            }

            for (obs, &g) in observations.iter().zip(&group_of) {
                let (count, is_new, status) = match &mut tallies[g] {
                    Some(tally) => {
                        tally.count(obs, at);
                        (tally.count, false, tally.status)
                    }
                    slot @ None => {
                        *slot = Some(Tally::first(obs));
                        (1, true, Status::New)
                    }
                };
                recorded.push(RecordedDenial {
                    id: 0, // filled in once every denial has its row
                    count: u64_from_sql(count),
                    is_new,
                    status,
                });
            }

            let mut insert = tx.prepare_cached(INSERT_DENIAL).map_err(err)?;
            let mut update = tx.prepare_cached(UPDATE_DENIAL).map_err(err)?;
            for (tally, &i) in tallies.iter_mut().zip(&first_of_group) {
                let Some(t) = tally else { continue };
                match t.id {
                    Some(id) => {
                        update
                            .execute(params![
                                id,
                                t.count,
                                t.first_seen,
                                t.last_seen,
                                t.last_event_id,
                                t.last_raw,
                                t.exe,
                                t.go_related,
                                t.status.as_str(),
                                t.status_changed_at,
                                at,
                            ])
                            .map_err(err)?;
                    }
                    None => {
                        let k = &observations[i].key;
                        insert
                            .execute(params![
                                k.scontext,
                                k.tcontext,
                                k.tclass,
                                permissions[i],
                                k.target,
                                k.comm,
                                t.count,
                                t.first_seen,
                                t.last_seen,
                                t.last_event_id,
                                t.last_raw,
                                t.exe,
                                t.go_related,
                                t.status.as_str(),
                                t.status_changed_at,
                                at,
                            ])
                            .map_err(err)?;
                        t.id = Some(tx.last_insert_rowid());
                    }
                }
            }
            for (r, &g) in recorded.iter_mut().zip(&group_of) {
                r.id = tallies[g].as_ref().and_then(|t| t.id).unwrap_or_default();
            }

            let mut save = tx.prepare_cached(UPSERT_CURSOR).map_err(err)?;
            save.execute(params![
                cursor.log_path,
                u64_to_sql(cursor.dev),
                u64_to_sql(cursor.ino),
                u64_to_sql(cursor.offset),
                cursor.last_event_id,
                at,
                cursor.replay_keys.join("\n"),
            ])
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(recorded)
    }

    /// The stored cursor of `log_path`, if any.
    pub fn load_cursor(&self, log_path: &str) -> Result<Option<AuditCursor>> {
        self.conn
            .prepare_cached(
                "SELECT dev, ino, offset, last_event_id, replay_keys FROM audit_cursor \
                 WHERE log_path = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([log_path], |r| {
                    Ok(AuditCursor {
                        log_path: log_path.to_owned(),
                        dev: u64_from_sql(r.get(0)?),
                        ino: u64_from_sql(r.get(1)?),
                        offset: u64_from_sql(r.get(2)?),
                        last_event_id: r.get(3)?,
                        replay_keys: r
                            .get::<_, String>(4)?
                            .split('\n')
                            .filter(|k| !k.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    })
                })
                .optional()
            })
            .map_err(self.err("loading the audit cursor"))
    }

    /// One page of the denials matching `filter`, newest first (`last_seen` desc, then `id`
    /// desc). Pages are keyset-based: a row is never returned twice while paging, and a
    /// row that exists throughout the paging and keeps its `last_seen` is returned once. A
    /// row seen again meanwhile moves to the front and may be missed by this pass.
    pub fn list_denials(
        &self,
        filter: &DenialFilter,
        page: &PageRequest,
    ) -> Result<Page<DenialRow>> {
        if let Some(since) = filter.since {
            finite("since", since)?;
        }
        let resume = page
            .page_token
            .as_deref()
            .map(|t| page_token::decode(t, filter))
            .transpose()?;
        let size = page.effective_size();

        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        if let Some(since) = filter.since {
            conds.push("last_seen >= ?".into());
            args.push(Value::Real(since));
        }
        if let Some(comm) = &filter.comm {
            conds.push("comm = ?".into());
            args.push(Value::Text(comm.clone()));
        }
        if let Some((cond, values)) = filter
            .path_prefix
            .as_deref()
            .and_then(|p| path_prefix_condition("target", p))
        {
            conds.push(cond);
            args.extend(values);
        }
        if let Some(status) = filter.status {
            conds.push("status = ?".into());
            args.push(Value::Text(status.as_str().into()));
        }
        if filter.go_related_only {
            conds.push("go_related = 1".into());
        }
        if let Some(Resume { last_seen, id }) = resume {
            conds.push("(last_seen < ? OR (last_seen = ? AND id < ?))".into());
            args.extend([
                Value::Real(last_seen),
                Value::Real(last_seen),
                Value::Integer(id),
            ]);
        }
        let where_clause = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {DENIAL_COLUMNS} FROM denials {where_clause} \
             ORDER BY last_seen DESC, id DESC LIMIT ?"
        );
        args.push(Value::Integer(i64::from(size) + 1));

        let op = "listing denials";
        let raws = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(args.iter()), RawDenial::from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err(op))?;
        let mut items = raws
            .into_iter()
            .map(|raw| raw.check(&self.path))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = if items.len() > size as usize {
            items.truncate(size as usize);
            items.last().map(|last| {
                page_token::encode(
                    Resume {
                        last_seen: last.last_seen,
                        id: last.id,
                    },
                    filter,
                )
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// The denial with this id, if any.
    pub fn get_denial(&self, id: i64) -> Result<Option<DenialRow>> {
        let raw = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DENIAL_COLUMNS} FROM denials WHERE id = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([id], RawDenial::from_row).optional())
            .map_err(self.err("reading a denial"))?;
        raw.map(|r| r.check(&self.path)).transpose()
    }

    /// Sets a denial's status and the repair that fixed it, and returns the updated row.
    /// `fixed_by_repair` must name an existing journal entry and may only be given with
    /// [`Status::Fixed`]; `None` clears it.
    pub fn set_denial_status(
        &mut self,
        id: i64,
        status: Status,
        fixed_by_repair: Option<i64>,
    ) -> Result<DenialRow> {
        if fixed_by_repair.is_some() && status != Status::Fixed {
            return Err(StoreError::InvalidArgument {
                name: "fixed_by_repair",
                reason: format!("only a fixed denial names a repair, not a {status} one"),
            });
        }
        let op = "setting a denial's status";
        let path = &self.path;
        let busy = self.busy_timeout;
        let err = |e| StoreError::from_sqlite(path, op, busy, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        if let Some(repair) = fixed_by_repair {
            let exists = tx
                .prepare_cached("SELECT 1 FROM journal WHERE id = ?1")
                .and_then(|mut s| s.exists([repair]))
                .map_err(err)?;
            if !exists {
                return Err(StoreError::JournalEntryNotFound { id: repair });
            }
        }
        let at = now();
        let raw = tx
            .prepare_cached(&format!(
                "UPDATE denials SET status = ?2, fixed_by_repair = ?3, status_changed_at = ?4, \
                 updated_at = ?4 WHERE id = ?1 RETURNING {DENIAL_COLUMNS}"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![id, status.as_str(), fixed_by_repair, at],
                    RawDenial::from_row,
                )
                .optional()
            })
            .map_err(err)?;
        let Some(raw) = raw else {
            return Err(StoreError::DenialNotFound { id });
        };
        tx.commit().map_err(err)?;
        raw.check(path)
    }

    /// How many denials are in each status.
    pub fn denial_counts_by_status(&self) -> Result<StatusCounts> {
        let rows = self
            .conn
            .prepare_cached("SELECT status, count(*) FROM denials GROUP BY status")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err("counting denials"))?;
        let mut counts = StatusCounts::default();
        for (text, n) in rows {
            let n = u64_from_sql(n);
            match parse_status(&self.path, text)? {
                Status::New => counts.new = n,
                Status::Fixed => counts.fixed = n,
                Status::Acknowledged => counts.acknowledged = n,
                Status::Ignored => counts.ignored = n,
            }
        }
        Ok(counts)
    }

    /// Deletes denials last seen before `now - max_age_secs`, then the oldest (by
    /// `last_seen`, then `id`) beyond `max_rows`, in one transaction. Never touches the
    /// cursor or the journal.
    pub fn apply_retention(
        &mut self,
        now: f64,
        max_age_secs: Option<f64>,
        max_rows: Option<u64>,
    ) -> Result<RetentionOutcome> {
        finite("now", now)?;
        if let Some(age) = max_age_secs {
            finite("max_age_secs", age)?;
            if age < 0.0 {
                return Err(StoreError::InvalidArgument {
                    name: "max_age_secs",
                    reason: format!("{age} is negative"),
                });
            }
        }
        let op = "applying retention";
        let path = &self.path;
        let busy = self.busy_timeout;
        let err = |e| StoreError::from_sqlite(path, op, busy, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut outcome = RetentionOutcome::default();
        if let Some(age) = max_age_secs {
            outcome.removed_by_age = tx
                .prepare_cached("DELETE FROM denials WHERE last_seen < ?1")
                .and_then(|mut s| s.execute([now - age]))
                .map_err(err)? as u64;
        }
        if let Some(max) = max_rows {
            let keep = i64::try_from(max).unwrap_or(i64::MAX);
            outcome.removed_by_count = tx
                .prepare_cached(
                    "DELETE FROM denials WHERE id IN (SELECT id FROM denials \
                     ORDER BY last_seen DESC, id DESC LIMIT -1 OFFSET ?1)",
                )
                .and_then(|mut s| s.execute([keep]))
                .map_err(err)? as u64;
        }
        tx.commit().map_err(err)?;
        outcome.removed = outcome.removed_by_age + outcome.removed_by_count;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("d.db")).unwrap();
        (dir, store)
    }

    fn key(target: &str, comm: &str) -> DenialKey {
        DenialKey::new(
            "system_u:system_r:container_t:s0",
            "unconfined_u:object_r:user_home_t:s0",
            "dir",
            ["write", "add_name"],
            target,
            comm,
        )
    }

    fn obs(key: &DenialKey, seen_at: f64, serial: u64) -> DenialObservation {
        DenialObservation {
            key: key.clone(),
            seen_at,
            event_id: format!("node:{seen_at:.3}:{serial}"),
            raw: format!("type=AVC msg=audit({seen_at:.3}:{serial}): avc: denied"),
            exe: Some("/usr/bin/go".into()),
            go_related: true,
        }
    }

    fn cursor(offset: u64) -> AuditCursor {
        AuditCursor {
            log_path: "/var/log/audit/audit.log".into(),
            dev: 0xfd00,
            ino: u64::MAX - 1,
            offset,
            last_event_id: Some(format!("node:1.000:{offset}")),
            replay_keys: Vec::new(),
        }
    }

    fn all(store: &Store, filter: &DenialFilter) -> Vec<DenialRow> {
        store
            .list_denials(filter, &PageRequest::first(1000))
            .unwrap()
            .items
    }

    fn targets(store: &Store, filter: &DenialFilter) -> Vec<String> {
        let mut t: Vec<String> = all(store, filter)
            .into_iter()
            .map(|r| r.key.target)
            .collect();
        t.sort();
        t
    }

    #[test]
    fn dedup_counts_and_reports_new_vs_seen_again() {
        let (_d, mut s) = store();
        let a = key("/home/u/.cache/go-build", "go");
        let b = key("/home/u/go/pkg/mod", "go");
        let got = s
            .record_batch(
                &[obs(&a, 10.0, 1), obs(&b, 11.0, 2), obs(&a, 12.0, 3)],
                &cursor(300),
            )
            .unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[0].is_new && got[1].is_new && !got[2].is_new);
        assert_eq!((got[0].count, got[1].count, got[2].count), (1, 1, 2));
        assert_eq!(got[0].id, got[2].id);
        assert_ne!(got[0].id, got[1].id);

        let again = s.record_batch(&[obs(&a, 13.0, 4)], &cursor(400)).unwrap();
        assert_eq!(again[0].count, 3);
        assert!(!again[0].is_new);

        let row = s.get_denial(got[0].id).unwrap().unwrap();
        assert_eq!(row.count, 3);
        assert_eq!(row.first_seen, 10.0);
        assert_eq!(row.last_seen, 13.0);
        assert_eq!(row.last_event_id, "node:13.000:4");
        assert_eq!(row.key.permissions, "add_name write");
        assert_eq!(row.status, Status::New);
        assert_eq!(
            s.load_cursor("/var/log/audit/audit.log").unwrap(),
            Some(cursor(400))
        );
        assert_eq!(s.load_cursor("/other.log").unwrap(), None);
    }

    #[test]
    fn unsorted_permissions_are_the_same_denial() {
        let (_d, mut s) = store();
        let mut k1 = key("/x", "go");
        k1.permissions = "write add_name".into();
        let k2 = key("/x", "go");
        let got = s
            .record_batch(&[obs(&k1, 1.0, 1), obs(&k2, 2.0, 2)], &cursor(1))
            .unwrap();
        assert_eq!(got[1].count, 2);
        assert_eq!(all(&s, &DenialFilter::default()).len(), 1);
    }

    #[test]
    fn out_of_order_events_keep_first_and_last() {
        let (_d, mut s) = store();
        let k = key("/x", "go");
        s.record_batch(&[obs(&k, 20.0, 2)], &cursor(1)).unwrap();
        let mut older = obs(&k, 10.0, 1);
        older.exe = None;
        let r = s.record_batch(&[older], &cursor(2)).unwrap();
        let row = s.get_denial(r[0].id).unwrap().unwrap();
        assert_eq!((row.first_seen, row.last_seen), (10.0, 20.0));
        assert_eq!(row.last_event_id, "node:20.000:2");
        assert_eq!(row.exe.as_deref(), Some("/usr/bin/go"));
    }

    #[test]
    fn empty_batch_moves_only_the_cursor() {
        let (_d, mut s) = store();
        assert!(s.record_batch(&[], &cursor(77)).unwrap().is_empty());
        assert_eq!(
            s.load_cursor("/var/log/audit/audit.log").unwrap(),
            Some(cursor(77))
        );
        assert_eq!(s.denial_counts_by_status().unwrap().total(), 0);
    }

    #[test]
    fn a_bad_observation_rejects_the_whole_batch() {
        let (_d, mut s) = store();
        let k = key("/x", "go");
        let err = s
            .record_batch(&[obs(&k, 1.0, 1), obs(&k, f64::NAN, 2)], &cursor(5))
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::InvalidArgument {
                name: "seen_at",
                ..
            }
        ));
        assert!(err.is_caller_error());
        assert_eq!(s.load_cursor("/var/log/audit/audit.log").unwrap(), None);
        assert_eq!(s.denial_counts_by_status().unwrap().total(), 0);
    }

    #[test]
    fn status_changes_counts_and_reopening() {
        let (_d, mut s) = store();
        let a = key("/a", "go");
        let b = key("/b", "go");
        let ids = s
            .record_batch(&[obs(&a, 1.0, 1), obs(&b, 2.0, 2)], &cursor(1))
            .unwrap();
        let repair = s
            .append_journal(&crate::JournalEntry {
                at: 3.0,
                path: "/a".into(),
                root: "/".into(),
                kind: "label".into(),
                before: "user_home_t".into(),
                after: "container_file_t".into(),
                cause: "denial".into(),
                requester_uid: None,
                dry_run: false,
            })
            .unwrap();
        let row = s
            .set_denial_status(ids[0].id, Status::Fixed, Some(repair))
            .unwrap();
        assert_eq!(row.status, Status::Fixed);
        assert_eq!(row.fixed_by_repair, Some(repair));
        let changed_at = row.status_changed_at.unwrap();
        s.set_denial_status(ids[1].id, Status::Ignored, None)
            .unwrap();

        let counts = s.denial_counts_by_status().unwrap();
        assert_eq!((counts.new, counts.fixed, counts.ignored), (0, 1, 1));
        assert_eq!(counts.get(Status::Fixed), 1);

        // Errors: unknown denial, unknown repair, repair without fixed.
        assert!(matches!(
            s.set_denial_status(9999, Status::Acknowledged, None),
            Err(StoreError::DenialNotFound { id: 9999 })
        ));
        assert!(matches!(
            s.set_denial_status(ids[0].id, Status::Fixed, Some(9999)),
            Err(StoreError::JournalEntryNotFound { id: 9999 })
        ));
        assert!(matches!(
            s.set_denial_status(ids[0].id, Status::New, Some(repair)),
            Err(StoreError::InvalidArgument { .. })
        ));

        // Seen again, but the event predates the fix: stays fixed.
        let r = s.record_batch(&[obs(&a, 1.5, 3)], &cursor(2)).unwrap();
        assert_eq!(r[0].status, Status::Fixed);
        // Seen again after the fix: back to new, the repair that did not hold is kept.
        let r = s
            .record_batch(
                &[obs(&a, changed_at + 1.0, 4), obs(&b, changed_at + 1.0, 5)],
                &cursor(3),
            )
            .unwrap();
        assert_eq!(r[0].status, Status::New);
        assert_eq!(r[1].status, Status::Ignored, "people's decisions stay");
        let row = s.get_denial(ids[0].id).unwrap().unwrap();
        assert_eq!(row.fixed_by_repair, Some(repair));
        assert_eq!(row.count, 3);
        assert!(s.get_denial(12345).unwrap().is_none());
    }

    #[test]
    fn filters_by_since_comm_status_and_go_relevance() {
        let (_d, mut s) = store();
        let mut o = vec![
            obs(&key("/a", "go"), 10.0, 1),
            obs(&key("/b", "gopls"), 20.0, 2),
            obs(&key("/c", "go"), 30.0, 3),
        ];
        o[2].go_related = false;
        let ids = s.record_batch(&o, &cursor(1)).unwrap();
        s.set_denial_status(ids[0].id, Status::Acknowledged, None)
            .unwrap();

        let f = |since, comm: Option<&str>, status, go| DenialFilter {
            since,
            comm: comm.map(Into::into),
            path_prefix: None,
            status,
            go_related_only: go,
        };
        assert_eq!(targets(&s, &f(Some(20.0), None, None, false)), ["/b", "/c"]);
        assert_eq!(targets(&s, &f(None, Some("go"), None, false)), ["/a", "/c"]);
        assert_eq!(
            targets(&s, &f(None, None, Some(Status::New), false)),
            ["/b", "/c"]
        );
        assert_eq!(targets(&s, &f(None, None, None, true)), ["/a", "/b"]);
        assert_eq!(
            targets(&s, &f(Some(5.0), Some("go"), Some(Status::New), false)),
            ["/c"]
        );
        assert!(targets(&s, &f(None, Some("GO"), None, false)).is_empty());
        // Order: last_seen desc.
        let order: Vec<String> = all(&s, &DenialFilter::default())
            .into_iter()
            .map(|r| r.key.target)
            .collect();
        assert_eq!(order, ["/c", "/b", "/a"]);
        assert!(matches!(
            s.list_denials(
                &f(Some(f64::INFINITY), None, None, false),
                &PageRequest::default()
            ),
            Err(StoreError::InvalidArgument { name: "since", .. })
        ));
    }

    #[test]
    fn path_prefix_is_component_wise_and_literal() {
        let (_d, mut s) = store();
        let paths = [
            "/a/b",
            "/a/b/c",
            "/a/b/c/d",
            "/a/bc",
            "/a/b.c",
            "/a/b-c",
            "/a/B",
            "/a/b%",
            "/a/b%/x",
            "/a/b_",
            "/a/bX",
            "/a/b_/y",
            "/a/%",
            "/a/_",
            "/a\\b",
            "/a/\\/z",
            "/é/ü",
            "/é/üx",
            "go-build123",
            "go-build123/x",
            "",
        ];
        let o: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| obs(&key(p, "go"), i as f64, i as u64))
            .collect();
        s.record_batch(&o, &cursor(1)).unwrap();
        let under = |p: &str| {
            targets(
                &s,
                &DenialFilter {
                    path_prefix: Some(p.into()),
                    ..DenialFilter::default()
                },
            )
        };
        assert_eq!(under("/a/b"), ["/a/b", "/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/b/"), ["/a/b", "/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/b/c"), ["/a/b/c", "/a/b/c/d"]);
        assert_eq!(under("/a/B"), ["/a/B"], "case-sensitive");
        assert_eq!(under("/a/b%"), ["/a/b%", "/a/b%/x"], "% is literal");
        assert_eq!(under("/a/b_"), ["/a/b_", "/a/b_/y"], "_ is literal");
        assert_eq!(under("/a/%"), ["/a/%"]);
        assert_eq!(under("/a/_"), ["/a/_"]);
        assert_eq!(under("/a\\b"), ["/a\\b"], "backslash is literal");
        assert_eq!(under("/a/\\"), ["/a/\\/z"]);
        assert_eq!(under("/é"), ["/é/ü", "/é/üx"]);
        assert_eq!(under("/é/ü"), ["/é/ü"]);
        assert_eq!(under("go-build123"), ["go-build123", "go-build123/x"]);
        assert_eq!(under("/a/b/c/d/e"), Vec::<String>::new());
        let absolute = paths.iter().filter(|p| p.starts_with('/')).count();
        assert_eq!(under("/").len(), absolute);
        assert_eq!(under("//").len(), absolute);
        assert_eq!(under("").len(), paths.len(), "empty prefix: no filter");
    }

    #[test]
    fn retention_by_age_then_by_count() {
        let (_d, mut s) = store();
        let o: Vec<_> = (0..10)
            .map(|i| {
                obs(
                    &key(&format!("/p{i}"), "go"),
                    100.0 + f64::from(i),
                    u64::from(i as u8),
                )
            })
            .collect();
        s.record_batch(&o, &cursor(10)).unwrap();
        // Older than 105 - 3 = 102 → /p0, /p1 go.
        let out = s.apply_retention(105.0, Some(3.0), None).unwrap();
        assert_eq!(out.removed_by_age, 2);
        assert_eq!(targets(&s, &DenialFilter::default()).len(), 8);
        // Keep the 3 newest: /p7 /p8 /p9.
        let out = s.apply_retention(105.0, None, Some(3)).unwrap();
        assert_eq!(
            out,
            RetentionOutcome {
                removed: 5,
                removed_by_age: 0,
                removed_by_count: 5
            }
        );
        assert_eq!(targets(&s, &DenialFilter::default()), ["/p7", "/p8", "/p9"]);
        // Both at once, nothing to do, and huge limits.
        assert_eq!(
            s.apply_retention(105.0, Some(1e9), Some(u64::MAX))
                .unwrap()
                .removed,
            0
        );
        let out = s.apply_retention(200.0, Some(92.5), Some(1)).unwrap();
        assert_eq!((out.removed_by_age, out.removed_by_count), (1, 1));
        assert_eq!(targets(&s, &DenialFilter::default()), ["/p9"]);
        assert_eq!(s.apply_retention(200.0, None, Some(0)).unwrap().removed, 1);
        // The cursor is never touched.
        assert_eq!(
            s.load_cursor("/var/log/audit/audit.log").unwrap(),
            Some(cursor(10))
        );
        assert!(s.apply_retention(f64::NAN, None, None).is_err());
        assert!(s.apply_retention(1.0, Some(-1.0), None).is_err());
    }

    #[test]
    fn ids_are_never_reused_after_retention() {
        let (_d, mut s) = store();
        let first = s
            .record_batch(&[obs(&key("/a", "go"), 1.0, 1)], &cursor(1))
            .unwrap();
        s.apply_retention(10.0, None, Some(0)).unwrap();
        let second = s
            .record_batch(&[obs(&key("/a", "go"), 2.0, 2)], &cursor(2))
            .unwrap();
        assert!(second[0].is_new);
        assert!(second[0].id > first[0].id);
    }

    #[test]
    fn a_batch_equals_its_observations_one_at_a_time() {
        // A stream with repeats, ties, out-of-order timestamps, missing exe, mixed go
        // relevance and a fixed denial that comes back.
        let mut z: u64 = 0x1234_5678;
        let mut next = |bound: u64| {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            z % bound
        };
        let stream: Vec<DenialObservation> = (0..3000u64)
            .map(|i| {
                let k = key(
                    &format!("/k{}", next(40)),
                    if next(2) == 0 { "go" } else { "gopls" },
                );
                let mut o = obs(&k, 1000.0 + (i / 3) as f64 - next(5) as f64, i);
                o.exe = (next(3) != 0).then(|| format!("/usr/bin/go{}", next(3)));
                o.go_related = next(4) != 0;
                o
            })
            .collect();
        let (_d1, mut batched) = store();
        let (_d2, mut single) = store();
        let mut from_batches = Vec::new();
        let mut from_singles = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let end = (at + 1 + next(300) as usize).min(stream.len());
            let chunk = &stream[at..end];
            from_batches.extend(batched.record_batch(chunk, &cursor(end as u64)).unwrap());
            for (j, o) in chunk.iter().enumerate() {
                let c = cursor((at + j + 1) as u64);
                from_singles.extend(single.record_batch(std::slice::from_ref(o), &c).unwrap());
            }
            if at == 0 {
                // Mark one denial fixed in both, "before" the rest of the stream.
                for s in [&mut batched, &mut single] {
                    let id = s.list_denials(&DenialFilter::default(), &PageRequest::first(1));
                    let id = id.unwrap().items[0].id;
                    s.set_denial_status(id, Status::Fixed, None).unwrap();
                    s.conn
                        .execute(
                            "UPDATE denials SET status_changed_at = 1500 WHERE id = ?1",
                            [id],
                        )
                        .unwrap();
                }
            }
            at = end;
        }
        assert_eq!(from_batches, from_singles);
        let strip = |s: &Store| {
            all(s, &DenialFilter::default())
                .into_iter()
                .map(|r| DenialRow {
                    updated_at: 0.0,
                    status_changed_at: r.status_changed_at.map(|_| 0.0),
                    ..r
                })
                .collect::<Vec<_>>()
        };
        let rows = strip(&batched);
        assert_eq!(rows, strip(&single));
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 3000);
        assert!(from_batches.iter().any(|r| r.status == Status::Fixed));
        assert!(
            rows.iter()
                .any(|r| r.fixed_by_repair.is_none() && r.status_changed_at.is_some())
        );
    }

    #[test]
    fn cursor_round_trips_full_u64_range() {
        let (_d, mut s) = store();
        let c = AuditCursor {
            log_path: "/l".into(),
            dev: u64::MAX,
            ino: 1 << 63,
            offset: u64::MAX - 7,
            last_event_id: None,
            replay_keys: vec!["n:1.5:7".into(), ":2.000:8".into()],
        };
        s.record_batch(&[], &c).unwrap();
        assert_eq!(s.load_cursor("/l").unwrap(), Some(c));
    }
}
