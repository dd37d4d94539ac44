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

pub(crate) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::Regular,
        FileKind::Dir => FileType::Dir,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::Fifo,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice | FileKind::Unknown => FileType::BlockDevice,
    }
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

/// Walks `root` (only `subtree` when given) and evaluates every entry.
/// With `visit`, each entry's findings are handed over with its rel path.
pub fn scan(
    root: &CacheRoot,
    contexts: Option<&FileContexts>,
    subtree: Option<&Path>,
    mut visit: impl FnMut(&Path, &[Finding], &RootDir),
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
        if crate::daemon_state::stopping() {
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
        let obs = Observed {
            rel_path: entry.rel.to_path_buf(),
            file_type: file_type(meta.kind),
            uid: meta.uid,
            gid: meta.gid,
            mode: meta.mode,
            acl_access,
            acl_default,
            label,
            expected_label,
            link_target,
            nlink: meta.nlink,
        };
        tally.add(&obs);
        let found = goguard_policy::evaluate(root, &obs);
        visit(entry.rel, &found, &dir);
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

/// Scans `root` (or `subtree`) and repairs what the heal policy allows, or,
/// for a requested repair (`forced`), every repairable finding not turned
/// `off`. `kinds` limits the drift kinds; `dry_run` changes nothing.
pub fn repair(
    root: &CacheRoot,
    contexts: Option<&FileContexts>,
    subtree: Option<&Path>,
    kinds: &[DriftKind],
    forced: bool,
    dry_run: bool,
    allowed: &mut dyn FnMut(&Path, DriftKind) -> bool,
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
    let mut out = RepairReport::default();
    let mut fixed: std::collections::HashSet<(PathBuf, DriftKind)> = Default::default();
    let report = scan(root, contexts, subtree, |rel, found, dir| {
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
        out.remaining.extend(plan.alerts.iter().cloned());
        for op in plan.ops {
            let action = apply(dir, rel, &op.op, dry_run);
            let fixes: Vec<String> = op.fixes.iter().map(|k| k.as_str().to_owned()).collect();
            let action = Action { fixes, ..action };
            if action.applied {
                tracing::info!(
                    root = %root.path.display(),
                    path = %action.path.display(),
                    operation = action.operation,
                    before = action.before,
                    after = action.after,
                    "repaired"
                );
            }
            if action.error.is_some() {
                out.remaining.extend(
                    wanted
                        .iter()
                        .filter(|f| op.fixes.contains(&f.kind))
                        .cloned(),
                );
            } else if !dry_run {
                fixed.extend(op.fixes.iter().map(|k| (rel.to_path_buf(), *k)));
            }
            out.actions.push(action);
        }
    });
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

pub fn apply(dir: &RootDir, rel: &Path, op: &Operation, dry_run: bool) -> Action {
    let mut action = new_action(dir.abs_path(rel), op);
    let mut entry = match dir.open_entry(rel) {
        Ok(e) => e,
        Err(e) => {
            action.error = Some(e.to_string());
            return action;
        }
    };
    apply_to(&mut entry, action, op, dry_run)
}

/// The action record of `op` on `path`, before anything is done.
fn new_action(path: PathBuf, op: &Operation) -> Action {
    let mut action = Action {
        path,
        operation: String::new(),
        before: String::new(),
        after: String::new(),
        applied: false,
        error: None,
        fixes: Vec::new(),
    };
    let describe = |op: &Operation| match op {
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
    };
    let (name, target) = describe(op);
    action.operation = name.to_owned();
    action.after = target;
    action
}

/// [`apply`] on an entry already opened beneath its root (its fd pins the inode).
fn apply_to(
    entry: &mut goguard_fs::Entry,
    mut action: Action,
    op: &Operation,
    dry_run: bool,
) -> Action {
    let meta = *entry.meta();
    if meta.kind == FileKind::File && meta.nlink > 1 {
        // Checked again on the fd: a change would reach the file's other names.
        action.error = Some(format!(
            "not changed: hard-linked ({} names), other names may lie outside the root",
            meta.nlink
        ));
        return action;
    }
    action.before = match op {
        Operation::Chown { .. } => format!("{}:{}", meta.uid, meta.gid),
        Operation::Chmod { .. } => format!("{:04o}", meta.mode),
        Operation::Relabel { .. } => entry.label().ok().flatten().unwrap_or_default(),
        Operation::SetAcl { .. } | Operation::RemoveAclEntry { .. } => match entry.acl_state() {
            Ok(state) => state.getfacl_omit_header().trim_end().replace('\n', ","),
            Err(_) => String::new(),
        },
    };
    if dry_run {
        return action;
    }
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

/// Examines one entry of `root` (after an inotify notice) and applies what
/// the heal policy marks `auto`, unless `allowed` refuses a drift kind (the
/// loop guard). Never walks the root: one `openat2` beneath it.
pub fn heal_path(
    root: &CacheRoot,
    dir: &RootDir,
    contexts: Option<&FileContexts>,
    rel: &Path,
    allowed: &mut dyn FnMut(&Path, DriftKind) -> bool,
) -> PathHeal {
    let mut out = PathHeal::default();
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
    let obs = Observed {
        rel_path: rel.to_path_buf(),
        file_type: file_type(meta.kind),
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        acl_access,
        acl_default,
        label,
        expected_label,
        link_target: None,
        nlink: meta.nlink,
    };
    out.findings = goguard_policy::evaluate(root, &obs);
    let wanted: Vec<Finding> = out
        .findings
        .iter()
        .filter(|f| allowed(rel, f.kind))
        .cloned()
        .collect();
    let plan = goguard_policy::plan(&wanted, &root.heal);
    for op in plan.ops {
        // The entry observed above: its fd pins the inode, no second lookup.
        let action = apply_to(
            &mut entry,
            new_action(dir.abs_path(rel), &op.op),
            &op.op,
            false,
        );
        let fixes = op.fixes.iter().map(|k| k.as_str().to_owned()).collect();
        out.actions.push(Action { fixes, ..action });
    }
    out
}
