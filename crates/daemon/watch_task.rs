//! The watcher: inotify on every directory of every root (goguard-watch),
//! and self-healing of each path it reports, within milliseconds. A thin
//! adapter: goguard-watch says where something changed, goguard-policy
//! decides (through `repair::heal_path`), goguard-fs changes, the store
//! journals, and the event stream and metrics report.
//!
//! Overflows and watch limits are answered with a full rescan and a metric,
//! never with silence. A path that keeps drifting back is quarantined by the
//! loop guard and alerted on instead of fought over.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goguard_policy::guard::{GuardState, RecordOutcome};
use goguard_proto::v1 as pb;
use goguard_watch::{Notice, WatchConfig, Watcher};
use tokio::sync::watch;

use crate::daemon_state::{ComponentState, DaemonState, WATCHER};
use crate::roots;

/// Notices healed together at most (a `go build` burst).
const BATCH: usize = 4096;

pub async fn run(state: Arc<DaemonState>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut watcher = Watcher::new(WatchConfig::default())?;
    let mut generation = state.roots_generation.subscribe();
    // Root ids are stable per path across rediscoveries.
    let mut ids: HashMap<PathBuf, u32> = HashMap::new();
    let mut by_id: HashMap<u32, PathBuf> = HashMap::new();
    // Adding watches walks the roots with blocking system calls (about 2 s
    // for 100k directories): keep that off the async workers' queue.
    tokio::task::block_in_place(|| sync_roots(&state, &mut watcher, &mut ids, &mut by_id));
    loop {
        let first = tokio::select! {
            n = watcher.next() => n,
            _ = generation.changed() => {
                tokio::task::block_in_place(|| {
                    sync_roots(&state, &mut watcher, &mut ids, &mut by_id)
                });
                continue;
            }
            _ = stop.changed() => return Ok(()),
        };
        let received = Instant::now();
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match tokio::time::timeout(Duration::ZERO, watcher.next()).await {
                Ok(n) => batch.push(n),
                Err(_) => break,
            }
        }
        let mut paths: BTreeSet<(PathBuf, PathBuf)> = BTreeSet::new();
        let mut rescan = false;
        for notice in batch {
            match notice {
                Ok(Notice::Changed {
                    root_id, rel_path, ..
                }) => {
                    if let Some(root) = by_id.get(&root_id) {
                        paths.insert((root.clone(), rel_path));
                    }
                }
                Ok(Notice::RootAppeared { root_id }) => {
                    if let Some(root) = by_id.get(&root_id) {
                        tracing::info!(root = %root.display(), "a cache root appeared");
                        paths.insert((root.clone(), PathBuf::new()));
                        rescan = true;
                    }
                }
                Ok(Notice::NewDirScanned { .. }) => {}
                Ok(Notice::RootGone { root_id }) => {
                    if let Some(root) = by_id.get(&root_id) {
                        tracing::info!(root = %root.display(), "a cache root is gone");
                    }
                }
                Ok(Notice::Overflow) => {
                    state.metrics.watch.overflows.inc();
                    tracing::warn!("inotify queue overflowed: rescanning every root");
                    rescan = true;
                }
                Ok(Notice::WatchLimit { root_id, rel_path }) => {
                    state.metrics.watch.limit_hits.inc();
                    tracing::warn!(
                        root = ?by_id.get(&root_id),
                        path = %rel_path.display(),
                        "inotify watch limit reached: this part is checked by periodic scans only \
                         (raise fs.inotify.max_user_watches)"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "reading inotify failed"),
            }
        }
        if !paths.is_empty() && state.config().heal.auto {
            heal(&state, paths, received).await;
        }
        if rescan {
            if let Err(e) = crate::healing::rescan_all(&state).await {
                tracing::warn!(error = %format!("{e:#}"), "rescan failed");
            }
        }
        let stats = watcher.stats();
        state.metrics.watch.watches.set(stats.watches as i64);
    }
}

/// Adds new roots, removes vanished ones.
fn sync_roots(
    state: &DaemonState,
    watcher: &mut Watcher,
    ids: &mut HashMap<PathBuf, u32>,
    by_id: &mut HashMap<u32, PathBuf>,
) {
    let wanted: Vec<PathBuf> = {
        let caches = state.caches.read().expect("caches lock");
        caches.roots.iter().map(|r| r.root.path.clone()).collect()
    };
    let gone: Vec<PathBuf> = ids
        .keys()
        .filter(|p| !wanted.contains(p))
        .cloned()
        .collect();
    for p in gone {
        if let Some(id) = ids.remove(&p) {
            watcher.remove_root(id);
            by_id.remove(&id);
        }
    }
    let mut next_id = ids.values().copied().max().map_or(0, |m| m + 1);
    for p in wanted {
        if ids.contains_key(&p) {
            continue;
        }
        match watcher.add_root(next_id, &p) {
            Ok(report) => {
                if report.limit_hit {
                    state.metrics.watch.limit_hits.inc();
                }
                ids.insert(p.clone(), next_id);
                by_id.insert(next_id, p);
                next_id += 1;
            }
            Err(e) => tracing::warn!(root = %p.display(), error = %e, "cannot watch root"),
        }
    }
    let stats = watcher.stats();
    state.metrics.watch.watches.set(stats.watches as i64);
    state.components.set(
        WATCHER,
        ComponentState::Running,
        format!("{} roots, {} inotify watches", stats.roots, stats.watches),
    );
}

/// Heals each path on a blocking thread, journals and announces the changes.
async fn heal(state: &Arc<DaemonState>, paths: BTreeSet<(PathBuf, PathBuf)>, received: Instant) {
    let (roots_by_path, fc) = {
        let caches = state.caches.read().expect("caches lock");
        let map: HashMap<PathBuf, goguard_policy::CacheRoot> = caches
            .roots
            .iter()
            .map(|r| (r.root.path.clone(), r.root.clone()))
            .collect();
        (map, caches.file_contexts.clone())
    };
    let st = state.clone();
    let started = st.started;
    let result = tokio::task::spawn_blocking(move || {
        let contexts = fc
            .as_deref()
            .and_then(|p| goguard_fs::FileContexts::open(p).ok());
        let mut done = Vec::new();
        let mut quarantined = Vec::new();
        let mut dirs: HashMap<PathBuf, goguard_fs::RootDir> = HashMap::new();
        let mut journal: Vec<goguard_store::JournalEntry> = Vec::new();
        for (root_path, rel) in paths {
            let Some(root) = roots_by_path.get(&root_path) else {
                continue;
            };
            let mut allowed = |path: &std::path::Path, kind| {
                let key = root_path.join(path);
                let mut guard = st.loop_guard.lock().expect("guard lock");
                matches!(
                    guard.check(&key, kind, started.elapsed()),
                    GuardState::Allowed
                )
            };
            // Each root is opened once per batch.
            let dir = match dirs.entry(root_path.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    match goguard_fs::RootDir::open(&root_path) {
                        Ok(d) => v.insert(d),
                        Err(_) => continue, // gone, or no longer a directory
                    }
                }
            };
            let healed = crate::repair::heal_path(root, dir, contexts.as_ref(), &rel, &mut allowed);
            for a in &healed.actions {
                if !a.applied {
                    continue;
                }
                let mut guard = st.loop_guard.lock().expect("guard lock");
                for kind in healed.findings.iter().map(|f| f.kind) {
                    if !a.fixes.iter().any(|k| k == kind.as_str()) {
                        continue;
                    }
                    if let RecordOutcome::Quarantined { until } =
                        guard.record(&a.path, kind, started.elapsed())
                    {
                        quarantined.push((root_path.clone(), a.path.clone(), kind, until));
                    }
                }
            }
            journal.extend(crate::healing::journal_rows(
                &root_path,
                &healed.actions,
                None,
                "self-heal",
            ));
            done.push((root_path, healed));
        }
        // One transaction for the whole burst.
        crate::healing::journal_entries(&st.store, &journal);
        (done, quarantined)
    })
    .await;
    let Ok((done, quarantined)) = result else {
        return;
    };
    let now = roots::unix_now();
    for (root, healed) in &done {
        // Drift the heal policy only alerts on (world-writable, mixed owners, ...).
        let fixed: Vec<&str> = healed
            .actions
            .iter()
            .filter(|a| a.applied)
            .flat_map(|a| a.fixes.iter().map(String::as_str))
            .collect();
        let root_def = state
            .caches
            .read()
            .expect("caches lock")
            .roots
            .iter()
            .find(|r| &r.root.path == root)
            .map(|r| r.root.clone());
        if let Some(root_def) = &root_def {
            for f in healed
                .findings
                .iter()
                .filter(|f| !fixed.contains(&f.kind.as_str()))
            {
                let _ = state.events.send(pb::Event {
                    at_unix: now,
                    payload: Some(pb::event::Payload::Finding(crate::service::finding_to_pb(
                        root_def, f,
                    ))),
                });
            }
        }
        for a in healed.actions.iter().filter(|a| a.applied) {
            state.metrics.watch.repairs.inc();
            state
                .metrics
                .watch
                .heal_latency
                .observe(received.elapsed().as_secs_f64());
            tracing::info!(
                root = %root.display(),
                path = %a.path.display(),
                operation = a.operation,
                before = a.before,
                after = a.after,
                "self-healed"
            );
            let _ = state.events.send(pb::Event {
                at_unix: now,
                payload: Some(pb::event::Payload::Repair(pb::RepairDone {
                    root: root.display().to_string(),
                    action: Some(crate::service::action_to_pb(a)),
                    cause: "self-heal".into(),
                })),
            });
        }
    }
    for (root, path, kind, until) in quarantined {
        state.metrics.watch.quarantined.inc();
        let until_unix = now + until.saturating_sub(started.elapsed()).as_secs_f64();
        tracing::warn!(
            path = %path.display(),
            kind = kind.as_str(),
            "this path keeps drifting back: quarantined, no more repairs for a while; find what changes it"
        );
        let row = goguard_store::Quarantine {
            path: path.display().to_string(),
            kind: kind.as_str().to_owned(),
            root: root.display().to_string(),
            since: now,
            until: until_unix,
        };
        if let Err(e) = state.store.lock().expect("store lock").put_quarantine(&row) {
            tracing::warn!(error = %e, "could not store the quarantine; a restart would end it early");
        }
        let _ = state.events.send(pb::Event {
            at_unix: now,
            payload: Some(pb::event::Payload::Quarantined(pb::Quarantined {
                root: root.display().to_string(),
                path: path.display().to_string(),
                kind: kind.as_str().to_owned(),
                until_unix,
            })),
        });
    }
}
