//! The repair loop guard: a pure state machine over (path, drift kind) keys.
//!
//! Each applied repair is recorded with the time the caller passes in. When a key gets more
//! than `max_repairs` repairs within `window`, it is quarantined for `quarantine`: no more
//! repairs, and one alert says something else keeps changing the path. When the quarantine
//! expires the key starts over with an empty history. Old timestamps fall out of the window
//! on every call, and [`LoopGuard::prune`] drops idle keys, so memory stays bounded by the
//! paths that are actively drifting.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use crate::drift::DriftKind;

/// Guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopGuardConfig {
    /// Repairs allowed within `window` (the next one quarantines).
    pub max_repairs: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long a quarantine lasts.
    pub quarantine: Duration,
}

impl Default for LoopGuardConfig {
    /// 5 repairs in 10 minutes; quarantined for an hour.
    fn default() -> Self {
        LoopGuardConfig {
            max_repairs: 5,
            window: Duration::from_secs(600),
            quarantine: Duration::from_secs(3600),
        }
    }
}

/// What the guard says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardState {
    /// Repairs may go ahead.
    Allowed,
    /// No repairs until `until` (the caller's clock).
    Quarantined {
        /// When it ends.
        until: Duration,
    },
}

/// What recording a repair led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Counted; more repairs are allowed.
    Counted {
        /// Repairs within the window, this one included.
        recent: u32,
    },
    /// This repair crossed the limit: the key is now quarantined (alert once).
    Quarantined {
        /// When it ends.
        until: Duration,
    },
    /// The key was already quarantined; the repair should not have run.
    AlreadyQuarantined {
        /// When it ends.
        until: Duration,
    },
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    recent: VecDeque<Duration>,
    quarantined_until: Option<Duration>,
}

/// The guard. Times are durations since any fixed epoch the caller chooses (monotonic).
#[derive(Debug, Clone, Default)]
pub struct LoopGuard {
    config: LoopGuardConfig,
    keys: BTreeMap<(PathBuf, DriftKind), KeyState>,
}

impl LoopGuard {
    /// A guard with these settings.
    pub fn new(config: LoopGuardConfig) -> LoopGuard {
        LoopGuard {
            config,
            keys: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> LoopGuardConfig {
        self.config
    }

    fn refresh(config: &LoopGuardConfig, st: &mut KeyState, now: Duration) {
        if let Some(until) = st.quarantined_until
            && now >= until
        {
            st.quarantined_until = None;
            st.recent.clear();
        }
        while let Some(&t) = st.recent.front() {
            if now.saturating_sub(t) >= config.window {
                st.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// May `key` be repaired at `now`?
    pub fn check(&mut self, path: &std::path::Path, kind: DriftKind, now: Duration) -> GuardState {
        let Some(st) = self.keys.get_mut(&(path.to_path_buf(), kind)) else {
            return GuardState::Allowed;
        };
        Self::refresh(&self.config, st, now);
        match st.quarantined_until {
            Some(until) => GuardState::Quarantined { until },
            None => GuardState::Allowed,
        }
    }

    /// Records a repair of `key` at `now`.
    pub fn record(
        &mut self,
        path: &std::path::Path,
        kind: DriftKind,
        now: Duration,
    ) -> RecordOutcome {
        let config = self.config;
        let st = self.keys.entry((path.to_path_buf(), kind)).or_default();
        Self::refresh(&config, st, now);
        if let Some(until) = st.quarantined_until {
            return RecordOutcome::AlreadyQuarantined { until };
        }
        st.recent.push_back(now);
        let recent = st.recent.len() as u32;
        if recent > config.max_repairs {
            let until = now + config.quarantine;
            st.quarantined_until = Some(until);
            RecordOutcome::Quarantined { until }
        } else {
            RecordOutcome::Counted { recent }
        }
    }

    /// Puts `key` back in quarantine until `until` (a quarantine restored after a restart).
    pub fn restore(&mut self, path: &std::path::Path, kind: DriftKind, until: Duration) {
        let st = self.keys.entry((path.to_path_buf(), kind)).or_default();
        st.quarantined_until = Some(st.quarantined_until.map_or(until, |u| u.max(until)));
    }

    /// Lifts a quarantine by hand (`goguardctl repair --force`); returns whether one existed.
    pub fn release(&mut self, path: &std::path::Path, kind: DriftKind) -> bool {
        self.keys
            .remove(&(path.to_path_buf(), kind))
            .is_some_and(|s| s.quarantined_until.is_some())
    }

    /// The keys quarantined at `now`.
    pub fn quarantined(&mut self, now: Duration) -> Vec<(PathBuf, DriftKind, Duration)> {
        let config = self.config;
        self.keys
            .iter_mut()
            .filter_map(|((p, k), st)| {
                Self::refresh(&config, st, now);
                st.quarantined_until.map(|u| (p.clone(), *k, u))
            })
            .collect()
    }

    /// Forgets keys with no repair in the window and no quarantine.
    pub fn prune(&mut self, now: Duration) {
        let config = self.config;
        self.keys.retain(|_, st| {
            Self::refresh(&config, st, now);
            st.quarantined_until.is_some() || !st.recent.is_empty()
        });
    }

    /// Number of tracked keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No tracked keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn quarantines_after_n_within_t_and_expires() {
        let mut g = LoopGuard::new(LoopGuardConfig {
            max_repairs: 3,
            window: s(60),
            quarantine: s(300),
        });
        let p = Path::new("00/x-d");
        for i in 0..3 {
            assert_eq!(
                g.record(p, DriftKind::ForeignOwner, s(i * 10)),
                RecordOutcome::Counted {
                    recent: i as u32 + 1
                }
            );
        }
        assert_eq!(
            g.record(p, DriftKind::ForeignOwner, s(30)),
            RecordOutcome::Quarantined { until: s(330) }
        );
        assert_eq!(
            g.check(p, DriftKind::ForeignOwner, s(100)),
            GuardState::Quarantined { until: s(330) }
        );
        assert_eq!(
            g.record(p, DriftKind::ForeignOwner, s(100)),
            RecordOutcome::AlreadyQuarantined { until: s(330) }
        );
        // Another kind on the same path is independent.
        assert_eq!(
            g.check(p, DriftKind::WrongLabel, s(100)),
            GuardState::Allowed
        );
        assert_eq!(g.quarantined(s(100)).len(), 1);
        // Expiry: a fresh start.
        assert_eq!(
            g.check(p, DriftKind::ForeignOwner, s(330)),
            GuardState::Allowed
        );
        assert_eq!(
            g.record(p, DriftKind::ForeignOwner, s(331)),
            RecordOutcome::Counted { recent: 1 }
        );
    }

    #[test]
    fn slow_repairs_never_quarantine_and_prune_forgets() {
        let mut g = LoopGuard::new(LoopGuardConfig {
            max_repairs: 2,
            window: s(60),
            quarantine: s(300),
        });
        let p = Path::new("a");
        for i in 0..10 {
            assert!(matches!(
                g.record(p, DriftKind::BadMode, s(i * 31)),
                RecordOutcome::Counted { .. }
            ));
        }
        g.prune(s(10_000));
        assert!(g.is_empty());
        for i in 0..3 {
            g.record(p, DriftKind::BadMode, s(i));
        }
        assert!(g.release(p, DriftKind::BadMode));
        assert_eq!(g.check(p, DriftKind::BadMode, s(5)), GuardState::Allowed);
    }
}
