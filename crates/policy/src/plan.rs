//! Repair plans: findings plus a root's heal policy → the operations the executor runs,
//! each saying which findings it fixes, and the findings that are only reported.
//!
//! Per path, operations come in this order: `Chown` (one, merged; it may clear setuid/setgid
//! bits, so it goes before the mode), `Chmod` (one, all mode remedies merged into bits to set
//! and clear, applied to the mode the entry has *after* the chown), ACL edits (setfacl
//! recomputes the mask, so after the mode), `Relabel`.
//!
//! Privilege rule (docs/SECURITY.md): a chmod never restores a setuid/setgid bit that a chown
//! cleared. On a non-directory whose owner or group is changed, the chmod clears `0o6000` and
//! never sets it, whatever the mode rules ask: goguardd hands files to root or to a group, and
//! a setuid bit chosen by whoever owned the file before must not survive that.
//! A finding whose class is `auto` but that has no remedy (or whose path is quarantined by
//! the loop guard, which the daemon checks) is reported instead. Planning is idempotent:
//! a compliant entry has no findings, hence no operations, and every operation sets a
//! concrete target (numeric ids, resolved permissions, full mode).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::HealAction;
use crate::drift::{DriftKind, Finding, Remedy};
use crate::roots::HealPolicy;

/// The setuid and setgid bits.
pub const SETID: u32 = 0o6000;

/// One change to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `fchownat(…, AT_SYMLINK_NOFOLLOW)`; `None` leaves that id.
    Chown {
        /// New owner.
        uid: Option<u32>,
        /// New group.
        gid: Option<u32>,
    },
    /// `fchmod` to `(mode now & !clear) | set`, where "mode now" is read from the entry's fd
    /// when the change is made (after any chown of the same plan).
    Chmod {
        /// Permission bits to set.
        set: u32,
        /// Permission bits to clear (wins over nothing: `set` and `clear` never overlap).
        clear: u32,
    },
    /// `setfacl -m SPEC` (numeric ids, concrete permissions; `d:` for the default ACL).
    SetAcl {
        /// The spec.
        spec: String,
    },
    /// `setfacl -x SPEC`.
    RemoveAclEntry {
        /// The spec (no permissions).
        spec: String,
    },
    /// Set the SELinux context.
    Relabel {
        /// The full context.
        context: String,
    },
}

/// An operation on a path and what it fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOp {
    /// Relative to the root.
    pub rel_path: PathBuf,
    /// The change.
    pub op: Operation,
    /// The kinds of drift it fixes.
    pub fixes: Vec<DriftKind>,
}

/// What to do about a set of findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairPlan {
    /// Changes to make, in order.
    pub ops: Vec<PlannedOp>,
    /// Findings to report without changing anything.
    pub alerts: Vec<Finding>,
}

impl RepairPlan {
    /// Nothing to do and nothing to say.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.alerts.is_empty()
    }
}

/// Builds the plan for `findings` of one root under `heal` (see the module doc).
pub fn plan(findings: &[Finding], heal: &HealPolicy) -> RepairPlan {
    #[derive(Default)]
    struct PerPath {
        chown: Option<(Option<u32>, Option<u32>, Vec<DriftKind>)>,
        chmod: Option<(u32, u32, u32, bool, Vec<DriftKind>)>,
        acl: Vec<(Operation, DriftKind)>,
        relabel: Option<(String, DriftKind)>,
    }
    let mut alerts = Vec::new();
    let mut paths: BTreeMap<PathBuf, PerPath> = BTreeMap::new();
    for f in findings {
        match heal.action(f.kind) {
            HealAction::Off => continue,
            HealAction::Alert => {
                alerts.push(f.clone());
                continue;
            }
            HealAction::Auto => {}
        }
        let Some(remedy) = &f.remedy else {
            alerts.push(f.clone());
            continue;
        };
        let p = paths.entry(f.rel_path.clone()).or_default();
        match remedy {
            Remedy::Chown { uid, gid } => {
                let c = p.chown.get_or_insert((None, None, Vec::new()));
                c.0 = c.0.or(*uid);
                c.1 = c.1.or(*gid);
                c.2.push(f.kind);
            }
            Remedy::ModeBits {
                from,
                set,
                clear,
                dir,
            } => {
                let m = p.chmod.get_or_insert((*from, 0, 0, *dir, Vec::new()));
                m.1 |= set;
                m.2 |= clear;
                m.4.push(f.kind);
            }
            Remedy::SetAcl(spec) => {
                let op = Operation::SetAcl { spec: spec.clone() };
                if !p.acl.iter().any(|(o, _)| *o == op) {
                    p.acl.push((op, f.kind));
                }
            }
            Remedy::RemoveAclEntry(spec) => {
                let op = Operation::RemoveAclEntry { spec: spec.clone() };
                if !p.acl.iter().any(|(o, _)| *o == op) {
                    p.acl.push((op, f.kind));
                }
            }
            Remedy::Relabel(ctx) => p.relabel = Some((ctx.clone(), f.kind)),
        }
    }
    let mut ops = Vec::new();
    for (rel_path, p) in paths {
        let mut push = |op, fixes| {
            ops.push(PlannedOp {
                rel_path: rel_path.clone(),
                op,
                fixes,
            })
        };
        let chowned = p.chown.is_some();
        if let Some((uid, gid, fixes)) = p.chown {
            push(Operation::Chown { uid, gid }, fixes);
        }
        if let Some((from, mut set, mut clear, dir, fixes)) = p.chmod {
            if chowned && !dir {
                set &= !SETID;
                clear |= SETID;
            }
            set &= !clear;
            if (from & !clear) | set != from {
                push(Operation::Chmod { set, clear }, fixes);
            }
        }
        // Removals first: setfacl then recomputes the mask from what remains.
        let (removes, sets): (Vec<_>, Vec<_>) = p
            .acl
            .into_iter()
            .partition(|(o, _)| matches!(o, Operation::RemoveAclEntry { .. }));
        for (op, kind) in removes.into_iter().chain(sets) {
            push(op, vec![kind]);
        }
        if let Some((context, kind)) = p.relabel {
            push(Operation::Relabel { context }, vec![kind]);
        }
    }
    RepairPlan { ops, alerts }
}
