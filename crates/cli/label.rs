//! Declared labels that survive a relabel (guide 3.2): a `[[root]]` whose `label`
//! declares a type the policy's file_contexts do not give it is relabelled by
//! goguardd, and undone by the next `restorecon -R` or full relabel. `goguardctl
//! label persist` writes the rule the guide writes by hand, `semanage fcontext -a -t
//! TYPE 'PATH(/.*)?'`, so file_contexts (their `.local` part) agree with goguardd.
//!
//! The daemon never runs `semanage` (it would need the policy-management domain): this
//! command runs it as the admin who asks, on this host. Pure parts (which roots need a
//! rule, the rule's regex) are unit-tested; `persist` does the I/O.

use std::process::{Command, ExitCode};

use goguard_proto::v1 as pb;
use serde::Serialize;

/// A declared label and what file_contexts say for its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelRule {
    pub root: String,
    pub declared_type: String,
    /// What restorecon would set on the root ("" = file_contexts unknown).
    pub file_contexts_type: String,
}

impl LabelRule {
    /// True when file_contexts already give the declared type (restorecon keeps it).
    pub fn persisted(&self) -> bool {
        self.declared_type == self.file_contexts_type
    }

    /// The file-context spec for `semanage fcontext`: the root and everything beneath.
    pub fn spec(&self) -> String {
        format!("{}(/.*)?", regex_escape(&self.root))
    }
}

/// The declared labels of `roots` (roots without a declared label have nothing to
/// persist: file_contexts decide there).
pub fn declared(roots: &[pb::CacheRoot]) -> Vec<LabelRule> {
    roots
        .iter()
        .filter(|r| !r.declared_label_type.is_empty())
        .map(|r| LabelRule {
            root: r.path.clone(),
            declared_type: r.declared_label_type.clone(),
            file_contexts_type: r.file_contexts_type.clone(),
        })
        .collect()
}

/// `path` as a POSIX extended regex matching itself only (file_contexts specs are
/// regexes anchored at both ends).
pub fn regex_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if ".^$*+?()[]{}|\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The footer lines of `goguardctl roots` for declared labels restorecon would undo.
pub fn footer(rules: &[LabelRule]) -> String {
    let pending: Vec<&LabelRule> = rules.iter().filter(|r| !r.persisted()).collect();
    if pending.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\ndeclared labels that restorecon would undo (goguardctl label persist):\n");
    for r in pending {
        out.push_str(&format!(
            "  - {}: {} (file_contexts say {})\n",
            crate::render::term_safe(&r.root),
            r.declared_type,
            if r.file_contexts_type.is_empty() {
                "nothing"
            } else {
                &r.file_contexts_type
            }
        ));
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct PersistArgs {
    /// Only these roots (default: every root with a declared label).
    pub roots: Vec<String>,
    /// Print the semanage commands without running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabelCommand {
    /// Write each declared root label as a local file-context rule (`semanage fcontext
    /// -a`), so restorecon and a full relabel keep it. Needs root and semanage.
    /// Exit 0: every declared label is persisted; 1: one could not be; 2: error.
    Persist(PersistArgs),
}

#[derive(Debug, Serialize)]
struct PersistJson {
    root: String,
    declared_type: String,
    file_contexts_type_before: String,
    command: Vec<String>,
    outcome: String,
}

async fn list_roots(socket: Option<&std::path::Path>) -> Result<Vec<pb::CacheRoot>, ExitCode> {
    let mut client = crate::connect_or_exit(socket).await?;
    let mut out = Vec::new();
    let mut request = pb::ListRootsRequest::default();
    loop {
        let r = match client.list_roots(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(crate::rpc_failed("listing roots", &s)),
        };
        out.extend(r.roots);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        request.page_token = r.next_page_token;
    }
}

pub async fn run(socket: Option<std::path::PathBuf>, cmd: LabelCommand) -> ExitCode {
    let LabelCommand::Persist(args) = cmd;
    let roots = match list_roots(socket.as_deref()).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut rules = declared(&roots);
    for wanted in &args.roots {
        if !rules.iter().any(|r| &r.root == wanted) {
            eprintln!(
                "goguardctl: {wanted} is not a root with a declared label (see goguardctl roots)"
            );
            return ExitCode::from(2);
        }
    }
    if !args.roots.is_empty() {
        rules.retain(|r| args.roots.contains(&r.root));
    }
    let pending: Vec<LabelRule> = rules.iter().filter(|r| !r.persisted()).cloned().collect();
    if pending.is_empty() {
        if args.json {
            println!("[]");
        } else {
            println!(
                "nothing to persist: {} declared label{} already in file_contexts",
                rules.len(),
                if rules.len() == 1 { " is" } else { "s are" }
            );
        }
        return ExitCode::SUCCESS;
    }
    if !args.dry_run && !nix::unistd::geteuid().is_root() {
        eprintln!(
            "goguardctl: semanage changes the policy: run as root (sudo goguardctl label persist), or add --dry-run to see the commands"
        );
        return ExitCode::from(2);
    }
    let mut results = Vec::new();
    let mut failed = 0;
    for r in &pending {
        let add = vec![
            "semanage".to_owned(),
            "fcontext".to_owned(),
            "-a".to_owned(),
            "-t".to_owned(),
            r.declared_type.clone(),
            r.spec(),
        ];
        let outcome = if args.dry_run {
            "dry run".to_owned()
        } else {
            match run_semanage(&add) {
                Ok(()) => "persisted".to_owned(),
                // A local rule for this spec exists with another type: modify it.
                Err(e) if e.contains("already defined") => {
                    let mut modify = add.clone();
                    modify[2] = "-m".to_owned();
                    match run_semanage(&modify) {
                        Ok(()) => "persisted (local rule modified)".to_owned(),
                        Err(e) => {
                            failed += 1;
                            format!("failed: {e}")
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    format!("failed: {e}")
                }
            }
        };
        if !args.json {
            println!("{}", shell_line(&add));
            if !args.dry_run {
                println!("  {}: {outcome}", crate::render::term_safe(&r.root));
            }
        }
        results.push(PersistJson {
            root: r.root.clone(),
            declared_type: r.declared_type.clone(),
            file_contexts_type_before: r.file_contexts_type.clone(),
            command: add,
            outcome,
        });
    }
    if args.json {
        println!("{}", crate::render::json_line(&results));
    }
    if args.dry_run {
        return ExitCode::SUCCESS;
    }
    if failed > 0 {
        eprintln!(
            "goguardctl: {failed} declared label(s) not persisted: see the semanage errors above"
        );
        return ExitCode::from(1);
    }
    if !args.json {
        println!(
            "goguardd takes the new file_contexts at its next policy load or scan (goguardctl rescan now)"
        );
    }
    ExitCode::SUCCESS
}

fn run_semanage(argv: &[String]) -> Result<(), String> {
    match Command::new(&argv[0]).args(&argv[1..]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "semanage not found: install policycoreutils-python-utils (Debian, RHEL)".to_owned(),
        ),
        Err(e) => Err(format!("cannot run semanage: {e}")),
    }
}

fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(path: &str, declared: &str, fc: &str) -> pb::CacheRoot {
        pb::CacheRoot {
            path: path.into(),
            declared_label_type: declared.into(),
            file_contexts_type: fc.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_declared_labels_that_file_contexts_do_not_give_are_pending() {
        let roots = [
            root("/srv/ci-cache", "container_file_t", "var_t"),
            root("/srv/done", "container_file_t", "container_file_t"),
            root("/home/a/.cache/go-build", "", "xdg_cache_t"),
        ];
        let rules = declared(&roots);
        assert_eq!(rules.len(), 2);
        assert!(!rules[0].persisted());
        assert!(rules[1].persisted());
        let f = footer(&rules);
        assert!(f.contains("/srv/ci-cache: container_file_t (file_contexts say var_t)"));
        assert!(!f.contains("/srv/done"));
        assert_eq!(footer(&rules[1..]), "");
    }

    #[test]
    fn the_spec_matches_the_root_and_beneath_only() {
        let r = LabelRule {
            root: "/srv/go.cache+1".into(),
            declared_type: "t".into(),
            file_contexts_type: String::new(),
        };
        assert_eq!(r.spec(), "/srv/go\\.cache\\+1(/.*)?");
        assert_eq!(
            shell_line(&["semanage".into(), r.spec()]),
            "semanage '/srv/go\\.cache\\+1(/.*)?'"
        );
    }
}
