//! Scans and repairs of one cache root: walks it through goguard-fs (never
//! following a symlink, never leaving the root, never crossing a mount),
//! asks goguard-policy what drifted and what to change, and applies the
//! changes through each entry's fd. Every applied change is logged at info
//! and returned for the journal. Runs on a blocking thread: the walk and the
//! label database are synchronous (and the label handle is not `Send`).

use std::path::{Path, PathBuf};

use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, FileContexts, FileKind, Outcome, RootDir, WalkOptions};
use goguard_policy::drift::{FileType, OwnerTally};
use goguard_policy::{CacheRoot, DriftKind, Finding, HealAction, Observed, Operation};

/// What a scan found in one root.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub exists: bool,
    pub entries: u64,
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
    /// The walk ended early because goguardd is stopping.
    pub stopped: bool,
}

/// One change planned or made.
#[derive(Debug, Clone)]
pub struct Action {
    pub path: PathBuf,
    pub operation: String,
    pub before: String,
    pub after: String,
    pub applied: bool,
    pub error: Option<String>,
    pub fixes: Vec<String>,
}

/// What a repair did.
#[derive(Debug, Default)]
pub struct RepairReport {
    pub actions: Vec<Action>,
    /// Findings left after the repair (alerts, failures, or kinds not asked for).
    pub remaining: Vec<Finding>,
    /// The walk itself, with `findings` as they stand after the repair (what
    /// was fixed removed), so a self-healing scan needs no second walk.
    pub scan: ScanReport,
}

/// An ACL as the policy sees it: no entries when it is minimal (plain mode bits).
fn policy_acl(acl: &goguard_fs::Acl, is_default: bool) -> Vec<goguard_policy::acl::AclEntry> {
    use goguard_fs::acl::Tag;
    use goguard_policy::acl::{AclEntry, AclTag};
    if acl.entries().is_empty() || (!is_default && acl.is_minimal()) {
        return Vec::new();
    }
    acl.entries()
        .iter()
        .map(|e| AclEntry {
            tag: match e.tag {
                Tag::UserObj => AclTag::UserObj,
                Tag::User(id) => AclTag::User(id),
                Tag::GroupObj => AclTag::GroupObj,
                Tag::Group(id) => AclTag::Group(id),
                Tag::Mask => AclTag::Mask,
                Tag::Other => AclTag::Other,
            },
            perms: e.perm,
        })
        .collect()
}

/// Reads an entry's access and default ACLs for the policy (only for roots
/// that declare ACLs: reading costs an open and two xattr reads).
fn observe_acls(
    entry: &mut goguard_fs::Entry,
) -> (
    Vec<goguard_policy::acl::AclEntry>,
    Vec<goguard_policy::acl::AclEntry>,
) {
    match entry.acl_state() {
        Ok(state) => (
            policy_acl(&state.access, false),
            policy_acl(&state.default, true),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

pub(crate) fn st_mode(kind: FileKind, perms: u32) -> u32 {
    let t = match kind {
        FileKind::File => libc::S_IFREG,
        FileKind::Dir => libc::S_IFDIR,
        FileKind::Symlink => libc::S_IFLNK,
        FileKind::Fifo => libc::S_IFIFO,
        FileKind::Socket => libc::S_IFSOCK,
        FileKind::CharDevice => libc::S_IFCHR,
        FileKind::BlockDevice | FileKind::Unknown => libc::S_IFBLK,
    };
    t | perms
}

/// Is `rel` inside the subtree `sub` (or `sub` inside `rel`, an ancestor we
/// must walk through)?
fn on_path(rel: &Path, sub: &Path) -> (bool, bool) {
    (rel.starts_with(sub), sub.starts_with(rel))
}

/// The facts goguard-policy judges about one entry: its metadata, its current label and
/// the one `contexts` expects (with whether the current type is one of the policy's
/// customizable types, which file_contexts does not override), its access and default
/// ACLs, a symlink's target. The one place the daemon builds an [`Observed`].
pub fn observe_entry(
    rel: &Path,
    meta: &goguard_fs::Meta,
    (label, expected_label): (Option<String>, Option<String>),
    contexts: Option<&FileContexts>,
    (acl_access, acl_default): (
        Vec<goguard_policy::acl::AclEntry>,
        Vec<goguard_policy::acl::AclEntry>,
    ),
    link_target: Option<String>,
) -> Observed {
    let label_customizable = match (contexts, &label) {
        (Some(fc), Some(l)) => fc.is_customizable(l),
        _ => false,
    };
    Observed {
        rel_path: rel.to_path_buf(),
        file_type: FileType::from_mode(meta.st_mode()),
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        acl_access,
        acl_default,
        label,
        expected_label,
        label_customizable,
        link_target,
        nlink: meta.nlink,
    }
}

/// Walks `root` (only `subtree` when given) and evaluates every entry.
/// With `visit`, each entry's findings are handed over with the entry (valid during the
/// call only).
pub fn scan(
    root: &CacheRoot,
    contexts: Option<&FileContexts>,
    subtree: Option<&Path>,
    mut visit: impl FnMut(&goguard_fs::WalkEntry<'_>, &[Finding], &RootDir),
) -> ScanReport {
    let mut report = ScanReport::default();
    let dir = match crate::roots::open_root(root) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return report,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    report.exists = true;
    let mut tally = OwnerTally::default();
    let mut findings = Vec::new();
    let mut label_buf = Vec::new();
    let mut visitor = FnVisitor(|entry: &goguard_fs::WalkEntry<'_>| {
        if crate::stop::stopping() {
            report.stopped = true;
            return Control::Stop;
        }
        if let Some(sub) = subtree {
            let (inside, ancestor) = on_path(entry.rel, sub);
            if !inside {
                return if ancestor {
                    Control::Continue
                } else {
                    Control::SkipSubtree
                };
            }
        }
        report.entries += 1;
        let meta = entry.meta;
        let (label, expected_label) = match contexts {
            Some(fc) => {
                let current = entry
                    .read_label(&mut label_buf)
                    .ok()
                    .filter(|has| *has)
                    .map(|_| {
                        String::from_utf8_lossy(&label_buf)
                            .trim_end_matches('\0')
                            .to_owned()
                    });
                let abs = dir.abs_path(entry.rel);
                (current, fc.lookup(&abs, st_mode(meta.kind, meta.mode)))
            }
            None => (None, None),
        };
        let link_target = if meta.kind == FileKind::Symlink {
            rustix::fs::readlinkat(entry.dir_fd, entry.name, Vec::new())
                .ok()
                .map(|t| t.to_string_lossy().into_owned())
        } else {
            None
        };
        let (acl_access, acl_default) =
            if root.expected.acl.is_some() && matches!(meta.kind, FileKind::File | FileKind::Dir) {
                match entry.open() {
                    Ok(mut e) => observe_acls(&mut e),
                    Err(_) => (Vec::new(), Vec::new()),
                }
            } else {
                (Vec::new(), Vec::new())
            };
        let obs = observe_entry(
            entry.rel,
            &meta,
            (label, expected_label),
            contexts,
            (acl_access, acl_default),
            link_target,
        );
        tally.add(&obs);
        let found = goguard_policy::evaluate(root, &obs);
        visit(entry, &found, &dir);
        findings.extend(found);
        Control::Continue
    });
    let stats = goguard_fs::walk(&dir, &WalkOptions::default(), &mut visitor);
    if stats.errors > 0 {
        report
            .errors
            .push(format!("{} entries could not be read", stats.errors));
    }
    if let Some(f) = goguard_policy::drift::mixed_owners(root, &tally) {
        findings.push(f);
    }
    report.findings = findings;
    report
}

/// Where the changes of a repair are journaled, ahead of time: `intend` before any of
/// a batch's changes is made, `settle` once all were tried (see `ledger`).
pub trait ChangeJournal {
    /// Makes `planned` durable as intents, or says why not; then none may be made.
    fn intend(&mut self, planned: &[Action]) -> Result<Vec<i64>, String>;
    /// Records what became of the intents `ids`: `tried` are the same changes, in order,
    /// with their outcome (`applied`, or `error`).
    fn settle(&mut self, ids: Vec<i64>, tried: &[Action]);
}

/// Entries with changes planned that one write-ahead batch covers: bounded, so a crash
/// leaves at most this many intents to settle per writer, and the fds held stay few.
pub const BATCH: usize = 256;

/// An entry opened beneath its root (its fd pins the inode) with the changes planned for
/// it, in order (a chown before the chmod that follows it).
pub struct PlannedEntry {
    entry: goguard_fs::Entry,
    changes: Vec<(Operation, Action)>,
}

impl PlannedEntry {
    /// Opens nothing: plans `ops` on `entry`, each action's `before` read from its fd.
    /// A hard-linked file is refused here, before any intent is written: a change would
    /// reach its other names, which may lie outside the root.
    pub fn new(
        mut entry: goguard_fs::Entry,
        path: PathBuf,
        ops: impl IntoIterator<Item = goguard_policy::plan::PlannedOp>,
    ) -> Result<PlannedEntry, Vec<Action>> {
        let meta = *entry.meta();
        let mut changes = Vec::new();
        let mut refused = Vec::new();
        for planned in ops {
            let mut action = new_action(path.clone(), &planned.op);
            action.fixes = planned
                .fixes
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect();
            if meta.kind == FileKind::File && meta.nlink > 1 {
                action.error = Some(format!(
                    "not changed: hard-linked ({} names), other names may lie outside the root",
                    meta.nlink
                ));
                refused.push(action);
                continue;
            }
            action.before = observed(&mut entry, &planned.op);
            changes.push((planned.op, action));
        }
        if refused.is_empty() {
            Ok(PlannedEntry { entry, changes })
        } else {
            Err(refused)
        }
    }

    fn len(&self) -> usize {
        self.changes.len()
    }
}

/// Makes the changes of `batch`, journaled ahead: their intents are written first (one
/// transaction), then each change is made through its entry's fd, then the outcomes are
/// recorded (one transaction). When the intents cannot be written nothing is changed.
/// A dry run only returns the plan. Actions come back in the batch's order.
pub fn execute(
    batch: Vec<PlannedEntry>,
    journal: &mut dyn ChangeJournal,
    dry_run: bool,
) -> Vec<Action> {
    let planned: Vec<Action> = batch
        .iter()
        .flat_map(|p| p.changes.iter().map(|(_, a)| a.clone()))
        .collect();
    if dry_run || planned.is_empty() {
        return planned;
    }
    let ids = match journal.intend(&planned) {
        Ok(ids) => ids,
        Err(why) => {
            tracing::warn!(changes = planned.len(), error = %why,
                "changes not made: the journal cannot record them first");
            return planned
                .into_iter()
                .map(|a| Action {
                    error: Some(format!("not changed: the journal cannot record it ({why})")),
                    ..a
                })
                .collect();
        }
    };
    let mut tried = Vec::with_capacity(planned.len());
    for PlannedEntry { mut entry, changes } in batch {
        for (op, action) in changes {
            tried.push(apply_to(&mut entry, action, &op));
        }
    }
    journal.settle(ids, &tried);
    tried
}

/// One entry's queued plan inside a repair walk.
struct Queued {
    planned: PlannedEntry,
    wanted: Vec<Finding>,
}

/// What a repair walk does with each batch of planned changes.
struct RepairBatch<'a> {
    root: &'a CacheRoot,
    queued: Vec<Queued>,
    changes: usize,
    dry_run: bool,
    out: RepairReport,
    fixed: std::collections::HashSet<(PathBuf, DriftKind)>,
}

impl RepairBatch<'_> {
    fn flush(&mut self, journal: &mut dyn ChangeJournal) {
        if self.queued.is_empty() {
            return;
        }
        let queued = std::mem::take(&mut self.queued);
        self.changes = 0;
        let mut wanted = Vec::with_capacity(queued.len());
        let batch = queued
            .into_iter()
            .map(|q| {
                wanted.push((
                    q.planned.len(),
                    q.planned.entry.rel_path().to_path_buf(),
                    q.wanted,
                ));
                q.planned
            })
            .collect();
        let mut actions = execute(batch, journal, self.dry_run).into_iter();
        for (n, rel, wanted) in wanted {
            for action in actions.by_ref().take(n) {
                self.record(&rel, &wanted, action);
            }
        }
    }

    fn record(&mut self, rel: &Path, wanted: &[Finding], action: Action) {
        if action.applied {
            tracing::info!(
                root = %self.root.path.display(),
                path = %action.path.display(),
                operation = action.operation,
                before = action.before,
                after = action.after,
                "repaired"
            );
        }
        let fixes = |f: &&Finding| action.fixes.iter().any(|k| k == f.kind.as_str());
        if action.error.is_some() {
            self.out
                .remaining
                .extend(wanted.iter().filter(fixes).cloned());
        } else if !self.dry_run {
            self.fixed.extend(
                wanted
                    .iter()
                    .filter(fixes)
                    .map(|f| (rel.to_path_buf(), f.kind)),
            );
        }
        self.out.actions.push(action);
    }
}

/// Scans `root` (or `subtree`) and repairs what the heal policy allows, or,
/// for a requested repair (`forced`), every repairable finding not turned
/// `off`. `kinds` limits the drift kinds; `dry_run` changes nothing. Changes
/// are made in batches of [`BATCH`] entries, each journaled ahead in `journal`.
/// When goguardd is stopping the walk ends and the batch not yet begun is not
/// made (nothing of it was changed, so nothing is owed to the journal).
#[allow(clippy::too_many_arguments)]
pub fn repair(
    root: &CacheRoot,
    contexts: Option<&FileContexts>,
    subtree: Option<&Path>,
    kinds: &[DriftKind],
    forced: bool,
    dry_run: bool,
    allowed: &mut dyn FnMut(&Path, DriftKind) -> bool,
    journal: &mut dyn ChangeJournal,
) -> RepairReport {
    let mut heal = root.heal;
    if forced {
        for action in [
            &mut heal.owner,
            &mut heal.mode,
            &mut heal.world_writable,
            &mut heal.acl,
            &mut heal.label,
        ] {
            if *action == HealAction::Alert {
                *action = HealAction::Auto;
            }
        }
    }
    let mut batch = RepairBatch {
        root,
        queued: Vec::new(),
        changes: 0,
        dry_run,
        out: RepairReport::default(),
        fixed: Default::default(),
    };
    let report = scan(root, contexts, subtree, |walked, found, dir| {
        let rel = walked.rel;
        let wanted: Vec<Finding> = found
            .iter()
            .filter(|f| kinds.is_empty() || kinds.contains(&f.kind))
            .filter(|f| allowed(rel, f.kind))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return;
        }
        let plan = goguard_policy::plan(&wanted, &heal);
        batch.out.remaining.extend(plan.alerts.iter().cloned());
        if plan.ops.is_empty() {
            return;
        }
        let path = dir.abs_path(rel);
        let entry = match walked.open() {
            Ok(e) => e,
            Err(e) => {
                for op in plan.ops {
                    let mut action = new_action(path.clone(), &op.op);
                    action.fixes = op.fixes.iter().map(|k| k.as_str().to_owned()).collect();
                    action.error = Some(e.to_string());
                    batch.record(rel, &wanted, action);
                }
                return;
            }
        };
        match PlannedEntry::new(entry, path, plan.ops) {
            Ok(planned) => {
                batch.changes += planned.len();
                batch.queued.push(Queued { planned, wanted });
                if batch.queued.len() >= BATCH {
                    batch.flush(journal);
                }
            }
            Err(refused) => {
                for action in refused {
                    batch.record(rel, &wanted, action);
                }
            }
        }
    });
    if !report.stopped {
        batch.flush(journal);
    }
    let RepairBatch { mut out, fixed, .. } = batch;
    let failed: std::collections::HashSet<(PathBuf, DriftKind)> = out
        .remaining
        .iter()
        .map(|f| (f.rel_path.clone(), f.kind))
        .collect();
    out.scan = ScanReport {
        findings: report
            .findings
            .into_iter()
            .filter(|f| {
                let key = (f.rel_path.clone(), f.kind);
                !fixed.contains(&key) || failed.contains(&key)
            })
            .collect(),
        ..report
    };
    out
}

/// The action record of `op` on `path`, before anything is done.
fn new_action(path: PathBuf, op: &Operation) -> Action {
    let (name, target) = describe(op);
    Action {
        path,
        operation: name.to_owned(),
        before: String::new(),
        after: target,
        applied: false,
        error: None,
        fixes: Vec::new(),
    }
}

/// An operation as the journal names it: its kind and its argument (what the entry is to
/// become). [`parse_operation`] reads it back.
pub fn describe(op: &Operation) -> (&'static str, String) {
    match op {
        Operation::Chown { uid, gid } => (
            "chown",
            format!(
                "{}:{}",
                uid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                gid.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
            ),
        ),
        Operation::Chmod { set, clear } => ("chmod", mode_change(*set, *clear)),
        Operation::SetAcl { spec } => ("setfacl -m", spec.clone()),
        Operation::RemoveAclEntry { spec } => ("setfacl -x", spec.clone()),
        Operation::Relabel { context } => ("relabel", context.clone()),
    }
}

/// The operation [`describe`] named, or `None` when `kind` and `target` are not one.
pub fn parse_operation(kind: &str, target: &str) -> Option<Operation> {
    let id = |s: &str| -> Option<Option<u32>> {
        if s == "-" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    match kind {
        "chown" => {
            let (u, g) = target.split_once(':')?;
            Some(Operation::Chown {
                uid: id(u)?,
                gid: id(g)?,
            })
        }
        "chmod" => {
            let (mut set, mut clear) = (0, 0);
            for part in target.split(' ').filter(|p| !p.is_empty()) {
                let (sign, bits) = part.split_at_checked(1)?;
                let bits = u32::from_str_radix(bits, 8).ok().filter(|b| *b <= 0o7777)?;
                match sign {
                    "+" => set |= bits,
                    "-" => clear |= bits,
                    _ => return None,
                }
            }
            (set | clear != 0).then_some(Operation::Chmod { set, clear })
        }
        "setfacl -m" => Some(Operation::SetAcl {
            spec: target.to_owned(),
        }),
        "setfacl -x" => Some(Operation::RemoveAclEntry {
            spec: target.to_owned(),
        }),
        "relabel" => Some(Operation::Relabel {
            context: target.to_owned(),
        }),
        _ => None,
    }
}

/// What the entry's fd shows now of what `op` changes, rendered as in the journal.
pub fn observed(entry: &mut goguard_fs::Entry, op: &Operation) -> String {
    let meta = *entry.meta();
    match op {
        Operation::Chown { .. } => format!("{}:{}", meta.uid, meta.gid),
        Operation::Chmod { .. } => format!("{:04o}", meta.mode),
        Operation::Relabel { .. } => entry.label().ok().flatten().unwrap_or_default(),
        Operation::SetAcl { .. } | Operation::RemoveAclEntry { .. } => match entry.acl_state() {
            Ok(state) => state.getfacl_omit_header().trim_end().replace('\n', ","),
            Err(_) => String::new(),
        },
    }
}

/// Whether the entry already is what `op` makes it (read from its fd; changes nothing).
pub fn satisfied(entry: &mut goguard_fs::Entry, op: &Operation) -> bool {
    let meta = *entry.meta();
    match op {
        Operation::Chown { uid, gid } => {
            uid.is_none_or(|u| u == meta.uid) && gid.is_none_or(|g| g == meta.gid)
        }
        Operation::Chmod { set, clear } => meta.mode & set == *set && meta.mode & clear == 0,
        Operation::Relabel { context } => {
            entry.label().ok().flatten().as_deref() == Some(context.as_str())
        }
        Operation::SetAcl { spec } | Operation::RemoveAclEntry { spec } => {
            let remove = matches!(op, Operation::RemoveAclEntry { .. });
            let Ok(ops) = goguard_fs::acl::parse_ops(spec, remove, &|_, _| None) else {
                return false;
            };
            match entry.acl_state() {
                Ok(state) => goguard_fs::acl::plan(&state, meta.kind == FileKind::Dir, &ops)
                    .is_ok_and(|p| p.is_noop()),
                Err(_) => false,
            }
        }
    }
}

/// Makes one planned change through the entry's fd (which pins the inode) and fills in
/// what happened: the real before and after, `applied`, or the error.
fn apply_to(entry: &mut goguard_fs::Entry, mut action: Action, op: &Operation) -> Action {
    let meta = *entry.meta();
    // Read again: an earlier change of the same entry (a chown) may have changed it.
    action.before = observed(entry, op);
    let result: Result<bool, String> = match op {
        Operation::Chown { uid, gid } => match entry.chown(*uid, *gid) {
            Ok(Outcome::Changed { after, .. }) => {
                action.after = format!("{}:{}", after.uid, after.gid);
                let mode_now = entry.meta().mode;
                if mode_now != meta.mode {
                    // The kernel and goguard-fs dropped setuid/setgid with the owner.
                    action.after += &format!(" (mode {:04o} → {mode_now:04o})", meta.mode);
                }
                Ok(true)
            }
            Ok(Outcome::AlreadyCompliant) => Ok(false),
            Err(e) => Err(e.to_string()),
        },
        Operation::Chmod { set, clear } => match entry.change_mode(*set, *clear) {
            Ok(Outcome::Changed { before, after }) => {
                // The journal keeps the real modes, read from the fd around the change.
                action.before = format!("{before:04o}");
                action.after = format!("{after:04o}");
                Ok(true)
            }
            Ok(Outcome::AlreadyCompliant) => Ok(false),
            Err(e) => Err(e.to_string()),
        },
        Operation::Relabel { context } => entry
            .set_label(context)
            .map(|o| changed(&o))
            .map_err(|e| e.to_string()),
        Operation::SetAcl { spec } | Operation::RemoveAclEntry { spec } => {
            let remove = matches!(op, Operation::RemoveAclEntry { .. });
            // Plans carry numeric ids, so no name needs resolving.
            match goguard_fs::acl::parse_ops(spec, remove, &|_, _| None) {
                Ok(ops) => entry
                    .apply_acl(&ops)
                    .map(|o| changed(&o))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("bad ACL spec {spec:?}: {e}")),
            }
        }
    };
    match result {
        Ok(applied) => action.applied = applied,
        Err(e) => action.error = Some(e),
    }
    action
}

/// `chmod`'s symbolic form of a relative change, e.g. `+0060 -6002`.
fn mode_change(set: u32, clear: u32) -> String {
    let mut parts = Vec::new();
    if set != 0 {
        parts.push(format!("+{set:04o}"));
    }
    if clear != 0 {
        parts.push(format!("-{clear:04o}"));
    }
    parts.join(" ")
}

fn changed<T>(o: &Outcome<T>) -> bool {
    matches!(o, Outcome::Changed { .. })
}

/// What healing one path found and did.
#[derive(Debug, Default)]
pub struct PathHeal {
    /// Findings on the path before healing.
    pub findings: Vec<Finding>,
    /// Changes made (and failures).
    pub actions: Vec<Action>,
}

/// One path examined, with the changes its heal policy allows planned (not made).
pub struct PathPlan {
    /// Findings on the path as examined.
    pub findings: Vec<Finding>,
    planned: Option<PlannedEntry>,
    /// Changes refused before any was made (a hard-linked file).
    refused: Vec<Action>,
}

/// Examines one entry of `root` (after an inotify notice) and plans what the heal policy
/// marks `auto`, unless `allowed` refuses a drift kind (the loop guard). Never walks the
/// root: one `openat2` beneath it. Changes nothing; [`heal`] makes the changes.
pub fn examine_path(
    root: &CacheRoot,
    dir: &RootDir,
    contexts: Option<&FileContexts>,
    rel: &Path,
    allowed: &mut dyn FnMut(&Path, DriftKind) -> bool,
) -> PathPlan {
    let mut out = PathPlan {
        findings: Vec::new(),
        planned: None,
        refused: Vec::new(),
    };
    let mut entry = match dir.open_entry(rel) {
        Ok(e) => e,
        Err(_) => return out, // gone already, or refused (a symlink mid-path)
    };
    let meta = *entry.meta();
    let (label, expected_label) = match contexts {
        Some(fc) if meta.kind != FileKind::Symlink => (
            entry.label().ok().flatten(),
            fc.lookup(&dir.abs_path(rel), st_mode(meta.kind, meta.mode)),
        ),
        _ => (None, None),
    };
    let (acl_access, acl_default) =
        if root.expected.acl.is_some() && matches!(meta.kind, FileKind::File | FileKind::Dir) {
            observe_acls(&mut entry)
        } else {
            (Vec::new(), Vec::new())
        };
    let obs = observe_entry(
        rel,
        &meta,
        (label, expected_label),
        contexts,
        (acl_access, acl_default),
        None,
    );
    out.findings = goguard_policy::evaluate(root, &obs);
    let wanted: Vec<Finding> = out
        .findings
        .iter()
        .filter(|f| allowed(rel, f.kind))
        .cloned()
        .collect();
    let plan = goguard_policy::plan(&wanted, &root.heal);
    if !plan.ops.is_empty() {
        // The entry observed above: its fd pins the inode, no second lookup.
        match PlannedEntry::new(entry, dir.abs_path(rel), plan.ops) {
            Ok(p) => out.planned = Some(p),
            Err(refused) => out.refused = refused,
        }
    }
    out
}

/// Makes the changes of examined paths, as one write-ahead batch in `journal`; one
/// [`PathHeal`] per plan, in order.
pub fn heal(plans: Vec<PathPlan>, journal: &mut dyn ChangeJournal) -> Vec<PathHeal> {
    let mut shapes = Vec::with_capacity(plans.len());
    let mut batch = Vec::new();
    for plan in plans {
        let n = plan.planned.as_ref().map_or(0, PlannedEntry::len);
        shapes.push((plan.findings, plan.refused, n));
        batch.extend(plan.planned);
    }
    let mut made = execute(batch, journal, false).into_iter();
    shapes
        .into_iter()
        .map(|(findings, mut actions, n)| {
            actions.extend(made.by_ref().take(n));
            PathHeal { findings, actions }
        })
        .collect()
}

/// [`examine_path`] and [`heal`] of one path.
pub fn heal_path(
    root: &CacheRoot,
    dir: &RootDir,
    contexts: Option<&FileContexts>,
    rel: &Path,
    allowed: &mut dyn FnMut(&Path, DriftKind) -> bool,
    journal: &mut dyn ChangeJournal,
) -> PathHeal {
    let plan = examine_path(root, dir, contexts, rel, allowed);
    heal(vec![plan], journal).pop().unwrap_or_default()
}
