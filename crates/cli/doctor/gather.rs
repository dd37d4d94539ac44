//! The doctor's I/O: reads what the checks need for the calling user — the live
//! environment and the `go env -w` file (resolved by goguard-policy exactly as Go does),
//! `access(2)` with the real uid, the cache trees (one bounded walk each through
//! goguard-fs, every entry judged by goguard-policy's `evaluate` as goguardd judges it:
//! owners, world-writable bits, labels), file_contexts, and a real exec probe in GOTMPDIR.
//!
//! Must never change anything but its own probe file (created with a unique name, removed
//! at once), never follow a symlink out of a cache root, and never write a drift rule of
//! its own (they are goguard-policy's) or decide what to tell the user (that is `checks`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use goguard_fs::walk::{Control, Visitor, WalkEntry, WalkOptions};
use goguard_fs::{AclKind, FileContexts, RootDir};
use goguard_policy::DriftKind;
use goguard_policy::accounts::PasswdEntry;
use goguard_policy::discovery::{self, DiscoveryConfig};
use goguard_policy::goenv::{self, EnvMap, GoEnvFile, GoEnvInputs, GoVersion};

use super::checks::{
    DirFacts, GoFacts, LabelSetup, LabelTally, Probe, Source, TmpFacts, TreeFacts, UserFacts,
};

/// The calling user (real uid) from passwd.
pub fn user() -> Result<(UserFacts, PasswdEntry), String> {
    let uid = nix::unistd::getuid();
    let u = nix::unistd::User::from_uid(uid)
        .map_err(|e| format!("cannot read the passwd entry of uid {uid}: {e}"))?
        .ok_or_else(|| format!("uid {uid} has no passwd entry"))?;
    let groups = CString::new(u.name.as_bytes())
        .ok()
        .and_then(|n| nix::unistd::getgrouplist(&n, u.gid).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![u.gid.as_raw()]);
    let facts = UserFacts {
        name: u.name.clone(),
        uid: uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir.clone(),
        groups,
    };
    let entry = PasswdEntry {
        name: u.name,
        uid: uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
        shell: u.shell.display().to_string(),
    };
    Ok((facts, entry))
}

/// The live process environment (non-UTF-8 variables are left out).
pub fn process_env() -> EnvMap {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// GOROOT and Go version: from `go env GOROOT GOVERSION` when that answered, else
/// `$GOROOT/VERSION` or a distribution's toolchain directory; Debian 12's Go when none.
fn host_go(env: &EnvMap, go_env: Option<&[String]>) -> (String, GoVersion) {
    if let Some([root, version, ..]) = go_env {
        if let Some(v) = GoVersion::parse(version) {
            return (root.clone(), v);
        }
    }
    let from_env = env.get("GOROOT").cloned();
    for goroot in from_env.iter().map(String::as_str).chain([
        "/usr/lib/go",
        "/usr/lib/golang",
        "/usr/local/go",
    ]) {
        if let Ok(text) = std::fs::read_to_string(Path::new(goroot).join("VERSION")) {
            if let Some(v) = GoVersion::parse(text.lines().next().unwrap_or("")) {
                let real = std::fs::canonicalize(goroot).unwrap_or_else(|_| goroot.into());
                return (real.display().to_string(), v);
            }
        }
    }
    ("/usr/lib/go".to_owned(), GoVersion::DEBIAN_12)
}

/// Runs `go env GOROOT GOVERSION GOCACHE GOMODCACHE GOPATH` with a deadline. `None` when
/// `go` is not on PATH.
fn run_go_env() -> Option<Result<Vec<String>, String>> {
    let path = std::env::var_os("PATH")?;
    let go = std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())?;
    let mut child = match Command::new(&go)
        .args([
            "env",
            "GOROOT",
            "GOVERSION",
            "GOCACHE",
            "GOMODCACHE",
            "GOPATH",
        ])
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("{}: {e}", go.display()))),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(Err(format!("{} env did not answer in 10s", go.display())));
            }
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return Some(Err(e.to_string())),
    };
    if !out.status.success() {
        return Some(Err(format!(
            "{} env failed: {}",
            go.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Some(Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()))
}

/// Go's view of this user's caches from the live environment (this shell's), the `go env
/// -w` file and `$GOROOT/go.env`, with where each value came from; plus what goguardd
/// computes for the same user, and the real `go env` for comparison.
pub fn go_facts(user: &PasswdEntry, env: &EnvMap) -> (GoFacts, Option<GoEnvFile>) {
    let go_env = run_go_env();
    let (goroot, version) = host_go(
        env,
        go_env
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(Vec::as_slice),
    );
    let location = goenv::env_file_location(env, version);
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|t| GoEnvFile::parse(&t))
    };
    let env_file = location.readable_path().and_then(|p| read(&p));
    let goroot_env = version
        .reads_goroot_env()
        .then(|| read(&Path::new(&goroot).join("go.env")))
        .flatten();
    let paths = goenv::resolve(&GoEnvInputs {
        process: env,
        env_file: env_file.as_ref(),
        goroot_env: goroot_env.as_ref(),
        goroot: &goroot,
        version,
    });
    // cfg.Getenv's order, to say where each value came from.
    let source = |key: &str| -> Source {
        if env.get(key).is_some_and(|v| !v.is_empty()) {
            Source::Environment
        } else if env_file.as_ref().is_some_and(|f| f.vars.contains_key(key)) {
            Source::EnvFile(location.go_env_value().to_owned())
        } else if goroot_env
            .as_ref()
            .is_some_and(|f| f.vars.contains_key(key))
        {
            Source::GorootEnv
        } else {
            Source::Default
        }
    };
    let sources: BTreeMap<&'static str, Source> = ["GOCACHE", "GOMODCACHE", "GOPATH", "GOTMPDIR"]
        .into_iter()
        .map(|k| (k, source(k)))
        .collect();
    let personal_gocache = match goenv::user_cache_dir(env, version) {
        Ok(d) if goenv::is_abs(&d) && Path::new(&d).starts_with(&user.home) => {
            goenv::join(&[&d, "go-build"])
        }
        _ => user.home.join(".cache/go-build").display().to_string(),
    };
    let daemon = discovery::load_user(user, &DiscoveryConfig::default(), &goroot, version);
    let daemon_view = Some((
        daemon
            .paths
            .go_env_value("GOCACHE")
            .unwrap_or("")
            .to_owned(),
        daemon.paths.gomodcache.clone(),
    ));
    let go_env = go_env.map(|r| r.map(|v| v.into_iter().skip(2).collect()));
    (
        GoFacts {
            paths,
            sources,
            personal_gocache,
            go_env,
            daemon_view,
        },
        env_file,
    )
}

fn name_of_gid(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// `access(path, W_OK|X_OK)` with the real uid (`faccessat` without `AT_EACCESS`).
fn can_write(path: &Path) -> Result<(), String> {
    rustix::fs::access(
        path,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| std::io::Error::from(e).to_string())
}

/// Facts about one cache directory; relative or empty paths are left to `cache_paths`.
pub fn dir_facts(role: &'static str, path: &str) -> Option<DirFacts> {
    if !goenv::is_abs(path) {
        return None;
    }
    let path = PathBuf::from(path);
    let meta = std::fs::metadata(&path);
    let exists = meta.is_ok();
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let probe = if exists {
        path.clone()
    } else {
        path.ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    };
    let writable = can_write(&probe);
    let (owner, group, mode) = std::fs::metadata(&probe)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.uid(), m.gid(), m.mode() & 0o7777)
        })
        .unwrap_or((0, 0, 0));
    let mut default_acl_groups = Vec::new();
    let mut has_default_acl = false;
    if let Ok(Some(acl)) = std::fs::canonicalize(&probe)
        .ok()
        .and_then(|p| RootDir::open(p).ok())
        .and_then(|r| r.open_entry("").ok())
        .map(|mut e| e.acl(AclKind::Default))
        .transpose()
        .map(Option::flatten)
    {
        has_default_acl = !acl.is_empty();
        for e in acl.entries() {
            let gid = match e.tag {
                goguard_fs::acl::Tag::Group(g) => g,
                goguard_fs::acl::Tag::GroupObj => group,
                _ => continue,
            };
            let masked = acl.get(goguard_fs::acl::Tag::Mask).unwrap_or(7) & e.perm;
            if masked == 7 {
                default_acl_groups.push((gid, name_of_gid(gid)));
            }
        }
    }
    Some(DirFacts {
        role,
        path,
        exists,
        is_dir,
        probe,
        writable,
        owner,
        group,
        mode,
        owner_name: crate::render::user_name(owner),
        group_name: name_of_gid(group),
        default_acl_groups,
        has_default_acl,
    })
}

/// The expected-label source: `--file-contexts`, else the installed policy's when SELinux
/// is enabled. `Err` when an explicitly named file cannot be loaded.
pub fn label_setup(explicit: Option<&Path>) -> Result<(LabelSetup, Option<FileContexts>), String> {
    if let Some(p) = explicit {
        let fc = FileContexts::open(p).map_err(|e| format!("--file-contexts: {e}"))?;
        return Ok((
            LabelSetup::Checked {
                file_contexts: p.to_path_buf(),
                system_policy: false,
            },
            Some(fc),
        ));
    }
    let skipped = |why: &str| Ok((LabelSetup::Skipped(why.to_owned()), None));
    let Some(path) = goguard_fs::installed_file_contexts() else {
        return skipped("label check skipped: no file_contexts (SELinux policy not installed)");
    };
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        return skipped(
            "label check skipped: SELinux is not enabled in the kernel (name a file with \
             --file-contexts to check anyway)",
        );
    }
    match FileContexts::open_with(&path, false) {
        Ok(fc) => Ok((
            LabelSetup::Checked {
                file_contexts: path,
                system_policy: true,
            },
            Some(fc),
        )),
        Err(e) => skipped(&format!("label check skipped: {e}")),
    }
}

/// Walks one cache root and hands each entry to goguard-policy's `evaluate`, as goguardd
/// judges it: the root as goguardd would discover it for this user (every entry theirs),
/// the label file_contexts expects (customizable types left alone, as restorecon does).
/// Collects the foreign owners, world-writable entries and (bounded) label mismatches.
struct TreeWalker<'a> {
    facts: TreeFacts,
    uid: u32,
    root: goguard_policy::CacheRoot,
    labels: Option<&'a FileContexts>,
    max_label_mismatches: u64,
    /// Reused buffers.
    label_buf: Vec<u8>,
    key: Vec<u8>,
    progress: bool,
    owner_names: BTreeMap<u32, String>,
}

impl Visitor for TreeWalker<'_> {
    fn entry(&mut self, e: &WalkEntry<'_>) -> Control {
        self.facts.entries += 1;
        if self.progress && self.facts.entries % 5000 == 0 {
            eprint!(
                "\rchecking {}: {} entries",
                self.facts.root.display(),
                self.facts.entries
            );
            let _ = std::io::stderr().flush();
        }
        let abs = || {
            if e.rel.as_os_str().is_empty() {
                self.facts.root.clone()
            } else {
                self.facts.root.join(e.rel)
            }
        };
        let label_check = self
            .labels
            .filter(|_| self.facts.labels.as_ref().is_some_and(|t| !t.stopped))
            .filter(|_| !e.meta.is_symlink());
        let (mut label, mut expected) = (None, None);
        if let Some(fc) = label_check {
            self.key.clear();
            self.key
                .extend_from_slice(self.facts.root.as_os_str().as_bytes());
            if !e.rel.as_os_str().is_empty() {
                self.key.push(b'/');
                self.key.extend_from_slice(e.rel.as_os_str().as_bytes());
            }
            self.key.push(0);
            expected = std::ffi::CStr::from_bytes_with_nul(&self.key)
                .ok()
                .and_then(|k| fc.lookup_cstr(k, e.meta.st_mode()).ok().flatten());
            if expected.is_some() {
                label = match e.read_label(&mut self.label_buf) {
                    Ok(true) => Some(
                        String::from_utf8_lossy(&self.label_buf)
                            .trim_end_matches('\0')
                            .to_owned(),
                    ),
                    _ => None,
                };
            }
        }
        let label_customizable = match (label_check, &label) {
            (Some(fc), Some(l)) => fc.is_customizable(l),
            _ => false,
        };
        if expected.is_some()
            && let Some(tally) = self.facts.labels.as_mut()
        {
            tally.checked += 1;
        }
        let obs = goguard_policy::Observed {
            rel_path: e.rel.to_path_buf(),
            file_type: goguard_policy::drift::FileType::from_mode(e.meta.st_mode()),
            uid: e.meta.uid,
            gid: e.meta.gid,
            mode: e.meta.mode,
            acl_access: Vec::new(),
            acl_default: Vec::new(),
            label: label.clone(),
            expected_label: expected.clone(),
            label_customizable,
            link_target: None,
            nlink: e.meta.nlink,
        };
        for f in goguard_policy::evaluate(&self.root, &obs) {
            match f.kind {
                DriftKind::ForeignOwner => {
                    let owner = self
                        .owner_names
                        .entry(e.meta.uid)
                        .or_insert_with(|| crate::render::user_name(e.meta.uid))
                        .clone();
                    let p = abs();
                    self.facts
                        .foreign
                        .add(|| format!("{} (owner {owner})", p.display()));
                }
                DriftKind::WorldWritable => {
                    if e.meta.uid != self.uid {
                        self.facts.world_writable_foreign += 1;
                    }
                    let p = abs();
                    self.facts.world_writable.add(|| {
                        format!(
                            "{} ({} {:04o})",
                            p.display(),
                            e.meta.kind.name(),
                            e.meta.mode
                        )
                    });
                }
                DriftKind::WrongLabel => {
                    let Some(tally) = self.facts.labels.as_mut() else {
                        continue;
                    };
                    let p = abs();
                    tally.mismatches.add(|| {
                        format!(
                            "{}: {}, expected {}",
                            p.display(),
                            label.as_deref().unwrap_or("unlabeled"),
                            expected.as_deref().unwrap_or_default()
                        )
                    });
                    if tally.mismatches.count >= self.max_label_mismatches {
                        tally.stopped = true;
                    }
                }
                // Mode bits, file types and ACLs are goguardd's business (and `goguardctl
                // roots`'): the doctor reports what breaks a build for this user.
                _ => {}
            }
        }
        Control::Continue
    }

    fn error(&mut self, error: goguard_fs::FsError) -> Control {
        let root = self.facts.root.clone();
        self.facts
            .errors
            .add(|| format!("{}: {error}", root.display()));
        Control::Continue
    }
}

/// Walks a cache root (it must exist and be a directory). `Err` says why it could not be
/// opened (its last component is a symlink, or it is not readable).
pub fn tree_facts(
    role: &'static str,
    root: &Path,
    user: &UserFacts,
    labels: Option<&FileContexts>,
    max_label_mismatches: u64,
) -> Result<TreeFacts, String> {
    let dir =
        RootDir::open(root).map_err(|e| format!("{role} {} not walked: {e}", root.display()))?;
    let progress = std::io::stderr().is_terminal();
    let kind = if role == "GOMODCACHE" {
        goguard_policy::RootKind::GoModCache
    } else {
        goguard_policy::RootKind::GoCache
    };
    let mut w = TreeWalker {
        facts: TreeFacts {
            role,
            root: root.to_path_buf(),
            labels: labels.map(|_| LabelTally::default()),
            ..Default::default()
        },
        uid: user.uid,
        root: goguard_policy::CacheRoot::for_user(
            root.to_path_buf(),
            kind,
            &user.name,
            user.uid,
            user.gid,
            &user.home,
        ),
        labels,
        max_label_mismatches: max_label_mismatches.max(1),
        label_buf: Vec::with_capacity(256),
        key: Vec::with_capacity(512),
        progress,
        owner_names: BTreeMap::new(),
    };
    goguard_fs::walk(&dir, &WalkOptions::default(), &mut w);
    if progress && w.facts.entries >= 5000 {
        eprint!("\r\x1b[K");
    }
    Ok(w.facts)
}

/// Where `go build` puts its work directory: Go's `cfg.Getenv("GOTMPDIR")` (environment,
/// then the go env file), else `os.TempDir()` (`$TMPDIR`, else `/tmp`).
pub fn tmp_dir(env: &EnvMap, env_file: Option<&GoEnvFile>) -> (PathBuf, bool) {
    let from_env = env.get("GOTMPDIR").filter(|v| !v.is_empty());
    let from_file = env_file
        .and_then(|f| f.vars.get("GOTMPDIR"))
        .filter(|v| !v.is_empty());
    if let Some(d) = from_env.or(from_file) {
        return (PathBuf::from(d), true);
    }
    let tmp = env
        .get("TMPDIR")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "/tmp".to_owned());
    (PathBuf::from(tmp), false)
}

/// Checks the temp directory: exists, writable, `ST_NOEXEC`, and a real probe: a tiny
/// executable script written there, executed, and removed.
pub fn tmp_facts(dir: PathBuf, from_gotmpdir: bool) -> TmpFacts {
    let exists = dir.is_dir();
    let writable = exists && can_write(&dir).is_ok();
    let noexec_mount = rustix::fs::statvfs(&dir)
        .ok()
        .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC));
    let probe = if !exists {
        Probe::NotRun("it does not exist".into())
    } else if !writable {
        Probe::NotRun("it is not writable".into())
    } else {
        exec_probe(&dir)
    };
    TmpFacts {
        dir,
        from_gotmpdir,
        exists,
        writable,
        noexec_mount,
        probe,
    }
}

fn exec_probe(dir: &Path) -> Probe {
    use std::os::unix::fs::OpenOptionsExt;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = dir.join(format!(
        ".goguard-doctor-probe.{}.{nonce}",
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)
        .and_then(|mut f| f.write_all(b"#!/bin/sh\necho goguard-probe-ok\n"));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Probe::Failed(format!("cannot write {}: {e}", path.display()));
    }
    let mut result = Probe::Failed("not run".into());
    for _ in 0..5 {
        match Command::new(&path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() && o.stdout.starts_with(b"goguard-probe-ok") => {
                result = Probe::Ran;
                break;
            }
            Ok(o) => {
                result = Probe::Failed(format!("the probe script exited with {}", o.status));
                break;
            }
            // Another process may briefly hold it open for writing.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                result = Probe::Failed(format!("executing {}: {e}", path.display()));
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    result
}
