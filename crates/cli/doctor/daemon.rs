//! What a running goguardd knows about the caller's caches: the roots it guards for them
//! (ListRoots, owned roots only), their findings as of its last scan (ListFindings), and
//! the newest denials on them (ListDenials, which needs an admin). Turned into the doctor's
//! `daemon` check.
//!
//! A daemon that cannot be reached is not an error: the doctor says so and relies on its
//! local checks. Must never ask the daemon to change anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use goguard_proto::v1 as pb;

use super::report::{Check, CheckId, Finding, Severity, sh_quote};
use crate::client;

/// How long one RPC may take before the doctor gives up on the daemon.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// How many of the newest denials per root are shown.
const RECENT_DENIALS: u32 = 20;

/// What the daemon said.
#[derive(Debug)]
pub struct DaemonFacts {
    /// The socket that answered; `None` when no daemon was reachable.
    pub socket: Option<PathBuf>,
    /// Why it was not reachable, or why a call failed.
    pub problem: Option<String>,
    /// Roots the daemon guards that the caller owns.
    pub roots: Vec<pb::CacheRoot>,
    /// Findings in those roots.
    pub findings: Vec<pb::Finding>,
    /// The newest denials on those roots, or why they could not be listed.
    pub denials: Result<Vec<pb::Denial>, String>,
    /// Declared root labels of every root the caller may see (an admin: all), with what
    /// file_contexts say for them.
    pub declared_labels: Vec<crate::label::LabelRule>,
}

impl Default for DaemonFacts {
    fn default() -> Self {
        DaemonFacts {
            socket: None,
            problem: None,
            roots: Vec::new(),
            findings: Vec::new(),
            denials: Ok(Vec::new()),
            declared_labels: Vec::new(),
        }
    }
}

async fn timed<T>(
    what: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) if s.code() == tonic::Code::PermissionDenied => Err(format!(
            "{what}: not allowed for you (root or the daemon's admin group may)"
        )),
        Ok(Err(s)) => Err(format!("{what} failed: {}", s.message())),
        Err(_) => Err(format!("{what}: no answer in {}s", RPC_TIMEOUT.as_secs())),
    }
}

/// Asks the daemon (if one answers) about the roots `uid` owns.
pub async fn ask(socket: Option<&Path>, uid: u32) -> DaemonFacts {
    let (mut c, path) = match client::connect(socket).await {
        Ok(c) => c,
        Err(e) => {
            return DaemonFacts {
                problem: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    let mut facts = DaemonFacts {
        socket: Some(path),
        ..Default::default()
    };
    let mut roots = Vec::new();
    let mut request = pb::ListRootsRequest::default();
    loop {
        match timed("listing roots", c.list_roots(request.clone())).await {
            Ok(r) => {
                roots.extend(r.roots);
                if r.next_page_token.is_empty() {
                    break;
                }
                request.page_token = r.next_page_token;
            }
            Err(e) => {
                facts.problem = Some(e);
                return facts;
            }
        }
    }
    facts.declared_labels = crate::label::declared(&roots);
    // An admin sees every root: keep the caller's own.
    facts.roots = roots
        .into_iter()
        .filter(|r| r.has_owner && r.owner_uid == uid)
        .collect();
    // Only the findings of those roots, every page.
    'roots: for root in &facts.roots {
        let mut request = pb::ListFindingsRequest {
            path_prefix: root.path.clone(),
            ..Default::default()
        };
        loop {
            match timed("listing findings", c.list_findings(request.clone())).await {
                Ok(r) => {
                    facts
                        .findings
                        .extend(r.findings.into_iter().filter(|f| f.root == root.path));
                    if r.next_page_token.is_empty() {
                        break;
                    }
                    request.page_token = r.next_page_token;
                }
                Err(e) => {
                    facts.problem = Some(e);
                    break 'roots;
                }
            }
        }
    }
    let mut denials = Vec::new();
    for root in &facts.roots {
        let request = pb::ListDenialsRequest {
            path_prefix: root.path.clone(),
            page_size: RECENT_DENIALS,
            ..Default::default()
        };
        match timed("listing denials", c.list_denials(request)).await {
            Ok(r) => denials.extend(r.denials),
            Err(e) => {
                facts.denials = Err(e);
                return facts;
            }
        }
    }
    facts.denials = Ok(denials);
    facts
}

fn severity(s: &str) -> Severity {
    match s {
        "critical" | "error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

/// The `daemon` check from what the daemon said. `local_roots` are the caller's cache
/// directories as the doctor computed them (to say which ones the daemon does not guard).
pub fn check(facts: &DaemonFacts, local_roots: &[PathBuf]) -> Check {
    let Some(socket) = &facts.socket else {
        let mut c = Check::skipped(
            CheckId::Daemon,
            "daemon not reachable: local checks only".to_owned(),
        );
        if let Some(p) = &facts.problem {
            c.notes.push(p.clone());
        }
        return c;
    };
    let mut c = Check::ran(CheckId::Daemon);
    c.notes.push(format!(
        "goguardd at {} guards {} root{} of yours{}",
        socket.display(),
        facts.roots.len(),
        if facts.roots.len() == 1 { "" } else { "s" },
        if facts.roots.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                facts
                    .roots
                    .iter()
                    .map(|r| r.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    for local in local_roots {
        if !facts.roots.iter().any(|r| Path::new(&r.path) == local) {
            c.notes.push(format!(
                "goguardd does not guard {} for you (not discovered, or another root covers it)",
                local.display()
            ));
        }
    }
    if let Some(p) = &facts.problem {
        c.notes.push(p.clone());
    }
    for r in facts.declared_labels.iter().filter(|r| !r.persisted()) {
        c.findings.push(Finding::new(
            Severity::Warning,
            "label_not_persisted",
            Some(r.root.clone()),
            format!(
                "{} declares label {}, but file_contexts give it {}: the next restorecon or \
                 full relabel undoes it (goguardd then relabels it back)",
                r.root,
                r.declared_type,
                if r.file_contexts_type.is_empty() {
                    "no type"
                } else {
                    &r.file_contexts_type
                }
            ),
            vec![
                format!("goguardctl label persist {}", sh_quote(&r.root)),
                format!(
                    "semanage fcontext -a -t {} {}",
                    r.declared_type,
                    sh_quote(&r.spec())
                ),
            ],
        ));
    }
    for f in &facts.findings {
        let mut finding = Finding::new(
            severity(&f.severity),
            f.kind.clone(),
            Some(f.path.clone()),
            format!(
                "goguardd found {} at {}: {}, expected {} (heal: {})",
                f.kind, f.path, f.observed, f.expected, f.heal
            ),
            vec![format!(
                "goguardctl repair --kind {} {}",
                sh_quote(&f.kind),
                sh_quote(&f.path)
            )],
        );
        finding.count = Some(1);
        c.findings.push(finding);
    }
    match &facts.denials {
        Err(e) => c.notes.push(format!("denials not shown: {e}")),
        Ok(ds) if ds.is_empty() => c
            .notes
            .push("goguardd has seen no SELinux denials on your caches".to_owned()),
        Ok(ds) => {
            for d in ds {
                let status = crate::denials::status_name(d.status);
                let message = format!(
                    "SELinux denied {{ {} }} to {} ({}) on {} ({}, tcontext {}), {} time{}; {status}",
                    d.permissions.join(" "),
                    d.comm,
                    d.scontext,
                    d.target,
                    d.tclass,
                    d.tcontext,
                    d.count,
                    if d.count == 1 { "" } else { "s" }
                );
                let severity = if status == "new" {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                // What fixes a denial depends on its diagnosis, which `denials` shows.
                let fix = vec![format!("goguardctl denials --path {}", sh_quote(&d.target))];
                c.findings.push(Finding::new(
                    severity,
                    "denial",
                    Some(d.target.clone()),
                    message,
                    fix,
                ));
            }
        }
    }
    c
}
