//! goguard-diagnose: explains SELinux denials of Go builds and drafts the least-privilege
//! fix.
//!
//! # Layout
//! - [`draft`]: [`PolicyDraft`], the allow rules for a set of AVCs merged, ordered and
//!   printed byte-for-byte as `audit2allow` prints them (`render_rules` = `audit2allow -i`,
//!   `render_module` = `audit2allow -m NAME`), with [`LabelAdvice`] (`semanage fcontext` +
//!   `restorecon`) where a relabel is the better answer. Pure.
//! - [`sepol`]: [`Policy`], a binary policy loaded from bytes through libsepol (FFI, the
//!   only `unsafe` code), and [`Policy::verdict`], audit2why's analysis of one access as a
//!   [`PolicyVerdict`] (allowed, missing allow rule, boolean, constraint, RBAC, bounds).
//! - [`verdict`]: [`PolicyVerdict`] and its parts, plain data.
//! - [`diagnosis`]: [`Diagnosis`] of one go-related denial from the AVC, the caller's
//!   label/owner facts and an optional verdict: kind, summary, explanation, fix commands,
//!   whether goguard can fix it itself. Pure.
//! - [`context`]: [`SecurityContext`], `user:role:type[:level]` split as sepolgen does.
//!
//! # Use
//! ```
//! use goguard_diagnose::{DiagnosisInput, DiagnosisKind, ModuleName, PolicyDraft, diagnose};
//!
//! let log = b"type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1234 comm=\"go\" name=\"go-build\" scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n";
//! let (events, _errors) = goguard_audit::parse_log(log);
//!
//! // `goguardctl policy`: audit2allow's rules, as a module for checkmodule.
//! let draft = PolicyDraft::from_events(&events);
//! let te = draft.render_module(&ModuleName::new("goguard_local").unwrap());
//! assert!(te.contains("allow container_t cache_home_t:dir write;"));
//!
//! // `denials --explain`: with a policy, pass `Policy::from_bytes(..)?.verdict_for(&avc)`.
//! let avc = &events[0].avcs()[0];
//! let d = diagnose(&DiagnosisInput::new(avc));
//! assert_eq!(d.kind, DiagnosisKind::ContainerBuildWithoutRelabel);
//! assert!(!d.policy_checked);
//! ```
//!
//! # Never
//! No file, socket or clock access: callers read logs, policies and file_contexts and pass
//! bytes and values in. No panics on any input. Nothing is changed on the system: fixes are
//! returned as commands for the caller to show or to apply through goguard's own repair
//! path.

pub mod context;
pub mod diagnosis;
pub mod draft;
pub mod sepol;
pub mod verdict;

pub use context::SecurityContext;
pub use diagnosis::{
    CacheRootFacts, CacheRootKind, Diagnosis, DiagnosisInput, DiagnosisKind, NO_POLICY, OwnerFacts,
    Ownership, diagnose,
};
pub use draft::{
    Added, AllowRule, CacheRootLabel, FcontextRule, InvalidModuleName, LabelAdvice, LabelReason,
    ModuleName, PolicyDraft,
};
pub use sepol::{Policy, PolicyError};
pub use verdict::{BooleanFix, PolicyVerdict, UnknownReason};
