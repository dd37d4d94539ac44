//! The cache roots goguardd guards: declared `[[root]]` entries plus each
//! selected user's GOCACHE and GOMODCACHE as Go computes them
//! (goguard-policy decides; this module only reads passwd, group, the users'
//! `go env -w` files and environment.d, and checks which paths exist).

use std::path::{Path, PathBuf};

use goguard_fs::RootDir;
use goguard_layout::Mode;
use goguard_policy::accounts::Accounts;
use goguard_policy::discovery::{self, DiscoveryConfig, Scope, UserSelection};
use goguard_policy::goenv::GoVersion;
use goguard_policy::roots::RootOrigin;
use goguard_policy::{CacheRoot, RootSet};

use crate::config::Config;

/// The outcome of one discovery.
pub struct Discovered {
    pub roots: RootSet,
    /// Files and directories whose change means discovery must run again.
    pub inputs: Vec<PathBuf>,
    /// Things an admin should know: unknown owners in `[[root]]`, users
    /// skipped, overlapping roots, misconfigured GOCACHE.
    pub problems: Vec<String>,
}

/// The GOROOT and Go version the host's `go` uses, read from the toolchain's
/// VERSION file without running it; Debian 12's Go when none is found.
fn host_go() -> (String, GoVersion) {
    for goroot in ["/usr/lib/go", "/usr/lib/golang", "/usr/local/go"] {
        if let Ok(text) = std::fs::read_to_string(Path::new(goroot).join("VERSION")) {
            let first = text.lines().next().unwrap_or("");
            if let Some(v) = GoVersion::parse(first) {
                let real = std::fs::canonicalize(goroot).unwrap_or_else(|_| PathBuf::from(goroot));
                return (real.display().to_string(), v);
            }
        }
    }
    ("/usr/lib/go".to_owned(), GoVersion::DEBIAN_12)
}

pub fn discover(config: &Config, mode: Mode) -> Discovered {
    let mut problems = Vec::new();
    let accounts = match Accounts::load(Path::new("/etc/passwd"), Path::new("/etc/group")) {
        Ok(a) => a,
        Err(e) => {
            problems.push(format!("cannot read /etc/passwd or /etc/group: {e}"));
            Accounts::parse("", "")
        }
    };
    let mut declared = Vec::new();
    for (i, decl) in config.root.iter().enumerate() {
        match CacheRoot::from_decl(i, decl, &accounts) {
            Ok(root) => declared.push(root),
            Err(e) => problems.push(format!("[[root]] #{}: {e}", i + 1)),
        }
    }
    let d = &config.discovery;
    let cfg = DiscoveryConfig {
        users: if d.users.is_empty() {
            UserSelection::Auto
        } else {
            UserSelection::Only(d.users.clone())
        },
        min_uid: d.min_uid,
        max_uid: d.max_uid,
        user_root_prefixes: d.user_root_prefixes.iter().map(|p| p.0.clone()).collect(),
        ..DiscoveryConfig::default()
    };
    let scope = match mode {
        Mode::System => Scope::System,
        Mode::User => Scope::User(nix::unistd::geteuid().as_raw()),
    };
    let mut discovered = Vec::new();
    let mut inputs = Vec::new();
    if d.enabled {
        let (goroot, version) = host_go();
        let (users, skipped) =
            discovery::select_users(&accounts.users, &cfg, scope, &|p: &Path| p.is_dir());
        for s in skipped {
            problems.push(format!("user {} skipped: {}", s.name, s.reason));
        }
        let with_env_files: Vec<_> = users
            .iter()
            .map(|u| {
                let (envd, _) = goguard_policy::envd::load_as(
                    &discovery::environment_d_dirs(u),
                    &discovery::base_environment(u, &cfg),
                    Some(&discovery::user_reader(u)),
                );
                (*u, discovery::env_file_for(u, &cfg, &envd, version))
            })
            .collect();
        inputs = discovery::watch_paths(&with_env_files, &goroot, version)
            .into_iter()
            .map(|w| w.path)
            .collect();
        for user in users {
            let caches = discovery::load_user(user, &cfg, &goroot, version);
            for p in caches.problems {
                problems.push(format!("user {}: {p}", user.name));
            }
            for root in caches.roots {
                // On disk: no symlink and no directory another user controls on the way.
                let checked = match user_anchor(&root) {
                    Some((anchor, uid, is_home)) => {
                        RootDir::check_user_root(anchor, &root.path, uid, is_home)
                    }
                    None => Ok(()),
                };
                match checked {
                    Ok(()) => discovered.push(root),
                    Err(e) => problems.push(format!(
                        "user {}: {}",
                        user.name,
                        discovery::not_guarded(root.kind, &root.path, &user.name, &e.to_string())
                    )),
                }
            }
        }
    }
    let (roots, conflicts) = RootSet::build(declared, discovered);
    for c in conflicts {
        problems.push(format!("{c:?}"));
    }
    Discovered {
        roots,
        inputs,
        problems,
    }
}

/// A user's root's anchor, uid and whether the anchor is the home; `None` for `[[root]]`s.
fn user_anchor(root: &CacheRoot) -> Option<(&Path, u32, bool)> {
    match &root.origin {
        RootOrigin::User {
            uid,
            anchor,
            anchor_is_home,
            ..
        } => Some((anchor, *uid, *anchor_is_home)),
        RootOrigin::Declared { .. } => None,
    }
}

/// Opens `root` the way its origin demands, and the only way the daemon opens a root it
/// may change: a user's root from its anchor (home or admin prefix), one component at a
/// time, never through a symlink or a directory another user controls; an admin's
/// `[[root]]` by its path (every component above it is the admin's).
pub fn open_root(root: &CacheRoot) -> Result<RootDir, goguard_fs::FsError> {
    match user_anchor(root) {
        Some((anchor, uid, is_home)) => RootDir::open_for_user(anchor, &root.path, uid, is_home),
        None => RootDir::open(&root.path),
    }
}

/// A cheap summary of the discovery inputs (existence, size, mtime of each;
/// a directory's mtime changes when an entry is added or removed), compared
/// every few seconds to notice a `go env -w`, a new environment.d file or a
/// new user without waiting for the periodic scan.
pub fn inputs_fingerprint(inputs: &[PathBuf]) -> Vec<Option<(u64, i64, i64)>> {
    use std::os::unix::fs::MetadataExt;
    inputs
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.size(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// A short name of where a root came from, for people.
pub fn origin(root: &CacheRoot) -> String {
    match &root.origin {
        RootOrigin::User { name, .. } => format!("user {name}"),
        RootOrigin::Declared { index } => format!("[[root]] #{}", index + 1),
    }
}

/// Whether `uid` owns `root` (may read it and ask for its repair).
pub fn owned_by(root: &CacheRoot, uid: u32) -> bool {
    root.expected.owner == Some(uid)
}

/// One root and what the last scan saw in it.
#[derive(Debug, Clone)]
pub struct RootState {
    pub root: CacheRoot,
    pub exists: bool,
    pub entries: u64,
    pub findings: Vec<goguard_policy::Finding>,
    pub last_scan: f64,
    /// The type file_contexts give the root directory at the last scan (what
    /// restorecon would set), when known.
    pub file_contexts_type: Option<String>,
}

/// The type `contexts` give `path` as a directory: what restorecon would set there.
pub fn file_contexts_type(
    contexts: Option<&goguard_fs::FileContexts>,
    path: &Path,
) -> Option<String> {
    let context = contexts?.lookup(path, libc::S_IFDIR)?;
    goguard_fs::label::parse_context(&context).map(|c| c.type_.to_owned())
}

/// Every root, as the tasks share it.
#[derive(Debug, Default)]
pub struct CacheState {
    pub roots: Vec<RootState>,
    /// What discovery read, and its fingerprint then.
    pub inputs: Vec<PathBuf>,
    pub inputs_fingerprint: Vec<Option<(u64, i64, i64)>>,
    pub problems: Vec<String>,
    pub file_contexts: Option<PathBuf>,
}

impl CacheState {
    /// The innermost root holding `path` (absolute, already normalized).
    pub fn root_for(&self, path: &Path) -> Option<&RootState> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(&r.root.path))
            .max_by_key(|r| r.root.path.components().count())
    }
}

/// The file_contexts to check labels against: the configured one, else the
/// installed policy's (`/etc/selinux/config`'s SELINUXTYPE), else none.
pub fn file_contexts_path(config: &Config) -> Option<PathBuf> {
    if let Some(p) = &config.selinux.file_contexts.0 {
        return Some(p.clone());
    }
    goguard_fs::installed_file_contexts()
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Normalizes a requested absolute path without touching the filesystem:
/// `.` components go, `..` is refused (a repair never leaves its root).
pub fn normalize_request_path(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path:?} is not an absolute path"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                return Err(format!("{path:?} contains \"..\"; name the path directly"));
            }
            _ => {}
        }
    }
    Ok(out)
}
