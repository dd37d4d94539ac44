//! What the running daemon knows about itself and shares between its tasks:
//! identity, the configuration in force, component states and reload history.
//! The gRPC service reads it for `GetStatus`; the supervisor writes it. Holds domain
//! values only: the API layer (`service`, `pb`) makes messages of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use goguard_layout::Mode;

use crate::authz::Authorizer;
use crate::config::{Config, ConfigSource};
use crate::diagnosis::{DiagnosedDenial, RootsSnapshot};
use crate::metrics::{ComponentLabels, Metrics};

/// The state of one daemon task, as `GetStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentState {
    Starting,
    Running,
    Disabled,
    /// Working, with a part of its job not done; `detail` says which.
    Degraded,
    #[allow(dead_code, reason = "set by the audit and watcher tasks as they land")]
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    pub state: ComponentState,
    pub detail: String,
}

/// Names of the components, in the order status lists them.
pub const CONTROL_SOCKET: &str = "control-socket";
pub const METRICS: &str = "metrics";
pub const AUDIT: &str = "audit";
pub const STORE: &str = "store";
pub const WATCHER: &str = "watcher";
pub const SCAN: &str = "scan";
pub const SELINUX: &str = "selinux";

/// Component states, mirrored into the `goguard_component_up` gauge.
pub struct Components {
    states: Mutex<BTreeMap<&'static str, ComponentStatus>>,
    metrics: Arc<Metrics>,
}

impl Components {
    pub fn new(metrics: Arc<Metrics>) -> Components {
        Components {
            states: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    pub fn set(&self, name: &'static str, state: ComponentState, detail: impl Into<String>) {
        let detail = detail.into();
        self.metrics
            .component_up
            .get_or_create(&ComponentLabels {
                component: name.to_owned(),
            })
            .set(i64::from(state == ComponentState::Running));
        self.states
            .lock()
            .expect("components lock poisoned")
            .insert(name, ComponentStatus { state, detail });
    }

    pub fn snapshot(&self) -> Vec<(&'static str, ComponentStatus)> {
        let states = self.states.lock().expect("components lock poisoned");
        states.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// A root whose size cap its latest trim could not meet under the cap's rule: every entry
/// left had its `-a` or `-d` used within the grace (or was named by an unreadable `-a`).
/// Set by `hygiene_task`, listed as a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct CapUnmet {
    pub max_bytes: u64,
    pub kept_bytes: u64,
    pub grace_secs: u64,
    /// When (unix seconds).
    pub at: f64,
}

/// Reload history for status.
#[derive(Debug, Default, Clone)]
pub struct ReloadHistory {
    pub reloads: u32,
    pub last_error: Option<String>,
}

/// Everything the tasks share.
pub struct DaemonState {
    pub started: Instant,
    pub started_unix: f64,
    pub mode: Mode,
    pub source: RwLock<ConfigSource>,
    pub config: RwLock<Arc<Config>>,
    pub socket_path: PathBuf,
    pub socket_activated: bool,
    pub state_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The address metrics are bound to (port 0 resolved), if on.
    pub metrics_address: RwLock<Option<SocketAddr>>,
    pub authorizer: Arc<RwLock<Authorizer>>,
    pub components: Components,
    pub reload: Mutex<ReloadHistory>,
    /// The SQLite store; calls lock it briefly (SQLite work is short).
    pub store: Arc<Mutex<goguard_store::Store>>,
    /// Writes self-healing's journal rows off the healing path, in order.
    pub journal: crate::journal_writer::JournalWriter,
    /// Intents an unclean stop left behind (read at start), settled by the first
    /// discovery that guards their root again (`ledger::settle_unclean_stop`).
    pub unsettled: Mutex<Vec<goguard_store::PendingIntent>>,
    /// Live events for WatchEvents subscribers; bounded, slow readers lose
    /// the oldest and are told how many.
    pub events: tokio::sync::broadcast::Sender<crate::events::DaemonEvent>,
    /// The roots and what the last scan found in them.
    pub caches: RwLock<crate::roots::CacheState>,
    /// Bumped after each discovery, so the watcher syncs its roots.
    pub roots_generation: tokio::sync::watch::Sender<u64>,
    /// True once the first discovery and scan are done: until then calls that
    /// judge a path against the roots wait (or answer UNAVAILABLE), never
    /// "not inside any cache root".
    pub roots_ready: tokio::sync::watch::Sender<bool>,
    /// Stops self-healing from fighting over a path that keeps drifting back.
    pub loop_guard: Mutex<goguard_policy::LoopGuard>,
    /// Corrupt or incomplete modules found by the latest verification of each root.
    pub modules_bad: Mutex<std::collections::HashMap<String, u64>>,
    /// GOCACHE roots whose size cap the latest trim could not meet under the cap's rule
    /// (shown as `size_cap_unmet` findings, summed in `goguard_trim_cap_excess_bytes`).
    pub caps_unmet: Mutex<std::collections::HashMap<PathBuf, CapUnmet>>,
    /// The binary policy denial diagnoses consult, replaced on reload.
    pub diagnoser: RwLock<Arc<crate::diagnosis::Diagnoser>>,
}

impl DaemonState {
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock poisoned").clone()
    }

    /// The rows, each with its diagnosis against the policy and roots in force now.
    pub async fn diagnosed(
        &self,
        rows: Vec<goguard_store::DenialRow>,
    ) -> Result<Vec<DiagnosedDenial>, tokio::task::JoinError> {
        let diagnoser = self.diagnoser.read().expect("diagnoser lock").clone();
        let roots = RootsSnapshot::of(&self.caches.read().expect("caches lock"));
        crate::diagnosis::with_diagnoses(diagnoser, roots, rows).await
    }
}
