//! The doctor's report: checks, findings with their fix commands, and how the report is
//! rendered for people (grouped by check, ✓/✗/! markers, colour only when asked) and for
//! scripts (`--json`, a stable shape documented in the README).
//!
//! Pure: values in, text out. Nothing here reads the system.

use serde::Serialize;

use crate::render::{Style, term_safe};

/// How bad a finding is. `Error` and `Warning` make the report unhealthy (exit 1); `Info`
/// never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is broken.
    Info,
    /// Not broken yet, but it will break or is unsafe (a shared root without ACLs).
    Warning,
    /// Go fails, or is about to fail, for this user.
    Error,
}

impl Severity {
    /// True for the severities that make the report unhealthy.
    pub fn is_problem(self) -> bool {
        self >= Severity::Warning
    }
}

/// The checks, in report order. The JSON names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    /// GOCACHE/GOMODCACHE/GOPATH as Go computes them, and whether this user can write them.
    CachePaths,
    /// Entries in the caches not owned by this user.
    ForeignOwners,
    /// World-writable entries in the caches.
    WorldWritable,
    /// Caches shared with other users (outside home, other owner, group-writable).
    SharedRoots,
    /// `security.selinux` against file_contexts.
    Labels,
    /// Whether `go test`/`go run` can execute from GOTMPDIR.
    TmpExec,
    /// What a running goguardd knows about this user's caches.
    Daemon,
}

impl CheckId {
    /// The heading of the check in the text report.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::CachePaths => "cache paths",
            CheckId::ForeignOwners => "foreign owners",
            CheckId::WorldWritable => "world-writable entries",
            CheckId::SharedRoots => "shared roots",
            CheckId::Labels => "SELinux labels",
            CheckId::TmpExec => "exec from GOTMPDIR",
            CheckId::Daemon => "goguardd",
        }
    }
}

/// One thing found, with what to run to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Machine-readable kind (`not_writable`, `foreign_owner`, `wrong_label`, ...).
    pub kind: String,
    /// The path it is about (a cache root, or the directory checked).
    pub path: Option<String>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How many entries are affected (walk checks), when it is a count.
    pub count: Option<u64>,
    /// The first few affected entries, with what was seen (`PATH (owner root)`).
    pub examples: Vec<String>,
    /// Commands that fix it, best first; each one complete and ready to paste.
    pub fix: Vec<String>,
}

impl Finding {
    /// A finding without count or examples.
    pub fn new(
        severity: Severity,
        kind: impl Into<String>,
        path: Option<String>,
        message: String,
        fix: Vec<String>,
    ) -> Finding {
        Finding {
            severity,
            kind: kind.into(),
            path,
            message,
            count: None,
            examples: Vec::new(),
            fix,
        }
    }
}

/// Whether a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Ran (its findings say whether anything is wrong).
    Ran,
    /// Could not run here (no file_contexts, no daemon); its notes say why.
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check.
    pub check: CheckId,
    /// Ran or skipped.
    pub state: CheckState,
    /// What it found (empty = fine).
    pub findings: Vec<Finding>,
    /// Lines worth reading that are not findings (what was checked, why skipped).
    pub notes: Vec<String>,
}

impl Check {
    /// A check that ran.
    pub fn ran(check: CheckId) -> Check {
        Check {
            check,
            state: CheckState::Ran,
            findings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A check that could not run, and why.
    pub fn skipped(check: CheckId, why: String) -> Check {
        Check {
            check,
            state: CheckState::Skipped,
            findings: Vec::new(),
            notes: vec![why],
        }
    }

    /// True when a finding is a warning or an error.
    pub fn has_problem(&self) -> bool {
        self.findings.iter().any(|f| f.severity.is_problem())
    }
}

/// Who was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserJson {
    pub name: String,
    pub uid: u32,
    pub home: String,
}

/// One Go setting and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingJson {
    /// The value as `go env` prints it.
    pub value: String,
    /// `environment`, `go env file PATH`, `$GOROOT/go.env` or `default`.
    pub source: String,
}

/// Whether a daemon answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonJson {
    pub reachable: bool,
    /// The socket that answered.
    pub socket: Option<String>,
}

/// The whole report: `goguardctl doctor --json` prints exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub user: UserJson,
    /// GOCACHE, GOMODCACHE, GOPATH, GOENV, GOTMPDIR.
    pub go: std::collections::BTreeMap<&'static str, SettingJson>,
    pub checks: Vec<Check>,
    pub daemon: DaemonJson,
    /// No finding is a warning or an error.
    pub healthy: bool,
}

impl Report {
    /// Builds a report and decides `healthy`.
    pub fn new(
        user: UserJson,
        go: std::collections::BTreeMap<&'static str, SettingJson>,
        checks: Vec<Check>,
        daemon: DaemonJson,
    ) -> Report {
        let healthy = !checks.iter().any(Check::has_problem);
        Report {
            user,
            go,
            checks,
            daemon,
            healthy,
        }
    }

    /// Findings that are warnings or errors.
    pub fn problems(&self) -> usize {
        self.checks
            .iter()
            .flat_map(|c| &c.findings)
            .filter(|f| f.severity.is_problem())
            .count()
    }

    /// `--json`.
    pub fn to_json(&self) -> String {
        crate::render::json_pretty(self)
    }

    /// The text report.
    pub fn render(&self, style: &Style) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{} for {} (uid {}), home {}\n\n",
            style.bold("goguardctl doctor"),
            term_safe(&self.user.name),
            self.user.uid,
            term_safe(&self.user.home)
        ));
        let width = self.go.keys().map(|k| k.len()).max().unwrap_or(0);
        let shown = |s: &SettingJson| {
            if s.value.is_empty() {
                "(empty)".to_owned()
            } else {
                term_safe(&s.value).into_owned()
            }
        };
        let value_width = self
            .go
            .values()
            .map(|s| shown(s).chars().count())
            .max()
            .unwrap_or(0);
        for key in ["GOCACHE", "GOMODCACHE", "GOPATH", "GOENV", "GOTMPDIR"] {
            if let Some(s) = self.go.get(key) {
                let value = shown(s);
                let pad = " ".repeat(value_width - value.chars().count());
                out.push_str(&format!(
                    "  {key:<width$}  {value}{pad}  {}\n",
                    style.dim(&format!("({})", term_safe(&s.source)))
                ));
            }
        }
        out.push('\n');
        for c in &self.checks {
            render_check(c, style, &mut out);
        }
        let problems = self.problems();
        if problems == 0 {
            out.push_str(&format!("\n{}\n", style.good("healthy: nothing to fix")));
        } else {
            out.push_str(&format!(
                "\n{}\n",
                style.bad(&format!(
                    "{problems} problem{} found",
                    if problems == 1 { "" } else { "s" }
                ))
            ));
        }
        out
    }
}

fn marker(severity: Severity, style: &Style) -> String {
    match severity {
        Severity::Error => style.bad("✗"),
        Severity::Warning => style.warn("!"),
        Severity::Info => style.dim("·"),
    }
}

fn render_check(c: &Check, style: &Style, out: &mut String) {
    let title = c.check.title();
    let worst = c.findings.iter().map(|f| f.severity).max();
    let head = match (c.state, worst) {
        (CheckState::Skipped, _) => format!("{} {title}: skipped", style.dim("·")),
        (_, Some(s)) if s.is_problem() => format!("{} {title}", marker(s, style)),
        _ => format!("{} {title}", style.good("✓")),
    };
    out.push_str(&head);
    out.push('\n');
    for n in &c.notes {
        out.push_str(&format!("    {}\n", style.dim(&term_safe(n))));
    }
    for f in &c.findings {
        out.push_str(&format!(
            "  {} {}\n",
            marker(f.severity, style),
            term_safe(&f.message)
        ));
        for e in &f.examples {
            out.push_str(&format!("      {}\n", term_safe(e)));
        }
        if let Some(n) = f.count {
            let shown = f.examples.len() as u64;
            if n > shown && shown > 0 {
                out.push_str(&format!("      … and {} more\n", n - shown));
            }
        }
        for (i, cmd) in f.fix.iter().enumerate() {
            let label = if i == 0 { "fix:" } else { " or:" };
            out.push_str(&format!("      {} {}\n", style.bold(label), term_safe(cmd)));
        }
    }
}

/// Quotes a path or word for a POSIX shell when it needs it, so fix commands paste safely
/// (the same quoting as the policy drafts' commands).
pub use goguard_diagnose::draft::shell_quote as sh_quote;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(findings: Vec<Finding>) -> Report {
        let mut c = Check::ran(CheckId::ForeignOwners);
        c.findings = findings;
        Report::new(
            UserJson {
                name: "alice".into(),
                uid: 1000,
                home: "/home/alice".into(),
            },
            [(
                "GOCACHE",
                SettingJson {
                    value: "/home/alice/.cache/go-build".into(),
                    source: "default".into(),
                },
            )]
            .into(),
            vec![c, Check::skipped(CheckId::Labels, "no policy".into())],
            DaemonJson {
                reachable: false,
                socket: None,
            },
        )
    }

    #[test]
    fn info_findings_keep_a_report_healthy() {
        let r = report(vec![Finding::new(
            Severity::Info,
            "note",
            None,
            "x".into(),
            vec![],
        )]);
        assert!(r.healthy);
        let text = r.render(&Style { color: false });
        assert!(text.contains("✓ foreign owners"), "{text}");
        assert!(
            text.contains("· SELinux labels: skipped\n    no policy"),
            "{text}"
        );
        assert!(text.ends_with("healthy: nothing to fix\n"), "{text}");
    }

    #[test]
    fn problems_render_with_examples_and_fixes() {
        let mut f = Finding::new(
            Severity::Error,
            "foreign_owner",
            Some("/c".into()),
            "3 entries are not yours".into(),
            vec![
                "goguardctl repair /c".into(),
                "sudo chown -R alice: /c".into(),
            ],
        );
        f.count = Some(3);
        f.examples = vec!["/c/a (owner root)".into()];
        let r = report(vec![f]);
        assert!(!r.healthy);
        let text = r.render(&Style { color: false });
        assert!(
            text.contains(
                "✗ foreign owners\n  ✗ 3 entries are not yours\n      /c/a (owner root)\n      \
                 … and 2 more\n      fix: goguardctl repair /c\n       or: sudo chown -R alice: /c\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("1 problem found\n"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["healthy"], false);
        assert_eq!(json["checks"][0]["check"], "foreign_owners");
        assert_eq!(json["checks"][0]["findings"][0]["severity"], "error");
        assert_eq!(json["checks"][1]["state"], "skipped");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            sh_quote("/home/a/.cache/go-build"),
            "/home/a/.cache/go-build"
        );
        assert_eq!(sh_quote("/x y"), "'/x y'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
