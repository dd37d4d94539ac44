//! `goguardctl policy [--all] [--name NAME] [--since T] [--input FILE] [--policy PATH]`:
//! drafts a complete SELinux policy module (`module NAME 1.0;`, `require`, the rules) as
//! `.te` text on stdout, the allow rules being exactly audit2allow's for the same denials
//! (goguard-diagnose's [`PolicyDraft`]). Where a relabel is the better answer, the
//! `semanage fcontext` and `restorecon` lines follow the rules as `#` comments, so the
//! output still compiles with `checkmodule -M -m`.
//!
//! Sources: the daemon's stored denials (ListDenials pages, each row's last event
//! re-parsed), or an audit log read offline with `--input` (go-related denials only unless
//! `--all`). `--policy PATH` adds audit2allow -p's verdict notes (booleans, constraints,
//! already allowed) and drops accesses the policy cannot express.
//!
//! Never loads a module or changes a label: it prints text for an admin to review. Exit
//! codes: 0 a module was drafted, 1 nothing to allow (and why, on stderr), 2 an error.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use goguard_audit::{AuditEvent, Avc, GoTools};
use goguard_diagnose::{CacheRootLabel, ModuleName, PolicyDraft, PolicyVerdict};
use goguard_proto::v1 as pb;

use crate::explain::PolicyInUse;
use crate::{client, render, timefmt};

#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// Include denials that are not go-related (with --input; the daemon
    /// stores go-related denials only).
    #[arg(long)]
    all: bool,
    /// The module name (a letter, then letters, digits, `_`, `-` or `.`).
    #[arg(long, default_value = "goguard_local")]
    name: String,
    /// Only denials seen since: 10m, 2h, 3d, unix seconds or 2026-11-29T06:00:00Z.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Read this audit log offline instead of asking goguardd (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// A binary policy (policy.33) for audit2allow -p's notes (booleans,
    /// constraints, already allowed).
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// Process names that count as Go tools with --input (repeatable).
    #[arg(long = "tool", value_name = "NAME")]
    tools: Vec<String>,
}

/// Adds each AVC once, asking `policy` for its verdict (cached per access: a verdict
/// flips every boolean of the policy).
struct Drafter<'a> {
    draft: PolicyDraft,
    policy: Option<&'a PolicyInUse>,
    verdicts: HashMap<(String, String, String, Vec<String>), Option<PolicyVerdict>>,
}

impl<'a> Drafter<'a> {
    fn new(roots: Vec<CacheRootLabel>, policy: Option<&'a PolicyInUse>) -> Drafter<'a> {
        Drafter {
            draft: PolicyDraft::with_roots(roots),
            policy,
            verdicts: HashMap::new(),
        }
    }

    fn add(&mut self, avc: &Avc) {
        let verdict = self.policy.and_then(|p| {
            let mut perms = avc.permissions.clone();
            perms.sort();
            self.verdicts
                .entry((
                    avc.scontext.clone().unwrap_or_default(),
                    avc.tcontext.clone().unwrap_or_default(),
                    avc.tclass.clone().unwrap_or_default(),
                    perms,
                ))
                .or_insert_with(|| p.policy.verdict_for(avc))
                .clone()
        });
        self.draft.add_avc(avc, verdict.as_ref());
    }
}

/// The draft for the denials of an audit log: those seen at or after `since`, go-related
/// ones only unless `all` (then also `SELINUX_ERR` role requests, as audit2allow).
fn draft_from_log(
    events: &[AuditEvent],
    tools: &GoTools,
    all: bool,
    since: f64,
    policy: Option<&PolicyInUse>,
) -> PolicyDraft {
    let no_roots: [&Path; 0] = [];
    let mut d = Drafter::new(Vec::new(), policy);
    for e in events.iter().filter(|e| e.id.secs_f64() >= since) {
        for avc in e.avcs() {
            if all || tools.is_go_related(&avc, &no_roots) {
                d.add(&avc);
            }
        }
        if all {
            for (role, type_) in goguard_diagnose::draft::role_types_of(e) {
                d.draft.add_role_type(&role, &type_);
            }
        }
    }
    d.draft
}

/// The AVC a stored denial was recorded for, from its last event (the stored target as
/// its path when the record named only the inode).
pub fn avc_of_denial(d: &pb::Denial) -> Option<Avc> {
    let (events, _) = goguard_audit::parse_log(d.last_raw.as_bytes());
    let mut avcs: Vec<Avc> = events.iter().flat_map(AuditEvent::avcs).collect();
    let mut perms = d.permissions.clone();
    perms.sort();
    let i = avcs
        .iter()
        .position(|a| {
            let k = a.dedup_key();
            k.scontext == d.scontext
                && k.tcontext == d.tcontext
                && k.tclass == d.tclass
                && k.permissions == perms
        })
        .or_else(|| avcs.iter().position(Avc::is_denied))?;
    let mut avc = avcs.swap_remove(i);
    if avc.path.is_none() && d.target.starts_with('/') {
        avc.path = Some(PathBuf::from(&d.target));
    }
    Some(avc)
}

/// The module text; label advice is printed by the drafter as `#!!!!` notes
/// above the rule it would make unnecessary.
pub fn render_module(draft: &PolicyDraft, name: &ModuleName) -> String {
    draft.render_module(name)
}

pub fn run(args: PolicyArgs, socket: Option<PathBuf>, _style: &render::Style) -> ExitCode {
    let name = match ModuleName::new(&args.name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("goguardctl: --name: {e}");
            return ExitCode::from(2);
        }
    };
    let now = timefmt::now_unix();
    let since = match args.since.as_deref().map(|s| timefmt::parse_since(s, now)) {
        None => 0.0,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("goguardctl: --since: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match args.policy.as_deref().map(PolicyInUse::load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("goguardctl: --policy: {e}");
            return ExitCode::from(2);
        }
    };
    let (draft, source) = match &args.input {
        Some(input) => {
            let bytes = match crate::explain::read_input(input) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("goguardctl: cannot read {}: {e}", input.display());
                    return ExitCode::from(2);
                }
            };
            let tools = if args.tools.is_empty() {
                GoTools::default()
            } else {
                GoTools::new(args.tools.clone())
            };
            let (events, _) = goguard_audit::parse_log(&bytes);
            let draft = draft_from_log(&events, &tools, args.all, since, policy.as_ref());
            (draft, format!("in {}", input.display()))
        }
        None => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("goguardctl: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(draft_from_daemon(socket, since, policy.as_ref())) {
                Ok(d) => (d, "stored by goguardd".to_owned()),
                Err(code) => return code,
            }
        }
    };
    if draft.is_empty() {
        let what = if args.all {
            "denials"
        } else {
            "go-related denials"
        };
        eprintln!(
            "goguardctl: nothing to allow: no {what}{} {source} need a rule{}",
            if since > 0.0 {
                format!(" since {} UTC", timefmt::utc(since))
            } else {
                String::new()
            },
            if policy.is_some() {
                " (or the policy already allows them, or cannot express them)"
            } else {
                ""
            }
        );
        return ExitCode::from(1);
    }
    // Names and paths in the notes come from audit records: shown, never sent raw.
    let text = module_term_safe(&render_module(&draft, &name));
    if std::io::stdout().write_all(text.as_bytes()).is_err() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// A module's text with [`render::term_safe`] applied between its own newlines and tabs.
fn module_term_safe(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(render::term_safe)
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every stored denial since `since` (all pages), drafted; the daemon's roots give the
/// label advice.
async fn draft_from_daemon(
    socket: Option<PathBuf>,
    since: f64,
    policy: Option<&PolicyInUse>,
) -> Result<PolicyDraft, ExitCode> {
    let (mut c, _) = client::connect(socket.as_deref()).await.map_err(|e| {
        eprintln!("goguardctl: {e}");
        ExitCode::from(2)
    })?;
    let failed = |what: &str, s: tonic::Status| {
        eprintln!("goguardctl: {what}: {}", render::term_safe(s.message()));
        ExitCode::from(2)
    };
    let mut roots = Vec::new();
    let mut request = pb::ListRootsRequest::default();
    loop {
        match c.list_roots(request.clone()).await {
            Ok(r) => {
                let r = r.into_inner();
                roots.extend(r.roots);
                if r.next_page_token.is_empty() {
                    break;
                }
                request.page_token = r.next_page_token;
            }
            Err(s) => return Err(failed("listing roots", s)),
        }
    }
    let mut request = pb::ListDenialsRequest {
        since_unix: since,
        page_size: 1000,
        ..Default::default()
    };
    let mut denials = Vec::new();
    loop {
        let page = match c.list_denials(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(failed("listing denials", s)),
        };
        denials.extend(page.denials);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    // Oldest first, as they were logged (audit2allow's first-seen order).
    denials.sort_by(|a, b| {
        a.first_seen_unix
            .total_cmp(&b.first_seen_unix)
            .then(a.id.cmp(&b.id))
    });
    let mut d = Drafter::new(root_labels(&roots), policy);
    for denial in &denials {
        if let Some(avc) = avc_of_denial(denial) {
            d.add(&avc);
        }
    }
    Ok(d.draft)
}

/// The daemon's roots with the type file_contexts gives them on this host (when a
/// policy is installed), for label advice.
fn root_labels(roots: &[pb::CacheRoot]) -> Vec<CacheRootLabel> {
    let fc = goguard_fs::installed_file_contexts()
        .and_then(|p| goguard_fs::FileContexts::open_full(&p).ok());
    roots
        .iter()
        .map(|r| {
            let path = PathBuf::from(&r.path);
            let file_contexts_type = fc.as_ref().and_then(|fc| {
                let ctx = fc.lookup(&path, libc::S_IFDIR | 0o755)?;
                goguard_diagnose::context::type_of(&ctx).map(str::to_owned)
            });
            CacheRootLabel {
                path,
                file_contexts_type,
                declared_type: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"\
type=AVC msg=audit(1700000000.100:1): avc:  denied  { write } for  pid=1 comm=\"go\" name=\"go-build\" scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0
type=AVC msg=audit(1700000100.100:2): avc:  denied  { add_name } for  pid=1 comm=\"go\" name=\"go-build\" scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0
type=AVC msg=audit(1700000100.200:3): avc:  denied  { read } for  pid=1 comm=\"sshd\" name=\"x\" scontext=system_u:system_r:sshd_t:s0 tcontext=system_u:object_r:etc_t:s0 tclass=file permissive=0
";

    #[test]
    fn go_related_only_unless_all_and_since_filters() {
        let (events, _) = goguard_audit::parse_log(LOG);
        let tools = GoTools::default();
        let go = draft_from_log(&events, &tools, false, 0.0, None);
        let rules: Vec<String> = go.rules().iter().map(|r| r.statement()).collect();
        assert_eq!(
            rules,
            ["allow container_t cache_home_t:dir { add_name write };"]
        );
        let all = draft_from_log(&events, &tools, true, 0.0, None);
        assert_eq!(all.rules().len(), 2);
        let later = draft_from_log(&events, &tools, false, 1_700_000_050.0, None);
        let rules: Vec<String> = later.rules().iter().map(|r| r.statement()).collect();
        assert_eq!(rules, ["allow container_t cache_home_t:dir add_name;"]);
        assert!(draft_from_log(&events, &tools, false, 1_800_000_000.0, None).is_empty());
    }

    #[test]
    fn label_advice_is_commented_so_the_module_compiles() {
        let (events, _) = goguard_audit::parse_log(
            b"type=AVC msg=audit(1700000000.100:1): avc:  denied  { write } for  pid=1 comm=\"go\" path=\"/home/a/.cache/go-build/3f\" dev=\"vda\" ino=5 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n",
        );
        let mut d = Drafter::new(
            vec![CacheRootLabel {
                path: "/home/a/.cache/go-build".into(),
                file_contexts_type: Some("cache_home_t".into()),
                declared_type: None,
            }],
            None,
        );
        for a in events[0].avcs() {
            d.add(&a);
        }
        let text = render_module(&d.draft, &ModuleName::new("m").unwrap());
        assert!(text.starts_with("\nmodule m 1.0;\n"), "{text}");
        assert!(text.contains("allow container_t cache_home_t:dir write;"));
        let advice: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('#') && !l.starts_with("#="))
            .collect();
        assert_eq!(
            advice,
            [
                "#!!!! a container build uses /home/a/.cache/go-build labeled cache_home_t: label it container_file_t (or mount it with :Z) instead of allowing:",
                "#     semanage fcontext -a -t container_file_t '/home/a/\\.cache/go-build(/.*)?'",
                "#     restorecon -Rv /home/a/.cache/go-build"
            ],
            "{text}"
        );
    }
}
