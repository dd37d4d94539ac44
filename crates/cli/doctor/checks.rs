//! The doctor's checks as pure functions: facts gathered from the system (see `gather`) in,
//! [`Check`]s with findings and exact fix commands out.
//!
//! Must never read or change the system: everything a check needs is in its facts, so every
//! rule here is unit-tested on values. Fix commands never suggest `chmod 777`: shared caches
//! get a declared group and default ACLs, personal caches go back to their owner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use goguard_policy::goenv::{GoCacheOff, GoCacheSetting, GoPaths, GoRefusal};

use super::report::{Check, CheckId, Finding, Severity, sh_quote};

/// The user the doctor runs for (the caller's real uid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts {
    /// Login name.
    pub name: String,
    /// Real uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory from passwd.
    pub home: PathBuf,
    /// Every group the user is in (`getgrouplist`), the primary one included.
    pub groups: Vec<u32>,
}

/// Where a Go setting's value came from (Go's `cfg.Getenv` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The process environment (exported in the shell).
    Environment,
    /// The `go env -w` file.
    EnvFile(String),
    /// `$GOROOT/go.env`.
    GorootEnv,
    /// Go's default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment => write!(f, "environment"),
            Source::EnvFile(p) => write!(f, "go env file {p}"),
            Source::GorootEnv => write!(f, "$GOROOT/go.env"),
            Source::Default => write!(f, "default"),
        }
    }
}

/// Go's view of this user's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFacts {
    /// What Go computes from the live environment and the `go env -w` file.
    pub paths: GoPaths,
    /// Where GOCACHE, GOMODCACHE, GOPATH and GOTMPDIR came from.
    pub sources: BTreeMap<&'static str, Source>,
    /// A per-user GOCACHE to suggest (an absolute path in the user's home).
    pub personal_gocache: String,
    /// `go env GOCACHE GOMODCACHE GOPATH` from the real `go`, when it is on PATH.
    pub go_env: Option<Result<Vec<String>, String>>,
    /// GOCACHE and GOMODCACHE as goguardd computes them for this user (passwd,
    /// environment.d and the go env file; no shell profile).
    pub daemon_view: Option<(String, String)>,
}

/// One cache directory (GOCACHE, GOMODCACHE, or GOPATH's first element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFacts {
    /// `GOCACHE`, `GOMODCACHE` or `GOPATH`.
    pub role: &'static str,
    /// The directory.
    pub path: PathBuf,
    /// It exists (following symlinks).
    pub exists: bool,
    /// It exists and is a directory.
    pub is_dir: bool,
    /// What write access was checked on: the directory, or its nearest existing ancestor
    /// (Go creates the missing part).
    pub probe: PathBuf,
    /// `access(probe, W_OK|X_OK)` with the real uid: `Err` carries the errno text.
    pub writable: Result<(), String>,
    /// Owner, group and mode of `probe`.
    pub owner: u32,
    pub group: u32,
    pub mode: u32,
    /// Names for the owner and group.
    pub owner_name: String,
    pub group_name: String,
    /// Groups (gid, name) the default ACL of `probe` gives `rwx`; the owning group counts
    /// when the default ACL's `group::` entry has `rwx`.
    pub default_acl_groups: Vec<(u32, String)>,
    /// True when `probe` carries a default ACL at all.
    pub has_default_acl: bool,
}

/// A short count with the first few examples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// The first few, rendered (`PATH (owner root)`).
    pub samples: Vec<String>,
}

impl Tally {
    /// How many examples a tally keeps.
    pub const SAMPLES: usize = 5;

    /// Counts one, keeping it as an example while there is room.
    pub fn add(&mut self, sample: impl FnOnce() -> String) {
        self.count += 1;
        if self.samples.len() < Self::SAMPLES {
            self.samples.push(sample());
        }
    }
}

/// Label mismatches found in one tree (the walk stops comparing after a bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelTally {
    /// Entries compared.
    pub checked: u64,
    /// Mismatches (`PATH: CURRENT, expected EXPECTED`).
    pub mismatches: Tally,
    /// The bound was reached: there may be more.
    pub stopped: bool,
}

/// One walked cache tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeFacts {
    /// `GOCACHE` or `GOMODCACHE`.
    pub role: &'static str,
    /// The root walked.
    pub root: PathBuf,
    /// Entries seen, the root included.
    pub entries: u64,
    /// Entries not owned by the user.
    pub foreign: Tally,
    /// Directories and files with the `o+w` bit.
    pub world_writable: Tally,
    /// Of those, how many are not the user's (fixing them needs root).
    pub world_writable_foreign: u64,
    /// Label comparison, when a file_contexts was loaded.
    pub labels: Option<LabelTally>,
    /// Entries or directories that could not be read.
    pub errors: Tally,
}

/// Where expected labels come from, or why they are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSetup {
    /// Not checked, and why (an info line, not a failure).
    Skipped(String),
    /// Checked against this file_contexts.
    Checked {
        /// The file.
        file_contexts: PathBuf,
        /// It is the installed policy's (so `restorecon` uses it too).
        system_policy: bool,
    },
}

/// The result of executing a probe script from the temp directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It ran and exited as expected.
    Ran,
    /// Writing or executing it failed (the error text).
    Failed(String),
    /// Not tried (the reason).
    NotRun(String),
}

/// The directory `go test`/`go run` build into and execute from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpFacts {
    /// GOTMPDIR, else `$TMPDIR`, else `/tmp` (Go's `os.TempDir`).
    pub dir: PathBuf,
    /// True when it came from GOTMPDIR (else from os.TempDir).
    pub from_gotmpdir: bool,
    /// It exists and is a directory.
    pub exists: bool,
    /// `access(W_OK|X_OK)` succeeded.
    pub writable: bool,
    /// `statvfs` reports `ST_NOEXEC` (None when statvfs failed).
    pub noexec_mount: Option<bool>,
    /// The real probe.
    pub probe: Probe,
}

/// `1 entry is`, `3 entries are`.
fn entries_are(n: u64) -> String {
    if n == 1 {
        "1 entry is".to_owned()
    } else {
        format!("{n} entries are")
    }
}

fn q(p: &Path) -> String {
    sh_quote(&p.display().to_string())
}

/// The command that sets a Go variable for this user, given where it is set now: `export`
/// when the shell environment sets it (it beats the go env file), `go env -w` otherwise.
pub fn set_var_command(key: &str, value: &str, source: Option<&Source>) -> String {
    match source {
        Some(Source::Environment) => format!("export {key}={}", sh_quote(value)),
        _ => format!("go env -w {key}={}", sh_quote(value)),
    }
}

fn personal_dir(user: &UserFacts, role: &str, go: &GoFacts) -> String {
    match role {
        "GOCACHE" => go.personal_gocache.clone(),
        "GOMODCACHE" => user.home.join("go/pkg/mod").display().to_string(),
        _ => user.home.join("go").display().to_string(),
    }
}

/// Check 1: GOCACHE, GOMODCACHE and GOPATH as Go computes them, and whether this user can
/// write them.
pub fn cache_paths(user: &UserFacts, go: &GoFacts, dirs: &[DirFacts]) -> Check {
    let mut c = Check::ran(CheckId::CachePaths);
    let src = |k: &str| go.sources.get(k);
    if let Some(r) = &go.paths.refusal {
        let good = user.home.join("go").display().to_string();
        let (what, kind) = match r {
            GoRefusal::TildeInGopath(_) => ("starts with ~", "gopath_tilde"),
            GoRefusal::RelativeGopath(_) => ("is relative", "gopath_relative"),
        };
        c.findings.push(Finding::new(
            Severity::Error,
            kind,
            Some(go.paths.gopath.clone()),
            format!(
                "GOPATH {:?} {what}: every go command fails ({r})",
                go.paths.gopath
            ),
            vec![set_var_command("GOPATH", &good, src("GOPATH"))],
        ));
    }
    match &go.paths.gocache {
        GoCacheSetting::Off(off) => {
            let (kind, fix) = match (off, src("GOCACHE")) {
                (GoCacheOff::Explicit, Some(Source::Environment)) => {
                    ("gocache_off", "unset GOCACHE".to_owned())
                }
                (GoCacheOff::Explicit, Some(Source::EnvFile(_))) => {
                    ("gocache_off", "go env -u GOCACHE".to_owned())
                }
                (GoCacheOff::Explicit, s) => (
                    "gocache_off",
                    set_var_command("GOCACHE", &go.personal_gocache, s),
                ),
                (GoCacheOff::NotAbsolute(_), s) => (
                    "gocache_relative",
                    set_var_command("GOCACHE", &go.personal_gocache, s),
                ),
                (GoCacheOff::NoCacheDir(_), s) => (
                    "gocache_undefined",
                    set_var_command("GOCACHE", &go.personal_gocache, s),
                ),
            };
            c.findings.push(Finding::new(
                Severity::Error,
                kind,
                None,
                format!("go build refuses to run: {}", off.go_message()),
                vec![fix],
            ));
        }
        GoCacheSetting::Dir(d)
            if go.paths.gocache_dir().is_none() && go.paths.refusal.is_none() =>
        {
            c.findings.push(Finding::new(
                Severity::Error,
                "gocache_relative",
                Some(d.clone()),
                format!(
                    "GOCACHE resolves to the relative path {d:?} (a relative $XDG_CACHE_HOME): \
                     each directory you build in gets its own cache"
                ),
                vec![set_var_command(
                    "GOCACHE",
                    &go.personal_gocache,
                    src("GOCACHE"),
                )],
            ));
        }
        GoCacheSetting::Dir(_) => {}
    }
    if go.paths.refusal.is_none() && go.paths.gomodcache_dir().is_none() {
        let good = user.home.join("go/pkg/mod").display().to_string();
        c.findings.push(Finding::new(
            Severity::Error,
            "gomodcache_relative",
            Some(go.paths.gomodcache.clone()),
            format!(
                "GOMODCACHE {:?} is empty or relative: module downloads fail",
                go.paths.gomodcache
            ),
            vec![set_var_command("GOMODCACHE", &good, src("GOMODCACHE"))],
        ));
    }
    for d in dirs {
        let path = q(&d.path);
        let personal = personal_dir(user, d.role, go);
        let mut fix = Vec::new();
        if d.path.starts_with(&user.home) && d.owner != user.uid {
            fix.push(format!("sudo chown -R {}: {path}", sh_quote(&user.name)));
        }
        if Path::new(&personal) != d.path {
            fix.push(set_var_command(d.role, &personal, src(d.role)));
        }
        // GOPATH itself is only written by `go install` (GOPATH/bin) and `go get` in
        // GOPATH mode; a read-only GOPATH with GOMODCACHE elsewhere still builds.
        let severity = if d.role == "GOPATH" {
            Severity::Warning
        } else {
            Severity::Error
        };
        if d.exists && !d.is_dir {
            c.findings.push(Finding::new(
                severity,
                "not_a_directory",
                Some(d.path.display().to_string()),
                format!(
                    "{} {} exists but is not a directory",
                    d.role,
                    d.path.display()
                ),
                fix,
            ));
            continue;
        }
        match &d.writable {
            Ok(()) if d.exists => c.notes.push(format!(
                "{} {}: exists, writable by you",
                d.role,
                d.path.display()
            )),
            Ok(()) => c.notes.push(format!(
                "{} {}: does not exist yet; go creates it ({} is writable by you)",
                d.role,
                d.path.display(),
                d.probe.display()
            )),
            Err(why) => {
                let at = if d.exists {
                    String::new()
                } else {
                    format!(
                        " (it does not exist, and go cannot create it in {})",
                        d.probe.display()
                    )
                };
                c.findings.push(Finding::new(
                    severity,
                    "not_writable",
                    Some(d.path.display().to_string()),
                    format!(
                        "{} {} is not writable by you{at}: {why}; {} is owned by {} (mode {:04o})",
                        d.role,
                        d.path.display(),
                        d.probe.display(),
                        d.owner_name,
                        d.mode
                    ),
                    fix,
                ));
            }
        }
    }
    if let Some(Ok(values)) = &go.go_env {
        let ours = [
            go.paths.go_env_value("GOCACHE").unwrap_or(""),
            go.paths.gomodcache.as_str(),
            go.paths.gopath.as_str(),
        ];
        let keys = ["GOCACHE", "GOMODCACHE", "GOPATH"];
        let mut same = true;
        for ((key, ours), theirs) in keys.iter().zip(ours).zip(values) {
            if ours != theirs {
                same = false;
                c.notes.push(format!(
                    "internal: `go env {key}` says {theirs:?}, goguard computed {ours:?} \
                     (please report this)"
                ));
            }
        }
        if same {
            c.notes
                .push("`go env` agrees with goguard's computation".to_owned());
        }
    } else if let Some(Err(e)) = &go.go_env {
        c.notes.push(format!("`go env` not compared: {e}"));
    }
    if let Some((cache, modcache)) = &go.daemon_view {
        let live = go.paths.go_env_value("GOCACHE").unwrap_or("");
        for (key, daemon, live) in [
            ("GOCACHE", cache.as_str(), live),
            (
                "GOMODCACHE",
                modcache.as_str(),
                go.paths.gomodcache.as_str(),
            ),
        ] {
            if daemon != live {
                c.notes.push(format!(
                    "goguardd computes {key}={daemon} for you (passwd, environment.d, go env \
                     file); this shell uses {live} ({}): goguardd guards the former",
                    src(key).map(ToString::to_string).unwrap_or_default()
                ));
            }
        }
    }
    for d in dirs.iter().filter(|d| d.role != "GOPATH") {
        // goguardd guards a user's cache only inside the home (or an admin's prefix):
        // elsewhere the user does not control every directory on the way (docs/SECURITY.md).
        // A shared cache (group or ACL access for others) is the shared_roots check's: it
        // advises the [[root]] with its group.
        if goguard_policy::discovery::admit(&d.path, &user.home, &[]).is_err()
            && !(d.mode & 0o020 != 0 || d.has_default_acl)
        {
            let kind = if d.role == "GOMODCACHE" {
                goguard_policy::RootKind::GoModCache
            } else {
                goguard_policy::RootKind::GoCache
            };
            c.findings.push(Finding::new(
                Severity::Warning,
                "not_guarded",
                Some(d.path.display().to_string()),
                format!(
                    "{} {} is outside your home: goguardd does not guard it for you (it changes \
                     a user's cache only where that user controls every directory), unless an \
                     admin lists a prefix of it in user_root_prefixes or adds {}",
                    d.role,
                    q(&d.path),
                    goguard_policy::discovery::suggested_root(&d.path, kind, &user.name)
                ),
                vec![set_var_command(
                    d.role,
                    &personal_dir(user, d.role, go),
                    src(d.role),
                )],
            ));
        }
    }
    c
}

/// Whether a cache directory is shared with other users: outside the home and owned by
/// someone else, group-writable, or carrying a default ACL.
pub fn is_shared(user: &UserFacts, d: &DirFacts) -> bool {
    d.exists
        && d.is_dir
        && !d.path.starts_with(&user.home)
        && (d.owner != user.uid || d.mode & 0o020 != 0 || d.has_default_acl)
}

/// The roots `cache_paths`' dirs that are shared (by path).
pub fn shared_roots(user: &UserFacts, dirs: &[DirFacts]) -> Vec<PathBuf> {
    dirs.iter()
        .filter(|d| is_shared(user, d))
        .map(|d| d.path.clone())
        .collect()
}

fn in_any(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// Check 2: entries of the user's caches owned by someone else.
pub fn foreign_owners(
    user: &UserFacts,
    trees: &[TreeFacts],
    shared: &[PathBuf],
    guarded: &[PathBuf],
) -> Check {
    let mut c = Check::ran(CheckId::ForeignOwners);
    for t in trees {
        let root = q(&t.root);
        if t.foreign.count == 0 {
            c.notes.push(format!(
                "{} {}: {} entries, all yours",
                t.role,
                t.root.display(),
                t.entries
            ));
        } else if in_any(&t.root, shared) {
            c.notes.push(format!(
                "{} {}: {} of {} entries belong to other users, as expected in a shared root \
                 (see shared roots)",
                t.role,
                t.root.display(),
                t.foreign.count,
                t.entries
            ));
        } else {
            let mut fix = vec![
                format!("goguardctl repair {root}"),
                format!("sudo chown -R {}: {root}", sh_quote(&user.name)),
            ];
            if !guarded.contains(&t.root) {
                fix.swap(0, 1);
            }
            let mut f = Finding::new(
                Severity::Error,
                "foreign_owner",
                Some(t.root.display().to_string()),
                format!(
                    "{} of {} entries in your {} {} are not yours: go fails with \
                     \"permission denied\" when it rewrites them",
                    t.foreign.count,
                    t.entries,
                    t.role,
                    t.root.display()
                ),
                fix,
            );
            f.count = Some(t.foreign.count);
            f.examples = t.foreign.samples.clone();
            c.findings.push(f);
        }
        if t.errors.count > 0 {
            c.notes.push(format!(
                "{}: {} entries could not be read (first: {})",
                t.root.display(),
                t.errors.count,
                t.errors.samples.join("; ")
            ));
        }
    }
    if trees.is_empty() {
        c.notes
            .push("no cache exists yet: nothing to walk".to_owned());
    }
    c
}

/// A group to put in an ACL fix for a shared root: its own group unless that is someone's
/// personal group (named like its owner, or the root group), else `gobuild`.
fn acl_group(d: &DirFacts) -> String {
    if d.group != 0 && d.group_name != d.owner_name && !d.group_name.is_empty() {
        d.group_name.clone()
    } else {
        "gobuild".to_owned()
    }
}

/// Check 3: world-writable entries.
pub fn world_writable(
    user: &UserFacts,
    trees: &[TreeFacts],
    dirs: &[DirFacts],
    guarded: &[PathBuf],
) -> Check {
    let mut c = Check::ran(CheckId::WorldWritable);
    for t in trees {
        if t.world_writable.count == 0 {
            c.notes.push(format!(
                "{} {}: nothing world-writable",
                t.role,
                t.root.display()
            ));
            continue;
        }
        let root = q(&t.root);
        let sudo = if t.world_writable_foreign > 0 {
            "sudo "
        } else {
            ""
        };
        // Only the world-writable entries: the others may not be the user's to chmod.
        let mut fix = vec![format!(
            "{sudo}find {root} -perm -0002 ! -type l -exec chmod o-w {{}} +"
        )];
        if guarded.contains(&t.root) {
            fix.insert(0, format!("goguardctl repair --kind world_writable {root}"));
        }
        if let Some(d) = dirs.iter().find(|d| d.path == t.root && is_shared(user, d)) {
            let g = acl_group(d);
            fix.push(format!(
                "sudo setfacl -R -m g:{g}:rwX,d:g:{g}:rwX {root} && sudo chmod -R o-w {root}"
            ));
        }
        let mut f = Finding::new(
            Severity::Error,
            "world_writable",
            Some(t.root.display().to_string()),
            format!(
                "{} in {} {} world-writable: any local user can plant build \
                 results or modules (share with a group and ACLs, never chmod 777)",
                entries_are(t.world_writable.count),
                t.role,
                t.root.display()
            ),
            fix,
        );
        f.count = Some(t.world_writable.count);
        f.examples = t.world_writable.samples.clone();
        c.findings.push(f);
    }
    if trees.is_empty() {
        c.notes
            .push("no cache exists yet: nothing to walk".to_owned());
    }
    c
}

/// Check 4: caches shared with other users, and whether a group with default ACLs makes
/// them work for everyone.
pub fn shared_roots_check(user: &UserFacts, dirs: &[DirFacts], go: &GoFacts) -> Check {
    let mut c = Check::ran(CheckId::SharedRoots);
    let mut reported: Vec<&Path> = Vec::new();
    // Outer directories first, so a GOMODCACHE inside a shared GOPATH is reported once.
    let mut by_depth: Vec<&DirFacts> = dirs.iter().collect();
    by_depth.sort_by_key(|d| d.path.components().count());
    for d in by_depth {
        if !is_shared(user, d) {
            continue;
        }
        if reported.iter().any(|r| d.path.starts_with(r)) {
            continue; // GOMODCACHE inside an already reported GOPATH
        }
        reported.push(&d.path);
        let member_groups: Vec<&(u32, String)> = d
            .default_acl_groups
            .iter()
            .filter(|(gid, _)| user.groups.contains(gid))
            .collect();
        let describe = format!(
            "{} {} is shared (owner {}, group {}, mode {:04o}, outside your home)",
            d.role,
            d.path.display(),
            d.owner_name,
            d.group_name,
            d.mode
        );
        if let Some((_, name)) = member_groups.first() {
            c.notes.push(format!(
                "{describe}: default ACLs give your group {name} rwx, so entries anyone \
                 creates stay writable for the group"
            ));
            continue;
        }
        let path = q(&d.path);
        let g = acl_group(d);
        let mut fix = Vec::new();
        if g == "gobuild" {
            fix.push(format!(
                "sudo groupadd -f gobuild && sudo usermod -aG gobuild {}",
                sh_quote(&user.name)
            ));
        } else if !user.groups.contains(&d.group) {
            fix.push(format!(
                "sudo usermod -aG {} {}",
                sh_quote(&g),
                sh_quote(&user.name)
            ));
        }
        fix.push(format!(
            "sudo chgrp -R {g} {path} && sudo setfacl -R -m g:{g}:rwX,d:g:{g}:rwX {path}"
        ));
        let kind = match d.role {
            "GOCACHE" => "gocache",
            "GOMODCACHE" => "gomodcache",
            _ => "gopath",
        };
        fix.push(format!(
            "printf '[[root]]\\npath = \"{}\"\\nkind = \"{kind}\"\\ngroup = \"{g}\"\\nacl = [\"g:{g}:rwX\", \"d:g:{g}:rwX\"]\\n' | sudo tee -a /etc/goguard/goguard.toml && sudo systemctl reload goguardd",
            d.path.display()
        ));
        fix.push(set_var_command(
            d.role,
            &personal_dir(user, d.role, go),
            go.sources.get(d.role),
        ));
        let why = if d.has_default_acl {
            "its default ACL gives no group of yours rwx"
        } else {
            "it has no default ACL"
        };
        c.findings.push(Finding::new(
            Severity::Warning,
            "shared_root",
            Some(d.path.display().to_string()),
            format!(
                "{describe}, but {why}: entries other users create will not be writable by \
                 you; declare a group with default ACLs (not chmod 777), or use a cache of \
                 your own"
            ),
            fix,
        ));
    }
    if reported.is_empty() {
        c.notes
            .push("your caches are your own (none is shared with other users)".to_owned());
    }
    c
}

/// Check 5: labels against file_contexts.
pub fn labels(setup: &LabelSetup, trees: &[TreeFacts]) -> Check {
    let (fc, system) = match setup {
        LabelSetup::Skipped(why) => return Check::skipped(CheckId::Labels, why.clone()),
        LabelSetup::Checked {
            file_contexts,
            system_policy,
        } => (file_contexts, *system_policy),
    };
    let mut c = Check::ran(CheckId::Labels);
    for t in trees {
        let Some(l) = &t.labels else { continue };
        if l.mismatches.count == 0 {
            c.notes.push(format!(
                "{} {}: {} entries labeled as {} expects",
                t.role,
                t.root.display(),
                l.checked,
                fc.display()
            ));
            continue;
        }
        let root = q(&t.root);
        let mut fix = vec![format!("restorecon -Rv {root}")];
        if !system {
            fix.push(format!("sudo setfiles -v {} {root}", q(fc)));
        }
        let count = if l.stopped {
            format!("at least {}", l.mismatches.count)
        } else {
            l.mismatches.count.to_string()
        };
        let mut f = Finding::new(
            Severity::Error,
            "wrong_label",
            Some(t.root.display().to_string()),
            format!(
                "{count} {} in {} {} not labeled as {} expects (confined Go tools \
                 are denied access)",
                if l.mismatches.count == 1 && !l.stopped {
                    "entry is"
                } else {
                    "entries are"
                },
                t.role,
                t.root.display(),
                fc.display()
            ),
            fix,
        );
        f.count = Some(l.mismatches.count);
        f.examples = l.mismatches.samples.clone();
        c.findings.push(f);
    }
    if trees.is_empty() {
        c.notes
            .push("no cache exists yet: nothing to walk".to_owned());
    }
    c
}

/// Check 6: whether `go test`/`go run` can execute what they build in GOTMPDIR.
pub fn tmp_exec(user: &UserFacts, tmp: &TmpFacts, go: &GoFacts) -> Check {
    let mut c = Check::ran(CheckId::TmpExec);
    let good = user.home.join(".cache/go-tmp");
    let set = format!(
        "mkdir -p {} && {}",
        q(&good),
        set_var_command(
            "GOTMPDIR",
            &good.display().to_string(),
            go.sources.get("GOTMPDIR")
        )
    );
    let dir = tmp.dir.display().to_string();
    let which = if tmp.from_gotmpdir {
        "GOTMPDIR"
    } else {
        "the temp directory (GOTMPDIR unset)"
    };
    if !tmp.exists {
        c.findings.push(Finding::new(
            Severity::Error,
            "tmpdir_missing",
            Some(dir.clone()),
            format!("{which} {dir} does not exist: go build fails creating its work directory"),
            vec![format!("mkdir -p {}", q(&tmp.dir)), set],
        ));
        return c;
    }
    if !tmp.writable {
        c.findings.push(Finding::new(
            Severity::Error,
            "tmpdir_not_writable",
            Some(dir.clone()),
            format!(
                "{which} {dir} is not writable by you: go build cannot create its work directory"
            ),
            vec![set],
        ));
        return c;
    }
    let noexec = tmp.noexec_mount == Some(true);
    match (&tmp.probe, noexec) {
        (Probe::Ran, false) => c.notes.push(format!(
            "{which} {dir}: a probe script executed there (go test and go run work)"
        )),
        (probe, _) => {
            let how = match probe {
                Probe::Failed(e) => format!("; a probe script could not run there: {e}"),
                Probe::NotRun(why) => format!("; not probed: {why}"),
                Probe::Ran => String::new(),
            };
            let mount = if noexec {
                " is on a noexec mount"
            } else {
                " does not allow executing files"
            };
            c.findings.push(Finding::new(
                Severity::Error,
                "tmpdir_noexec",
                Some(dir.clone()),
                format!(
                    "{which} {dir}{mount}{how}: go test and go run build there and fail to \
                     execute the result"
                ),
                vec![set],
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use goguard_policy::goenv::{GoEnvLocation, GoPaths};

    fn user() -> UserFacts {
        UserFacts {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
            groups: vec![1000, 2000],
        }
    }

    fn go(gocache: GoCacheSetting, source: Source) -> GoFacts {
        GoFacts {
            paths: GoPaths {
                goenv: GoEnvLocation::File("/home/alice/.config/go/env".into()),
                gocache,
                gopath: "/home/alice/go".into(),
                gomodcache: "/home/alice/go/pkg/mod".into(),
                refusal: None,
                gopath_is_goroot: false,
            },
            sources: [("GOCACHE", source)].into(),
            personal_gocache: "/home/alice/.cache/go-build".into(),
            go_env: None,
            daemon_view: None,
        }
    }

    fn dir(role: &'static str, path: &str, owner: u32, mode: u32) -> DirFacts {
        DirFacts {
            role,
            path: path.into(),
            exists: true,
            is_dir: true,
            probe: path.into(),
            writable: if owner == 1000 {
                Ok(())
            } else {
                Err("Permission denied".into())
            },
            owner,
            group: owner,
            mode,
            owner_name: if owner == 0 {
                "root".into()
            } else {
                "alice".into()
            },
            group_name: if owner == 0 {
                "root".into()
            } else {
                "alice".into()
            },
            default_acl_groups: vec![],
            has_default_acl: false,
        }
    }

    #[test]
    fn gocache_off_from_the_env_file_is_unset_there() {
        let g = go(
            GoCacheSetting::Off(GoCacheOff::Explicit),
            Source::EnvFile("/home/alice/.config/go/env".into()),
        );
        let c = cache_paths(&user(), &g, &[]);
        assert_eq!(c.findings[0].kind, "gocache_off");
        assert_eq!(c.findings[0].fix, vec!["go env -u GOCACHE"]);
        let g = go(
            GoCacheSetting::Off(GoCacheOff::Explicit),
            Source::Environment,
        );
        assert_eq!(
            cache_paths(&user(), &g, &[]).findings[0].fix,
            vec!["unset GOCACHE"]
        );
    }

    #[test]
    fn a_root_owned_gocache_outside_home_gets_a_personal_one() {
        let g = go(
            GoCacheSetting::Dir("/usr/local/go-cache".into()),
            Source::EnvFile("/home/alice/.config/go/env".into()),
        );
        let d = dir("GOCACHE", "/usr/local/go-cache", 0, 0o755);
        let c = cache_paths(&user(), &g, &[d]);
        assert_eq!(c.findings.len(), 2, "{c:#?}");
        assert_eq!(c.findings[0].kind, "not_writable");
        // Outside the home: goguardd does not guard it, and says what an admin would add.
        assert_eq!(c.findings[1].kind, "not_guarded");
        assert!(
            c.findings[1].message.contains(
                r#"[[root]] path = "/usr/local/go-cache", kind = "gocache", owner = "alice""#
            ),
            "{c:#?}"
        );
        assert_eq!(
            c.findings[0].fix,
            vec!["go env -w GOCACHE=/home/alice/.cache/go-build"]
        );
        // The same, exported in the shell.
        let g = go(GoCacheSetting::Dir("/x".into()), Source::Environment);
        let c = cache_paths(&user(), &g, &[dir("GOCACHE", "/x", 0, 0o755)]);
        assert_eq!(
            c.findings[0].fix,
            vec!["export GOCACHE=/home/alice/.cache/go-build"]
        );
        // In the home: give it back.
        let c = cache_paths(
            &user(),
            &go(
                GoCacheSetting::Dir("/home/alice/.cache/go-build".into()),
                Source::Default,
            ),
            &[dir("GOCACHE", "/home/alice/.cache/go-build", 0, 0o755)],
        );
        assert_eq!(
            c.findings[0].fix,
            vec!["sudo chown -R alice: /home/alice/.cache/go-build"]
        );
    }

    #[test]
    fn go_env_mismatch_is_a_note_not_a_finding() {
        let mut g = go(
            GoCacheSetting::Dir("/home/alice/.cache/go-build".into()),
            Source::Default,
        );
        g.go_env = Some(Ok(vec![
            "/elsewhere".into(),
            "/home/alice/go/pkg/mod".into(),
            "/home/alice/go".into(),
        ]));
        let c = cache_paths(&user(), &g, &[]);
        assert!(c.findings.is_empty());
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with("internal: `go env GOCACHE`"))
        );
    }

    #[test]
    fn shared_roots_need_a_group_default_acl() {
        let g = go(GoCacheSetting::Dir("/c".into()), Source::Default);
        let mut d = dir("GOMODCACHE", "/opt/go/pkg/mod", 0, 0o2775);
        d.group = 2000;
        d.group_name = "gobuilders".into();
        let c = shared_roots_check(&user(), std::slice::from_ref(&d), &g);
        assert_eq!(c.findings[0].kind, "shared_root");
        assert!(c.findings[0].fix.iter().any(|f| {
            f.contains("setfacl -R -m g:gobuilders:rwX,d:g:gobuilders:rwX /opt/go/pkg/mod")
        }));
        assert!(c.findings[0].fix.iter().all(|f| !f.contains("777")));
        d.has_default_acl = true;
        d.default_acl_groups = vec![(2000, "gobuilders".into())];
        let c = shared_roots_check(&user(), &[d], &g);
        assert!(c.findings.is_empty(), "{c:#?}");
        // A personal cache in the home is never shared.
        let home = dir("GOCACHE", "/home/alice/.cache/go-build", 1000, 0o775);
        assert!(!is_shared(&user(), &home));
    }

    #[test]
    fn foreign_entries_are_errors_except_in_shared_roots() {
        let mut t = TreeFacts {
            role: "GOCACHE",
            root: "/home/alice/.cache/go-build".into(),
            entries: 10,
            ..Default::default()
        };
        t.foreign
            .add(|| "/home/alice/.cache/go-build/ab (owner root)".into());
        let root = [PathBuf::from("/home/alice/.cache/go-build")];
        let c = foreign_owners(&user(), std::slice::from_ref(&t), &[], &root);
        assert_eq!(c.findings[0].kind, "foreign_owner");
        assert_eq!(
            c.findings[0].fix[0],
            "goguardctl repair /home/alice/.cache/go-build"
        );
        let c = foreign_owners(&user(), std::slice::from_ref(&t), &[], &[]);
        assert_eq!(
            c.findings[0].fix[0],
            "sudo chown -R alice: /home/alice/.cache/go-build"
        );
        let c = foreign_owners(&user(), &[t], &root, &[]);
        assert!(c.findings.is_empty());
    }

    #[test]
    fn noexec_tmp_moves_gotmpdir_home() {
        let g = go(GoCacheSetting::Dir("/c".into()), Source::Default);
        let tmp = TmpFacts {
            dir: "/tmp".into(),
            from_gotmpdir: false,
            exists: true,
            writable: true,
            noexec_mount: Some(true),
            probe: Probe::Failed("Permission denied".into()),
        };
        let c = tmp_exec(&user(), &tmp, &g);
        assert_eq!(c.findings[0].kind, "tmpdir_noexec");
        assert_eq!(
            c.findings[0].fix,
            vec![
                "mkdir -p /home/alice/.cache/go-tmp && go env -w GOTMPDIR=/home/alice/.cache/go-tmp"
            ]
        );
        let ok = TmpFacts {
            noexec_mount: Some(false),
            probe: Probe::Ran,
            ..tmp
        };
        assert!(tmp_exec(&user(), &ok, &g).findings.is_empty());
    }

    #[test]
    fn labels_skipped_is_not_a_failure() {
        let c = labels(&LabelSetup::Skipped("no policy".into()), &[]);
        assert!(!c.has_problem());
        let mut t = TreeFacts {
            role: "GOCACHE",
            root: "/c".into(),
            labels: Some(LabelTally::default()),
            ..Default::default()
        };
        t.labels.as_mut().unwrap().mismatches.add(|| "x".into());
        let c = labels(
            &LabelSetup::Checked {
                file_contexts: "/fc".into(),
                system_policy: true,
            },
            &[t],
        );
        assert_eq!(c.findings[0].fix, vec!["restorecon -Rv /c"]);
    }
}
