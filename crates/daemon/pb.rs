//! The one place domain values become goguard.v1 messages: roots, findings, repair
//! actions, denials and their diagnoses, journal rows, trim and verification results, live
//! events, status parts.
//! Part of the API layer: only `service` (and `run`'s wiring) uses it, and nothing below
//! the API layer names `goguard_proto`. Pure: conversions only, no I/O, no locks.

use std::path::Path;

use goguard_proto::v1::*;
use goguard_store::{DenialRow, JournalRow, Status as StoredStatus};

use crate::authz::Role as DomainRole;
use crate::daemon_state::{CapUnmet, ComponentState as DomainComponentState, ComponentStatus};
use crate::diagnosis::{DiagnosedDenial, Diagnosis as DomainDiagnosis};
use crate::events::{DaemonEvent, Happened};
use crate::hygiene_task::{self, ModuleProblem, RootVerified, TrimOutcome};
use crate::roots::{self, RootState};

/// A root and what its last scan found; `size_cap_unmet` counts as one finding more.
pub fn root_to_pb(r: &RootState, size_cap_unmet: bool) -> CacheRoot {
    CacheRoot {
        path: r.root.path.display().to_string(),
        kind: r.root.kind.as_str().to_owned(),
        origin: roots::origin(&r.root),
        has_owner: r.root.expected.owner.is_some(),
        owner_uid: r.root.expected.owner.unwrap_or(0),
        exists: r.exists,
        entries: r.entries,
        findings: r.findings.len() as u64 + u64::from(size_cap_unmet),
        last_scan_unix: r.last_scan,
        declared_label_type: r
            .root
            .expected
            .label
            .as_ref()
            .map(|l| l.type_.clone())
            .unwrap_or_default(),
        file_contexts_type: r.file_contexts_type.clone().unwrap_or_default(),
    }
}

pub fn component_to_pb(name: &str, status: ComponentStatus) -> Component {
    Component {
        name: name.to_owned(),
        state: match status.state {
            DomainComponentState::Starting => ComponentState::Starting,
            DomainComponentState::Running => ComponentState::Running,
            DomainComponentState::Disabled => ComponentState::Disabled,
            DomainComponentState::Failed => ComponentState::Failed,
            DomainComponentState::Degraded => ComponentState::Degraded,
        } as i32,
        detail: status.detail,
    }
}

pub fn mode_to_pb(mode: goguard_layout::Mode) -> Mode {
    match mode {
        goguard_layout::Mode::System => Mode::System,
        goguard_layout::Mode::User => Mode::User,
    }
}

pub fn caller_to_pb(caller: &crate::authz::Caller) -> Caller {
    Caller {
        uid: caller.uid,
        gid: caller.gid,
        pid: caller.pid.unwrap_or(0),
        role: match caller.role {
            DomainRole::Admin => Role::Admin,
            DomainRole::User => Role::User,
        } as i32,
    }
}

pub fn journal_to_pb(row: &JournalRow) -> JournalRecord {
    let e = &row.entry;
    JournalRecord {
        id: row.id,
        at_unix: e.at,
        path: e.path.clone(),
        root: e.root.clone(),
        operation: e.kind.clone(),
        before: e.before.clone(),
        after: e.after.clone(),
        cause: e.cause.clone(),
        requester_uid: e.requester_uid,
        dry_run: e.dry_run,
    }
}

/// A stored denial, without a diagnosis.
pub fn denial_to_pb(row: &DenialRow) -> Denial {
    Denial {
        id: row.id,
        scontext: row.key.scontext.clone(),
        tcontext: row.key.tcontext.clone(),
        tclass: row.key.tclass.clone(),
        permissions: row
            .key
            .permissions
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        target: row.key.target.clone(),
        comm: row.key.comm.clone(),
        exe: row.exe.clone().unwrap_or_default(),
        count: row.count,
        first_seen_unix: row.first_seen,
        last_seen_unix: row.last_seen,
        status: match row.status {
            StoredStatus::New => DenialStatus::New,
            StoredStatus::Fixed => DenialStatus::Fixed,
            StoredStatus::Acknowledged => DenialStatus::Acknowledged,
            StoredStatus::Ignored => DenialStatus::Ignored,
        } as i32,
        go_related: row.go_related,
        last_event_id: row.last_event_id.clone(),
        last_raw: row.last_raw.clone(),
        fixed_by_repair: row.fixed_by_repair.unwrap_or(0),
        diagnosis: None,
    }
}

/// A stored denial with its diagnosis.
pub fn diagnosed_denial_to_pb(d: &DiagnosedDenial) -> Denial {
    Denial {
        diagnosis: d.diagnosis.as_ref().map(diagnosis_to_pb),
        ..denial_to_pb(&d.row)
    }
}

fn diagnosis_to_pb(d: &DomainDiagnosis) -> Diagnosis {
    Diagnosis {
        kind: d.report.kind.as_str().to_owned(),
        summary: d.report.summary.clone(),
        explanation: d.report.explanation.clone(),
        fixes: d.report.fixes.clone(),
        auto_fixable: d.report.auto_fix,
        policy_source: d.policy_source.clone(),
    }
}

/// Drift in `root`, with the root's heal policy for its kind.
pub fn finding_to_pb(root: &goguard_policy::CacheRoot, f: &goguard_policy::Finding) -> Finding {
    drift_to_pb(&root.path, f, root.heal.action(f.kind))
}

fn drift_to_pb(
    root: &Path,
    f: &goguard_policy::Finding,
    heal: goguard_policy::HealAction,
) -> Finding {
    let heal = match heal {
        goguard_policy::HealAction::Auto => "auto",
        goguard_policy::HealAction::Alert => "alert",
        goguard_policy::HealAction::Off => "off",
    };
    Finding {
        root: root.display().to_string(),
        path: root.join(&f.rel_path).display().to_string(),
        kind: f.kind.as_str().to_owned(),
        observed: f.observed.clone(),
        expected: f.expected.clone(),
        severity: format!("{:?}", f.severity).to_lowercase(),
        heal: heal.to_owned(),
    }
}

/// The finding `goguardctl findings` shows for a root whose size cap the latest trim
/// could not meet (kind `size_cap_unmet`, on the root itself).
pub fn cap_unmet_to_pb(root: &Path, u: &CapUnmet) -> Finding {
    Finding {
        root: root.display().to_string(),
        path: root.display().to_string(),
        kind: hygiene_task::SIZE_CAP_UNMET.to_owned(),
        observed: format!(
            "{} bytes kept, {} over the cap: every entry left was used within the last {} \
             (a build may still open it)",
            u.kept_bytes,
            u.kept_bytes.saturating_sub(u.max_bytes),
            hygiene_task::age(std::time::Duration::from_secs(u.grace_secs))
        ),
        expected: format!(
            "at most {} bytes (raise the cap above the builds' working set)",
            u.max_bytes
        ),
        severity: "warning".to_owned(),
        heal: "off".to_owned(),
    }
}

pub fn action_to_pb(a: &crate::repair::Action) -> RepairAction {
    RepairAction {
        path: a.path.display().to_string(),
        operation: a.operation.clone(),
        before: a.before.clone(),
        after: a.after.clone(),
        applied: a.applied,
        error: a.error.clone().unwrap_or_default(),
        fixes: a.fixes.clone(),
    }
}

pub fn trim_to_pb(t: &TrimOutcome) -> TrimResult {
    TrimResult {
        root: t.root.clone(),
        ran: t.ran,
        reason: t.reason.clone(),
        entries_removed: t.entries_removed,
        bytes_freed: t.bytes_freed,
        bytes_before: t.bytes_before,
        bytes_after: t.bytes_after,
        evicted_for_size: t.evicted_for_size,
        errors: t.errors.clone(),
    }
}

pub fn module_problem_to_pb(p: &ModuleProblem) -> ModuleVerdict {
    ModuleVerdict {
        root: p.root.clone(),
        module: p.module.clone(),
        version: p.version.clone(),
        status: p.status.clone(),
        detail: p.detail.clone(),
    }
}

pub fn root_verified_to_pb(v: &RootVerified) -> VerifyModulesResult {
    VerifyModulesResult {
        root: v.root.clone(),
        modules_verified: v.modules_verified,
        modules_bad: v.modules_bad,
        bytes_hashed: v.bytes_hashed,
        errors: v.errors.clone(),
    }
}

/// A live event as `WatchEvents` sends it.
pub fn event_to_pb(e: &DaemonEvent) -> Event {
    let payload = match &e.what {
        Happened::Denial { denial, first_time } => event::Payload::Denial(DenialSeen {
            denial: Some(diagnosed_denial_to_pb(denial)),
            first_time: *first_time,
        }),
        Happened::Repair {
            root,
            action,
            cause,
        } => event::Payload::Repair(RepairDone {
            root: root.display().to_string(),
            action: Some(action_to_pb(action)),
            cause: (*cause).to_owned(),
        }),
        Happened::Quarantined {
            root,
            path,
            kind,
            until_unix,
        } => event::Payload::Quarantined(Quarantined {
            root: root.display().to_string(),
            path: path.display().to_string(),
            kind: kind.as_str().to_owned(),
            until_unix: *until_unix,
        }),
        Happened::Drift {
            root,
            finding,
            heal,
        } => event::Payload::Finding(drift_to_pb(root, finding, *heal)),
    };
    Event {
        at_unix: e.at_unix,
        payload: Some(payload),
    }
}
