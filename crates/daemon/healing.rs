//! Scanning and self-healing of every root: discovery, then per root a walk
//! that repairs what the heal policy marks `auto` and records what is left.
//! Called at start, on the periodic backstop scan, on `Rescan`, and for
//! requested repairs. Every applied change is journaled in the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goguard_policy::DriftKind;

use crate::api_error::OpError;
use crate::daemon_state::{ComponentState, DaemonState, SCAN};
use crate::ledger::Ledger;
use crate::repair::{self, RepairReport};
use crate::roots::{self, CacheState, RootState};

/// Discovers the roots again and scans (and self-heals) every one.
pub async fn rescan_all(state: &Arc<DaemonState>) -> Result<(u32, u64, u64), OpError> {
    rediscover(state, Rescan::All).await
}

/// Which roots a rediscovery scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rescan {
    /// Every root (start, periodic scans, `Rescan`, reload, overflow).
    All,
    /// Only roots that are new or whose definition changed: the rest keep their last scan
    /// (a user's environment changed; other users' roots have nothing new to show).
    Changed,
}

/// The loop guard's answer for a drift of `kind` at a path relative to `root`: false while
/// the path is quarantined (a fight with something that keeps changing it back). What
/// self-healing asks before each repair; a requested repair does not ask.
pub fn loop_guard_allows<'a>(
    st: &'a DaemonState,
    root: &'a Path,
) -> impl FnMut(&Path, DriftKind) -> bool + 'a {
    move |rel, kind| {
        let mut guard = st.loop_guard.lock().expect("guard lock");
        matches!(
            guard.check(&root.join(rel), kind, st.started.elapsed()),
            goguard_policy::guard::GuardState::Allowed
        )
    }
}

/// One root's scan (and self-heal, with `auto`), journaled.
fn scan_root(
    st: &Arc<DaemonState>,
    root: &goguard_policy::CacheRoot,
    contexts: Option<&goguard_fs::FileContexts>,
    auto: bool,
) -> RootState {
    // One walk: with self-healing on, the repair pass also yields the findings left
    // afterwards.
    let report = if auto {
        // Quarantined paths are left alone: the loop guard stopped the fight.
        let mut allowed = loop_guard_allows(st, &root.path);
        let mut journal = Ledger::new(&st.store, &root.path, "self-heal", None);
        let healed = repair::repair(
            root,
            contexts,
            None,
            &[],
            false,
            false,
            &mut allowed,
            &mut journal,
        );
        healed.scan
    } else {
        repair::scan(root, contexts, None, |_, _, _| {})
    };
    for e in &report.errors {
        tracing::warn!(root = %root.path.display(), error = %e, "scan error");
    }
    st.metrics.watch.root_scans.inc();
    tracing::debug!(root = %root.path.display(), entries = report.entries, "root scanned");
    RootState {
        root: root.clone(),
        exists: report.exists,
        entries: report.entries,
        findings: report.findings,
        last_scan: roots::unix_now(),
        file_contexts_type: roots::file_contexts_type(contexts, &root.path),
    }
}

/// How many roots are scanned at once: `[scan] parallel_roots`, or with 0 the CPUs (at most
/// 4), never more than there are roots.
fn scan_workers(configured: u64, roots: usize) -> usize {
    let wanted = match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n as usize,
    };
    wanted.clamp(1, roots.max(1))
}

/// Scans (and self-heals) `roots` on `workers` threads, each taking the next root when done
/// with one (a large root does not hold up the small ones) and opening its own
/// file_contexts handle (libselinux's are not shared between threads). Returns each
/// root's index with its state; roots not started because goguardd is stopping are not
/// returned.
fn scan_roots_side_by_side(
    st: &Arc<DaemonState>,
    roots: &[(usize, &goguard_policy::CacheRoot)],
    fc: Option<&Path>,
    auto: bool,
    workers: usize,
) -> Vec<(usize, RootState)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || {
        let mut contexts = None;
        let mut done = Vec::new();
        loop {
            if crate::stop::stopping() {
                break;
            }
            let Some(&(i, root)) = roots.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let contexts = contexts.get_or_insert_with(|| open_contexts(fc));
            done.push((i, scan_root(st, root, contexts.as_ref(), auto)));
        }
        done
    };
    if workers <= 1 {
        return work();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|n| {
                std::thread::Builder::new()
                    .name(format!("goguard-scan-{n}"))
                    .spawn_scoped(scope, work)
                    .expect("spawn a scan thread")
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Discovery, then a scan of `which` roots; the others keep their last scan.
async fn rediscover(state: &Arc<DaemonState>, which: Rescan) -> Result<(u32, u64, u64), OpError> {
    let config = state.config();
    let mode = state.mode;
    let auto = config.heal.auto;
    let fc = roots::file_contexts_path(&config);
    let st = state.clone();
    let (cache, totals, changed) = tokio::task::spawn_blocking(move || {
        let found = roots::discover(&config, mode);
        let fingerprint = roots::inputs_fingerprint(&found.inputs);
        // Changes an unclean stop left half-recorded are settled from the files before
        // anything changes them again.
        crate::ledger::settle_unclean_stop(
            &st.store,
            &mut st.unsettled.lock().expect("unsettled lock"),
            found.roots.roots(),
        );
        let previous: Vec<RootState> = {
            let caches = st.caches.read().expect("caches lock");
            caches.roots.clone()
        };
        let mut changed = false;
        // Each root keeps its last scan or is scanned again; the scans run side by side.
        let mut slots: Vec<Option<RootState>> = Vec::new();
        let mut to_scan = Vec::new();
        for (i, root) in found.roots.roots().iter().enumerate() {
            let kept = previous.iter().find(|p| p.root == *root);
            match (which, kept) {
                (Rescan::Changed, Some(kept)) => slots.push(Some(kept.clone())),
                _ => {
                    changed |= kept.is_none();
                    slots.push(None);
                    to_scan.push((i, root));
                }
            }
        }
        let workers = scan_workers(st.config().scan.parallel_roots.0, to_scan.len());
        for (i, rs) in scan_roots_side_by_side(&st, &to_scan, fc.as_deref(), auto, workers) {
            slots[i] = Some(rs);
        }
        // A root left unscanned (goguardd is stopping) is left out, as before.
        let states: Vec<RootState> = slots.into_iter().flatten().collect();
        let entries: u64 = states.iter().map(|rs| rs.entries).sum();
        let findings: u64 = states.iter().map(|rs| rs.findings.len() as u64).sum();
        changed |= states.len() != previous.len();
        let roots_n = states.len() as u32;
        (
            CacheState {
                roots: states,
                inputs: found.inputs,
                inputs_fingerprint: fingerprint,
                problems: found.problems,
                file_contexts: fc,
            },
            (roots_n, entries, findings),
            changed,
        )
    })
    .await
    .map_err(OpError::task("the scan task"))?;
    for p in &cache.problems {
        tracing::info!(problem = %p, "discovery");
    }
    *state.caches.write().expect("caches lock") = cache;
    if which == Rescan::All || changed {
        state.roots_generation.send_modify(|g| *g += 1);
    }
    state.components.set(
        SCAN,
        ComponentState::Running,
        format!(
            "{} roots, {} entries, {} findings (periodic scans)",
            totals.0, totals.1, totals.2
        ),
    );
    Ok(totals)
}

/// Scans (and self-heals) the roots at `paths` again, keeping every other root's last
/// scan: the periodic backstop of roots the watcher covers only in part.
pub async fn rescan_roots(state: &Arc<DaemonState>, paths: Vec<PathBuf>) {
    let config = state.config();
    let auto = config.heal.auto;
    let fc = roots::file_contexts_path(&config);
    let st = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        let targets: Vec<goguard_policy::CacheRoot> = {
            let caches = st.caches.read().expect("caches lock");
            caches
                .roots
                .iter()
                .filter(|r| paths.contains(&r.root.path))
                .map(|r| r.root.clone())
                .collect()
        };
        let contexts = open_contexts(fc.as_deref());
        let mut scanned = Vec::new();
        for root in targets {
            if crate::stop::stopping() {
                break;
            }
            scanned.push(scan_root(&st, &root, contexts.as_ref(), auto));
        }
        scanned
    })
    .await;
    let Ok(scanned) = done else { return };
    let mut caches = state.caches.write().expect("caches lock");
    for rs in scanned {
        // Only if discovery did not replace the root meanwhile.
        if let Some(slot) = caches.roots.iter_mut().find(|r| r.root == rs.root) {
            *slot = rs;
        }
    }
}

/// After a reload: discovery and a scan with the new config (watches follow the new roots
/// through `roots_generation`), and what changed, for the log, `status` and systemd.
pub async fn rediscover_after_reload(state: &Arc<DaemonState>) -> String {
    let before: std::collections::BTreeSet<PathBuf> = {
        let caches = state.caches.read().expect("caches lock");
        caches.roots.iter().map(|r| r.root.path.clone()).collect()
    };
    if let Err(e) = rescan_all(state).await {
        let msg = format!("rediscovery after reload failed: {e:#}");
        tracing::warn!("{msg}");
        return msg;
    }
    let after: std::collections::BTreeSet<PathBuf> = {
        let caches = state.caches.read().expect("caches lock");
        caches.roots.iter().map(|r| r.root.path.clone()).collect()
    };
    let added: Vec<_> = after
        .difference(&before)
        .map(|p| p.display().to_string())
        .collect();
    let dropped: Vec<_> = before
        .difference(&after)
        .map(|p| p.display().to_string())
        .collect();
    let summary = if added.is_empty() && dropped.is_empty() {
        "roots unchanged".to_owned()
    } else {
        format!(
            "roots added: [{}]; roots dropped: [{}]",
            added.join(", "),
            dropped.join(", ")
        )
    };
    tracing::info!(%summary, "reload applied to the roots");
    state.components.set(
        SCAN,
        ComponentState::Running,
        format!("after reload: {summary}"),
    );
    summary
}

fn open_contexts(path: Option<&Path>) -> Option<goguard_fs::FileContexts> {
    let path = path?;
    match goguard_fs::FileContexts::open_full(path) {
        Ok(fc) => Some(fc),
        Err(e) => {
            tracing::warn!(file_contexts = %path.display(), error = %e, "labels are not checked");
            None
        }
    }
}

/// A repair someone asked for: `path` inside `root_path`.
pub async fn requested_repair(
    state: &Arc<DaemonState>,
    root_path: PathBuf,
    path: PathBuf,
    kinds: Vec<DriftKind>,
    dry_run: bool,
    requester: u32,
) -> Result<RepairReport, OpError> {
    let (root, fc) = {
        let caches = state.caches.read().expect("caches lock");
        let Some(rs) = caches.roots.iter().find(|r| r.root.path == root_path) else {
            return Err(OpError::RootGone(root_path));
        };
        (rs.root.clone(), caches.file_contexts.clone())
    };
    let store = state.store.clone();
    let (report, rescanned) = tokio::task::spawn_blocking(move || {
        let contexts = open_contexts(fc.as_deref());
        let rel = path
            .strip_prefix(&root.path)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let sub = (!rel.as_os_str().is_empty()).then_some(rel.as_path());
        // An explicit request is not held back by the loop guard.
        let mut allowed = |_: &Path, _| true;
        let mut journal = Ledger::new(&store, &root.path, "requested repair", Some(requester));
        let report = repair::repair(
            &root,
            contexts.as_ref(),
            sub,
            &kinds,
            true,
            dry_run,
            &mut allowed,
            &mut journal,
        );
        let rescanned = repair::scan(&root, contexts.as_ref(), None, |_, _, _| {});
        (report, rescanned)
    })
    .await
    .map_err(OpError::task("the repair task"))?;
    let mut caches = state.caches.write().expect("caches lock");
    if let Some(rs) = caches.roots.iter_mut().find(|r| r.root.path == root_path) {
        rs.exists = rescanned.exists;
        rs.entries = rescanned.entries;
        rs.findings = rescanned.findings;
        rs.last_scan = roots::unix_now();
    }
    Ok(report)
}

/// Go-related denials whose target lies in a root: heal the target now (what
/// the heal policy allows, through the loop guard), and when it is compliant
/// afterwards mark the denial fixed, linked to the repair that fixed it (this
/// one, or the watcher's a moment earlier).
pub async fn heal_denied_targets(state: &Arc<DaemonState>, denied: Vec<(i64, PathBuf)>) {
    if denied.is_empty() || !state.config().heal.auto {
        return;
    }
    let (targets, fc) = {
        let caches = state.caches.read().expect("caches lock");
        let targets: Vec<(i64, goguard_policy::CacheRoot, PathBuf)> = denied
            .into_iter()
            .filter_map(|(id, path)| {
                let rs = caches.root_for(&path)?;
                let rel = path.strip_prefix(&rs.root.path).ok()?.to_path_buf();
                Some((id, rs.root.clone(), rel))
            })
            .collect();
        (targets, caches.file_contexts.clone())
    };
    if targets.is_empty() {
        return;
    }
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        // The watcher's repairs of a moment ago are in the journal before
        // a denial is linked to one of them.
        st.journal.flush();
        let contexts = open_contexts(fc.as_deref());
        let mut fixed = 0;
        for (id, root, rel) in targets {
            let mut allowed = loop_guard_allows(&st, &root.path);
            let Ok(dir) = crate::roots::open_root(&root) else {
                continue;
            };
            let mut journal = Ledger::new(&st.store, &root.path, "denial", None);
            repair::heal_path(
                &root,
                &dir,
                contexts.as_ref(),
                &rel,
                &mut allowed,
                &mut journal,
            );
            // Look again, changing nothing: is the target compliant now?
            let after =
                repair::examine_path(&root, &dir, contexts.as_ref(), &rel, &mut |_, _| false);
            if !after.findings.is_empty() {
                continue; // still drifted: the denial stays new
            }
            let abs = root.path.join(&rel).display().to_string();
            // Compliant but nothing journaled yet: a self-healing worker changed it a
            // moment ago and is handing its row to the journal writer. Wait for it
            // (bounded), so the denial is linked to the repair that fixed it.
            let mut link = None;
            for _ in 0..40 {
                st.journal.flush();
                link = st
                    .store
                    .lock()
                    .expect("store lock")
                    .last_journal_id_for_path(&abs)
                    .ok()
                    .flatten();
                if link.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            let mut store = st.store.lock().expect("store lock");
            if link.is_some()
                && store
                    .set_denial_status(id, goguard_store::Status::Fixed, link)
                    .is_ok()
            {
                fixed += 1;
            }
        }
        fixed
    })
    .await;
    if let Ok(n) = result
        && n > 0
    {
        tracing::info!(count = n, "denials fixed by repairs of their targets");
    }
}

/// How long discovery inputs must stay unchanged (one 2 s check) before a rediscovery (a user saving a
/// file several times, or touching one in a loop, causes one).
const INPUTS_SETTLE: Duration = Duration::from_millis(1500);
/// The longest a seen change waits for the inputs to settle.
const INPUTS_MAX_WAIT: Duration = Duration::from_secs(10);

/// A change of the discovery inputs waiting to settle (see [`rediscover_if_inputs_changed`]).
#[derive(Debug, Default)]
pub struct InputsDebounce {
    pending: Option<PendingChange>,
}

/// Discovery inputs seen differing from those the last discovery read.
#[derive(Debug)]
struct PendingChange {
    /// Their fingerprint as last seen.
    fingerprint: Vec<Option<(u64, i64, i64)>>,
    /// When they were first seen changed.
    first: Instant,
    /// When the fingerprint last changed.
    quiet_since: Instant,
}

/// Runs discovery again when its inputs changed since the last one and have been quiet for
/// [`INPUTS_SETTLE`] (or changed for [`INPUTS_MAX_WAIT`]). Only roots that are new or whose
/// definition changed are scanned: a user editing their environment.d costs everyone else
/// nothing but the cheap discovery itself (bounded reads of a few small files per user).
pub async fn rediscover_if_inputs_changed(state: &Arc<DaemonState>, debounce: &mut InputsDebounce) {
    let (inputs, before) = {
        let caches = state.caches.read().expect("caches lock");
        (caches.inputs.clone(), caches.inputs_fingerprint.clone())
    };
    if inputs.is_empty() {
        return;
    }
    let now = tokio::task::spawn_blocking(move || roots::inputs_fingerprint(&inputs))
        .await
        .unwrap_or_default();
    if now == before {
        debounce.pending = None;
        return;
    }
    let at = Instant::now();
    let (first, quiet_since) = match debounce.pending.take() {
        Some(p) if p.fingerprint == now => (p.first, p.quiet_since),
        Some(p) => (p.first, at),
        None => (at, at),
    };
    if at.duration_since(quiet_since) < INPUTS_SETTLE && at.duration_since(first) < INPUTS_MAX_WAIT
    {
        debounce.pending = Some(PendingChange {
            fingerprint: now,
            first,
            quiet_since,
        });
        return;
    }
    tracing::info!(
        "a user's Go or session environment changed: discovering roots again (scanning only \
         roots that are new or changed)"
    );
    if let Err(e) = rediscover(state, Rescan::Changed).await {
        tracing::warn!(error = %format!("{e:#}"), "rediscovery failed");
    }
}
