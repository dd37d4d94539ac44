//! `goguardctl trim` and `goguardctl modcache verify`: GOCACHE trims and module-cache
//! verification on request, done by goguardd (which reaches the caches safely as root and
//! records each run). Rendering and exit codes only; the daemon decides.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use goguard_proto::v1 as pb;
use serde::Serialize;

use crate::render::{Style, Table, term_safe};

#[derive(Debug, clap::Args)]
pub struct TrimArgs {
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply Go's age rule even if the cache's trim.txt says it was trimmed
    /// less than a day ago.
    #[arg(long)]
    pub force: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A GOCACHE root (default: every GOCACHE root you may trim).
    pub root: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModcacheCommand {
    /// Check extracted modules and zips against their .ziphash (the h1: hash
    /// `go mod verify` uses), report incomplete downloads and leftovers.
    /// Exit 0: intact; 1: something corrupt or incomplete; 2: error.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Also check each line of this go.sum against the cache (for offline hosts).
    #[arg(long, value_name = "FILE")]
    pub gosum: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A GOMODCACHE root (default: every module cache you may read).
    pub root: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct TrimJson {
    dry_run: bool,
    results: Vec<TrimResultJson>,
}

#[derive(Debug, Serialize)]
struct TrimResultJson {
    root: String,
    ran: bool,
    reason: String,
    entries_removed: u64,
    bytes_freed: u64,
    bytes_before: u64,
    bytes_after: u64,
    evicted_for_size: u64,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct VerifyJson {
    intact: bool,
    problems: Vec<ProblemJson>,
    roots: Vec<VerifyRootJson>,
}

#[derive(Debug, Serialize)]
struct ProblemJson {
    root: String,
    module: String,
    version: String,
    status: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct VerifyRootJson {
    root: String,
    modules_verified: u64,
    modules_bad: u64,
    bytes_hashed: u64,
    errors: Vec<String>,
}

/// `1.5 GiB`, `320 KiB`, `12 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A table cell without colour.
fn plain(text: String) -> (String, String) {
    (text.clone(), text)
}

fn root_arg(root: Option<PathBuf>) -> String {
    root.map(|r| crate::absolute(r).display().to_string())
        .unwrap_or_default()
}

pub async fn trim(socket: Option<PathBuf>, args: TrimArgs, style: Style) -> ExitCode {
    let mut client = match crate::connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "{} …",
            if args.dry_run {
                "planning the trim"
            } else {
                "trimming"
            }
        );
    }
    let request = pb::TrimRequest {
        root: root_arg(args.root),
        dry_run: args.dry_run,
        force: args.force,
    };
    let r = match client.trim(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return crate::rpc_failed("trim", &s),
    };
    let failed = r.results.iter().any(|x| !x.errors.is_empty());
    let text = if args.json {
        let j = TrimJson {
            dry_run: r.dry_run,
            results: r
                .results
                .iter()
                .map(|x| TrimResultJson {
                    root: x.root.clone(),
                    ran: x.ran,
                    reason: x.reason.clone(),
                    entries_removed: x.entries_removed,
                    bytes_freed: x.bytes_freed,
                    bytes_before: x.bytes_before,
                    bytes_after: x.bytes_after,
                    evicted_for_size: x.evicted_for_size,
                    errors: x.errors.clone(),
                })
                .collect(),
        };
        crate::render::json_pretty(&j)
    } else {
        render_trim(&r, &style)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn render_trim(r: &pb::TrimResponse, style: &Style) -> String {
    if r.results.is_empty() {
        return "no GOCACHE roots to trim (see `goguardctl roots`)\n".to_owned();
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut t = Table::new(&["ROOT", verb, "FREED", "SIZE", "WHY"]);
    for x in &r.results {
        let size = if x.bytes_before > 0 {
            format!("{} → {}", bytes(x.bytes_before), bytes(x.bytes_after))
        } else {
            "-".to_owned()
        };
        let removed = if x.ran {
            plain(x.entries_removed.to_string())
        } else {
            ("-".to_owned(), style.dim("-"))
        };
        t.row(vec![
            plain(x.root.clone()),
            removed,
            plain(bytes(x.bytes_freed)),
            plain(size),
            plain(x.reason.clone()),
        ]);
    }
    let mut out = t.render(style);
    for x in &r.results {
        for e in &x.errors {
            out.push_str(&format!(
                "{} {}: {}\n",
                style.bad("error:"),
                term_safe(&x.root),
                term_safe(e)
            ));
        }
    }
    if r.dry_run {
        out.push_str(&style.dim("dry run: nothing was removed\n"));
    }
    out
}

pub async fn modcache(socket: Option<PathBuf>, cmd: ModcacheCommand, style: Style) -> ExitCode {
    let ModcacheCommand::Verify(args) = cmd;
    let gosum = match &args.gosum {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!(
                    "goguardctl: cannot read {}: {e}; give the path of a go.sum file",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => String::new(),
    };
    let mut client = match crate::connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("verifying module caches (this reads every module) …");
    }
    let request = pb::VerifyModulesRequest {
        root: root_arg(args.root),
        gosum,
    };
    let r = match client.verify_modules(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return crate::rpc_failed("modcache verify", &s),
    };
    let errors = r.results.iter().any(|x| !x.errors.is_empty());
    let intact = r.problems.is_empty() && !errors;
    let text = if args.json {
        let j = VerifyJson {
            intact,
            problems: r
                .problems
                .iter()
                .map(|p| ProblemJson {
                    root: p.root.clone(),
                    module: p.module.clone(),
                    version: p.version.clone(),
                    status: p.status.clone(),
                    detail: p.detail.clone(),
                })
                .collect(),
            roots: r
                .results
                .iter()
                .map(|x| VerifyRootJson {
                    root: x.root.clone(),
                    modules_verified: x.modules_verified,
                    modules_bad: x.modules_bad,
                    bytes_hashed: x.bytes_hashed,
                    errors: x.errors.clone(),
                })
                .collect(),
        };
        crate::render::json_pretty(&j)
    } else {
        render_verify(&r, &style)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if r.results.is_empty() {
        eprintln!("goguardctl: no module caches to verify (see `goguardctl roots`)");
        return ExitCode::from(2);
    }
    if intact {
        ExitCode::SUCCESS
    } else if !r.problems.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}

fn render_verify(r: &pb::VerifyModulesResponse, style: &Style) -> String {
    let mut out = String::new();
    if !r.problems.is_empty() {
        let mut t = Table::new(&["MODULE", "STATUS", "DETAIL"]);
        for p in &r.problems {
            let name = if p.version.is_empty() {
                p.module.clone()
            } else {
                format!("{}@{}", p.module, p.version)
            };
            t.row(vec![
                plain(name),
                (p.status.clone(), style.bad(&p.status)),
                plain(p.detail.clone()),
            ]);
        }
        out.push_str(&t.render(style));
    }
    for x in &r.results {
        let verdict = if x.modules_bad == 0 && x.errors.is_empty() {
            style.good("intact")
        } else {
            style.bad(&format!("{} bad", x.modules_bad))
        };
        out.push_str(&format!(
            "{}: {} modules verified ({} hashed), {verdict}\n",
            term_safe(&x.root),
            x.modules_verified,
            bytes(x.bytes_hashed)
        ));
        for e in &x.errors {
            out.push_str(&format!("  {} {}\n", style.bad("error:"), term_safe(e)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_like_du_h() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 << 30), "20.0 GiB");
    }
}
