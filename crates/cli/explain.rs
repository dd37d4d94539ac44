//! `goguardctl explain [--all] [--json] FILE|-`: reads an audit log offline
//! with the daemon's own parser, like `sealert -a`, and needs no daemon.
//!
//! Default output groups the go-related denials (same contexts, class,
//! permissions, target and command) with counts and what caused each; `--json`
//! prints one JSON object per AVC/USER_AVC record. Exit codes: 0 when no
//! go-related denial was found, 1 when some were, 2 on an error.
//!
//! Each denial comes with goguard-diagnose's diagnosis. With `--policy PATH`
//! the binary policy is read here and handed to libsepol as bytes, so
//! booleans, constraints and missing rules are told apart (audit2why);
//! without it the diagnosis says it had no policy. Offline, no root, label or
//! owner facts are known: those come from the daemon (`denials --explain`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use goguard_audit::{Avc, DenialKey, GoTools};

use goguard_diagnose::{DiagnosisInput, NO_POLICY, Policy, PolicyVerdict};

use crate::denials::{DiagnosisJson, selinux_type};
use crate::render::{Style, Table, term_safe};
use crate::timefmt;

/// Everything `explain` learned from one log.
pub struct Explained {
    pub records: usize,
    pub events: usize,
    pub malformed: usize,
    /// (avc, go_related) for every AVC/USER_AVC record, in log order.
    pub avcs: Vec<(Avc, bool)>,
}

/// A binary policy given with `--policy`.
pub struct PolicyInUse {
    pub policy: Policy,
    pub path: PathBuf,
}

impl PolicyInUse {
    pub fn load(path: &Path) -> Result<PolicyInUse, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let policy = Policy::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PolicyInUse {
            policy,
            path: path.to_owned(),
        })
    }

    /// What `policy_source` says.
    pub fn source(&self) -> String {
        format!("policy {}", self.path.display())
    }
}

/// The diagnosis of one AVC from the record alone (plus the policy's verdict).
pub fn diagnosis_of(avc: &Avc, policy: Option<&PolicyInUse>) -> DiagnosisJson {
    let verdict = policy.and_then(|p| p.policy.verdict_for(avc));
    diagnosis_with(avc, verdict.as_ref(), policy)
}

fn diagnosis_with(
    avc: &Avc,
    verdict: Option<&PolicyVerdict>,
    policy: Option<&PolicyInUse>,
) -> DiagnosisJson {
    let d = goguard_diagnose::diagnose(&DiagnosisInput {
        verdict,
        ..DiagnosisInput::new(avc)
    });
    let source = match policy {
        Some(p) => p.source(),
        None => format!("no --policy given; {NO_POLICY}"),
    };
    DiagnosisJson::from_diagnosis(&d, &source)
}

pub fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

pub fn analyze(bytes: &[u8], tools: &GoTools) -> Explained {
    let (events, errors) = goguard_audit::parse_log(bytes);
    let no_roots: [&Path; 0] = [];
    let mut avcs = Vec::new();
    let mut records = 0;
    for e in &events {
        records += e.len();
        for avc in e.avcs() {
            let related = tools.is_go_related(&avc, &no_roots);
            avcs.push((avc, related));
        }
    }
    Explained {
        records,
        events: events.len(),
        malformed: errors.iter().filter(|e| !e.kind.is_ignorable()).count(),
        avcs,
    }
}

/// One JSON object per AVC record (go-related only unless `all`), each with
/// a `diagnosis` object.
pub fn render_json(x: &Explained, all: bool, policy: Option<&PolicyInUse>) -> String {
    // A verdict flips every boolean: ask once per distinct access.
    let mut verdicts: HashMap<(String, String, String, String), Option<PolicyVerdict>> =
        HashMap::new();
    let mut out = String::new();
    for (avc, related) in &x.avcs {
        if *related || all {
            let verdict = policy.and_then(|p| {
                verdicts
                    .entry((
                        avc.scontext.clone().unwrap_or_default(),
                        avc.tcontext.clone().unwrap_or_default(),
                        avc.tclass.clone().unwrap_or_default(),
                        avc.permissions.join(" "),
                    ))
                    .or_insert_with(|| p.policy.verdict_for(avc))
                    .clone()
            });
            let mut record =
                serde_json::to_value(avc.to_json_record(*related)).expect("json record");
            if let Some(obj) = record.as_object_mut() {
                obj.insert(
                    "diagnosis".into(),
                    serde_json::to_value(diagnosis_with(avc, verdict.as_ref(), policy))
                        .expect("json diagnosis"),
                );
            }
            out.push_str(&crate::render::json_line(&record));
            out.push('\n');
        }
    }
    out
}

struct Group<'a> {
    first: &'a Avc,
    count: usize,
    first_seen: f64,
    last_seen: f64,
    related: bool,
}

/// A sentence saying what happened and what usually causes it. The full
/// diagnosis (booleans, constraints, relabel advice) comes with the policy
/// analysis; this names the facts in the record.
pub fn cause(avc: &Avc) -> String {
    let source = avc.scontext.as_deref().map(selinux_type).unwrap_or("?");
    let target = avc.tcontext.as_deref().map(selinux_type).unwrap_or("?");
    let class = avc.tclass.as_deref().unwrap_or("?");
    let comm = avc.comm.as_deref().unwrap_or("?");
    let mut s = format!(
        "{comm} running as {source} may not {} this {class} labeled {target}",
        avc.permissions.join("/")
    );
    if avc.permissive == Some(true) {
        s.push_str(" (permissive: logged, not blocked)");
    }
    let hint = match target {
        t if t.ends_with("tmp_t") => {
            Some("files moved from /tmp keep tmp labels; a relabel (restorecon) fixes them")
        }
        "cache_home_t" | "user_home_t" | "home_root_t" | "user_home_dir_t"
            if source == "container_t" =>
        {
            Some(
                "a container build uses a home cache: mount it with :Z, or give the build its own cache",
            )
        }
        "cache_home_t" | "user_home_t" if source != "unconfined_t" => Some(
            "a confined service writes to a home cache: point its GOCACHE elsewhere, or declare the cache a root with a label it may write",
        ),
        _ => None,
    };
    if let Some(h) = hint {
        s.push_str("; ");
        s.push_str(h);
    }
    s
}

pub fn render_text(
    x: &Explained,
    all: bool,
    policy: Option<&PolicyInUse>,
    style: &Style,
) -> String {
    let mut groups: BTreeMap<DenialKey, Group<'_>> = BTreeMap::new();
    let mut denied = 0;
    for (avc, related) in &x.avcs {
        if !avc.is_denied() || !(*related || all) {
            continue;
        }
        denied += 1;
        let t = avc.id.secs_f64();
        groups
            .entry(avc.dedup_key())
            .and_modify(|g| {
                g.count += 1;
                g.first_seen = g.first_seen.min(t);
                g.last_seen = g.last_seen.max(t);
            })
            .or_insert(Group {
                first: avc,
                count: 1,
                first_seen: t,
                last_seen: t,
                related: *related,
            });
    }
    let mut out = format!(
        "read {} events ({} records, {} AVC/USER_AVC, {} malformed lines skipped)\n",
        x.events,
        x.records,
        x.avcs.len(),
        x.malformed
    );
    let what = if all { "denials" } else { "go-related denials" };
    if groups.is_empty() {
        out.push_str(&format!("no {what} found\n"));
        return out;
    }
    out.push_str(&format!("{denied} {what}, {} distinct:\n\n", groups.len()));
    let mut ordered: Vec<&Group<'_>> = groups.values().collect();
    ordered.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen.total_cmp(&a.last_seen))
    });
    for g in ordered {
        let a = g.first;
        let target = a
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .or_else(|| a.name.clone())
            .unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "{} {} {{ {} }} {} {}\n",
            style.bold(&format!("{}×", g.count)),
            style.warn(&term_safe(a.comm.as_deref().unwrap_or("?"))),
            term_safe(&a.permissions.join(" ")),
            term_safe(a.tclass.as_deref().unwrap_or("?")),
            term_safe(&target)
        ));
        let mut t = Table::new(&["", ""]);
        let mut field =
            |k: &str, v: String| t.row(vec![(format!("  {k}"), format!("  {k}")), (v.clone(), v)]);
        field("source", a.scontext.clone().unwrap_or_default());
        field("target", a.tcontext.clone().unwrap_or_default());
        if let Some(exe) = &a.exe {
            field("exe", exe.display().to_string());
        }
        field(
            "seen",
            format!(
                "{} .. {} UTC",
                timefmt::utc(g.first_seen),
                timefmt::utc(g.last_seen)
            ),
        );
        if !g.related {
            field("go", "not go-related (shown because of --all)".into());
        }
        field("cause", cause(a));
        let rendered = t.render(&Style { color: false });
        // Skip the empty header line of the two-column table.
        out.extend(rendered.lines().skip(1).map(|l| format!("{l}\n")));
        out.push_str("  diagnosis:\n");
        out.push_str(&diagnosis_of(a, policy).render("    ", style));
        out.push('\n');
    }
    out
}

pub fn go_related_denials(x: &Explained) -> usize {
    x.avcs.iter().filter(|(a, r)| *r && a.is_denied()).count()
}
