//! The watcher: inotify on every directory of every root (goguard-watch),
//! and self-healing of each path it reports, within milliseconds. A thin
//! adapter: goguard-watch says where something changed, goguard-policy
//! decides (through `repair::heal_path`), goguard-fs changes, the store
//! journals, and the event stream and metrics report.
//!
//! Overflows and watch limits are answered with a full rescan and a metric,
//! never with silence (a rescan runs in its own task; requests made while one
//! runs are coalesced into one more). A path that keeps drifting back is quarantined by the
//! loop guard and alerted on instead of fought over.
//!
//! Fairness: each root may hold its share of `[scan] max_watches` (the budget split evenly
//! between the roots), or half of what the other roots leave if that is more, so one user's
//! huge tree cannot leave other users' roots unwatched while spare budget is still used
//! (goguard-watch's `Watcher::root_cap`). A root that reaches its cap is listed in `status` (watcher degraded, with
//! the root and why) and is scanned on its own every `[scan] limited_rescan_secs`, in a
//! task of its own so healing and signals are not held up. Walks stop at once when
//! goguardd is stopping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goguard_policy::CacheRoot;
use goguard_watch::{Notice, WatchConfig, Watcher};
use tokio::sync::watch;

use crate::daemon_state::{ComponentState, DaemonState, WATCHER};
use crate::events::{DaemonEvent, Happened};
use crate::heal_pool::{ChunkDone, HealItem, HealPool, LabelSource};
use crate::roots;

/// Paths handed to the workers at most at once (a `go build` burst).
const BATCH: usize = 4096;
/// Paths waiting while the workers are busy, at most. Past that the watcher
/// is not read: the kernel's queue fills, overflows, and the overflow is
/// answered with a rescan, so memory stays bounded and nothing goes unseen.
const PENDING_MAX: usize = 65_536;
/// How often the watch count is refreshed in the metrics during a burst.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// The roots being watched, by the watcher's root id.
#[derive(Default)]
struct Watched {
    /// Root ids are stable per path across rediscoveries.
    ids: HashMap<PathBuf, u32>,
    /// The root's definition as of the last discovery (heal policy included).
    by_id: HashMap<u32, Arc<CacheRoot>>,
    labels: Option<LabelSource>,
    /// Set once the watch limit stopped a walk: what `status` shows as the
    /// watcher's degradation (the unwatched part stays so until a restart).
    limited: Option<String>,
    /// Roots a watch limit (their share, or the whole budget) stopped, by id, with the
    /// reason `status` shows: scanned on their own every `limited_rescan_secs`.
    partial: BTreeMap<u32, String>,
    /// Each root's share of the watch budget as last set.
    share: usize,
    /// The watcher's counts as of the last sync (for `status`).
    summary: String,
}

/// Paths waiting for a worker, each once, in the order first seen.
#[derive(Default)]
struct Pending {
    seen: HashSet<(u32, PathBuf)>,
    order: Vec<(u32, PathBuf)>,
    /// When the oldest waiting notice was read.
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, root_id: u32, rel: PathBuf, received: Instant) {
        if self.seen.insert((root_id, rel.clone())) {
            self.order.push((root_id, rel));
            self.since.get_or_insert(received);
        }
    }

    fn take(&mut self) -> (Vec<(u32, PathBuf)>, Option<Instant>) {
        self.seen.clear();
        (std::mem::take(&mut self.order), self.since.take())
    }
}

pub async fn run(state: Arc<DaemonState>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut watcher = Watcher::new(WatchConfig {
        max_watches: state.config().scan.max_watches.0 as usize,
        interrupt: Some(crate::stop::stop_flag()),
        ..WatchConfig::default()
    })?;
    let backstop_every = Duration::from_secs(state.config().scan.limited_rescan_secs.0);
    let mut backstop =
        tokio::time::interval_at(tokio::time::Instant::now() + backstop_every, backstop_every);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backstop_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut pool = HealPool::start(&state)?;
    let mut generation = state.roots_generation.subscribe();
    let mut watched = Watched::default();
    // Adding watches walks the roots with blocking system calls (about 2 s
    // for 100k directories): keep that off the async workers' queue.
    tokio::task::block_in_place(|| sync_roots(&state, &mut watcher, &mut watched));
    let mut pending = Pending::default();
    // When the oldest notice of the batch being healed was read.
    let mut in_flight_since = Instant::now();
    let mut stats_at = Instant::now();
    // Also wakes an idle loop, so `status` shows the counts after a burst.
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rescans = Rescans::default();
    loop {
        tokio::select! {
            first = watcher.next(), if pending.order.len() < PENDING_MAX => {
                let received = Instant::now();
                let mut rescan = note(&state, &mut watched, first, &mut pending, received);
                // Everything already readable joins the same batch.
                while pending.order.len() < BATCH {
                    match watcher.try_next() {
                        Ok(Some(n)) => {
                            rescan |= note(&state, &mut watched, Ok(n), &mut pending, received);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading inotify failed");
                            break;
                        }
                    }
                }
                if rescan {
                    rescans.request(&state);
                }
            }
            _ = async { rescans.task.as_mut().expect("guarded").await }, if rescans.task.is_some() => {
                rescans.task = None;
                if std::mem::take(&mut rescans.again) {
                    rescans.request(&state);
                }
            }
            done = pool.next_done() => announce(&state, done, in_flight_since),
            _ = stats_tick.tick() => {}
            _ = backstop.tick(), if !watched.partial.is_empty() => {
                // One backstop scan at a time, off this loop.
                if backstop_task.as_ref().is_none_or(|t| t.is_finished()) {
                    let paths: Vec<PathBuf> = watched
                        .partial
                        .keys()
                        .filter_map(|id| watched.by_id.get(id).map(|r| r.path.clone()))
                        .collect();
                    let st = state.clone();
                    backstop_task = Some(tokio::spawn(async move {
                        crate::healing::rescan_roots(&st, paths).await;
                    }));
                }
            }
            _ = generation.changed() => {
                tokio::task::block_in_place(|| sync_roots(&state, &mut watcher, &mut watched));
            }
            _ = stop.changed() => {
                // What is being healed is still journaled and announced.
                while pool.busy() {
                    let done = pool.next_done().await;
                    announce(&state, done, in_flight_since);
                }
                return Ok(());
            }
        }
        if !pool.busy() && !pending.order.is_empty() {
            let (paths, since) = pending.take();
            if state.config().heal.auto
                && let Some(labels) = &watched.labels
            {
                let items: Vec<HealItem> = paths
                    .into_iter()
                    .filter_map(|(id, rel)| {
                        let root = watched.by_id.get(&id)?.clone();
                        Some(HealItem { root, rel })
                    })
                    .collect();
                in_flight_since = since.unwrap_or_else(Instant::now);
                pool.dispatch(items, labels);
            }
        }
        if stats_at.elapsed() >= STATS_EVERY {
            stats_at = Instant::now();
            state.metrics.watch.watches.set(watcher.watches() as i64);
            let summary = summary(watcher.watches(), &watched);
            if summary != watched.summary {
                watched.summary = summary;
                show(&state, &watched);
            }
        }
    }
}

/// Full rescans the watcher asks for (an overflow, a root that appeared): run in a task of
/// their own, so healing goes on meanwhile, and coalesced: requests while one runs make one
/// more afterwards, never a queue (a user making directories faster than inotify delivers
/// them overflows the queue again and again).
#[derive(Default)]
struct Rescans {
    task: Option<tokio::task::JoinHandle<()>>,
    again: bool,
}

impl Rescans {
    fn request(&mut self, state: &Arc<DaemonState>) {
        if self.task.is_some() {
            self.again = true;
            return;
        }
        let st = state.clone();
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = crate::healing::rescan_all(&st).await {
                tracing::warn!(error = %format!("{e:#}"), "rescan failed");
            }
        }));
    }
}

/// Takes in one notice: a path to heal, or something to log and count.
/// Returns whether every root must be rescanned.
fn note(
    state: &DaemonState,
    watched: &mut Watched,
    notice: std::io::Result<Notice>,
    pending: &mut Pending,
    received: Instant,
) -> bool {
    let root_path = |id: &u32| watched.by_id.get(id).map(|r| r.path.display().to_string());
    match notice {
        Ok(Notice::Changed {
            root_id, rel_path, ..
        }) => {
            if watched.by_id.contains_key(&root_id) {
                pending.add(root_id, rel_path, received);
            }
        }
        Ok(Notice::RootAppeared { root_id }) => {
            if let Some(root) = root_path(&root_id) {
                tracing::info!(root, "a cache root appeared");
                pending.add(root_id, PathBuf::new(), received);
                return true;
            }
        }
        Ok(Notice::NewDirScanned { .. }) => {}
        Ok(Notice::RootGone { root_id }) => {
            if let Some(root) = root_path(&root_id) {
                tracing::info!(root, "a cache root is gone");
            }
        }
        Ok(Notice::Overflow) => {
            state.metrics.watch.overflows.inc();
            tracing::warn!("inotify queue overflowed: rescanning every root");
            return true;
        }
        Ok(Notice::WatchLimit {
            root_id,
            rel_path,
            root_share,
        }) => {
            state.metrics.watch.limit_hits.inc();
            let root = root_path(&root_id);
            if let Some(r) = &root
                && !watched.partial.contains_key(&root_id)
            {
                // Once per root: one user making thousands of directories past their
                // share must not flood the log.
                tracing::warn!(
                    root = %r,
                    path = %rel_path.display(),
                    root_share,
                    "inotify watch limit reached: the rest of this root is checked by \
                     periodic scans only"
                );
                let why = if root_share {
                    format!(
                        "{r} holds its share of the inotify watch budget (every root may hold \
                         {} watches, or half of what the other roots leave): directories \
                         beyond are checked by a scan of this root every {} s",
                        watched.share,
                        state.config().scan.limited_rescan_secs.0
                    )
                } else {
                    format!(
                        "{r} reached the inotify watch limit at {}: directories beyond are \
                         checked by a scan of this root every {} s",
                        std::path::Path::new(r).join(&rel_path).display(),
                        state.config().scan.limited_rescan_secs.0
                    )
                };
                watched.partial.insert(root_id, why);
                state
                    .metrics
                    .watch
                    .roots_over_share
                    .set(watched.partial.len() as i64);
                if !root_share {
                    let at = std::path::Path::new(r)
                        .join(&rel_path)
                        .display()
                        .to_string();
                    mark_limited(state, watched, &at);
                }
                show(state, watched);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading inotify failed"),
    }
    false
}

/// Adds new roots, removes vanished ones, and takes the roots' current
/// definitions and label source.
fn sync_roots(state: &DaemonState, watcher: &mut Watcher, watched: &mut Watched) {
    let (wanted, file_contexts): (Vec<Arc<CacheRoot>>, Option<PathBuf>) = {
        let caches = state.caches.read().expect("caches lock");
        (
            caches
                .roots
                .iter()
                .map(|r| Arc::new(r.root.clone()))
                .collect(),
            caches.file_contexts.clone(),
        )
    };
    watched.labels = Some(LabelSource {
        file_contexts,
        generation: *state.roots_generation.borrow(),
    });
    let gone: Vec<PathBuf> = watched
        .ids
        .keys()
        .filter(|p| !wanted.iter().any(|r| &r.path == *p))
        .cloned()
        .collect();
    for p in gone {
        if let Some(id) = watched.ids.remove(&p) {
            watcher.remove_root(id);
            watched.by_id.remove(&id);
            watched.partial.remove(&id);
        }
    }
    // Each root's fair share of the budget (a root may take more only up to half of what the
    // others leave): a root with a huge tree stops there.
    let budget = state.config().scan.max_watches.0 as usize;
    watched.share = (budget / wanted.len().max(1)).max(1);
    watcher.set_root_share(watched.share);
    let mut next_id = watched.ids.values().copied().max().map_or(0, |m| m + 1);
    for root in wanted {
        if let Some(id) = watched.ids.get(&root.path) {
            watched.by_id.insert(*id, root);
            continue;
        }
        if crate::stop::stopping() {
            break;
        }
        // A limit hit queues a `WatchLimit` notice: `note` records it.
        match watcher.add_root(next_id, &root.path) {
            Ok(_) => {
                watched.ids.insert(root.path.clone(), next_id);
                watched.by_id.insert(next_id, root);
                next_id += 1;
            }
            Err(e) => tracing::warn!(root = %root.path.display(), error = %e, "cannot watch root"),
        }
    }
    let stats = watcher.stats();
    state.metrics.watch.watches.set(stats.watches as i64);
    state
        .metrics
        .watch
        .roots_over_share
        .set(watched.partial.len() as i64);
    watched.summary = summary(stats.watches, watched);
    show(state, watched);
}

/// The watcher's counts for `status`.
fn summary(watches: usize, watched: &Watched) -> String {
    format!(
        "{} roots, {watches} inotify watches ({} guaranteed per root)",
        watched.by_id.len(),
        watched.share
    )
}

/// The watcher's line in `status`: degraded, naming each root a limit stopped and the
/// global limit, or running.
fn show(state: &DaemonState, watched: &Watched) {
    let mut why: Vec<&str> = watched.partial.values().map(String::as_str).collect();
    if let Some(global) = &watched.limited {
        why.push(global);
    }
    if why.is_empty() {
        state
            .components
            .set(WATCHER, ComponentState::Running, watched.summary.clone());
    } else {
        state.components.set(
            WATCHER,
            ComponentState::Degraded,
            format!("{}; {}", watched.summary, why.join("; ")),
        );
    }
}

/// Why the watcher is degraded once the watch limit stopped a walk at `at`.
fn limit_detail(at: &str) -> String {
    format!(
        "inotify watch limit reached at {at}: directories there and beyond are checked by \
         periodic scans only (raise [scan] max_watches or the sysctl \
         fs.inotify.max_user_watches, then restart goguardd)"
    )
}

/// Shows the watch limit in `status` (the first place it was hit is named).
fn mark_limited(state: &DaemonState, watched: &mut Watched, at: &str) {
    if watched.limited.is_some() {
        return;
    }
    watched.limited = Some(limit_detail(at));
    show(state, watched);
}

/// Journals, counts, logs and announces one worker's share of a batch:
/// repairs made, drift the heal policy only alerts on, quarantines.
fn announce(state: &DaemonState, done: ChunkDone, since: Instant) {
    let now = roots::unix_now();
    let started = state.started;
    // Journaled before announced: the workers handed the outcomes to the journal
    // writer before this share came back, and `ListJournal` flushes the writer, so
    // whoever reads the journal on seeing a repair event finds its row.
    for (root, healed) in &done.healed {
        // Drift the heal policy only alerts on (world-writable, mixed owners, ...).
        let fixed: Vec<&str> = healed
            .actions
            .iter()
            .filter(|a| a.applied)
            .flat_map(|a| a.fixes.iter().map(String::as_str))
            .collect();
        for f in healed
            .findings
            .iter()
            .filter(|f| !fixed.contains(&f.kind.as_str()))
        {
            let _ = state.events.send(DaemonEvent {
                at_unix: now,
                what: Happened::Drift {
                    root: root.path.clone(),
                    finding: f.clone(),
                    heal: root.heal.action(f.kind),
                },
            });
        }
        for a in healed.actions.iter().filter(|a| a.applied) {
            state.metrics.watch.repairs.inc();
            state
                .metrics
                .watch
                .heal_latency
                .observe(since.elapsed().as_secs_f64());
            tracing::info!(
                root = %root.path.display(),
                path = %a.path.display(),
                operation = a.operation,
                before = a.before,
                after = a.after,
                "self-healed"
            );
            let _ = state.events.send(DaemonEvent {
                at_unix: now,
                what: Happened::Repair {
                    root: root.path.clone(),
                    action: a.clone(),
                    cause: "self-heal",
                },
            });
        }
    }
    for q in done.quarantined {
        state.metrics.watch.quarantined.inc();
        let until_unix = now + q.until.saturating_sub(started.elapsed()).as_secs_f64();
        tracing::warn!(
            path = %q.path.display(),
            kind = q.kind.as_str(),
            "this path keeps drifting back: quarantined, no more repairs for a while; find what changes it"
        );
        let row = goguard_store::Quarantine {
            path: q.path.display().to_string(),
            kind: q.kind.as_str().to_owned(),
            root: q.root.display().to_string(),
            since: now,
            until: until_unix,
        };
        // SQLite off the async worker; nothing waits for it.
        let store = state.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.lock().expect("store lock").put_quarantine(&row) {
                tracing::warn!(error = %e, "could not store the quarantine; a restart would end it early");
            }
        });
        let _ = state.events.send(DaemonEvent {
            at_unix: now,
            what: Happened::Quarantined {
                root: q.root,
                path: q.path,
                kind: q.kind,
                until_unix,
            },
        });
    }
}
