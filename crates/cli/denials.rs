//! `goguardctl denials` and `goguardctl watch`: the daemon's remembered
//! denials as a table or JSON, and its live event stream as lines or JSON
//! lines. Rendering only; filtering and paging happen in the daemon.

use goguard_proto::v1 as pb;
use serde::Serialize;

use crate::render::{Style, Table, term_safe};
use crate::timefmt;

/// The JSON shape of one denial (`denials --json`, `watch --json`).
#[derive(Debug, Serialize)]
pub struct DenialJson {
    pub id: i64,
    pub count: u64,
    pub first_seen_unix: f64,
    pub last_seen_unix: f64,
    pub status: &'static str,
    pub comm: String,
    pub exe: String,
    pub permissions: Vec<String>,
    pub tclass: String,
    pub target: String,
    pub scontext: String,
    pub tcontext: String,
    pub go_related: bool,
    pub last_event_id: String,
    pub fixed_by_repair: Option<i64>,
    pub last_raw: String,
    /// Why it was denied and what fixes it (from goguardd; absent from older daemons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<DiagnosisJson>,
}

/// The JSON shape of a diagnosis (`denials --json`, `explain --json`).
#[derive(Debug, Serialize, PartialEq)]
pub struct DiagnosisJson {
    pub kind: String,
    pub summary: String,
    pub explanation: String,
    pub fixes: Vec<String>,
    pub auto_fixable: bool,
    pub policy_source: String,
}

impl DiagnosisJson {
    pub fn from_pb(d: &pb::Diagnosis) -> DiagnosisJson {
        DiagnosisJson {
            kind: d.kind.clone(),
            summary: d.summary.clone(),
            explanation: d.explanation.clone(),
            fixes: d.fixes.clone(),
            auto_fixable: d.auto_fixable,
            policy_source: d.policy_source.clone(),
        }
    }

    /// From goguard-diagnose directly (offline commands).
    pub fn from_diagnosis(d: &goguard_diagnose::Diagnosis, policy_source: &str) -> DiagnosisJson {
        DiagnosisJson {
            kind: d.kind.as_str().to_owned(),
            summary: d.summary.clone(),
            explanation: d.explanation.clone(),
            fixes: d.fixes.clone(),
            auto_fixable: d.auto_fix,
            policy_source: policy_source.to_owned(),
        }
    }

    /// Indented lines: summary, explanation, each fix, the policy used.
    pub fn render(&self, indent: &str, style: &Style) -> String {
        let mut out = format!(
            "{indent}{} {}\n",
            style.bold(&format!("[{}]", term_safe(&self.kind))),
            term_safe(&self.summary)
        );
        out.push_str(&format!("{indent}why: {}\n", term_safe(&self.explanation)));
        for f in &self.fixes {
            out.push_str(&format!("{indent}fix: {}\n", term_safe(f)));
        }
        if self.auto_fixable {
            out.push_str(&format!(
                "{indent}goguardd fixes this itself where the heal policy allows\n"
            ));
        }
        out.push_str(&format!(
            "{indent}policy: {}\n",
            term_safe(&self.policy_source)
        ));
        out
    }
}

pub fn status_name(s: i32) -> &'static str {
    match pb::DenialStatus::try_from(s) {
        Ok(pb::DenialStatus::New) => "new",
        Ok(pb::DenialStatus::Fixed) => "fixed",
        Ok(pb::DenialStatus::Acknowledged) => "acknowledged",
        Ok(pb::DenialStatus::Ignored) => "ignored",
        _ => "unknown",
    }
}

pub fn parse_status(s: &str) -> Result<pb::DenialStatus, String> {
    match s {
        "new" => Ok(pb::DenialStatus::New),
        "fixed" => Ok(pb::DenialStatus::Fixed),
        "acknowledged" => Ok(pb::DenialStatus::Acknowledged),
        "ignored" => Ok(pb::DenialStatus::Ignored),
        _ => Err(format!(
            "{s:?} is not a status: use new, fixed, acknowledged or ignored"
        )),
    }
}

impl DenialJson {
    pub fn from_pb(d: &pb::Denial) -> DenialJson {
        DenialJson {
            id: d.id,
            count: d.count,
            first_seen_unix: d.first_seen_unix,
            last_seen_unix: d.last_seen_unix,
            status: status_name(d.status),
            comm: d.comm.clone(),
            exe: d.exe.clone(),
            permissions: d.permissions.clone(),
            tclass: d.tclass.clone(),
            target: d.target.clone(),
            scontext: d.scontext.clone(),
            tcontext: d.tcontext.clone(),
            go_related: d.go_related,
            last_event_id: d.last_event_id.clone(),
            fixed_by_repair: (d.fixed_by_repair != 0).then_some(d.fixed_by_repair),
            last_raw: d.last_raw.clone(),
            diagnosis: d.diagnosis.as_ref().map(DiagnosisJson::from_pb),
        }
    }
}

/// `denials --explain`: each denial on a line, its diagnosis under it.
pub fn render_explained(denials: &[pb::Denial], style: &Style) -> String {
    if denials.is_empty() {
        return "no denials match\n".to_owned();
    }
    let mut out = String::new();
    for d in denials {
        out.push_str(&format!(
            "{} {}× {} {} {} {} ({} → {}) [{}]\n",
            timefmt::utc(d.last_seen_unix),
            d.count,
            style.warn(&term_safe(&d.comm)),
            term_safe(&perms(&d.permissions)),
            term_safe(&d.tclass),
            term_safe(&d.target),
            term_safe(selinux_type(&d.scontext)),
            term_safe(selinux_type(&d.tcontext)),
            status_name(d.status)
        ));
        match &d.diagnosis {
            Some(diag) => out.push_str(&DiagnosisJson::from_pb(diag).render("    ", style)),
            None => out.push_str("    (no diagnosis: goguardd is older than goguardctl)\n"),
        }
        out.push('\n');
    }
    out
}

/// The SELinux type of a context (`system_u:object_r:cache_home_t:s0` →
/// `cache_home_t`), or the whole string if it has no type field.
pub fn selinux_type(context: &str) -> &str {
    goguard_policy::drift::context_type(context).unwrap_or(context)
}

fn perms(p: &[String]) -> String {
    format!("{{ {} }}", p.join(" "))
}

pub fn render_table(denials: &[pb::Denial], style: &Style) -> String {
    if denials.is_empty() {
        return "no denials match\n".to_owned();
    }
    let mut t = Table::new(&[
        "LAST SEEN (UTC)",
        "COUNT",
        "STATUS",
        "COMM",
        "DENIED",
        "CLASS",
        "SOURCE → TARGET TYPE",
        "TARGET",
    ]);
    for d in denials {
        let status = status_name(d.status);
        let painted = match status {
            "new" => style.warn(status),
            "fixed" => style.good(status),
            _ => style.dim(status),
        };
        let types = format!(
            "{} → {}",
            selinux_type(&d.scontext),
            selinux_type(&d.tcontext)
        );
        let cells = [
            timefmt::utc(d.last_seen_unix),
            d.count.to_string(),
            status.to_owned(),
            d.comm.clone(),
            perms(&d.permissions),
            d.tclass.clone(),
            types,
            d.target.clone(),
        ];
        let mut row: Vec<(String, String)> = cells.iter().map(|c| (c.clone(), c.clone())).collect();
        row[2].1 = painted;
        t.row(row);
    }
    t.render(style)
}

/// One line per live event.
pub fn render_event(e: &pb::Event, style: &Style) -> Option<String> {
    let at = timefmt::utc(e.at_unix);
    match e.payload.as_ref()? {
        pb::event::Payload::Denial(seen) => {
            let d = seen.denial.as_ref()?;
            let what = if seen.first_time {
                style.warn("new denial")
            } else {
                "denial again".to_owned()
            };
            Some(format!(
                "{at} {what}: {} {} {} {} ({} → {}) count={}",
                term_safe(&d.comm),
                term_safe(&perms(&d.permissions)),
                term_safe(&d.tclass),
                term_safe(&d.target),
                term_safe(selinux_type(&d.scontext)),
                term_safe(selinux_type(&d.tcontext)),
                d.count
            ))
        }
        pb::event::Payload::Repair(r) => {
            let a = r.action.as_ref()?;
            Some(format!(
                "{at} {}: {} {}: {} → {} ({}; {})",
                style.good("repaired"),
                term_safe(&a.operation),
                term_safe(&a.path),
                term_safe(&a.before),
                term_safe(&a.after),
                term_safe(&a.fixes.join(", ")),
                term_safe(&r.cause)
            ))
        }
        pb::event::Payload::Finding(f) => Some(format!(
            "{at} {}: {} {} (observed {}, expected {}; heal: {})",
            style.warn("finding"),
            term_safe(&f.kind),
            term_safe(&f.path),
            term_safe(&f.observed),
            term_safe(&f.expected),
            term_safe(&f.heal)
        )),
        pb::event::Payload::Quarantined(q) => Some(format!(
            "{at} {}: {} keeps returning to {}; no repairs until {} UTC",
            style.bad("quarantined"),
            term_safe(&q.path),
            term_safe(&q.kind),
            timefmt::utc(q.until_unix)
        )),
    }
}

/// The JSON line of a live event.
#[derive(Debug, Serialize)]
pub struct EventJson {
    pub at_unix: f64,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_time: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<serde_json::Value>,
}

pub fn event_json(e: &pb::Event) -> Option<EventJson> {
    let mut out = EventJson {
        at_unix: e.at_unix,
        kind: "",
        first_time: None,
        denial: None,
        repair: None,
        quarantined: None,
        finding: None,
    };
    match e.payload.as_ref()? {
        pb::event::Payload::Denial(seen) => {
            out.kind = "denial";
            out.first_time = Some(seen.first_time);
            out.denial = seen.denial.as_ref().map(DenialJson::from_pb);
        }
        pb::event::Payload::Repair(r) => {
            let a = r.action.as_ref()?;
            out.kind = "repair";
            out.repair = Some(serde_json::json!({
                "root": r.root, "cause": r.cause, "path": a.path, "operation": a.operation,
                "before": a.before, "after": a.after, "applied": a.applied, "fixes": a.fixes,
            }));
        }
        pb::event::Payload::Finding(f) => {
            out.kind = "finding";
            out.finding = Some(serde_json::json!({
                "root": f.root, "path": f.path, "kind": f.kind, "observed": f.observed,
                "expected": f.expected, "severity": f.severity, "heal": f.heal,
            }));
        }
        pb::event::Payload::Quarantined(q) => {
            out.kind = "quarantined";
            out.quarantined = Some(serde_json::json!({
                "root": q.root, "path": q.path, "kind": q.kind, "until_unix": q.until_unix,
            }));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_third_field() {
        assert_eq!(
            selinux_type("system_u:object_r:cache_home_t:s0"),
            "cache_home_t"
        );
        assert_eq!(
            selinux_type("system_u:system_r:container_t:s0:c1,c2"),
            "container_t"
        );
        assert_eq!(selinux_type("odd"), "odd");
    }
}
