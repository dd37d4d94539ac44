//! `goguardctl clean [--keep] [--json] PATH...`: a cleanup of a CI workspace or a cache that
//! always works (guide 4.3). Go makes module directories read-only, so `rm -rf`, a runner's
//! workspace cleanup and a cache restore that untars over the module cache fail. `clean`
//! gives the owner write permission back on every directory and removes the tree; with
//! `--keep` it only makes the tree writable (to restore over it). No daemon needed: it runs
//! as the caller, on what the caller may change (root: any tree it is given).
//!
//! The work is goguard-hygiene's `cleanup` (fd-based; symlinks removed, never followed;
//! mounts inside left and reported). This module opens the paths, refuses `/` and a path
//! whose last component is a symlink, shows progress on a terminal, and prints.
//!
//! Exit codes: 0 done; 1 something was left (a mount inside, an entry of another user's);
//! 2 a path could not be opened or is refused.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use goguard_hygiene::cleanup::{self, CleanupReport};
use rustix::fs::{Mode, OFlags};
use serde::Serialize;

use crate::render::term_safe;

#[derive(clap::Args, Debug)]
pub struct CleanArgs {
    /// Only make the trees writable (every directory u+rwx), keep them: e.g. before a
    /// cache restore untars over a module cache.
    #[arg(long)]
    keep: bool,
    /// One JSON object per path.
    #[arg(long)]
    json: bool,
    /// Workspaces or caches to remove (or, with --keep, to make writable).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Serialize)]
struct PathJson<'a> {
    path: String,
    /// "removed", "unlocked", "partial" (something left) or "error".
    outcome: &'a str,
    directories: u64,
    others: u64,
    unlocked: u64,
    removed: u64,
    left: u64,
    examples: &'a [String],
    error: Option<String>,
}

pub fn run(args: CleanArgs) -> ExitCode {
    let uid = rustix::process::geteuid().as_raw();
    let mut worst = 0u8;
    for path in &args.paths {
        let shown_path = path.display().to_string();
        let shown = term_safe(&shown_path);
        let (report, error) = match clean_one(path, uid, args.keep) {
            Ok(r) => (r, None),
            Err((r, e)) => (r, Some(e)),
        };
        let outcome = match (&error, report.left, args.keep) {
            (Some(_), ..) => "error",
            (None, 0, true) => "unlocked",
            (None, 0, false) => "removed",
            (None, _, _) => "partial",
        };
        worst = worst.max(match outcome {
            "error" => 2,
            "partial" => 1,
            _ => 0,
        });
        if args.json {
            let j = PathJson {
                path: path.display().to_string(),
                outcome,
                directories: report.directories,
                others: report.others,
                unlocked: report.unlocked,
                removed: report.removed,
                left: report.left,
                examples: &report.examples,
                error: error.clone(),
            };
            println!("{}", serde_json::to_string(&j).expect("serializable"));
            continue;
        }
        match outcome {
            "error" => eprintln!(
                "goguardctl clean: {shown}: {}",
                term_safe(error.as_deref().unwrap_or_default())
            ),
            "unlocked" => println!(
                "made {shown} writable: {} of {} directories were read-only",
                report.unlocked, report.directories
            ),
            "removed" => println!(
                "removed {shown}: {} entries ({} read-only directories unlocked first)",
                report.removed, report.unlocked
            ),
            _ => {
                eprintln!(
                    "goguardctl clean: {shown}: {} entries left (the rest {}):",
                    report.left,
                    if args.keep {
                        "made writable"
                    } else {
                        "removed"
                    }
                );
                for e in &report.examples {
                    eprintln!("  {}", term_safe(e));
                }
                eprintln!(
                    "  unmount what is mounted there, or run as the owner of what is left \
                     (or root), then run the same command again"
                );
            }
        }
    }
    ExitCode::from(worst)
}

/// Unlocks (and without `keep` removes) one tree.
fn clean_one(path: &Path, uid: u32, keep: bool) -> Result<CleanupReport, (CleanupReport, String)> {
    let fail = |e: String| (CleanupReport::default(), e);
    let (parent, name) = parent_and_name(path).map_err(fail)?;
    // O_NOFOLLOW: a last component that is a symlink is refused, not followed.
    let top = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        fail(match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR if is_link => {
                "is a symlink: not followed (remove the link itself with rm)".to_owned()
            }
            rustix::io::Errno::NOTDIR => "is not a directory (remove it with rm)".to_owned(),
            e => format!("cannot open: {}", std::io::Error::from(e)),
        })
    })?;
    let st = rustix::fs::fstat(&top).map_err(|e| fail(std::io::Error::from(e).to_string()))?;
    let progress_on = std::io::stderr().is_terminal();
    let verb = if keep { "unlocking" } else { "removing" };
    let mut progress = |n: u64| {
        if progress_on {
            eprint!("\r{verb} {}: {n} entries", path.display());
        }
    };
    let mut report = if keep {
        cleanup::unlock(top.as_fd(), uid, &mut progress)
    } else {
        cleanup::remove_contents(top.as_fd(), uid, &mut progress)
    };
    if progress_on {
        eprint!("\r\x1b[K");
    }
    if keep || report.left > 0 {
        return Ok(report);
    }
    drop(top);
    let parent_fd = rustix::fs::open(
        &parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        (
            report.clone(),
            format!(
                "emptied, but its directory cannot be opened: {}",
                std::io::Error::from(e)
            ),
        )
    })?;
    let c_name = std::ffi::CString::new(name.as_bytes()).expect("a file name has no NUL");
    match cleanup::remove_top(
        parent_fd.as_fd(),
        &c_name,
        (st.st_dev, st.st_ino),
        &mut report,
    ) {
        Ok(()) => Ok(report),
        Err(e) => Err((report, format!("emptied, but not removed: {e}"))),
    }
}

/// The directory holding `path` and its last component; `/`, `.` and `..` are refused.
fn parent_and_name(path: &Path) -> Result<(PathBuf, std::ffi::OsString), String> {
    let name = path
        .file_name()
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| "refused: name the directory itself (not /, . or ..)".to_owned())?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_dot_paths_are_refused() {
        assert!(parent_and_name(Path::new("/")).is_err());
        assert!(parent_and_name(Path::new(".")).is_err());
        assert!(parent_and_name(Path::new("a/..")).is_err());
        let (p, n) = parent_and_name(Path::new("ws")).unwrap();
        assert_eq!(
            (p.as_path(), n.as_os_str()),
            (Path::new("."), "ws".as_ref())
        );
        let (p, n) = parent_and_name(Path::new("/ci/jobs/42/")).unwrap();
        assert_eq!(
            (p.as_path(), n.as_os_str()),
            (Path::new("/ci/jobs"), "42".as_ref())
        );
    }
}
