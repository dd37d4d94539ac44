//! `goguardctl bundle export` and `goguardctl bundle import`: offline module-cache prefill
//! (issue 16). Both run as the invoking user with ordinary file I/O; no daemon is needed.
//! The rules (what is verified, how files are placed, what a crash leaves) live in
//! goguard-hygiene's `bundle` module; this file runs `go`, checks who may write the target,
//! and renders. Exit codes of `import`: 0 imported (or everything already there); 1 refused,
//! nothing changed (the bundle does not verify, the cache holds a different copy, or a
//! symlink is in the way); 2 an error (arguments, I/O, a full disk: what was placed before it
//! stays, each file whole, and the same command completes it).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use goguard_fs::RootDir;
use goguard_hygiene::bundle::export::{self, ExportError};
use goguard_hygiene::bundle::import::{self, ImportError, TrustedSums};
use goguard_hygiene::bundle::source::BundleSource;
use goguard_hygiene::gosum;
use serde::Serialize;

use crate::hygiene::bytes;
use crate::render::term_safe;

#[derive(Debug, clap::Subcommand)]
pub enum BundleCommand {
    /// On a connected host: bundle the modules that these go.mod files need
    /// (`go mod download -json all` in each module's directory, as you) with
    /// their go.sum lines. Exit 0: written; 2: error.
    Export(ExportArgs),
    /// On an offline host: verify every module of a bundle against go.sum and
    /// its .ziphash, then place it in a module cache you own, each file
    /// atomically. Exit 0: imported; 1: refused, nothing changed (the bundle
    /// does not verify, or the cache holds a different copy, or a symlink is
    /// in the way); 2: error (a full disk: run it again once there is space).
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write the bundle: a name ending in .tar makes one tar file,
    /// any other a directory (which must not exist yet).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// The module cache to read (and `go` to fill) [default: `go env GOMODCACHE`].
    #[arg(long, value_name = "DIR")]
    pub modcache: Option<PathBuf>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// go.mod files (or their directories); each needs its go.sum beside it.
    #[arg(required = true, value_name = "GO.MOD")]
    pub gomods: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The module cache to fill; it must be yours [default: `go env GOMODCACHE`].
    #[arg(long, value_name = "DIR")]
    pub modcache: Option<PathBuf>,
    /// A go.sum you trust (repeatable): every module it has a line for must
    /// match it too (without it, the bundle is checked against its own go.sum).
    #[arg(long = "gosum", value_name = "FILE")]
    pub gosums: Vec<PathBuf>,
    /// Zips hashed at once [default: the number of CPUs]; four times as many
    /// versions (at least 16) are placed at once (placing waits on fsync, not
    /// on the CPU).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// The bundle: a directory or a .tar written by `bundle export`.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
}

pub fn run(cmd: BundleCommand) -> ExitCode {
    match cmd {
        BundleCommand::Export(args) => run_export(args),
        BundleCommand::Import(args) => run_import(args),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("goguardctl: {message}");
    ExitCode::from(2)
}

/// `go ARGS` in `dir` with `GOMODCACHE` set when given; stdout, or a message.
fn go(dir: &Path, args: &[&str], modcache: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut c = Command::new("go");
    c.current_dir(dir).args(args);
    if let Some(m) = modcache {
        c.env("GOMODCACHE", m);
    }
    let out = c
        .output()
        .map_err(|e| format!("cannot run `go` ({e}): install Go, or put it on PATH"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        // `go mod download -json` reports failures as JSON objects with an Error field.
        let errors: Vec<String> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<GoDownload>()
            .filter_map(|d| d.ok())
            .filter_map(|d| d.error.map(|e| format!("{}@{}: {e}", d.path, d.version)))
            .collect();
        return Err(format!(
            "`go {}` in {} failed: {}{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            if errors.is_empty() {
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!("\n{}", text.trim())
                }
            } else if errors.len() > 10 {
                format!(
                    "\n{}\n… and {} more",
                    errors[..10].join("\n"),
                    errors.len() - 10
                )
            } else {
                format!("\n{}", errors.join("\n"))
            }
        ));
    }
    Ok(out.stdout)
}

fn go_env(dir: &Path, var: &str) -> Result<String, String> {
    let out = go(dir, &["env", var], None)?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// One object of `go mod download -json`.
#[derive(Debug, serde::Deserialize)]
struct GoDownload {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Error", default)]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ExportJson {
    out: String,
    modcache: String,
    versions: usize,
    zips: usize,
    bytes: u64,
    not_in_go_sum: Vec<String>,
    seconds: f64,
}

fn run_export(args: ExportArgs) -> ExitCode {
    let started = Instant::now();
    let mut dirs = Vec::new();
    for g in &args.gomods {
        let dir = if g.is_dir() {
            g.clone()
        } else {
            g.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let dir = crate::absolute(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        });
        if !dir.join("go.mod").is_file() {
            return fail(format!("{}: no go.mod there", dir.display()));
        }
        dirs.push(dir);
    }
    let modcache = match &args.modcache {
        Some(m) => crate::absolute(m.clone()),
        None => match go_env(&dirs[0], "GOMODCACHE") {
            Ok(m) if !m.is_empty() => PathBuf::from(m),
            Ok(_) => return fail("`go env GOMODCACHE` is empty: give --modcache"),
            Err(e) => return fail(e),
        },
    };
    let mut versions = BTreeSet::new();
    let mut lines = Vec::new();
    for dir in &dirs {
        let out = match go(dir, &["mod", "download", "-json", "all"], Some(&modcache)) {
            Ok(o) => o,
            Err(e) => return fail(e),
        };
        for d in serde_json::Deserializer::from_slice(&out).into_iter::<GoDownload>() {
            match d {
                Ok(d) if d.error.is_none() && !d.version.is_empty() => {
                    versions.insert((d.path, d.version));
                }
                Ok(_) => {}
                Err(e) => return fail(format!("cannot read `go mod download -json`: {e}")),
            }
        }
        let sum_path = dir.join("go.sum");
        let text = match std::fs::read_to_string(&sum_path) {
            Ok(t) => t,
            Err(e) => {
                return fail(format!(
                    "cannot read {}: {e} (run `go mod tidy` there first)",
                    sum_path.display()
                ));
            }
        };
        match gosum::parse(&text) {
            Ok(l) => lines.extend(l),
            Err(e) => return fail(format!("{}: {e}", sum_path.display())),
        }
    }
    let sums = match export::merge_sums(lines) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let go_version = go_env(&dirs[0], "GOVERSION").unwrap_or_default();
    let root = match RootDir::open(&modcache) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let out = crate::absolute(args.out.clone());
    let report = match export::export(&root, &versions, &sums, &go_version, &out) {
        Ok(r) => r,
        Err(e @ ExportError::Cache { .. }) => {
            return fail(format!("not exported: {}", term_safe(&e.to_string())));
        }
        Err(e) => return fail(term_safe(&e.to_string())),
    };
    let seconds = started.elapsed().as_secs_f64();
    let text = if args.json {
        crate::render::json_pretty(&ExportJson {
            out: out.display().to_string(),
            modcache: modcache.display().to_string(),
            versions: report.versions,
            zips: report.zips,
            bytes: report.bytes,
            not_in_go_sum: report.skipped.clone(),
            seconds,
        })
    } else {
        let mut t = format!(
            "bundled {} module versions ({} with their zip, {}) into {} in {seconds:.2} s\n",
            report.versions,
            report.zips,
            bytes(report.bytes),
            term_safe(&out.display().to_string()),
        );
        if !report.skipped.is_empty() {
            t.push_str(&format!(
                "not bundled (no go.sum line: not needed to build these modules): {}\n",
                term_safe(&report.skipped.join(", "))
            ));
        }
        t
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

#[derive(Debug, Serialize)]
struct ImportJson {
    modcache: String,
    bundle: String,
    /// `imported`, `refused` or `failed`.
    outcome: &'static str,
    /// For a refusal or failure: `does_not_verify`, `conflict`, `unsafe`, `disk_full`, `io`.
    reason: Option<&'static str>,
    /// `module@version` the refusal names, when one.
    module: Option<String>,
    error: Option<String>,
    /// Whether anything in the module cache was changed.
    changed: bool,
    versions: usize,
    versions_complete: usize,
    files_placed: usize,
    files_present: usize,
    bytes_placed: u64,
    leftovers_removed: usize,
    /// Time spent verifying (the bundle and the target), before anything was written.
    verify_seconds: f64,
    seconds: f64,
}

fn reason_of(e: &ImportError) -> (&'static str, Option<String>) {
    match e {
        _ if e.is_disk_full() => ("disk_full", None),
        ImportError::DoesNotVerify { module, .. } => ("does_not_verify", Some(module.clone())),
        ImportError::Conflict { module, .. } => ("conflict", Some(module.clone())),
        ImportError::Unsafe { .. } => ("unsafe", None),
        ImportError::Io { .. } => ("io", None),
    }
}

fn run_import(args: ImportArgs) -> ExitCode {
    let started = Instant::now();
    let modcache = match &args.modcache {
        Some(m) => crate::absolute(m.clone()),
        None => match go_env(Path::new("."), "GOMODCACHE") {
            Ok(m) if !m.is_empty() => PathBuf::from(m),
            Ok(_) => return fail("`go env GOMODCACHE` is empty: give --modcache"),
            Err(e) => return fail(format!("{e}; or give --modcache")),
        },
    };
    // The cache must be the caller's (or, when it does not exist yet, its nearest existing
    // ancestor): files placed by anyone else (root above all) would be the guide's failure
    // 1, a cache its owner cannot write. Nothing is created before the bundle verified.
    let mut existing = modcache.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    let owner = match std::fs::symlink_metadata(existing) {
        Ok(m) if m.is_dir() => m.uid(),
        Ok(_) => return fail(format!("{}: not a directory", existing.display())),
        Err(e) => return fail(format!("{}: {e}", existing.display())),
    };
    let me = nix::unistd::geteuid().as_raw();
    if owner != me {
        let name = nix::unistd::User::from_uid(owner.into())
            .ok()
            .flatten()
            .map_or_else(|| owner.to_string(), |u| u.name);
        return fail(format!(
            "{} belongs to {name}, not to you: import as its owner \
             (`sudo -u {name} goguardctl bundle import ...`) so that every file is theirs",
            existing.display()
        ));
    }
    let root = if modcache.exists() {
        match RootDir::open(&modcache) {
            Ok(r) => Some(r),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let source = match BundleSource::open(&args.bundle) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "cannot read the bundle {}: {e}",
                args.bundle.display()
            ));
        }
    };
    let mut trusted = TrustedSums::default();
    for g in &args.gosums {
        let lines = std::fs::read_to_string(g)
            .map_err(|e| e.to_string())
            .and_then(|t| gosum::parse(&t).map_err(|e| e.to_string()));
        match lines {
            Ok(l) => trusted.add(&g.display().to_string(), &l),
            Err(e) => {
                return fail(format!(
                    "{}: {e}; give the path of a go.sum file",
                    g.display()
                ));
            }
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut j = ImportJson {
        modcache: modcache.display().to_string(),
        bundle: args.bundle.display().to_string(),
        outcome: "imported",
        reason: None,
        module: None,
        error: None,
        changed: false,
        versions: 0,
        versions_complete: 0,
        files_placed: 0,
        files_present: 0,
        bytes_placed: 0,
        leftovers_removed: 0,
        verify_seconds: 0.0,
        seconds: 0.0,
    };
    let plan = match import::plan(&source, &trusted, root.as_ref(), jobs) {
        Ok(p) => p,
        Err(e) => {
            let (reason, module) = reason_of(&e);
            j.outcome = if matches!(e, ImportError::Io { .. }) {
                "failed"
            } else {
                "refused"
            };
            (j.reason, j.module, j.error) = (Some(reason), module, Some(e.to_string()));
            j.seconds = started.elapsed().as_secs_f64();
            if args.json {
                let _ = std::io::stdout().write_all(crate::render::json_pretty(&j).as_bytes());
            }
            let what = match e {
                ImportError::DoesNotVerify { .. } => "refused: the bundle does not verify",
                ImportError::Conflict { .. } => "refused",
                ImportError::Unsafe { .. } => "refused: unsafe module cache",
                ImportError::Io { .. } => {
                    eprintln!(
                        "goguardctl: cannot import: {}; nothing was changed in {}",
                        term_safe(&e.to_string()),
                        modcache.display()
                    );
                    return ExitCode::from(2);
                }
            };
            eprintln!(
                "goguardctl: {what}: {}\nnothing was changed in {}",
                term_safe(&e.to_string()),
                modcache.display()
            );
            return ExitCode::from(1);
        }
    };
    j.versions = plan.versions.len();
    j.verify_seconds = started.elapsed().as_secs_f64();
    let root = match root {
        Some(r) => r,
        None => {
            if let Err(e) = std::fs::create_dir_all(&modcache) {
                return fail(format!("cannot create {}: {e}", modcache.display()));
            }
            match RootDir::open(&modcache) {
                Ok(r) => r,
                Err(e) => return fail(e),
            }
        }
    };
    let result = import::place(&source, &root, &plan, (jobs * 4).clamp(16, 64));
    let (report, error) = match result {
        Ok(r) => (r, None),
        Err((e, r)) => (r, Some(e)),
    };
    j.versions_complete = report.versions_complete;
    j.files_placed = report.files_placed;
    j.files_present = report.files_present;
    j.bytes_placed = report.bytes_placed;
    j.leftovers_removed = report.leftovers_removed;
    j.changed = report.files_placed > 0 || report.leftovers_removed > 0 || error.is_some();
    j.seconds = started.elapsed().as_secs_f64();
    if let Some(e) = &error {
        let (reason, module) = reason_of(e);
        j.outcome = "failed";
        (j.reason, j.module, j.error) = (Some(reason), module, Some(e.to_string()));
    }
    if args.json {
        let _ = std::io::stdout().write_all(crate::render::json_pretty(&j).as_bytes());
    }
    if let Some(e) = error {
        let hint = if e.is_disk_full() {
            "the disk is full: free space (or grow the filesystem) and run the same command \
             again"
        } else {
            "fix the cause and run the same command again"
        };
        eprintln!(
            "goguardctl: import stopped: {}\n{} of {} module versions are in place (each file \
             whole; no partial file is visible); {hint}: it skips what is there",
            term_safe(&e.to_string()),
            report.versions_complete,
            plan.versions.len()
        );
        return ExitCode::from(2);
    }
    if !args.json {
        let mut t = format!(
            "imported {} module versions into {} in {:.2} s: {} files written ({}), {} already there\n",
            plan.versions.len(),
            term_safe(&modcache.display().to_string()),
            j.seconds,
            report.files_placed,
            bytes(report.bytes_placed),
            report.files_present,
        );
        if report.leftovers_removed > 0 {
            t.push_str(&format!(
                "removed {} temp files of an interrupted import\n",
                report.leftovers_removed
            ));
        }
        if !plan.go_version.is_empty() {
            t.push_str(&format!(
                "exported with {}: build with GOPROXY=off\n",
                term_safe(&plan.go_version)
            ));
        }
        let _ = std::io::stdout().write_all(t.as_bytes());
    }
    ExitCode::SUCCESS
}
