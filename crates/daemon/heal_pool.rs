//! Self-healing workers: long-lived threads that examine and repair the paths
//! the watcher reports. A burst is split among them (one per core, at most
//! four), so healing keeps up with a build writing at full speed. Each worker
//! keeps its own label database, reloaded when the roots are rediscovered
//! (and retried at the next batch when loading it failed),
//! and opens each root once per batch. Paths are reached only through
//! `repair::heal_path` (openat2 beneath the root, no symlink, no mount
//! crossing); the loop guard is consulted before and fed after every change.
//! Each run of paths of one root is one write-ahead batch (`ledger`): intents
//! written before the changes, outcomes handed to the journal writer after.
//! Workers never write the event stream: results go back to the watcher
//! task, which announces them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use goguard_policy::guard::RecordOutcome;
use goguard_policy::{CacheRoot, DriftKind};

use crate::daemon_state::DaemonState;
use crate::repair::PathHeal;

/// Most worker threads, whatever the core count.
const MAX_WORKERS: usize = 4;
/// Fewer paths than this per worker are not worth a split.
const MIN_CHUNK: usize = 16;

/// One path to heal: `rel` beneath `root`.
pub struct HealItem {
    pub root: Arc<CacheRoot>,
    pub rel: PathBuf,
}

/// What a batch needs besides its paths.
#[derive(Clone, PartialEq, Eq)]
pub struct LabelSource {
    /// The file_contexts labels are judged against, if any.
    pub file_contexts: Option<PathBuf>,
    /// The roots' generation: a new one reloads the label database (the
    /// policy may have been updated since).
    pub generation: u64,
}

/// A path that kept drifting back and is now left alone.
pub struct Quarantine {
    pub root: PathBuf,
    pub path: PathBuf,
    pub kind: DriftKind,
    /// Until when, on the daemon's clock (`DaemonState::started`).
    pub until: Duration,
}

/// One worker's share of a batch, healed.
#[derive(Default)]
pub struct ChunkDone {
    pub healed: Vec<(Arc<CacheRoot>, PathHeal)>,
    pub quarantined: Vec<Quarantine>,
}

struct Job {
    items: Vec<HealItem>,
    labels: LabelSource,
}

/// The worker threads and the batches in flight.
pub struct HealPool {
    jobs: Vec<mpsc::Sender<Job>>,
    done: tokio::sync::mpsc::UnboundedReceiver<ChunkDone>,
    outstanding: usize,
}

impl HealPool {
    /// Starts one worker per core (at least one, at most four).
    pub fn start(state: &Arc<DaemonState>) -> std::io::Result<HealPool> {
        let n = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS);
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let mut jobs = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<Job>();
            let st = state.clone();
            let done_tx = done_tx.clone();
            std::thread::Builder::new()
                .name(format!("goguard-heal-{i}"))
                .spawn(move || work(&st, &rx, &done_tx))?;
            jobs.push(tx);
        }
        Ok(HealPool {
            jobs,
            done,
            outstanding: 0,
        })
    }

    /// Whether a batch is still being healed.
    pub fn busy(&self) -> bool {
        self.outstanding > 0
    }

    /// Splits `items` among the workers. Call only when not [`HealPool::busy`],
    /// so no path is healed by two workers at once.
    pub fn dispatch(&mut self, items: Vec<HealItem>, labels: &LabelSource) {
        debug_assert!(!self.busy());
        if items.is_empty() {
            return;
        }
        let shares = items.len().div_ceil(MIN_CHUNK).clamp(1, self.jobs.len());
        let mut chunks: Vec<Vec<HealItem>> = (0..shares)
            .map(|_| Vec::with_capacity(items.len() / shares + 1))
            .collect();
        for (i, item) in items.into_iter().enumerate() {
            chunks[i % shares].push(item);
        }
        for (tx, items) in self.jobs.iter().zip(chunks) {
            let job = Job {
                items,
                labels: labels.clone(),
            };
            if tx.send(job).is_ok() {
                self.outstanding += 1;
            } else {
                tracing::error!("a self-healing worker has stopped; its share is not healed");
            }
        }
    }

    /// The next share healed. Pending forever when nothing is in flight (for
    /// `select!`).
    pub async fn next_done(&mut self) -> ChunkDone {
        if self.outstanding == 0 {
            return std::future::pending().await;
        }
        match self.done.recv().await {
            Some(done) => {
                self.outstanding -= 1;
                done
            }
            // Every worker is gone (they only end when the pool is dropped).
            None => {
                self.outstanding = 0;
                std::future::pending().await
            }
        }
    }
}

fn work(
    state: &DaemonState,
    jobs: &mpsc::Receiver<Job>,
    done: &tokio::sync::mpsc::UnboundedSender<ChunkDone>,
) {
    let mut labels: Option<LabelSource> = None;
    let mut contexts: Option<goguard_fs::FileContexts> = None;
    while let Ok(job) = jobs.recv() {
        if labels.as_ref() != Some(&job.labels) {
            contexts = None;
            labels = None;
            match job.labels.file_contexts.as_deref() {
                None => labels = Some(job.labels.clone()),
                Some(p) => match goguard_fs::FileContexts::open_full(p) {
                    Ok(fc) => {
                        contexts = Some(fc);
                        labels = Some(job.labels.clone());
                    }
                    // Not remembered as loaded: the next batch tries again, so
                    // a passing failure (EMFILE under a flood) does not turn
                    // label self-healing off for good.
                    Err(e) => tracing::warn!(file_contexts = %p.display(), error = %e,
                        "labels are not checked in this self-healing batch; the next one retries"),
                },
            }
        }
        let out = heal_chunk(state, contexts.as_ref(), job.items);
        if done.send(out).is_err() {
            return; // the watcher task is gone
        }
    }
}

/// Paths of one root whose changes one write-ahead batch covers in a worker.
const HEAL_BATCH: usize = 64;

fn heal_chunk(
    state: &DaemonState,
    contexts: Option<&goguard_fs::FileContexts>,
    items: Vec<HealItem>,
) -> ChunkDone {
    let mut out = ChunkDone::default();
    // Each root is opened once per batch.
    let mut dirs: HashMap<PathBuf, Option<goguard_fs::RootDir>> = HashMap::new();
    let mut items = items.into_iter().peekable();
    while let Some(first) = items.next() {
        // A run of paths of one root, examined, then healed as one write-ahead batch.
        let root = first.root.clone();
        let mut rels = vec![first.rel];
        while rels.len() < HEAL_BATCH
            && let Some(next) = items.next_if(|i| Arc::ptr_eq(&i.root, &root))
        {
            rels.push(next.rel);
        }
        let dir = dirs
            .entry(root.path.clone())
            .or_insert_with(|| crate::roots::open_root(&root).ok());
        let Some(dir) = dir else {
            continue; // gone, or no longer a directory
        };
        heal_run(state, contexts, &root, dir, rels, &mut out);
    }
    out
}

/// Examines and heals `rels` of `root` (one batch of intents), then feeds the loop guard.
fn heal_run(
    state: &DaemonState,
    contexts: Option<&goguard_fs::FileContexts>,
    root: &Arc<CacheRoot>,
    dir: &goguard_fs::RootDir,
    rels: Vec<PathBuf>,
    out: &mut ChunkDone,
) {
    let started = state.started;
    let mut allowed = crate::healing::loop_guard_allows(state, &root.path);
    let plans = rels
        .iter()
        .map(|rel| crate::repair::examine_path(root, dir, contexts, rel, &mut allowed))
        .collect();
    // Outcomes go through the journal writer, before this share is announced.
    let mut journal = crate::ledger::Ledger::new(&state.store, &root.path, "self-heal", None)
        .through(&state.journal);
    for healed in crate::repair::heal(plans, &mut journal) {
        for a in healed.actions.iter().filter(|a| a.applied) {
            let mut guard = state.loop_guard.lock().expect("guard lock");
            for kind in healed.findings.iter().map(|f| f.kind) {
                if !a.fixes.iter().any(|k| k == kind.as_str()) {
                    continue;
                }
                if let RecordOutcome::Quarantined { until } =
                    guard.record(&a.path, kind, started.elapsed())
                {
                    out.quarantined.push(Quarantine {
                        root: root.path.clone(),
                        path: a.path.clone(),
                        kind,
                        until,
                    });
                }
            }
        }
        out.healed.push((root.clone(), healed));
    }
}
