//! Write-ahead journaling of every change goguardd makes to a file, so the journal holds
//! a row for each change whatever stops the daemon (SIGTERM, `kill -9`, a crash, a full
//! disk). A batch of planned changes is first stored as *intents* (one transaction), then
//! made, then its outcomes replace the intents (one transaction): a row for each change
//! made, nothing for one that was not. A start after an unclean stop settles the intents
//! left behind by looking at each file, before any root is scanned: a file that is what
//! the intent wanted, and no longer what it was, gets its row (marked as recorded after
//! the stop); any other is recorded as not changed (no row). When the intents cannot be
//! written (disk full, store broken) nothing is changed.
//!
//! Never changes a file: it only reads them (through goguard-fs, beneath their root) to
//! settle old intents.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use goguard_policy::CacheRoot;
use goguard_store::{JournalEntry, JournalIntent, PendingIntent, Store};

use crate::journal_writer::{JournalWriter, settle_now};
use crate::repair::{Action, ChangeJournal};
use crate::roots;

/// Appended to the cause of a row written when settling an intent after an unclean stop.
pub const RECORDED_AFTER_STOP: &str = "(recorded at the next start: goguardd stopped mid-change)";

/// The journal of one repair, scan or healing batch: who asked and why.
pub struct Ledger<'a> {
    store: &'a Mutex<Store>,
    root: String,
    cause: &'a str,
    requester: Option<u32>,
    /// Settle through the writer thread (self-healing: the healing path does not wait
    /// for the second transaction) instead of at once.
    writer: Option<&'a JournalWriter>,
}

impl<'a> Ledger<'a> {
    /// Settles each batch at once, before returning to the caller.
    pub fn new(
        store: &'a Mutex<Store>,
        root: &Path,
        cause: &'a str,
        requester: Option<u32>,
    ) -> Ledger<'a> {
        Ledger {
            store,
            root: root.display().to_string(),
            cause,
            requester,
            writer: None,
        }
    }

    /// Settles through the journal writer thread, in order with its other rows.
    pub fn through(mut self, writer: &'a JournalWriter) -> Ledger<'a> {
        self.writer = Some(writer);
        self
    }

    fn cause_of(&self, action: &Action) -> String {
        format!("{}: {}", self.cause, action.fixes.join(", "))
    }
}

impl ChangeJournal for Ledger<'_> {
    fn intend(&mut self, planned: &[Action]) -> Result<Vec<i64>, String> {
        let at = roots::unix_now();
        let intents: Vec<JournalIntent> = planned
            .iter()
            .map(|a| JournalIntent {
                at,
                path: a.path.display().to_string(),
                root: self.root.clone(),
                kind: a.operation.clone(),
                target: a.after.clone(),
                before: a.before.clone(),
                cause: self.cause_of(a),
                requester_uid: self.requester,
            })
            .collect();
        self.store
            .lock()
            .expect("store lock")
            .record_intents(&intents)
            .map_err(|e| e.to_string())
    }

    fn settle(&mut self, ids: Vec<i64>, tried: &[Action]) {
        let at = roots::unix_now();
        let rows: Vec<JournalEntry> = tried
            .iter()
            .filter(|a| a.applied)
            .map(|a| JournalEntry {
                at,
                path: a.path.display().to_string(),
                root: self.root.clone(),
                kind: a.operation.clone(),
                before: a.before.clone(),
                after: a.after.clone(),
                cause: self.cause_of(a),
                requester_uid: self.requester,
                dry_run: false,
            })
            .collect();
        match self.writer {
            Some(writer) => writer.settle(ids, rows),
            None => settle_now(self.store, &ids, &rows),
        }
    }
}

/// What settling the intents of an unclean stop found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Changes made before the stop, journaled now.
    pub made: usize,
    /// Changes not made (or whose file is gone): no row.
    pub not_made: usize,
}

/// The verdict on one intent from what its file shows now: `Some(after)` when the change
/// was made (the file is what the intent wanted, and no longer what it was), else `None`.
/// Pure: `satisfied` and `now` are read by the caller.
pub fn verdict(intent: &JournalIntent, satisfied: bool, now: &str) -> Option<String> {
    (satisfied && now != intent.before).then(|| now.to_owned())
}

/// Settles the intents in `pending` whose root is among `guarded`, by looking at their
/// files, and removes them from `pending` (intents of roots not guarded now wait for a
/// start that guards them again). Call before anything changes those roots.
pub fn settle_unclean_stop(
    store: &Mutex<Store>,
    pending: &mut Vec<PendingIntent>,
    guarded: &[CacheRoot],
) -> Settled {
    let mut out = Settled::default();
    if pending.is_empty() {
        return out;
    }
    let by_path: HashMap<String, &CacheRoot> = guarded
        .iter()
        .map(|r| (r.path.display().to_string(), r))
        .collect();
    let mut dirs: HashMap<String, Option<goguard_fs::RootDir>> = HashMap::new();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    pending.retain(|p| {
        let Some(root) = by_path.get(&p.intent.root) else {
            return true;
        };
        ids.push(p.id);
        let dir = dirs
            .entry(p.intent.root.clone())
            .or_insert_with(|| roots::open_root(root).ok());
        let after = dir.as_ref().and_then(|dir| look(dir, &p.intent));
        match after {
            Some(after) => {
                out.made += 1;
                rows.push(JournalEntry {
                    at: p.intent.at,
                    path: p.intent.path.clone(),
                    root: p.intent.root.clone(),
                    kind: p.intent.kind.clone(),
                    before: p.intent.before.clone(),
                    after,
                    cause: format!("{} {RECORDED_AFTER_STOP}", p.intent.cause),
                    requester_uid: p.intent.requester_uid,
                    dry_run: false,
                });
            }
            None => out.not_made += 1,
        }
        false
    });
    if ids.is_empty() {
        return out;
    }
    settle_now(store, &ids, &rows);
    tracing::info!(
        made = out.made,
        not_made = out.not_made,
        "settled the changes goguardd was making when it last stopped uncleanly"
    );
    out
}

/// What the intent's file shows now, when its change was made.
fn look(dir: &goguard_fs::RootDir, intent: &JournalIntent) -> Option<String> {
    let op = crate::repair::parse_operation(&intent.kind, &intent.target)?;
    let rel = Path::new(&intent.path).strip_prefix(dir.path()).ok()?;
    let mut entry = dir.open_entry(rel).ok()?;
    let satisfied = crate::repair::satisfied(&mut entry, &op);
    let now = crate::repair::observed(&mut entry, &op);
    verdict(intent, satisfied, &now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(kind: &str, target: &str, before: &str) -> JournalIntent {
        JournalIntent {
            at: 1.0,
            path: "/r/a".into(),
            root: "/r".into(),
            kind: kind.into(),
            target: target.into(),
            before: before.into(),
            cause: "self-heal: owner".into(),
            requester_uid: None,
        }
    }

    #[test]
    fn a_change_counts_as_made_only_when_the_file_is_what_it_wanted_and_not_what_it_was() {
        let i = intent("chown", "1000:-", "0:0");
        assert_eq!(verdict(&i, true, "1000:0"), Some("1000:0".into()));
        assert_eq!(verdict(&i, false, "0:0"), None, "not made");
        assert_eq!(verdict(&i, false, "2000:0"), None, "someone else's change");
        // Already what it wanted when planned: nothing to claim.
        let i = intent("chmod", "-0002", "0755");
        assert_eq!(verdict(&i, true, "0755"), None);
    }

    #[test]
    fn every_operation_reads_back_from_its_journal_form() {
        use goguard_policy::Operation;
        let ops = [
            Operation::Chown {
                uid: Some(1000),
                gid: None,
            },
            Operation::Chown {
                uid: None,
                gid: Some(0),
            },
            Operation::Chmod {
                set: 0o060,
                clear: 0o6002,
            },
            Operation::Chmod { set: 0, clear: 0o2 },
            Operation::SetAcl {
                spec: "g:1000:rwx,d:g:1000:rwx".into(),
            },
            Operation::RemoveAclEntry {
                spec: "u:1001".into(),
            },
            Operation::Relabel {
                context: "system_u:object_r:user_home_t:s0".into(),
            },
        ];
        for op in ops {
            let (kind, target) = crate::repair::describe(&op);
            assert_eq!(
                crate::repair::parse_operation(kind, &target),
                Some(op.clone()),
                "{kind} {target}"
            );
        }
        for (kind, target) in [
            ("chown", "1000"),
            ("chown", "x:1"),
            ("chmod", ""),
            ("chmod", "+99"),
            ("chmod", "*0644"),
            ("chmod", "+17777"),
            ("rm", "-rf"),
        ] {
            assert_eq!(
                crate::repair::parse_operation(kind, target),
                None,
                "{kind} {target}"
            );
        }
    }
}
