//! goguard's decisions, as pure functions over values: where Go puts a user's caches, which
//! roots goguard guards, what each entry should look like, what counts as drift, what to
//! change, and when to stop changing a path that keeps drifting back.
//!
//! Nothing here changes the system. The few functions that read files (passwd, environment.d,
//! `go env -w` files) are small loaders named `load*` beside the pure function that does the
//! work on text.
//!
//! Layout:
//! - [`goenv`]: Go's own GOENV/GOCACHE/GOPATH/GOMODCACHE computation and the `go env -w`
//!   file format, checked against Go's source and the real `go env`;
//! - [`envd`]: systemd `environment.d` parsing, ordering and `$VAR` expansion;
//! - [`accounts`]: `/etc/passwd` and `/etc/group`;
//! - [`acl`]: ACL entries and setfacl-style rules;
//! - [`config`]: the `[[root]]` TOML types (validated while deserializing, for spans);
//! - [`roots`]: [`CacheRoot`], [`ExpectedState`], [`HealPolicy`], overlap rules;
//! - [`discovery`]: user selection, per-user roots, rediscovery triggers;
//! - [`drift`]: drift rules → [`Finding`]s;
//! - [`plan`]: findings + heal policy → [`RepairPlan`];
//! - [`guard`]: the repair [`LoopGuard`].

pub mod accounts;
pub mod acl;
pub mod config;
pub mod discovery;
pub mod drift;
pub mod envd;
pub mod goenv;
pub mod guard;
pub mod plan;
pub mod roots;
pub mod userfile;

pub use config::{HealAction, RootDecl, RootKind};
pub use drift::{DriftKind, Finding, Observed, Severity, evaluate};
pub use guard::{LoopGuard, LoopGuardConfig};
pub use plan::{Operation, RepairPlan, plan};
pub use roots::{CacheRoot, ExpectedState, HealPolicy, RootSet};
