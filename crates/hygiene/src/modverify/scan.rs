//! The I/O side of module verification: walks `GOMODCACHE/cache/download` through directory
//! fds (never following a symlink, never crossing a mount), finds every `@v` directory,
//! groups its files by version, hashes zips and extracted directories in parallel worker
//! threads, and hands the results to [`super::judge`]. Also checks go.sum lines.
//!
//! Read-only: must never change, create or remove anything in the module cache.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, OsStr};
use std::io::BufReader;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use goguard_fs::RootDir;
use rustix::fs::FileType;

use super::{
    GoSumCheck, GoSumOutcome, Leftover, LeftoverKind, MAX_GO_MOD, MAX_ZIP_FILE, MAX_ZIPHASH,
    ModuleReport, PartError, Skipped, VerifyOptions, VerifyReport, VersionState, judge, verdict_of,
};
use crate::beneath;
use crate::dirhash::{self, Budget, Summary};
use crate::error::Result;
use crate::gosum::{GoSumLine, SumKind};
use crate::modpath;

/// Deepest module path (in `/`-separated elements) we descend into.
const MAX_DEPTH: usize = 64;

/// Files of one `@v` directory, by version.
#[derive(Debug, Default, Clone)]
struct VersionFiles {
    zip: bool,
    ziphash: bool,
    partial: bool,
    mod_file: bool,
}

/// One module path's `@v` directory.
#[derive(Debug)]
struct ModuleDir {
    /// Escaped module path, e.g. `github.com/!burnt!sushi/toml`.
    escaped: String,
    /// Unescaped.
    module: String,
    /// Escaped version → files.
    versions: BTreeMap<String, VersionFiles>,
}

/// One version to hash.
struct Job {
    escaped_module: String,
    module: String,
    escaped_version: String,
    version: String,
    files: VersionFiles,
}

/// Verifies the module cache at `gomodcache` (read-only).
pub fn verify_cache(gomodcache: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    verify_cache_in(RootDir::open(gomodcache)?, opts)
}

/// [`verify_cache`] on a root the caller opened (goguardd opens a user's root from the
/// user's home, never through a symlink).
pub fn verify_cache_in(root: RootDir, opts: &VerifyOptions) -> Result<VerifyReport> {
    let gomodcache = root.path().to_path_buf();
    let gomodcache = gomodcache.as_path();
    let now = SystemTime::now();
    let mut report = VerifyReport {
        root: gomodcache.to_path_buf(),
        modules: Vec::new(),
        leftovers: Vec::new(),
        lock_files: 0,
        gosum: Vec::new(),
        skipped: Vec::new(),
    };
    let mut modules: Vec<ModuleDir> = Vec::new();
    match root.open_dir("cache/download") {
        Ok(fd) => walk_download(
            &fd,
            "cache/download",
            "",
            0,
            now,
            opts,
            &mut modules,
            &mut report,
        ),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    if let Ok(cache) = root.open_dir("cache") {
        // `cache/lock` (SideLock) is Go's too.
        if beneath::stat_at(cache.as_fd(), c"lock").is_ok() {
            report.lock_files += 1;
        }
    }

    // Pre-1.16 extraction directories beside the extracted modules.
    let mut parents: BTreeSet<String> = BTreeSet::new();
    for m in &modules {
        parents.insert(parent_of(&m.escaped).to_string());
    }
    for parent in parents {
        find_temp_dirs(&root, &parent, now, opts, &mut report);
    }

    // Which versions to hash.
    let wanted: Option<BTreeSet<(String, String)>> = match (&opts.gosum, opts.only_gosum_modules) {
        (Some(lines), true) => Some(
            lines
                .iter()
                .map(|l| (l.module.clone(), l.version.clone()))
                .collect(),
        ),
        _ => None,
    };
    let mut jobs = Vec::new();
    for m in &modules {
        for (ev, files) in &m.versions {
            if !(files.zip || files.ziphash || files.partial) {
                continue; // only .info/.mod: nothing downloaded to verify
            }
            let version = match modpath::unescape(ev) {
                Ok(v) => v,
                Err(e) => {
                    report.skipped.push(Skipped {
                        path: format!("cache/download/{}/@v/{ev}", m.escaped),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(w) = &wanted {
                if !w.contains(&(m.module.clone(), version.clone())) {
                    continue;
                }
            }
            jobs.push(Job {
                escaped_module: m.escaped.clone(),
                module: m.module.clone(),
                escaped_version: ev.clone(),
                version,
                files: files.clone(),
            });
        }
    }
    jobs.sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));
    report.modules = run_jobs(&root, &jobs, opts.jobs.max(1));

    if let Some(lines) = &opts.gosum {
        report.gosum = lines.iter().map(|l| check_gosum_line(&root, l)).collect();
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn walk_download(
    fd: &OwnedFd,
    rel: &str,
    escaped_module: &str,
    depth: usize,
    now: SystemTime,
    opts: &VerifyOptions,
    modules: &mut Vec<ModuleDir>,
    report: &mut VerifyReport,
) {
    let names = match beneath::list_names(fd.as_fd()) {
        Ok(n) => n,
        Err(e) => {
            report.skipped.push(Skipped {
                path: rel.to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    let mut sorted: Vec<_> = names;
    sorted.sort();
    for cname in sorted {
        let Ok(name) = cname.to_str() else {
            report.skipped.push(Skipped {
                path: format!("{rel}/{}", cname.to_string_lossy()),
                error: "name is not UTF-8".to_string(),
            });
            continue;
        };
        let Ok(st) = beneath::stat_at(fd.as_fd(), &cname) else {
            continue;
        };
        if st.kind != FileType::Directory {
            continue; // files here are `list` at the @v level only, or sumdb data
        }
        if depth == 0 && name == "sumdb" {
            continue;
        }
        let child_rel = format!("{rel}/{name}");
        let child = match beneath::open_dir(fd.as_fd(), Path::new(name)) {
            Ok(c) => c,
            Err(e) => {
                report.skipped.push(Skipped {
                    path: child_rel,
                    error: e.to_string(),
                });
                continue;
            }
        };
        if name == "@v" {
            if escaped_module.is_empty() {
                continue;
            }
            match modpath::unescape(escaped_module) {
                Ok(module) => {
                    let versions = scan_at_v(&child, &child_rel, now, opts, report);
                    modules.push(ModuleDir {
                        escaped: escaped_module.to_string(),
                        module,
                        versions,
                    });
                }
                Err(e) => report.skipped.push(Skipped {
                    path: child_rel,
                    error: e.to_string(),
                }),
            }
            continue;
        }
        if depth + 1 >= MAX_DEPTH {
            report.skipped.push(Skipped {
                path: child_rel,
                error: "too deep".to_string(),
            });
            continue;
        }
        let em = if escaped_module.is_empty() {
            name.to_string()
        } else {
            format!("{escaped_module}/{name}")
        };
        walk_download(
            &child,
            &child_rel,
            &em,
            depth + 1,
            now,
            opts,
            modules,
            report,
        );
    }
}

/// Groups the files of one `@v` directory by version; counts locks, notes leftovers.
fn scan_at_v(
    fd: &OwnedFd,
    rel: &str,
    now: SystemTime,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) -> BTreeMap<String, VersionFiles> {
    let mut versions: BTreeMap<String, VersionFiles> = BTreeMap::new();
    let names = match beneath::list_names(fd.as_fd()) {
        Ok(n) => n,
        Err(e) => {
            report.skipped.push(Skipped {
                path: rel.to_string(),
                error: e.to_string(),
            });
            return versions;
        }
    };
    for cname in names {
        let Ok(name) = cname.to_str() else { continue };
        let Ok(st) = beneath::stat_at(fd.as_fd(), &cname) else {
            continue;
        };
        if st.kind != FileType::RegularFile {
            continue;
        }
        if let Some(tmp) = name.strip_suffix(".tmp") {
            let kind = match tmp.find(".zip") {
                Some(i) if tmp[i + 4..].bytes().all(|b| b.is_ascii_digit()) => {
                    LeftoverKind::TempZip
                }
                _ => LeftoverKind::TempFile,
            };
            let age = now.duration_since(st.mtime).unwrap_or_default();
            report.leftovers.push(Leftover {
                path: format!("{}/{name}", rel.trim_start_matches("./")),
                kind,
                age,
                stale: age > opts.stale_after,
            });
            continue;
        }
        let (stem, ext) = match name.rsplit_once('.') {
            Some(x) => x,
            None => continue, // `list`
        };
        match ext {
            "zip" => versions.entry(stem.to_string()).or_default().zip = true,
            "ziphash" => versions.entry(stem.to_string()).or_default().ziphash = true,
            "partial" => versions.entry(stem.to_string()).or_default().partial = true,
            "mod" => versions.entry(stem.to_string()).or_default().mod_file = true,
            "lock" => report.lock_files += 1,
            _ => {}
        }
    }
    versions
}

fn parent_of(escaped: &str) -> &str {
    escaped.rsplit_once('/').map_or("", |(p, _)| p)
}

fn find_temp_dirs(
    root: &RootDir,
    parent: &str,
    now: SystemTime,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) {
    let fd = if parent.is_empty() {
        root.open_dir("")
    } else {
        root.open_dir(parent)
    };
    let Ok(fd) = fd else { return };
    let Ok(names) = beneath::list_names(fd.as_fd()) else {
        return;
    };
    for cname in names {
        let Ok(name) = cname.to_str() else { continue };
        if !(name.contains('@') && name.contains(".tmp-")) {
            continue;
        }
        let Ok(st) = beneath::stat_at(fd.as_fd(), &cname) else {
            continue;
        };
        let age = now.duration_since(st.mtime).unwrap_or_default();
        report.leftovers.push(Leftover {
            path: if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}/{name}")
            },
            kind: LeftoverKind::TempDir,
            age,
            stale: age > opts.stale_after,
        });
    }
}

fn run_jobs(root: &RootDir, jobs: &[Job], threads: usize) -> Vec<ModuleReport> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ModuleReport>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = verify_version(root.as_fd(), job);
                    results.lock().expect("no panics while locked")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while locked")
        .into_iter()
        .flatten()
        .collect()
}

fn verify_version(root: BorrowedFd<'_>, job: &Job) -> ModuleReport {
    let at_v = format!(
        "cache/download/{}/@v/{}",
        job.escaped_module, job.escaped_version
    );
    let mut bytes = 0u64;
    let mut state = VersionState {
        partial: job.files.partial,
        ..VersionState::default()
    };
    if job.files.ziphash {
        state.ziphash = Some(read_ziphash(root, &at_v).map_err(|e| e.to_string()));
    }
    if job.files.zip {
        let zip_rel = format!("{at_v}.zip");
        state.zip = Some(summarize_zip(root, &zip_rel, &mut bytes));
    }
    let dir_rel = format!("{}@{}", job.escaped_module, job.escaped_version);
    match beneath::open_dir(root, Path::new(&dir_rel)) {
        Ok(fd) => {
            let prefix = format!("{}@{}", job.module, job.version);
            state.dir = Some(summarize_dir(&fd, &prefix, &mut bytes));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => state.dir = Some(Err(PartError::Unreadable(e.to_string()))),
    }
    let (findings, checked) = judge(&state);
    ModuleReport {
        module: job.module.clone(),
        version: job.version.clone(),
        verdict: verdict_of(&findings),
        findings,
        checked,
        bytes_hashed: bytes,
    }
}

/// `<v>.ziphash`, trimmed; at most [`MAX_ZIPHASH`] bytes.
fn read_ziphash(root: BorrowedFd<'_>, at_v: &str) -> std::io::Result<String> {
    beneath::read_bounded(root, Path::new(&format!("{at_v}.ziphash")), MAX_ZIPHASH)
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

/// `HashZip` of `<v>.zip`, unless the zip, or what it decompresses to, is larger than Go
/// allows a module zip to be ([`MAX_ZIP_FILE`]): then it is not hashed (a zip bomb stops at
/// the limit). `bytes` counts what was read.
fn summarize_zip(
    root: BorrowedFd<'_>,
    zip_rel: &str,
    bytes: &mut u64,
) -> Result<Summary, PartError> {
    let f = beneath::open_file(root, Path::new(zip_rel)).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let name = zip_rel.rsplit('/').next().unwrap_or(zip_rel).to_string();
    if size > MAX_ZIP_FILE {
        return Err(PartError::TooLarge {
            file: Some(name),
            size,
            limit: MAX_ZIP_FILE,
        });
    }
    *bytes += size;
    let budget = Budget::new(MAX_ZIP_FILE);
    dirhash::summarize_zip_capped(BufReader::with_capacity(256 * 1024, f), &budget).map_err(|e| {
        match dirhash::exceeded(&e) {
            Some(_) => PartError::TooLarge {
                file: None,
                size: budget.used(),
                limit: MAX_ZIP_FILE,
            },
            None => PartError::Unreadable(e.to_string()),
        }
    })
}

/// `HashDir(dir, prefix)`'s summary through fds: every regular file beneath `dir`, named
/// `prefix/rel`. A symlink or special file is an error (Go never extracts one; `HashDir`
/// would follow it, we do not; a FIFO is never opened). A file, or a total, larger than Go
/// allows a module to be ([`MAX_ZIP_FILE`]) is [`PartError::TooLarge`] and nothing is hashed;
/// a file that grows while it is hashed stops at the limit.
fn summarize_dir(dir: &OwnedFd, prefix: &str, bytes: &mut u64) -> Result<Summary, PartError> {
    let mut files: Vec<(Vec<u8>, u64)> = Vec::new();
    collect_files(dir, "", 0, &mut files)?;
    let named = |rel: &[u8]| {
        let mut n = Vec::with_capacity(prefix.len() + 1 + rel.len());
        n.extend_from_slice(prefix.as_bytes());
        n.push(b'/');
        n.extend_from_slice(rel);
        n
    };
    if let Some((rel, size)) = files.iter().find(|(_, size)| *size > MAX_ZIP_FILE) {
        return Err(PartError::TooLarge {
            file: Some(String::from_utf8_lossy(&named(rel)).into_owned()),
            size: *size,
            limit: MAX_ZIP_FILE,
        });
    }
    let total = files.iter().map(|(_, s)| s).sum::<u64>();
    if total > MAX_ZIP_FILE {
        return Err(PartError::TooLarge {
            file: None,
            size: total,
            limit: MAX_ZIP_FILE,
        });
    }
    let names: Vec<Vec<u8>> = files.iter().map(|(rel, _)| named(rel)).collect();
    let skip = prefix.len() + 1;
    let budget = Budget::new(MAX_ZIP_FILE);
    let summary = dirhash::summarize_with(names, |name| {
        let f = beneath::open_file(dir.as_fd(), Path::new(OsStr::from_bytes(&name[skip..])))?;
        dirhash::sha256_reader(budget.cap(f))
    });
    *bytes += budget.used();
    summary.map_err(|e| match dirhash::exceeded(&e) {
        Some(name) => PartError::TooLarge {
            file: Some(name.to_string()),
            size: budget.used(),
            limit: MAX_ZIP_FILE,
        },
        None => PartError::Unreadable(e.to_string()),
    })
}

fn collect_files(
    dir: &OwnedFd,
    rel: &str,
    depth: usize,
    out: &mut Vec<(Vec<u8>, u64)>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{rel}: too deep"));
    }
    let names = beneath::list_names(dir.as_fd()).map_err(|e| format!("{rel}: {e}"))?;
    for cname in names {
        let name_bytes = cname.to_bytes();
        let child_rel = if rel.is_empty() {
            String::from_utf8_lossy(name_bytes).into_owned()
        } else {
            format!("{rel}/{}", String::from_utf8_lossy(name_bytes))
        };
        let st = beneath::stat_at(dir.as_fd(), &cname).map_err(|e| format!("{child_rel}: {e}"))?;
        if st.kind == FileType::Directory {
            let sub = beneath::open_dir(dir.as_fd(), Path::new(os_str(&cname)))
                .map_err(|e| format!("{child_rel}: {e}"))?;
            collect_files(&sub, &child_rel, depth + 1, out)?;
        } else if st.kind == FileType::RegularFile {
            let mut full = rel.as_bytes().to_vec();
            if !full.is_empty() {
                full.push(b'/');
            }
            full.extend_from_slice(name_bytes);
            out.push((full, st.size));
        } else {
            return Err(format!(
                "{child_rel}: not a regular file or directory ({:?})",
                st.kind
            ));
        }
    }
    Ok(())
}

fn os_str(c: &CStr) -> &OsStr {
    OsStr::from_bytes(c.to_bytes())
}

fn check_gosum_line(root: &RootDir, line: &GoSumLine) -> GoSumCheck {
    let outcome = check_gosum(root.as_fd(), line);
    GoSumCheck {
        line: line.clone(),
        outcome,
    }
}

fn check_gosum(root: BorrowedFd<'_>, line: &GoSumLine) -> GoSumOutcome {
    if !line.hash.starts_with("h1:") {
        return GoSumOutcome::UnknownHash;
    }
    let (Ok(em), Ok(ev)) = (
        modpath::escape(&line.module),
        modpath::escape(&line.version),
    ) else {
        return GoSumOutcome::NotInCache;
    };
    let at_v = format!("cache/download/{em}/@v/{ev}");
    let got = match line.kind {
        SumKind::Zip => {
            match read_ziphash(root, &at_v) {
                Ok(h) => Ok(h),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // No ziphash: hash the zip itself, if there is one (same limits).
                    let zip_rel = format!("{at_v}.zip");
                    if beneath::stat_at(root, zip_rel.as_str())
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                    {
                        return GoSumOutcome::NotInCache;
                    }
                    let mut bytes = 0;
                    match summarize_zip(root, &zip_rel, &mut bytes) {
                        Ok(s) => Ok(s.h1()),
                        Err(PartError::Unreadable(e)) => Err(e),
                        Err(PartError::TooLarge { size, limit, .. }) => Err(format!(
                            "zip: {size} bytes, larger than Go's module zip limit ({limit} bytes): not hashed"
                        )),
                    }
                }
                Err(e) => Err(format!("ziphash: {e}")),
            }
        }
        SumKind::GoMod => match beneath::open_file(root, Path::new(&format!("{at_v}.mod"))) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.len() > MAX_GO_MOD => Err(format!(
                    ".mod: {} bytes, larger than Go's go.mod limit ({MAX_GO_MOD} bytes): not hashed",
                    m.len()
                )),
                Ok(_) => {
                    let budget = Budget::new(MAX_GO_MOD);
                    dirhash::hash1(vec![b"go.mod".to_vec()], |_| {
                        f.try_clone().map(|f| budget.cap(f))
                    })
                    .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return GoSumOutcome::NotInCache;
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match got {
        Ok(h) if h == line.hash => GoSumOutcome::Match,
        Ok(h) => GoSumOutcome::Mismatch { cache: h },
        Err(e) => GoSumOutcome::Unreadable(e),
    }
}
