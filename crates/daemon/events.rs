//! The live events goguardd's tasks announce on `DaemonState::events` for `WatchEvents`:
//! domain values (the API layer's `pb` makes messages of them, per subscriber). Sending
//! never waits: the channel is bounded and a slow subscriber loses the oldest.

use std::path::PathBuf;

use goguard_policy::{DriftKind, HealAction};

use crate::diagnosis::DiagnosedDenial;
use crate::repair::Action;

/// Something that happened, and when (unix seconds).
#[derive(Debug, Clone)]
pub struct DaemonEvent {
    pub at_unix: f64,
    pub what: Happened,
}

#[derive(Debug, Clone)]
pub enum Happened {
    /// A go-related denial was stored (`first_time`: a new row, not a repeat).
    Denial {
        /// Boxed: a row and its diagnosis outweigh the other events many times.
        denial: Box<DiagnosedDenial>,
        first_time: bool,
    },
    /// Self-healing applied a repair in `root`.
    Repair {
        root: PathBuf,
        action: Action,
        cause: &'static str,
    },
    /// A path that keeps drifting back: no repairs of `kind` until `until_unix`.
    Quarantined {
        root: PathBuf,
        path: PathBuf,
        kind: DriftKind,
        until_unix: f64,
    },
    /// Drift seen on a changed path that self-healing leaves alone (an alert);
    /// `heal` is the root's policy for its kind.
    Drift {
        root: PathBuf,
        finding: goguard_policy::Finding,
        heal: HealAction,
    },
}
