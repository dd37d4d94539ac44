//! Scanning and self-healing of every root: discovery, then per root a walk
//! that repairs what the heal policy marks `auto` and records what is left.
//! Called at start, on the periodic backstop scan, on `Rescan`, and for
//! requested repairs. Every applied change is journaled in the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use goguard_policy::DriftKind;

use crate::daemon_state::{ComponentState, DaemonState, SCAN};
use crate::ledger::Ledger;
use crate::repair::{self, RepairReport};
use crate::roots::{self, CacheState, RootState};

/// Discovers the roots again and scans (and self-heals) every one.
pub async fn rescan_all(state: &Arc<DaemonState>) -> anyhow::Result<(u32, u64, u64)> {
    let config = state.config();
    let mode = state.mode;
    let auto = config.heal.auto;
    let fc = roots::file_contexts_path(&config);
    let store = state.store.clone();
    let st = state.clone();
    let (cache, totals) = tokio::task::spawn_blocking(move || {
        let found = roots::discover(&config, mode);
        let fingerprint = roots::inputs_fingerprint(&found.inputs);
        // Changes an unclean stop left half-recorded are settled from the files before
        // anything changes them again.
        crate::ledger::settle_unclean_stop(
            &store,
            &mut st.unsettled.lock().expect("unsettled lock"),
            found.roots.roots(),
        );
        let contexts = open_contexts(fc.as_deref());
        let mut states = Vec::new();
        let (mut entries, mut findings) = (0u64, 0u64);
        for root in found.roots.roots() {
            if crate::daemon_state::stopping() {
                break;
            }
            // One walk: with self-healing on, the repair pass also yields the
            // findings left afterwards.
            let report = if auto {
                // Quarantined paths are left alone: the loop guard stopped the fight.
                let mut allowed = |rel: &Path, kind| {
                    let mut guard = st.loop_guard.lock().expect("guard lock");
                    matches!(
                        guard.check(&root.path.join(rel), kind, st.started.elapsed()),
                        goguard_policy::guard::GuardState::Allowed
                    )
                };
                let mut journal = Ledger::new(&store, &root.path, "self-heal", None);
                let healed = repair::repair(
                    root,
                    contexts.as_ref(),
                    None,
                    &[],
                    false,
                    false,
                    &mut allowed,
                    &mut journal,
                );
                healed.scan
            } else {
                repair::scan(root, contexts.as_ref(), None, |_, _, _| {})
            };
            entries += report.entries;
            findings += report.findings.len() as u64;
            for e in &report.errors {
                tracing::warn!(root = %root.path.display(), error = %e, "scan error");
            }
            states.push(RootState {
                root: root.clone(),
                exists: report.exists,
                entries: report.entries,
                findings: report.findings,
                last_scan: roots::unix_now(),
            });
        }
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
        )
    })
    .await?;
    for p in &cache.problems {
        tracing::info!(problem = %p, "discovery");
    }
    *state.caches.write().expect("caches lock") = cache;
    state.roots_generation.send_modify(|g| *g += 1);
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
) -> anyhow::Result<RepairReport> {
    let (root, fc) = {
        let caches = state.caches.read().expect("caches lock");
        let Some(rs) = caches.roots.iter().find(|r| r.root.path == root_path) else {
            anyhow::bail!("{} is no longer a root", root_path.display());
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
    .await?;
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
            let started = st.started;
            let mut allowed = |p: &Path, kind| {
                let mut guard = st.loop_guard.lock().expect("guard lock");
                matches!(
                    guard.check(&root.path.join(p), kind, started.elapsed()),
                    goguard_policy::guard::GuardState::Allowed
                )
            };
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

/// Runs discovery again when its inputs changed since the last one.
pub async fn rediscover_if_inputs_changed(state: &Arc<DaemonState>) {
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
    if now != before {
        tracing::info!("a user's Go or session environment changed: discovering roots again");
        if let Err(e) = rescan_all(state).await {
            tracing::warn!(error = %format!("{e:#}"), "rediscovery failed");
        }
    }
}
