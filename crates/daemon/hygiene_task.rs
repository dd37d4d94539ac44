//! Go cache hygiene in the daemon: GOCACHE trims (Go's rules plus size caps) and
//! module-cache verification, on the `[hygiene]` schedules and on request (the `Trim` and
//! `VerifyModules` RPCs).
//!
//! The decisions and the file work are goguard-hygiene's; this module picks the roots, runs
//! the work on blocking threads, records each run in the store and in metrics, and sums
//! reports up in domain values (`pb` makes messages of them). It never chooses a path outside the roots goguardd already guards:
//! requests name a root, and only a root that discovery or `[[root]]` produced is touched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use goguard_hygiene::modverify::{self, Finding, IncompleteReason, VerifyOptions};
use goguard_hygiene::trim::{self, TrimPolicy, TrimReport};
use goguard_policy::{CacheRoot, RootKind};
use goguard_store::{HygieneKind, HygieneRun};
use tokio::sync::watch;

use crate::api_error::OpError;
use crate::daemon_state::{CapUnmet, DaemonState};
use crate::roots;

/// Who asked for a run.
#[derive(Debug, Clone, Copy)]
pub enum Cause {
    /// The `[hygiene]` schedule.
    Schedule,
    /// An RPC, by this uid.
    Request(u32),
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Schedule => "schedule",
            Cause::Request(_) => "request",
        }
    }

    fn uid(self) -> Option<u32> {
        match self {
            Cause::Schedule => None,
            Cause::Request(uid) => Some(uid),
        }
    }
}

/// One root's trim, summed up for the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrimOutcome {
    pub root: String,
    /// False when Go's daily rule said not yet and no size cap applies.
    pub ran: bool,
    pub reason: String,
    pub entries_removed: u64,
    pub bytes_freed: u64,
    /// Bytes of the entries listed, and of those left (0 when not listed).
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Entries removed to meet the size cap (included in `entries_removed`).
    pub evicted_for_size: u64,
    pub errors: Vec<String>,
}

/// A module (or leftover, or go.sum line) that is not intact.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleProblem {
    pub root: String,
    pub module: String,
    pub version: String,
    /// corrupted, incomplete, missing, leftover or unknown.
    pub status: String,
    pub detail: String,
}

/// One root's verification, summed up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootVerified {
    pub root: String,
    pub modules_verified: u64,
    pub modules_bad: u64,
    pub bytes_hashed: u64,
    pub errors: Vec<String>,
}

/// The finding kind of a size cap the rule could not meet.
pub const SIZE_CAP_UNMET: &str = "size_cap_unmet";

static TRIMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
static VERIFICATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The guarded roots of `kind`, optionally only `only`.
pub fn roots_of(state: &DaemonState, kind: RootKind, only: Option<&Path>) -> Vec<CacheRoot> {
    let caches = state.caches.read().expect("caches lock");
    caches
        .roots
        .iter()
        .filter(|r| r.root.kind == kind && r.exists)
        .filter(|r| only.is_none_or(|p| r.root.path == p))
        .map(|r| r.root.clone())
        .collect()
}

/// Trims `roots` (GOCACHE roots) and returns one result per root.
pub async fn trim_roots(
    state: &Arc<DaemonState>,
    roots: Vec<CacheRoot>,
    dry_run: bool,
    force: bool,
    cause: Cause,
) -> Vec<TrimOutcome> {
    let config = state.config();
    let default_cap = config.hygiene.gocache_max_size.map(|s| s.0);
    let grace = config.hygiene.size_cap_grace_secs.duration();
    let mut out = Vec::new();
    // At most two trims at a time, whoever asks: the others wait here, not on a blocking
    // thread, so trims can never exhaust the pool other work needs.
    let _permit = TRIMS.acquire().await.expect("never closed");
    for root in roots {
        let policy = TrimPolicy {
            max_bytes: root.max_size.or(default_cap),
            force,
            dry_run,
            in_use_grace: grace,
        };
        let opened = root.clone();
        let report = tokio::task::spawn_blocking(move || {
            let dir = crate::roots::open_root(&opened)?;
            trim::execute_until(dir, &policy, SystemTime::now(), &crate::stop::stopping)
        })
        .await;
        let result = match report {
            Ok(Ok(report)) => {
                record_trim(state, &report, cause, grace);
                trim_result(&report, grace)
            }
            Ok(Err(e)) => {
                tracing::warn!(root = %root.path.display(), error = %e, "trim failed");
                TrimOutcome {
                    root: root.path.display().to_string(),
                    errors: vec![e.to_string()],
                    ..Default::default()
                }
            }
            Err(e) => TrimOutcome {
                root: root.path.display().to_string(),
                errors: vec![format!("trim task failed: {e}")],
                ..Default::default()
            },
        };
        out.push(result);
    }
    out
}

fn trim_result(r: &TrimReport, grace: Duration) -> TrimOutcome {
    let ran = r.age_trim || r.cap.is_some();
    let reason = if r.age_trim {
        "Go's age rule (entries unused for 5 days)".to_owned()
    } else if r.cap.is_some() {
        "size cap only (Go's daily trim is not due yet)".to_owned()
    } else {
        "not due: trim.txt says the last trim was less than a day ago (use --force)".to_owned()
    };
    let evicted = r
        .removals
        .iter()
        .filter(|x| {
            x.outcome.is_gone()
                && matches!(
                    x.reason,
                    trim::RemovalReason::Evicted | trim::RemovalReason::UnreferencedOutput
                )
        })
        .count() as u64;
    let mut errors: Vec<String> = r
        .skipped_dirs
        .iter()
        .map(|d| format!("{}: {}", d.dir, d.error))
        .collect();
    if let Some(cap) = r.cap
        && !cap.met
    {
        errors.push(format!(
            "the size cap of {} bytes is not met ({} bytes over): every entry left was used \
             within the last {}, and a running build may still open it",
            cap.max_bytes,
            cap.excess_bytes(),
            age(grace)
        ));
    }
    TrimOutcome {
        root: r.root.display().to_string(),
        ran,
        reason,
        entries_removed: r.entries_removed,
        bytes_freed: r.bytes_freed,
        bytes_before: r.bytes_scanned,
        bytes_after: r.bytes_kept(),
        evicted_for_size: evicted,
        errors,
    }
}

fn record_trim(state: &DaemonState, r: &TrimReport, cause: Cause, grace: Duration) {
    let ran = r.age_trim || r.cap.is_some();
    if !r.dry_run && ran {
        let m = &state.metrics.hygiene;
        m.trims.inc();
        m.trim_entries_removed.inc_by(r.entries_removed);
        m.trim_bytes_freed.inc_by(r.bytes_freed);
    }
    if !r.dry_run {
        // Also when nothing ran: a root whose cap was removed loses its finding.
        record_cap(state, r, grace);
    }
    if ran || matches!(cause, Cause::Request(_)) {
        tracing::info!(
            root = %r.root.display(),
            dry_run = r.dry_run,
            entries_removed = r.entries_removed,
            bytes_freed = r.bytes_freed,
            cause = cause.as_str(),
            "trim"
        );
    }
    if !ran && matches!(cause, Cause::Schedule) {
        return; // a schedule tick that found nothing due is not worth a row
    }
    let row = HygieneRun {
        id: 0,
        at: roots::unix_now(),
        kind: HygieneKind::Trim,
        root: r.root.display().to_string(),
        cause: cause.as_str().to_owned(),
        requester_uid: cause.uid(),
        dry_run: r.dry_run,
        entries_removed: r.entries_removed,
        bytes_freed: r.bytes_freed,
        modules_verified: 0,
        modules_bad: 0,
        detail: match r.cap {
            Some(cap) if !cap.met => format!(
                "{}; size cap of {} bytes not met: {} bytes over, kept (used within {})",
                trim_result(r, grace).reason,
                cap.max_bytes,
                cap.excess_bytes(),
                age(grace)
            ),
            _ => trim_result(r, grace).reason,
        },
    };
    if let Err(e) = state
        .store
        .lock()
        .expect("store lock")
        .record_hygiene_run(&row)
    {
        tracing::warn!(error = %e, "could not record the trim in the store");
    }
}

/// Keeps `caps_unmet`, its metrics and its log up to date after a trim (not a dry run): a
/// cap the rule could not meet is a finding and a metric, never a broken build.
fn record_cap(state: &DaemonState, r: &TrimReport, grace: Duration) {
    let m = &state.metrics.hygiene;
    let mut unmet = state.caps_unmet.lock().expect("caps_unmet lock");
    match r.cap {
        Some(cap) if !cap.met => {
            m.trim_caps_unmet.inc();
            let entry = CapUnmet {
                max_bytes: cap.max_bytes,
                kept_bytes: cap.kept_bytes,
                grace_secs: grace.as_secs(),
                at: roots::unix_now(),
            };
            // Logged when it starts, not at every trim while it lasts.
            if !unmet.contains_key(&r.root) {
                tracing::warn!(
                    root = %r.root.display(),
                    max_bytes = cap.max_bytes,
                    kept_bytes = cap.kept_bytes,
                    grace_secs = grace.as_secs(),
                    "size cap not met: every entry left was used within the grace; kept rather \
                     than break a running build"
                );
            }
            unmet.insert(r.root.clone(), entry);
        }
        _ => {
            if unmet.remove(&r.root).is_some() {
                tracing::info!(root = %r.root.display(), "size cap met again");
            }
        }
    }
    let excess: u64 = unmet
        .values()
        .map(|u| u.kept_bytes.saturating_sub(u.max_bytes))
        .sum();
    m.trim_cap_excess_bytes.set(excess as i64);
}

/// Verification results: the modules that are not intact, and one summary per root.
pub struct Verification {
    pub problems: Vec<ModuleProblem>,
    pub results: Vec<RootVerified>,
}

/// Verifies `roots` (GOMODCACHE roots), optionally against go.sum `gosum` text.
pub async fn verify_roots(
    state: &Arc<DaemonState>,
    roots: Vec<CacheRoot>,
    gosum: Option<String>,
    cause: Cause,
) -> Result<Verification, OpError> {
    let lines = match gosum.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(text) => Some(
            goguard_hygiene::gosum::parse(text).map_err(|e| OpError::BadGoSum(e.to_string()))?,
        ),
        None => None,
    };
    let mut out = Verification {
        problems: Vec::new(),
        results: Vec::new(),
    };
    let _permit = VERIFICATIONS.acquire().await.expect("never closed");
    for root in roots {
        let opts = VerifyOptions {
            gosum: lines.clone(),
            ..VerifyOptions::default()
        };
        let opened = root.clone();
        let report = tokio::task::spawn_blocking(move || {
            let dir = crate::roots::open_root(&opened)?;
            modverify::verify_cache_in(dir, &opts)
        })
        .await
        .map_err(OpError::task("the verification task"))?;
        let root_s = root.path.display().to_string();
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                out.results.push(RootVerified {
                    root: root_s,
                    errors: vec![e.to_string()],
                    ..Default::default()
                });
                continue;
            }
        };
        let mut bad = 0u64;
        for m in report.problems() {
            bad += 1;
            out.problems.push(ModuleProblem {
                root: root_s.clone(),
                module: m.module.clone(),
                version: m.version.clone(),
                status: m.verdict.as_str().to_owned(),
                detail: m
                    .findings
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        for l in report.leftovers.iter().filter(|l| l.stale) {
            out.problems.push(ModuleProblem {
                root: root_s.clone(),
                module: l.path.clone(),
                version: String::new(),
                status: "leftover".into(),
                detail: format!(
                    "temporary file of an interrupted download, {} old; safe to remove",
                    age(l.age)
                ),
            });
        }
        for c in &report.gosum {
            use goguard_hygiene::modverify::GoSumOutcome as O;
            let (status, detail) = match &c.outcome {
                O::Match => continue,
                O::Mismatch { cache } => (
                    "corrupted",
                    format!(
                        "go.sum line {} says {}, the cache has {cache}",
                        c.line.line, c.line.hash
                    ),
                ),
                O::NotInCache => (
                    "missing",
                    format!("go.sum line {}: not in the module cache", c.line.line),
                ),
                O::Unreadable(e) => ("corrupted", format!("go.sum line {}: {e}", c.line.line)),
                O::UnknownHash => (
                    "unknown",
                    format!("go.sum line {}: not an h1: hash, not checked", c.line.line),
                ),
            };
            out.problems.push(ModuleProblem {
                root: root_s.clone(),
                module: c.line.module.clone(),
                version: c.line.version.clone(),
                status: status.into(),
                detail,
            });
        }
        let errors: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path, s.error))
            .collect();
        let verified = report.modules.len() as u64;
        out.results.push(RootVerified {
            root: root_s.clone(),
            modules_verified: verified,
            modules_bad: bad,
            bytes_hashed: report.modules.iter().map(|m| m.bytes_hashed).sum(),
            errors,
        });
        record_verify(state, &root_s, verified, bad, &report, cause);
    }
    Ok(out)
}

fn record_verify(
    state: &DaemonState,
    root: &str,
    verified: u64,
    bad: u64,
    report: &modverify::VerifyReport,
    cause: Cause,
) {
    let m = &state.metrics.hygiene;
    m.verifications.inc();
    m.modules_verified.inc_by(verified);
    {
        let mut latest = state.modules_bad.lock().expect("modules_bad lock");
        latest.insert(root.to_owned(), bad);
        m.modules_bad.set(latest.values().sum::<u64>() as i64);
    }
    let names: Vec<String> = report
        .problems()
        .take(20)
        .map(|p| format!("{}@{} {}", p.module, p.version, p.verdict.as_str()))
        .collect();
    if bad > 0 {
        tracing::warn!(root, bad, modules = %names.join(", "), "module cache: corrupt or incomplete modules");
    } else {
        tracing::info!(root, verified, "module cache verified: intact");
    }
    let row = HygieneRun {
        id: 0,
        at: roots::unix_now(),
        kind: HygieneKind::Verify,
        root: root.to_owned(),
        cause: cause.as_str().to_owned(),
        requester_uid: cause.uid(),
        dry_run: false,
        entries_removed: 0,
        bytes_freed: 0,
        modules_verified: verified,
        modules_bad: bad,
        detail: names.join(", "),
    };
    if let Err(e) = state
        .store
        .lock()
        .expect("store lock")
        .record_hygiene_run(&row)
    {
        tracing::warn!(error = %e, "could not record the verification in the store");
    }
}

/// One finding in words.
fn describe(f: &Finding) -> String {
    match f {
        Finding::Corrupted {
            part,
            expected,
            got,
            files,
        } => {
            let mut s = format!(
                "{} hash {got} differs from .ziphash {expected}",
                part.as_str()
            );
            if !files.is_empty() {
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                s.push_str(&format!(" (files: {})", shown.join(", ")));
            }
            s
        }
        Finding::Unreadable { part, error } => format!("{} unreadable: {error}", part.as_str()),
        Finding::TooLarge {
            part,
            file,
            size,
            limit,
        } => format!(
            "{} {}{size} bytes, over Go's module size limit of {} MiB: not hashed",
            part.as_str(),
            file.as_ref()
                .map_or_else(|| "total ".to_owned(), |f| format!("file {f} is ")),
            limit >> 20
        ),
        Finding::Incomplete(IncompleteReason::Partial) => {
            "extraction did not finish (.partial)".to_owned()
        }
        Finding::Incomplete(IncompleteReason::MissingZiphash) => {
            "no .ziphash next to the zip or extracted directory".to_owned()
        }
        Finding::Incomplete(IncompleteReason::MissingFiles(files)) => {
            let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
            format!(
                "extracted directory lacks {} files ({})",
                files.len(),
                shown.join(", ")
            )
        }
    }
}

/// The `[hygiene]` schedules: trims every `trim_interval_secs` (Go's `trim.txt` decides what
/// is due), and each module cache verified one `verify_interval_secs` after its last
/// recorded verification (or after start). Ends when `stop` changes.
pub async fn run(state: Arc<DaemonState>, mut stop: watch::Receiver<bool>) {
    let mut next_trim = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last_verify: HashMap<PathBuf, f64> = HashMap::new();
    let started = roots::unix_now();
    loop {
        let cfg = state.config().hygiene.clone();
        let tick = [cfg.trim_interval_secs.0, cfg.verify_interval_secs.0, 60]
            .into_iter()
            .filter(|&s| s > 0)
            .min()
            .unwrap_or(60);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(tick)) => {}
            _ = stop.changed() => return,
        }
        let now = tokio::time::Instant::now();
        if cfg.trim_interval_secs.0 > 0 && now >= next_trim {
            next_trim = now + Duration::from_secs(cfg.trim_interval_secs.0);
            let roots = roots_of(&state, RootKind::GoCache, None);
            trim_roots(&state, roots, false, false, Cause::Schedule).await;
        }
        if cfg.verify_interval_secs.0 > 0 {
            let interval = cfg.verify_interval_secs.0 as f64;
            let mut due = Vec::new();
            for root in roots_of(&state, RootKind::GoModCache, None) {
                let last = *last_verify.entry(root.path.clone()).or_insert_with(|| {
                    let key = root.path.display().to_string();
                    state
                        .store
                        .lock()
                        .expect("store lock")
                        .last_hygiene_run(HygieneKind::Verify, &key)
                        .ok()
                        .flatten()
                        .map_or(started, |r| r.at)
                });
                if roots::unix_now() - last >= interval {
                    due.push(root);
                }
            }
            for root in due {
                let path = root.path.clone();
                if let Err(e) = verify_roots(&state, vec![root], None, Cause::Schedule).await {
                    tracing::warn!(root = %path.display(), error = %e, "verification failed");
                }
                last_verify.insert(path, roots::unix_now());
            }
        }
    }
}

/// A rough age: "3 h", "2 d".
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
