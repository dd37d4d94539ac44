//! The trim executor: opens a GOCACHE root through goguard-fs, lists its `00`..`ff`
//! directories (never following a symlink: a symlinked `ab` is skipped and reported), reads
//! each `-a` record, asks [`super::plan`] what to remove, removes by `unlinkat` relative to
//! the opened directory's fd (after checking the name is still the listed inode with the
//! listed mtime: a build that used the entry since the listing refreshed its mtime, and the
//! entry is kept), and writes `trim.txt` as Go's `lockedfile.Write` does.
//!
//! A `-d` is removed only after every planned `-a` removal that refers to it succeeded (or
//! found it already gone), so a skipped `-a` never loses its `-d`.
//!
//! Must never remove anything outside the `00`..`ff` directories, a directory, a symlink, or
//! a file that was not in the listing; must never follow a symlink or cross a mount.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use goguard_fs::RootDir;
use rustix::fs::FileType;

use std::collections::HashSet;

use super::plan::{CacheEntry, CapOutcome, RemovalReason, TrimPlan, TrimPolicy, plan};
use crate::beneath::{self, UnlinkOutcome};
use crate::error::{HygieneError, Result};
use crate::gocache::{
    self, ACTION_ENTRY_SIZE, ActionRecord, EntryKind, EntryName, TRIM_TXT, TrimDue,
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
    /// The entries.
    pub entries: Vec<CacheEntry>,
    /// `dirs[b]`: the opened directory `%02x` of `b`, when it could be opened.
    dirs: Vec<Option<OwnedFd>>,
    /// Directories that could not be opened or listed.
    pub skipped_dirs: Vec<SkippedDir>,
    /// Non-regular `-a`/`-d` names.
    pub not_regular: u64,
}

/// Lists the `00`..`ff` directories of an opened cache root. Directories that do not exist are
/// skipped silently (Go's `trimSubdir` does the same); other failures are reported.
pub fn list(root: &RootDir) -> Result<Listing> {
    let mut listing = Listing {
        entries: Vec::new(),
        dirs: Vec::with_capacity(256),
        skipped_dirs: Vec::new(),
        not_regular: 0,
    };
    let mut found = 0;
    for b in 0..=255u8 {
        let name = format!("{b:02x}");
        let fd = match root.open_dir(&name) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => {
                listing.dirs.push(None);
                continue;
            }
            Err(e) => {
                listing.skipped_dirs.push(SkippedDir {
                    dir: name,
                    error: e.to_string(),
                });
                listing.dirs.push(None);
                continue;
            }
        };
        found += 1;
        match list_dir(b, &fd, &mut listing) {
            Ok(()) => {}
            Err(e) => listing.skipped_dirs.push(SkippedDir {
                dir: name,
                error: e.to_string(),
            }),
        }
        listing.dirs.push(Some(fd));
    }
    if found == 0 && listing.skipped_dirs.is_empty() {
        return Err(HygieneError::NotAGoCache {
            path: root.path().to_path_buf(),
        });
    }
    Ok(listing)
}

fn list_dir(b: u8, fd: &OwnedFd, listing: &mut Listing) -> std::io::Result<()> {
    for cname in beneath::list_names(fd.as_fd())? {
        let Ok(name) = cname.to_str() else { continue };
        let class = gocache::classify_name(b, name);
        if class == EntryName::Other {
            continue;
        }
        let st = match beneath::stat_at(fd.as_fd(), &cname) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if st.kind != FileType::RegularFile {
            listing.not_regular += 1;
            continue;
        }
        let action = match class {
            EntryName::Entry(_, EntryKind::Action) => Some(
                match beneath::read_small(fd.as_fd(), Path::new(name), ACTION_ENTRY_SIZE) {
                    Ok(bytes) => ActionRecord::parse(&bytes),
                    // Vanished or unreadable: Go would miss on it too.
                    Err(_) => Err(gocache::ActionRecordError::Unreadable),
                },
            ),
            _ => None,
        };
        listing.entries.push(CacheEntry {
            dir: b,
            name: name.to_string(),
            size: st.size,
            mtime: st.mtime,
            ino: st.ino,
            action,
        });
    }
    Ok(())
}

/// Trims the GOCACHE at `root_path` by Go's rules and `policy`'s cap, at time `now`.
///
/// When no age trim is due (and none is forced) and no cap is set, nothing is listed.
/// Otherwise the cache is listed, planned ([`super::plan`]) and, unless
/// [`TrimPolicy::dry_run`], the removals are carried out and `trim.txt` written (only when
/// the age rule ran, as Go does).
pub fn execute(root_path: &Path, policy: &TrimPolicy, now: SystemTime) -> Result<TrimReport> {
    let root = RootDir::open(root_path)?;
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

    let listing = list(&root)?;
    let plan = plan(&listing.entries, trim_txt.as_deref(), policy, now);
    report.scanned = true;
    report.age_trim = plan.age_trim;
    report.entries_scanned = plan.entries_before;
    report.bytes_scanned = plan.bytes_before;
    report.cap = plan.cap;
    report.skipped_dirs = listing.skipped_dirs.clone();
    report.not_regular = listing.not_regular;

    report.removals = apply(&listing, &plan, policy.dry_run);
    for row in &report.removals {
        if matches!(
            row.outcome,
            RemovalOutcome::Removed | RemovalOutcome::Planned
        ) {
            report.entries_removed += 1;
            report.bytes_freed += row.size;
        }
    }

    if let (Some(content), false) = (&plan.new_trim_txt, policy.dry_run) {
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
/// made from): `-a` and strays first, then each `-d` only if all the `-a` removals it waits
/// for left their file gone. Every file is re-checked (same inode, same mtime, still a
/// regular file) right before its `unlinkat`. In a dry run nothing is touched and every row is
/// [`RemovalOutcome::Planned`].
pub fn apply(listing: &Listing, plan: &TrimPlan, dry_run: bool) -> Vec<RemovalRow> {
    let mut gone: HashSet<String> = HashSet::new();
    let mut rows = Vec::with_capacity(plan.removals.len());
    for r in &plan.removals {
        let path = r.rel_path();
        let outcome = if dry_run {
            RemovalOutcome::Planned
        } else if !r.after_actions.iter().all(|a| gone.contains(a)) {
            RemovalOutcome::KeptWithAction
        } else {
            match listing
                .dirs
                .get(usize::from(r.dir))
                .and_then(Option::as_ref)
            {
                None => RemovalOutcome::Failed("directory not open".to_string()),
                Some(fd) => match beneath::unlink_listed(fd.as_fd(), &r.name, r.ino, r.mtime) {
                    Ok(UnlinkOutcome::Removed) => RemovalOutcome::Removed,
                    Ok(UnlinkOutcome::Gone) => RemovalOutcome::AlreadyGone,
                    Ok(UnlinkOutcome::Touched) => RemovalOutcome::KeptUsed,
                    Ok(UnlinkOutcome::Replaced) => RemovalOutcome::KeptReplaced,
                    Ok(UnlinkOutcome::NotAFile) => RemovalOutcome::KeptNotAFile,
                    Err(e) => RemovalOutcome::Failed(e.to_string()),
                },
            }
        };
        if outcome.is_gone() {
            gone.insert(path.clone());
        }
        rows.push(RemovalRow {
            path,
            size: r.size,
            reason: r.reason,
            outcome,
        });
    }
    rows
}
