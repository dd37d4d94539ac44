//! `goguardctl roots`, `findings` and `repair`: the cache roots, what drifted
//! in them, and repairs on request. Rendering only; the daemon decides.

use goguard_proto::v1 as pb;
use serde::Serialize;

use crate::render::{Style, Table, term_safe};
use crate::timefmt;

#[derive(Debug, Serialize)]
pub struct RootJson {
    pub path: String,
    pub kind: String,
    pub origin: String,
    pub owner_uid: Option<u32>,
    pub exists: bool,
    pub entries: u64,
    pub findings: u64,
    pub last_scan_unix: f64,
    /// The type the `[[root]] label` declares (absent: file_contexts decide).
    pub declared_label_type: Option<String>,
    /// What file_contexts (and so restorecon) give the root (absent: unknown).
    pub file_contexts_type: Option<String>,
    /// With a declared label: whether file_contexts agree, so restorecon keeps it.
    pub label_persisted: Option<bool>,
}

impl RootJson {
    pub fn from_pb(r: &pb::CacheRoot) -> RootJson {
        RootJson {
            path: r.path.clone(),
            kind: r.kind.clone(),
            origin: r.origin.clone(),
            owner_uid: r.has_owner.then_some(r.owner_uid),
            exists: r.exists,
            entries: r.entries,
            findings: r.findings,
            last_scan_unix: r.last_scan_unix,
            declared_label_type: (!r.declared_label_type.is_empty())
                .then(|| r.declared_label_type.clone()),
            file_contexts_type: (!r.file_contexts_type.is_empty())
                .then(|| r.file_contexts_type.clone()),
            label_persisted: (!r.declared_label_type.is_empty())
                .then(|| r.declared_label_type == r.file_contexts_type),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FindingJson {
    pub root: String,
    pub path: String,
    pub kind: String,
    pub observed: String,
    pub expected: String,
    pub severity: String,
    pub heal: String,
}

impl FindingJson {
    pub fn from_pb(f: &pb::Finding) -> FindingJson {
        FindingJson {
            root: f.root.clone(),
            path: f.path.clone(),
            kind: f.kind.clone(),
            observed: f.observed.clone(),
            expected: f.expected.clone(),
            severity: f.severity.clone(),
            heal: f.heal.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ActionJson {
    pub path: String,
    pub operation: String,
    pub before: String,
    pub after: String,
    pub applied: bool,
    pub error: Option<String>,
    pub fixes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RepairJson {
    pub root: String,
    pub dry_run: bool,
    pub actions: Vec<ActionJson>,
    pub remaining: Vec<FindingJson>,
    /// Over the whole repair (the lists hold at most one reply's budget).
    pub applied_total: u64,
    pub failed_total: u64,
    /// Changes and findings not listed (every applied change is in the journal).
    pub actions_omitted: u64,
    pub remaining_omitted: u64,
}

impl RepairJson {
    pub fn from_pb(r: &pb::RepairResponse, dry_run: bool) -> RepairJson {
        RepairJson {
            root: r.root.clone(),
            dry_run,
            actions: r
                .actions
                .iter()
                .map(|a| ActionJson {
                    path: a.path.clone(),
                    operation: a.operation.clone(),
                    before: a.before.clone(),
                    after: a.after.clone(),
                    applied: a.applied,
                    error: (!a.error.is_empty()).then(|| a.error.clone()),
                    fixes: a.fixes.clone(),
                })
                .collect(),
            remaining: r.remaining.iter().map(FindingJson::from_pb).collect(),
            applied_total: r.applied_total,
            failed_total: r.failed_total,
            actions_omitted: r.actions_omitted,
            remaining_omitted: r.remaining_omitted,
        }
    }

    /// Something asked for is still broken: an error, or a finding left.
    pub fn left_unrepaired(&self) -> bool {
        self.actions.iter().any(|a| a.error.is_some())
            || !self.remaining.is_empty()
            || self.failed_total > 0
            || self.remaining_omitted > 0
    }
}

fn cells(values: &[String]) -> Vec<(String, String)> {
    values.iter().map(|v| (v.clone(), v.clone())).collect()
}

/// One page of the roots table.
pub fn roots_table(roots: &[pb::CacheRoot], style: &Style) -> Table {
    let mut t = Table::new(&[
        "ROOT",
        "KIND",
        "ORIGIN",
        "OWNER",
        "ENTRIES",
        "FINDINGS",
        "LAST SCAN (UTC)",
    ]);
    for x in roots {
        let findings = x.findings.to_string();
        let painted = if x.findings == 0 {
            style.good(&findings)
        } else {
            style.warn(&findings)
        };
        let mut row = cells(&[
            x.path.clone(),
            x.kind.clone(),
            x.origin.clone(),
            if x.has_owner {
                x.owner_uid.to_string()
            } else {
                "shared".into()
            },
            if x.exists {
                x.entries.to_string()
            } else {
                "absent".into()
            },
            findings,
            timefmt::utc(x.last_scan_unix),
        ]);
        row[5].1 = painted;
        t.row(row);
    }
    t
}

/// What follows the roots table: the line for no roots, and discovery problems.
pub fn roots_footer(roots: usize, problems: &[String]) -> String {
    let mut out = String::new();
    if roots == 0 {
        out.push_str("no cache roots (none declared, and no user's GOCACHE/GOMODCACHE found)\n");
    }
    if !problems.is_empty() {
        out.push_str("\nproblems:\n");
        for p in problems {
            out.push_str(&format!("  - {}\n", term_safe(p)));
        }
    }
    out
}

/// One page of the findings table.
pub fn findings_table(f: &[pb::Finding], style: &Style) -> Table {
    let mut t = Table::new(&["SEVERITY", "KIND", "PATH", "OBSERVED", "EXPECTED", "HEAL"]);
    for x in f {
        let mut row = cells(&[
            x.severity.clone(),
            x.kind.clone(),
            x.path.clone(),
            x.observed.clone(),
            x.expected.clone(),
            x.heal.clone(),
        ]);
        row[0].1 = match x.severity.as_str() {
            "critical" | "error" => style.bad(&x.severity),
            "warning" => style.warn(&x.severity),
            _ => x.severity.clone(),
        };
        t.row(row);
    }
    t
}

pub fn render_findings(f: &[pb::Finding], style: &Style) -> String {
    if f.is_empty() {
        return format!("{}\n", style.good("no findings: every root is as expected"));
    }
    findings_table(f, style).render(style)
}

pub fn render_repair(r: &RepairJson, style: &Style) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would change" } else { "changed" };
    let done: Vec<&ActionJson> = r
        .actions
        .iter()
        .filter(|a| a.applied || r.dry_run)
        .collect();
    if done.is_empty() && r.actions.iter().all(|a| a.error.is_none()) {
        out.push_str(&format!(
            "{}: nothing to repair in {}\n",
            style.good("ok"),
            term_safe(&r.root)
        ));
    }
    for a in &r.actions {
        match &a.error {
            Some(e) => out.push_str(&format!(
                "{} {} {}: {}\n",
                style.bad("failed"),
                term_safe(&a.operation),
                term_safe(&a.path),
                term_safe(e)
            )),
            None if a.applied || r.dry_run => out.push_str(&format!(
                "{verb} {} {}: {} → {} ({})\n",
                term_safe(&a.operation),
                term_safe(&a.path),
                term_safe(if a.before.is_empty() { "-" } else { &a.before }),
                term_safe(&a.after),
                term_safe(&a.fixes.join(", "))
            )),
            None => {}
        }
    }
    if r.actions_omitted > 0 {
        out.push_str(&format!(
            "… and {} more changes not listed here ({} changed, {} failed in all); every change \
             is in `goguardctl journal --path {}`\n",
            r.actions_omitted,
            r.applied_total,
            r.failed_total,
            term_safe(&r.root)
        ));
    }
    if !r.remaining.is_empty() {
        let more = if r.remaining_omitted > 0 {
            format!(" (and {} more: `goguardctl findings`)", r.remaining_omitted)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "\n{} findings left{more}:\n",
            r.remaining.len() as u64 + r.remaining_omitted
        ));
        out.push_str(&render_findings(
            &r.remaining
                .iter()
                .map(|f| pb::Finding {
                    root: f.root.clone(),
                    path: f.path.clone(),
                    kind: f.kind.clone(),
                    observed: f.observed.clone(),
                    expected: f.expected.clone(),
                    severity: f.severity.clone(),
                    heal: f.heal.clone(),
                })
                .collect::<Vec<_>>(),
            style,
        ));
    }
    out
}
