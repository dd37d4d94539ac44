//! Periodic work in a task of its own: the backstop scan of every root, the check of
//! discovery's inputs (every 2 s), denial retention (hourly), and the discovery and scan a
//! reload asks for. The supervisor (`run`) only answers signals, pings the watchdog and
//! watches the tasks, so a scan of a large root never delays SIGTERM, SIGHUP or the
//! watchdog (issue 15). This task runs its work one item at a time: two periodic scans
//! never overlap, and a scan longer than its interval is followed by a full interval of
//! rest, not by a burst of catch-up scans.
//!
//! Must never: return before it is asked to stop (the supervisor takes that for a bug and
//! stops the daemon), or do blocking work on this async task (the scans run on
//! `spawn_blocking` threads and poll the stop flag at every entry).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::daemon_state::DaemonState;
use crate::healing;
use crate::notify;

/// How often discovery's inputs (passwd, go env files, environment.d) are checked; a change
/// runs discovery (and a scan of new or changed roots) again.
const INPUTS_EVERY: Duration = Duration::from_secs(2);
/// How often old denials are forgotten (`[audit]` retention); first an hour after start.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// A reload that took effect: discovery and a scan with the new config follow here, then
/// READY=1 with `summary` and what changed.
pub struct Reloaded {
    pub summary: String,
}

/// Runs until `stop` says so (or its sender is gone): the supervisor sends it after its
/// loop ended, so this task never ends first on a stop. Work started after SIGTERM ends at
/// once (scans poll the stop flag).
pub async fn run(
    state: Arc<DaemonState>,
    mut stop: watch::Receiver<bool>,
    mut reloads: mpsc::Receiver<Reloaded>,
) {
    let scan_every = state.config().scan.interval_secs.0;
    let scan_period = Duration::from_secs(scan_every.max(1));
    let mut scan_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + scan_period, scan_period);
    scan_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut inputs_tick = tokio::time::interval(INPUTS_EVERY);
    inputs_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut inputs_debounce = healing::InputsDebounce::default();
    let mut retention_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + RETENTION_EVERY,
        RETENTION_EVERY,
    );
    retention_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(reloaded) = reloads.recv() => {
                let changes = healing::rediscover_after_reload(&state).await;
                notify::ready(&format!("{}; configuration reloaded; {changes}", reloaded.summary));
            }
            _ = retention_tick.tick() => apply_retention(&state).await,
            _ = inputs_tick.tick() => {
                healing::rediscover_if_inputs_changed(&state, &mut inputs_debounce).await
            }
            _ = scan_tick.tick(), if scan_every > 0 => {
                periodic_scan(&state).await;
                // A full interval of rest after each scan, however long it took.
                scan_tick.reset();
            }
        }
    }
}

/// One backstop scan of every root, logged with its figures.
async fn periodic_scan(state: &Arc<DaemonState>) {
    tracing::debug!("periodic scan started");
    let started = Instant::now();
    match healing::rescan_all(state).await {
        Ok(_) if crate::stop::stopping() => {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "periodic scan stopped: goguardd is stopping"
            );
        }
        Ok((roots, entries, findings)) => tracing::info!(
            roots,
            entries,
            findings,
            seconds = started.elapsed().as_secs_f64(),
            "periodic scan done"
        ),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "periodic scan failed"),
    }
}

/// Forgets old denials as `[audit]` retention says, hourly.
async fn apply_retention(state: &Arc<DaemonState>) {
    let audit = state.config().audit.clone();
    let max_age = (audit.retention_days.0 > 0).then_some(audit.retention_days.0 as f64 * 86_400.0);
    let max_rows = (audit.max_denials.0 > 0).then_some(audit.max_denials.0);
    let store = state.store.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let result = tokio::task::spawn_blocking(move || {
        store
            .lock()
            .expect("store lock")
            .apply_retention(now, max_age, max_rows)
    })
    .await;
    match result {
        Ok(Ok(outcome)) if outcome.removed > 0 => {
            tracing::info!(removed = outcome.removed, "forgot old denials (retention)")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
        Err(e) => tracing::warn!(error = %e, "retention task failed"),
    }
}
