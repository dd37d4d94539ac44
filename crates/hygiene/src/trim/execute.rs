//! The trim executor: opens a GOCACHE root through goguard-fs, lists its `00`..`ff`
//! directories a few at a time (never following a symlink: a symlinked `ab` is skipped and
//! reported), reads the `-a` records the plan needs (those of `-a` files Go's age rule keeps;
//! an expired `-a` goes whatever it names), asks [`super::plan`] what to remove, removes by
//! `unlinkat` relative to the opened directory's fd (after checking the name is still the
//! listed inode with the listed mtime: a build that used the entry since the listing
//! refreshed its mtime, and the entry is kept), and writes `trim.txt` as Go's
//! `lockedfile.Write` does.
//!
//! Removal runs in two phases over all directories, each directory by one thread: first
//! every `-a` and stray, then every `-d`. An `-a` may name a `-d` in any directory, so no
//! `-d` is touched before all `-a` removals are done; an `-a` that was planned to go but
//! stayed (used since the listing, replaced, not removable) is read again and keeps the
//! `-d` it names. So a kept `-a` never loses its `-d`.
//!
//! Must never remove anything outside the `00`..`ff` directories, a directory, a symlink, or
//! a file that was not in the listing; must never follow a symlink or cross a mount.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use goguard_fs::RootDir;
use rustix::fs::FileType;

use super::parallel;
use super::plan::{CacheEntry, CapOutcome, Removal, RemovalReason, TrimPlan, TrimPolicy, plan};
use crate::beneath::{self, UnlinkOutcome};
use crate::error::{HygieneError, Result};
use crate::gocache::{
    self, ACTION_ENTRY_SIZE, ActionRecord, ActionRecordError, CacheId, EntryKind, EntryName,
    TRIM_TXT, TrimDue,
};

/// What happened to one planned removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalOutcome {
    /// Dry run: it would be removed.
    Planned,
    /// Removed.
    Removed,
    /// Already gone when we got to it.
    AlreadyGone,
    /// Used (mtime refreshed) since the listing: kept.
    KeptUsed,
    /// Replaced by another file since the listing: kept.
    KeptReplaced,
    /// No longer a regular file: kept.
    KeptNotAFile,
    /// A `-d` whose referring `-a` was kept: kept with it.
    KeptWithAction,
    /// Not tried: the trim was asked to stop (goguardd is stopping). Harmless: an `-a`
    /// always goes before its `-d`, and a later trim finishes the job.
    KeptStopping,
    /// The unlink failed.
    Failed(String),
}

impl RemovalOutcome {
    /// True when the file is gone (removed now or before).
    pub fn is_gone(&self) -> bool {
        matches!(self, RemovalOutcome::Removed | RemovalOutcome::AlreadyGone)
    }
}

/// One row per planned removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalRow {
    /// Path relative to the cache root, `ab/<name>`.
    pub path: String,
    /// Size when listed.
    pub size: u64,
    /// Why it was planned.
    pub reason: RemovalReason,
    /// What happened.
    pub outcome: RemovalOutcome,
}

/// A `00`..`ff` directory that could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDir {
    /// `ab`.
    pub dir: String,
    /// Why (a symlink, a mount crossing, an I/O error).
    pub error: String,
}

/// The result of one trim of one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimReport {
    /// The root as given.
    pub root: PathBuf,
    /// When the trim ran.
    pub now: SystemTime,
    /// `trim.txt`'s verdict.
    pub due: TrimDue,
    /// Whether Go's age rule was applied.
    pub age_trim: bool,
    /// Whether the cache was listed at all (not when nothing was due and there is no cap).
    pub scanned: bool,
    /// Dry run: nothing was changed.
    pub dry_run: bool,
    /// Entries listed and their bytes.
    pub entries_scanned: u64,
    /// Bytes of the listed entries.
    pub bytes_scanned: u64,
    /// Entries actually removed (or that would be, in a dry run).
    pub entries_removed: u64,
    /// Bytes actually freed (or that would be).
    pub bytes_freed: u64,
    /// The cap's outcome (as planned).
    pub cap: Option<CapOutcome>,
    /// Whether `trim.txt` was written.
    pub trim_txt_written: bool,
    /// Every planned removal and what happened to it.
    pub removals: Vec<RemovalRow>,
    /// Directories that could not be listed.
    pub skipped_dirs: Vec<SkippedDir>,
    /// Names ending in `-a`/`-d` that are not regular files (left alone; Go would follow a
    /// symlink here, we never do).
    pub not_regular: u64,
}

impl TrimReport {
    /// Bytes of the entries left (listed bytes less what was freed).
    pub fn bytes_kept(&self) -> u64 {
        self.bytes_scanned - self.bytes_freed
    }
}

/// The listing of a cache's `00`..`ff` directories, with their fds kept for removal.
pub struct Listing {
    /// The entries, directory by directory (`00` first), each directory in `getdents` order.
    pub entries: Vec<CacheEntry>,
    /// `dirs[b]`: the opened directory `%02x` of `b`, when it could be opened.
    dirs: Vec<Option<OwnedFd>>,
    /// Directories that could not be opened or listed.
    pub skipped_dirs: Vec<SkippedDir>,
    /// Non-regular `-a`/`-d` names.
    pub not_regular: u64,
}

/// One directory's part of a [`Listing`].
struct DirListing {
    fd: Option<OwnedFd>,
    entries: Vec<CacheEntry>,
    skipped: Option<SkippedDir>,
    not_regular: u64,
}

/// Lists the `00`..`ff` directories of an opened cache root, [`parallel::workers`]
/// directories at a time. Directories that do not exist are skipped silently (Go's
/// `trimSubdir` does the same); other failures are reported.
///
/// `-a` records are read, except for `-a` files whose mtime is before `skip_records_before`:
/// pass Go's age cutoff when the age rule applies (it removes them whatever they say, see
/// [`super::plan`]), `None` to read every record (a cap-only trim reads them all anyway).
pub fn list(root: &RootDir, skip_records_before: Option<SystemTime>) -> Result<Listing> {
    let per_dir = parallel::run_in_order(256, parallel::workers(), |b| {
        list_one(root, b as u8, skip_records_before)
    });
    let mut listing = Listing {
        entries: Vec::with_capacity(per_dir.iter().map(|d| d.entries.len()).sum()),
        dirs: Vec::with_capacity(256),
        skipped_dirs: Vec::new(),
        not_regular: 0,
    };
    let mut found = 0;
    for d in per_dir {
        found += usize::from(d.fd.is_some());
        listing.entries.extend(d.entries);
        listing.dirs.push(d.fd);
        listing.skipped_dirs.extend(d.skipped);
        listing.not_regular += d.not_regular;
    }
    if found == 0 && listing.skipped_dirs.is_empty() {
        return Err(HygieneError::NotAGoCache {
            path: root.path().to_path_buf(),
        });
    }
    Ok(listing)
}

fn list_one(root: &RootDir, b: u8, skip_records_before: Option<SystemTime>) -> DirListing {
    let name = format!("{b:02x}");
    let mut d = DirListing {
        fd: None,
        entries: Vec::new(),
        skipped: None,
        not_regular: 0,
    };
    match root.open_dir(&name) {
        Ok(fd) => {
            if let Err(e) = list_dir(b, &fd, skip_records_before, &mut d) {
                d.skipped = Some(SkippedDir {
                    dir: name,
                    error: e.to_string(),
                });
            }
            d.fd = Some(fd);
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            d.skipped = Some(SkippedDir {
                dir: name,
                error: e.to_string(),
            })
        }
    }
    d
}

fn list_dir(
    b: u8,
    fd: &OwnedFd,
    skip_records_before: Option<SystemTime>,
    d: &mut DirListing,
) -> std::io::Result<()> {
    beneath::for_each_entry(fd.as_fd(), |cname, d_type| {
        let Ok(name) = cname.to_str() else {
            return Ok(());
        };
        let class = gocache::classify_name(b, name);
        if class == EntryName::Other {
            return Ok(());
        }
        // d_type spares the statx of what is certainly not a regular file.
        if !matches!(d_type, FileType::RegularFile | FileType::Unknown) {
            d.not_regular += 1;
            return Ok(());
        }
        let st = match beneath::stat_at(fd.as_fd(), cname) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if st.kind != FileType::RegularFile {
            d.not_regular += 1;
            return Ok(());
        }
        let skip = skip_records_before.is_some_and(|cut| st.mtime < cut);
        let action = match class {
            // Vanished or unreadable: Go would miss on it too.
            EntryName::Entry(_, EntryKind::Action) if !skip => {
                Some(read_record(fd, name).unwrap_or(Err(ActionRecordError::Unreadable)))
            }
            _ => None,
        };
        d.entries.push(CacheEntry {
            dir: b,
            name: name.to_string(),
            size: st.size,
            mtime: st.mtime,
            ino: st.ino,
            action,
        });
        Ok(())
    })
}

/// Reads and parses the `-a` file `name` in `dir` (at most one byte more than a record, as
/// Go's `get` does), leaving its atime alone.
fn read_record(
    dir: &OwnedFd,
    name: &str,
) -> std::io::Result<std::result::Result<ActionRecord, ActionRecordError>> {
    let bytes = beneath::read_small_noatime(dir.as_fd(), Path::new(name), ACTION_ENTRY_SIZE)?;
    Ok(ActionRecord::parse(&bytes))
}

/// Trims the GOCACHE at `root_path` by Go's rules and `policy`'s cap, at time `now`.
///
/// When no age trim is due (and none is forced) and no cap is set, nothing is listed.
/// Otherwise the cache is listed, planned ([`super::plan`]) and, unless
/// [`TrimPolicy::dry_run`], the removals are carried out and `trim.txt` written (only when
/// the age rule ran, as Go does).
pub fn execute(root_path: &Path, policy: &TrimPolicy, now: SystemTime) -> Result<TrimReport> {
    execute_in(RootDir::open(root_path)?, policy, now)
}

/// [`execute`] on a root the caller opened (goguardd opens a user's root from the user's
/// home, never through a symlink).
pub fn execute_in(root: RootDir, policy: &TrimPolicy, now: SystemTime) -> Result<TrimReport> {
    execute_until(root, policy, now, &|| false)
}

/// [`execute_in`] that stops between two removals once `stop` returns true: what is left
/// is [`RemovalOutcome::KeptStopping`] and `trim.txt` is not written (the age trim did not
/// finish), so the next trim runs again.
pub fn execute_until(
    root: RootDir,
    policy: &TrimPolicy,
    now: SystemTime,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TrimReport> {
    let root_path = root.path().to_path_buf();
    let root_path = root_path.as_path();
    let trim_txt = beneath::read_locked(root.as_fd(), TRIM_TXT, 64)
        .map_err(|e| HygieneError::io("read", TRIM_TXT, e))?;
    let due = gocache::trim_due(trim_txt.as_deref(), now);
    let mut report = TrimReport {
        root: root_path.to_path_buf(),
        now,
        due,
        age_trim: false,
        scanned: false,
        dry_run: policy.dry_run,
        entries_scanned: 0,
        bytes_scanned: 0,
        entries_removed: 0,
        bytes_freed: 0,
        cap: None,
        trim_txt_written: false,
        removals: Vec::new(),
        skipped_dirs: Vec::new(),
        not_regular: 0,
    };
    if !due.is_due() && !policy.force && policy.max_bytes.is_none() {
        return Ok(report);
    }

    // Go's age rule removes every `-a` older than the cutoff whatever it names: only the
    // records of the others are needed (to keep the `-d` files they refer to).
    let age_trim = due.is_due() || policy.force;
    let skip_records_before = age_trim.then(|| gocache::age_cutoff(now));
    let listing = list(&root, skip_records_before)?;
    let plan = plan(&listing.entries, trim_txt.as_deref(), policy, now);
    report.scanned = true;
    report.age_trim = plan.age_trim;
    report.entries_scanned = plan.entries_before;
    report.bytes_scanned = plan.bytes_before;
    report.cap = plan.cap;
    report.skipped_dirs = listing.skipped_dirs.clone();
    report.not_regular = listing.not_regular;

    report.removals = apply_until(&listing, &plan, policy.dry_run, stop);
    let stopped = report
        .removals
        .iter()
        .any(|r| r.outcome == RemovalOutcome::KeptStopping);
    for row in &report.removals {
        if matches!(
            row.outcome,
            RemovalOutcome::Removed | RemovalOutcome::Planned
        ) {
            report.entries_removed += 1;
            report.bytes_freed += row.size;
        }
    }

    if let (Some(content), false, false) = (&plan.new_trim_txt, policy.dry_run, stopped) {
        // A trim.txt we create belongs to the cache's owner, like the rest of the cache.
        let meta = root.meta();
        let owner = (rustix::process::geteuid().is_root()).then_some((meta.uid, meta.gid));
        beneath::write_locked(root.as_fd(), TRIM_TXT, content.as_bytes(), owner)
            .map_err(|e| HygieneError::io("write", TRIM_TXT, e))?;
        report.trim_txt_written = true;
    }
    Ok(report)
}

/// Carries out `plan`'s removals in the directories of `listing` (the listing the plan was
/// made from), [`parallel::workers`] directories at a time, in two phases:
/// 1. `-a` and stray files, in every directory;
/// 2. `-d` files, in every directory, except those named by an `-a` that phase 1 planned to
///    remove but left in place (used, replaced or not removable since the listing): those
///    are read again now and their `-d` is kept with them ([`RemovalOutcome::KeptWithAction`]).
///    An `-a` like that which cannot be read (other than gone) keeps every `-d` of the plan.
///
/// Every file is re-checked (same inode, same mtime, still a regular file) right before its
/// `unlinkat` relative to its directory's fd. The rows come back in the plan's order. In a
/// dry run nothing is touched and every row is [`RemovalOutcome::Planned`].
pub fn apply(listing: &Listing, plan: &TrimPlan, dry_run: bool) -> Vec<RemovalRow> {
    apply_until(listing, plan, dry_run, &|| false)
}

/// [`apply`] that tries no more removal once `stop` returns true.
pub fn apply_until(
    listing: &Listing,
    plan: &TrimPlan,
    dry_run: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> Vec<RemovalRow> {
    let unlink = |listing: &Listing, r: &Removal| {
        if stop() {
            RemovalOutcome::KeptStopping
        } else {
            unlink(listing, r)
        }
    };
    let row = |r: &Removal, outcome: RemovalOutcome| RemovalRow {
        path: r.rel_path(),
        size: r.size,
        reason: r.reason,
        outcome,
    };
    if dry_run {
        return plan
            .removals
            .iter()
            .map(|r| row(r, RemovalOutcome::Planned))
            .collect();
    }
    // Removal indexes per phase and directory; `-d` files with their id.
    let mut first: Vec<Vec<usize>> = vec![Vec::new(); 256];
    let mut outputs: Vec<Vec<(usize, CacheId)>> = vec![Vec::new(); 256];
    for (i, r) in plan.removals.iter().enumerate() {
        match gocache::classify_name(r.dir, &r.name) {
            EntryName::Entry(id, EntryKind::Output) => outputs[usize::from(r.dir)].push((i, id)),
            _ => first[usize::from(r.dir)].push(i),
        }
    }
    let mut outcomes: Vec<Option<RemovalOutcome>> = vec![None; plan.removals.len()];
    let workers = parallel::workers();

    // Phase 1: -a and strays.
    let done = parallel::run_in_order(256, workers, |b| {
        first[b]
            .iter()
            .map(|&i| (i, unlink(listing, &plan.removals[i])))
            .collect::<Vec<_>>()
    });
    for (i, outcome) in done.into_iter().flatten() {
        outcomes[i] = Some(outcome);
    }

    // The outputs of the -a files that stayed after all.
    let mut keep_outputs: HashSet<CacheId> = HashSet::new();
    let mut keep_every_output = false;
    for &i in first.iter().flatten() {
        let r = &plan.removals[i];
        if outcomes[i].as_ref().is_some_and(RemovalOutcome::is_gone) {
            continue;
        }
        let EntryName::Entry(id, EntryKind::Action) = gocache::classify_name(r.dir, &r.name) else {
            continue; // a stray: Go never reads it
        };
        let Some(fd) = listing
            .dirs
            .get(usize::from(r.dir))
            .and_then(Option::as_ref)
        else {
            keep_every_output = true;
            continue;
        };
        match read_record(fd, &r.name) {
            Ok(Ok(rec)) if rec.action == id => {
                keep_outputs.insert(rec.output);
            }
            // Go would not use it: it needs no output.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => keep_every_output = true,
        }
    }

    // Phase 2: -d files.
    let done = parallel::run_in_order(256, workers, |b| {
        outputs[b]
            .iter()
            .map(|&(i, id)| {
                let outcome = if keep_every_output || keep_outputs.contains(&id) {
                    RemovalOutcome::KeptWithAction
                } else {
                    unlink(listing, &plan.removals[i])
                };
                (i, outcome)
            })
            .collect::<Vec<_>>()
    });
    for (i, outcome) in done.into_iter().flatten() {
        outcomes[i] = Some(outcome);
    }

    plan.removals
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| row(r, outcome.expect("every removal was tried")))
        .collect()
}

/// Removes one planned file if it is still the listed one.
fn unlink(listing: &Listing, r: &Removal) -> RemovalOutcome {
    let Some(fd) = listing
        .dirs
        .get(usize::from(r.dir))
        .and_then(Option::as_ref)
    else {
        return RemovalOutcome::Failed("directory not open".to_string());
    };
    match beneath::unlink_listed(fd.as_fd(), &r.name, r.ino, r.mtime) {
        Ok(UnlinkOutcome::Removed) => RemovalOutcome::Removed,
        Ok(UnlinkOutcome::Gone) => RemovalOutcome::AlreadyGone,
        Ok(UnlinkOutcome::Touched) => RemovalOutcome::KeptUsed,
        Ok(UnlinkOutcome::Replaced) => RemovalOutcome::KeptReplaced,
        Ok(UnlinkOutcome::NotAFile) => RemovalOutcome::KeptNotAFile,
        Err(e) => RemovalOutcome::Failed(e.to_string()),
    }
}
