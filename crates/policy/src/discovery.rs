//! Which users' caches goguard guards, where they are, and which files to watch so a
//! change of any input triggers rediscovery.
//!
//! Decisions (the spec left them open):
//! - **Auto selection**: every passwd account with `min_uid ≤ uid ≤ max_uid` (defaults 1000
//!   and 60000, `login.defs`' `UID_MIN`/`UID_MAX`, which keeps systemd's dynamic users and
//!   container sub-uid ranges out), except uid 65534 (`nobody`/overflow uid), an empty, `/`
//!   or `/nonexistent` home, or a home that does not exist (the loader checks).
//! - **nologin shells are kept** by default: service accounts (CI runners, build bots) run
//!   `go` without a login shell and are exactly the caches that break; `skip_nologin`
//!   changes that.
//! - **Listed users** (`users = ["alice", …]`) are taken regardless of uid bounds and shell,
//!   but still need an existing home; unknown names are reported.
//! - **User mode** (goguardd run by an ordinary user) considers that uid only.
//! - A user's `go` environment is the passwd facts (`HOME`, `USER`, `LOGNAME`, `SHELL`) plus
//!   the admin's `session_env`, overlaid with environment.d, plus the `go env -w` file; shell
//!   profiles (`~/.profile`, `~/.bashrc`) are not evaluated.
//! - **A user's root is admitted only where the user already has control** ([`admit`],
//!   docs/SECURITY.md): inside the user's home, or under a prefix an admin lists
//!   (`user_root_prefixes`). Anything else (`GOCACHE=/etc`, another user's cache, a shared
//!   `/opt` tree) is never guarded for that user: it is a problem naming the `[[root]]` an
//!   admin would add. The loader then checks the path on disk (no symlink, every directory
//!   on the way owned by the user or root and not writable by others).

use std::path::{Path, PathBuf};

use crate::accounts::PasswdEntry;
use crate::config::RootKind;
use crate::envd;
use crate::goenv::{self, EnvMap, GoEnvFile, GoEnvInputs, GoPaths, GoVersion};
use crate::roots::CacheRoot;

/// The overflow uid (`nobody`), never guarded.
pub const NOBODY_UID: u32 = 65534;

/// Which users.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserSelection {
    /// By uid range.
    #[default]
    Auto,
    /// Exactly these login names.
    Only(Vec<String>),
}

/// Whose caches goguardd guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Run as root: every selected user.
    System,
    /// Run by one user: that uid only.
    User(u32),
}

/// Discovery settings (`[discovery]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Which users.
    pub users: UserSelection,
    /// Lowest uid for [`UserSelection::Auto`].
    pub min_uid: u32,
    /// Highest uid for [`UserSelection::Auto`].
    pub max_uid: u32,
    /// Skip `nologin`/`false` shells in [`UserSelection::Auto`].
    pub skip_nologin: bool,
    /// Variables every user session has (e.g. a site-wide `GOFLAGS` or `XDG_CACHE_HOME`).
    pub session_env: EnvMap,
    /// Directories outside the homes under which users may put their own caches (e.g.
    /// `/scratch`); each is the admin's, so the check of the path starts below it.
    pub user_root_prefixes: Vec<PathBuf>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            users: UserSelection::Auto,
            min_uid: 1000,
            max_uid: 60000,
            skip_nologin: false,
            session_env: EnvMap::new(),
            user_root_prefixes: Vec::new(),
        }
    }
}

/// A user left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedUser {
    /// Login name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// Chooses the users to guard. `home_exists` is the loader's check.
pub fn select_users<'a>(
    passwd: &'a [PasswdEntry],
    cfg: &DiscoveryConfig,
    scope: Scope,
    home_exists: &dyn Fn(&Path) -> bool,
) -> (Vec<&'a PasswdEntry>, Vec<SkippedUser>) {
    let mut chosen: Vec<&PasswdEntry> = Vec::new();
    let mut skipped = Vec::new();
    let skip = |skipped: &mut Vec<SkippedUser>, u: &PasswdEntry, reason: String| {
        skipped.push(SkippedUser {
            name: u.name.clone(),
            reason,
        });
    };
    let candidates: Vec<&PasswdEntry> = match (&cfg.users, scope) {
        (_, Scope::User(uid)) => passwd.iter().filter(|u| u.uid == uid).take(1).collect(),
        (UserSelection::Auto, Scope::System) => passwd.iter().collect(),
        (UserSelection::Only(names), Scope::System) => {
            let mut v = Vec::new();
            for n in names {
                match passwd.iter().find(|u| &u.name == n) {
                    Some(u) => v.push(u),
                    None => skipped.push(SkippedUser {
                        name: n.clone(),
                        reason: "not in passwd".into(),
                    }),
                }
            }
            v
        }
    };
    let by_range = matches!((&cfg.users, scope), (UserSelection::Auto, Scope::System));
    for u in candidates {
        if chosen.iter().any(|c| c.uid == u.uid) {
            skip(
                &mut skipped,
                u,
                format!("uid {} already taken by an earlier entry", u.uid),
            );
            continue;
        }
        if by_range {
            if u.uid < cfg.min_uid || u.uid > cfg.max_uid {
                continue; // system accounts: silently out of scope
            }
            if u.uid == NOBODY_UID {
                continue;
            }
            if cfg.skip_nologin && u.has_nologin_shell() {
                skip(&mut skipped, u, "nologin shell".into());
                continue;
            }
        }
        let home = u.home.as_os_str();
        if home.is_empty()
            || u.home == Path::new("/")
            || u.home == Path::new("/nonexistent")
            || !u.home.is_absolute()
        {
            skip(
                &mut skipped,
                u,
                format!("no usable home ({})", u.home.display()),
            );
            continue;
        }
        if !home_exists(&u.home) {
            skip(
                &mut skipped,
                u,
                format!("home {} does not exist", u.home.display()),
            );
            continue;
        }
        chosen.push(u);
    }
    (chosen, skipped)
}

/// Where a user's root may be guarded: the directory goguardd reaches it from (the home or
/// an admin's prefix), or why it may not be (for the problem shown in `roots` and `doctor`).
///
/// Lexical only (the path is already absolute and clean, as Go requires): the loader then
/// checks it on disk ([`UserRootRefusal`] there too). The home itself is never a root (a
/// cache must be a directory of its own), nor is `/`.
pub fn admit(path: &Path, home: &Path, prefixes: &[PathBuf]) -> Result<PathBuf, String> {
    let inside = |anchor: &Path| {
        anchor.is_absolute()
            && anchor != Path::new("/")
            && path != anchor
            && path.starts_with(anchor)
            && !path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
    };
    if inside(home) {
        return Ok(home.to_path_buf());
    }
    if let Some(p) = prefixes.iter().find(|p| inside(p)) {
        return Ok(p.clone());
    }
    Err(if prefixes.is_empty() {
        format!("outside the user's home {}", home.display())
    } else {
        format!(
            "outside the user's home {} and every user_root_prefixes entry",
            home.display()
        )
    })
}

/// The `[[root]]` an admin would add to guard `path` for `user` anyway.
pub fn suggested_root(path: &Path, kind: RootKind, user: &str) -> String {
    format!(
        "[[root]] path = {:?}, kind = \"{}\", owner = \"{user}\"",
        path.display().to_string(),
        kind.as_str()
    )
}

/// The problem shown (in `roots`, to admins and to the user) for a user's cache goguardd
/// refuses to guard, and why.
pub fn not_guarded(kind: RootKind, path: &Path, user: &str, why: &str) -> String {
    format!(
        "{} {} is not guarded: {why}; goguardd changes a user's cache only where that user \
         already has control. To guard it anyway, an admin adds {}",
        kind.env_var(),
        path.display(),
        suggested_root(path, kind, user)
    )
}

/// The passwd part of a session environment plus the admin's `session_env`.
pub fn base_environment(user: &PasswdEntry, cfg: &DiscoveryConfig) -> EnvMap {
    let mut env = cfg.session_env.clone();
    env.insert("HOME".into(), user.home.display().to_string());
    env.insert("USER".into(), user.name.clone());
    env.insert("LOGNAME".into(), user.name.clone());
    env.insert(
        "SHELL".into(),
        if user.shell.is_empty() {
            "/bin/sh".into()
        } else {
            user.shell.clone()
        },
    );
    env
}

/// The raw inputs found for one user (the loader fills it; tests build it by hand).
#[derive(Debug, Clone, Default)]
pub struct UserInputs {
    /// Variables from environment.d, merged.
    pub environment_d: EnvMap,
    /// The `go env -w` file, if it exists.
    pub env_file: Option<GoEnvFile>,
    /// `$GOROOT/go.env`, if it exists.
    pub goroot_env: Option<GoEnvFile>,
}

/// One user's resolved caches.
#[derive(Debug, Clone)]
pub struct UserCaches {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// The environment `go` sees.
    pub env: EnvMap,
    /// Go's answer.
    pub paths: GoPaths,
    /// The per-user roots (GOCACHE, GOMODCACHE) Go can use.
    pub roots: Vec<CacheRoot>,
    /// Misconfigurations to report (`goguardctl doctor`).
    pub problems: Vec<String>,
}

/// Resolves one user's caches from its inputs (pure). The env-file location must be
/// computed first with [`env_file_for`] so the loader can read it.
pub fn user_caches(
    user: &PasswdEntry,
    cfg: &DiscoveryConfig,
    inputs: &UserInputs,
    goroot: &str,
    version: GoVersion,
) -> UserCaches {
    let env = envd::session_environment(&base_environment(user, cfg), &inputs.environment_d);
    let paths = goenv::resolve(&GoEnvInputs {
        process: &env,
        env_file: inputs.env_file.as_ref(),
        goroot_env: inputs.goroot_env.as_ref(),
        goroot,
        version,
    });
    let mut roots = Vec::new();
    let mut problems = Vec::new();
    if let Some(r) = &paths.refusal {
        problems.push(format!("every go command fails: {r}"));
    }
    let mut add = |dir: PathBuf, kind: RootKind, problems: &mut Vec<String>| match admit(
        &dir,
        &user.home,
        &cfg.user_root_prefixes,
    ) {
        Ok(admitted) => {
            let mut root =
                CacheRoot::for_user(dir, kind, &user.name, user.uid, user.gid, &user.home);
            if let crate::roots::RootOrigin::User {
                anchor,
                anchor_is_home,
                ..
            } = &mut root.origin
            {
                *anchor_is_home = admitted == user.home;
                *anchor = admitted;
            }
            roots.push(root)
        }
        Err(why) => problems.push(not_guarded(kind, &dir, &user.name, &why)),
    };
    match (&paths.gocache, paths.gocache_dir()) {
        (_, Some(dir)) => add(dir, RootKind::GoCache, &mut problems),
        (goenv::GoCacheSetting::Off(off), None) => problems.push(off.go_message()),
        (goenv::GoCacheSetting::Dir(d), None) => {
            problems.push(format!("GOCACHE resolves to the relative path {d:?}"))
        }
    }
    match paths.gomodcache_dir() {
        Some(dir) => add(dir, RootKind::GoModCache, &mut problems),
        None if paths.refusal.is_none() => problems.push(format!(
            "GOMODCACHE {:?} is empty or relative: module downloads fail",
            paths.gomodcache
        )),
        None => {}
    }
    UserCaches {
        name: user.name.clone(),
        uid: user.uid,
        env,
        paths,
        roots,
        problems,
    }
}

/// Where this user's `go env -w` file is, given environment.d's variables.
pub fn env_file_for(
    user: &PasswdEntry,
    cfg: &DiscoveryConfig,
    environment_d: &EnvMap,
    version: GoVersion,
) -> Option<PathBuf> {
    let env = envd::session_environment(&base_environment(user, cfg), environment_d);
    goenv::env_file_location(&env, version).readable_path()
}

/// The environment.d directories for a user, highest priority first.
pub fn environment_d_dirs(user: &PasswdEntry) -> Vec<PathBuf> {
    let mut dirs = vec![envd::user_dir(&user.home)];
    dirs.extend(envd::SYSTEM_DIRS.iter().map(PathBuf::from));
    dirs
}

/// Whose permissions reading `user`'s inputs takes.
pub fn user_reader(user: &PasswdEntry) -> crate::userfile::Reader {
    crate::userfile::Reader {
        uid: user.uid,
        gid: user.gid,
    }
}

/// Loader: reads one user's environment.d, `go env -w` file and `$GOROOT/go.env`, then
/// resolves. Missing or unreadable files count as absent, as they do for Go and systemd.
pub fn load_user(
    user: &PasswdEntry,
    cfg: &DiscoveryConfig,
    goroot: &str,
    version: GoVersion,
) -> UserCaches {
    let base = base_environment(user, cfg);
    let reader = user_reader(user);
    let (environment_d, _) = envd::load_as(&environment_d_dirs(user), &base, Some(&reader));
    // As the user would: a FIFO, a huge file or another user's 0600 file reads as absent.
    let read = |p: &Path| {
        crate::userfile::read(p, Some(&reader), crate::userfile::MAX_ENV_FILE)
            .ok()
            .map(|t| GoEnvFile::parse(&t))
    };
    let env_file = env_file_for(user, cfg, &environment_d, version).and_then(|p| read(&p));
    let goroot_env = version
        .reads_goroot_env()
        .then(|| read(&Path::new(goroot).join("go.env")))
        .flatten();
    user_caches(
        user,
        cfg,
        &UserInputs {
            environment_d,
            env_file,
            goroot_env,
        },
        goroot,
        version,
    )
}

/// A file or directory whose change should trigger rediscovery.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchPath {
    /// The path (may not exist yet: watch its parent for creation).
    pub path: PathBuf,
    /// Why.
    pub why: &'static str,
}

/// Everything to watch: passwd and group, the system environment.d directories, and per
/// user the environment.d directory, the `go env -w` file and their parent directories (so
/// creating them is noticed), and `$GOROOT/go.env` for Go ≥ 1.21.
pub fn watch_paths(
    users: &[(&PasswdEntry, Option<PathBuf>)],
    goroot: &str,
    version: GoVersion,
) -> Vec<WatchPath> {
    let mut out = vec![
        WatchPath {
            path: "/etc/passwd".into(),
            why: "accounts and home directories",
        },
        WatchPath {
            path: "/etc/group".into(),
            why: "group and ACL names",
        },
    ];
    out.extend(envd::SYSTEM_DIRS.iter().map(|d| WatchPath {
        path: d.into(),
        why: "environment.d",
    }));
    if version.reads_goroot_env() {
        out.push(WatchPath {
            path: Path::new(goroot).join("go.env"),
            why: "$GOROOT/go.env",
        });
    }
    for (user, env_file) in users {
        let dir = envd::user_dir(&user.home);
        if let Some(parent) = dir.parent() {
            out.push(WatchPath {
                path: parent.to_path_buf(),
                why: "parent of environment.d",
            });
        }
        out.push(WatchPath {
            path: dir,
            why: "environment.d",
        });
        if let Some(f) = env_file {
            if let Some(parent) = f.parent() {
                out.push(WatchPath {
                    path: parent.to_path_buf(),
                    why: "parent of go env file",
                });
            }
            out.push(WatchPath {
                path: f.clone(),
                why: "go env -w file",
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.path == b.path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::parse_passwd;

    const PASSWD: &str = "root:x:0:0::/root:/bin/bash\n\
        alice:x:1000:1000::/home/alice:/bin/bash\n\
        ci:x:1001:1001::/home/ci:/usr/sbin/nologin\n\
        nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
        ghost:x:1002:1002::/home/ghost:/bin/bash\n\
        dyn:x:61184:61184::/home/dyn:/bin/bash\n\
        dup:x:1000:1000::/home/dup:/bin/bash\n";

    fn exists(p: &Path) -> bool {
        p != Path::new("/home/ghost")
    }

    #[test]
    fn selection() {
        let (users, _) = parse_passwd(PASSWD);
        let cfg = DiscoveryConfig::default();
        let (chosen, skipped) = select_users(&users, &cfg, Scope::System, &exists);
        let names: Vec<&str> = chosen.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, vec!["alice", "ci"]);
        assert!(skipped.iter().any(|s| s.name == "ghost"));
        assert!(skipped.iter().any(|s| s.name == "dup"));
        let cfg2 = DiscoveryConfig {
            skip_nologin: true,
            ..cfg.clone()
        };
        assert_eq!(
            select_users(&users, &cfg2, Scope::System, &exists).0.len(),
            1
        );
        let only = DiscoveryConfig {
            users: UserSelection::Only(vec!["root".into(), "zed".into()]),
            ..cfg.clone()
        };
        let (chosen, skipped) = select_users(&users, &only, Scope::System, &exists);
        assert_eq!(chosen[0].name, "root");
        assert_eq!(skipped[0].name, "zed");
        let (chosen, _) = select_users(&users, &cfg, Scope::User(1001), &exists);
        assert_eq!(chosen[0].name, "ci");
    }

    #[test]
    fn user_roots_follow_environment_d_and_env_file() {
        let (users, _) = parse_passwd(PASSWD);
        let alice = &users[1];
        let cfg = DiscoveryConfig::default();
        let envd = envd::merge_files(
            ["XDG_CACHE_HOME=$HOME/.xdg\n"],
            &base_environment(alice, &cfg),
        );
        let inputs = UserInputs {
            environment_d: envd,
            env_file: Some(GoEnvFile::parse("GOMODCACHE=/opt/mods\n")),
            goroot_env: None,
        };
        let c = user_caches(
            alice,
            &cfg,
            &inputs,
            "/usr/lib/go-1.19",
            GoVersion::DEBIAN_12,
        );
        assert_eq!(c.roots[0].path, PathBuf::from("/home/alice/.xdg/go-build"));
        // GOMODCACHE outside the home: not a root, a problem naming the [[root]] to add.
        assert_eq!(c.roots.len(), 1);
        assert!(
            c.problems[0].contains("GOMODCACHE /opt/mods is not guarded")
                && c.problems[0].contains(
                    r#"[[root]] path = "/opt/mods", kind = "gomodcache", owner = "alice""#
                ),
            "{:?}",
            c.problems
        );
        // Under an admin's prefix it is admitted, anchored there.
        let cfg2 = DiscoveryConfig {
            user_root_prefixes: vec!["/opt".into()],
            ..cfg.clone()
        };
        let c = user_caches(
            alice,
            &cfg2,
            &inputs,
            "/usr/lib/go-1.19",
            GoVersion::DEBIAN_12,
        );
        assert_eq!(c.roots[1].path, PathBuf::from("/opt/mods"));
        assert!(matches!(
            &c.roots[1].origin,
            crate::roots::RootOrigin::User { anchor, .. } if anchor == Path::new("/opt")
        ));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let bad = UserInputs {
            env_file: Some(GoEnvFile::parse("GOCACHE=rel\n")),
            ..Default::default()
        };
        let c = user_caches(alice, &cfg, &bad, "/usr/lib/go-1.19", GoVersion::DEBIAN_12);
        assert_eq!(c.roots.len(), 1);
        assert!(c.problems[0].contains("not an absolute path"));
    }

    #[test]
    fn admission_is_inside_the_home_or_an_admin_prefix() {
        let home = Path::new("/home/u");
        let none: &[PathBuf] = &[];
        let ok = |p: &str, pre: &[PathBuf]| admit(Path::new(p), home, pre);
        assert_eq!(ok("/home/u/.cache/go-build", none), Ok(home.into()));
        assert_eq!(ok("/home/u/x", none), Ok(home.into()));
        for bad in [
            "/home/u",
            "/home/uu/.cache/go-build",
            "/home/v/.cache/go-build",
            "/etc",
            "/srv/anything",
            "/",
            "/home/u/../v/go-build",
        ] {
            assert!(ok(bad, none).is_err(), "{bad} admitted");
        }
        let pre = [PathBuf::from("/scratch")];
        assert_eq!(ok("/scratch/u/gocache", &pre), Ok("/scratch".into()));
        assert!(ok("/scratch", &pre).is_err());
        assert!(ok("/scratchy/u", &pre).is_err());
        // A home of "/" never admits anything.
        assert!(admit(Path::new("/tmp/c"), Path::new("/"), none).is_err());
    }

    #[test]
    fn watch_list() {
        let (users, _) = parse_passwd(PASSWD);
        let w = watch_paths(
            &[(&users[1], Some("/home/alice/.config/go/env".into()))],
            "/usr/lib/go",
            GoVersion {
                major: 1,
                minor: 22,
            },
        );
        let paths: Vec<String> = w.iter().map(|w| w.path.display().to_string()).collect();
        for p in [
            "/etc/passwd",
            "/home/alice/.config",
            "/home/alice/.config/environment.d",
            "/home/alice/.config/go",
            "/home/alice/.config/go/env",
            "/usr/lib/go/go.env",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} in {paths:?}");
        }
    }
}
