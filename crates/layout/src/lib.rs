//! Where goguard's files live, shared by `goguardd` (which creates them) and
//! `goguardctl` (which finds the socket the same way).
//!
//! Two modes, chosen by the daemon's effective uid unless overridden:
//! - **system** (root): socket `/run/goguard/goguard.sock`, state
//!   `/var/lib/goguard`, config `/etc/goguard/goguard.toml`;
//! - **user** (anyone else): socket `$XDG_RUNTIME_DIR/goguard/goguard.sock`,
//!   state `$XDG_STATE_HOME/goguard` (or `~/.local/state/goguard`), config
//!   `$XDG_CONFIG_HOME/goguard/goguard.toml` (or `~/.config/goguard/goguard.toml`).
//!
//! This module only computes paths from an environment it is given; it never
//! touches the filesystem, so it is trivially testable.

use std::path::PathBuf;

pub const SYSTEM_SOCKET: &str = "/run/goguard/goguard.sock";
pub const SYSTEM_STATE_DIR: &str = "/var/lib/goguard";
pub const SYSTEM_CONFIG: &str = "/etc/goguard/goguard.toml";
/// The environment variable `goguardctl` reads to find the socket.
pub const SOCKET_ENV: &str = "GOGUARD_SOCKET";

/// How goguardd guards the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    System,
    User,
}

impl Mode {
    /// The mode a process with effective uid `euid` runs in by default.
    pub fn for_euid(euid: u32) -> Mode {
        if euid == 0 { Mode::System } else { Mode::User }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::System => "system",
            Mode::User => "user",
        }
    }
}

/// The few environment facts the layout depends on, captured once so the
/// computation stays pure.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub uid: u32,
    pub home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
}

impl Env {
    /// Reads the process environment. Empty and relative values are ignored,
    /// as the XDG base directory specification requires.
    pub fn from_process(uid: u32) -> Env {
        let abs = |key: &str| {
            std::env::var_os(key)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        Env {
            uid,
            home: abs("HOME"),
            xdg_runtime_dir: abs("XDG_RUNTIME_DIR"),
            xdg_state_home: abs("XDG_STATE_HOME"),
            xdg_config_home: abs("XDG_CONFIG_HOME"),
        }
    }
}

/// A path the layout cannot compute, with what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

/// The control socket goguardd binds by default in `mode`.
pub fn default_socket(mode: Mode, env: &Env) -> Result<PathBuf, LayoutError> {
    match mode {
        Mode::System => Ok(PathBuf::from(SYSTEM_SOCKET)),
        Mode::User => {
            let runtime = match &env.xdg_runtime_dir {
                Some(dir) => dir.clone(),
                None => {
                    return Err(LayoutError(format!(
                        "XDG_RUNTIME_DIR is not set, so there is no per-user runtime directory \
                         for the socket (uid {}); log in through a session that sets it, or set \
                         daemon.socket in the config",
                        env.uid
                    )));
                }
            };
            Ok(runtime.join("goguard").join("goguard.sock"))
        }
    }
}

/// The state directory (SQLite store and cursors) by default in `mode`.
pub fn default_state_dir(mode: Mode, env: &Env) -> Result<PathBuf, LayoutError> {
    match mode {
        Mode::System => Ok(PathBuf::from(SYSTEM_STATE_DIR)),
        Mode::User => xdg_dir(
            env,
            env.xdg_state_home.as_ref(),
            ".local/state",
            "XDG_STATE_HOME",
        )
        .map(|d| d.join("goguard")),
    }
}

/// The configuration file read by default in `mode`.
pub fn default_config(mode: Mode, env: &Env) -> Result<PathBuf, LayoutError> {
    match mode {
        Mode::System => Ok(PathBuf::from(SYSTEM_CONFIG)),
        Mode::User => xdg_dir(
            env,
            env.xdg_config_home.as_ref(),
            ".config",
            "XDG_CONFIG_HOME",
        )
        .map(|d| d.join("goguard").join("goguard.toml")),
    }
}

fn xdg_dir(
    env: &Env,
    set: Option<&PathBuf>,
    fallback: &str,
    var: &str,
) -> Result<PathBuf, LayoutError> {
    if let Some(dir) = set {
        return Ok(dir.clone());
    }
    match &env.home {
        Some(home) => Ok(home.join(fallback)),
        None => Err(LayoutError(format!(
            "neither {var} nor HOME is set (uid {}); set one of them or the path in the config",
            env.uid
        ))),
    }
}

/// What `lstat` says of a user's runtime directory, for [`check_runtime_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirFacts {
    pub is_dir: bool,
    pub is_symlink: bool,
    pub owner_uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// Refuses a runtime directory (`$XDG_RUNTIME_DIR`) that another user could
/// have put a socket in: one not owned by `uid`, writable by group or others,
/// a symlink or not a directory. A user-mode goguardd binds its socket there
/// and goguardctl trusts the daemon it finds there, so such a directory would
/// let another user swap in a fake daemon. The error says what to do.
pub fn check_runtime_dir(
    dir: &std::path::Path,
    facts: DirFacts,
    uid: u32,
) -> Result<(), LayoutError> {
    let why = if facts.is_symlink {
        "is a symlink".to_owned()
    } else if !facts.is_dir {
        "is not a directory".to_owned()
    } else if facts.owner_uid != uid {
        format!(
            "is owned by uid {}, not by you (uid {uid})",
            facts.owner_uid
        )
    } else if facts.mode & 0o022 != 0 {
        format!(
            "is writable by {} (mode {:04o})",
            if facts.mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            facts.mode
        )
    } else {
        return Ok(());
    };
    Err(LayoutError(format!(
        "refusing the runtime directory {} (XDG_RUNTIME_DIR): it {why}, so another user could          have put a fake goguardd socket there; log in through a session that creates          /run/user/{uid} (mode 0700), or fix it with `chmod 0700` as its owner, or name a          socket explicitly (--socket, GOGUARD_SOCKET or daemon.socket)",
        dir.display()
    )))
}

/// The sockets `goguardctl` tries, in order, when neither `--socket` nor
/// `GOGUARD_SOCKET` names one: an ordinary user's own daemon first (if its
/// runtime directory is known), then the system daemon.
pub fn client_socket_candidates(env: &Env) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if env.uid != 0
        && let Ok(user) = default_socket(Mode::User, env)
    {
        out.push(user);
    }
    out.push(PathBuf::from(SYSTEM_SOCKET));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_env() -> Env {
        Env {
            uid: 1000,
            home: Some("/home/ann".into()),
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_state_home: None,
            xdg_config_home: None,
        }
    }

    #[test]
    fn system_mode_uses_fixed_paths() {
        let env = Env::default();
        assert_eq!(
            default_socket(Mode::System, &env).unwrap(),
            PathBuf::from(SYSTEM_SOCKET)
        );
        assert_eq!(
            default_state_dir(Mode::System, &env).unwrap(),
            PathBuf::from(SYSTEM_STATE_DIR)
        );
        assert_eq!(
            default_config(Mode::System, &env).unwrap(),
            PathBuf::from(SYSTEM_CONFIG)
        );
        assert_eq!(Mode::for_euid(0), Mode::System);
        assert_eq!(Mode::for_euid(1000), Mode::User);
    }

    #[test]
    fn user_mode_follows_xdg_with_home_fallbacks() {
        let mut env = user_env();
        assert_eq!(
            default_socket(Mode::User, &env).unwrap(),
            PathBuf::from("/run/user/1000/goguard/goguard.sock")
        );
        assert_eq!(
            default_state_dir(Mode::User, &env).unwrap(),
            PathBuf::from("/home/ann/.local/state/goguard")
        );
        assert_eq!(
            default_config(Mode::User, &env).unwrap(),
            PathBuf::from("/home/ann/.config/goguard/goguard.toml")
        );
        env.xdg_state_home = Some("/srv/state".into());
        assert_eq!(
            default_state_dir(Mode::User, &env).unwrap(),
            PathBuf::from("/srv/state/goguard")
        );
    }

    #[test]
    fn user_mode_without_runtime_dir_says_what_to_do() {
        let mut env = user_env();
        env.xdg_runtime_dir = None;
        let err = default_socket(Mode::User, &env).unwrap_err();
        assert!(err.0.contains("XDG_RUNTIME_DIR"), "{err}");
        assert!(err.0.contains("daemon.socket"), "{err}");
    }

    #[test]
    fn client_tries_user_socket_then_system() {
        let env = user_env();
        assert_eq!(
            client_socket_candidates(&env),
            vec![
                PathBuf::from("/run/user/1000/goguard/goguard.sock"),
                PathBuf::from(SYSTEM_SOCKET)
            ]
        );
        let root = Env {
            uid: 0,
            ..user_env()
        };
        assert_eq!(
            client_socket_candidates(&root),
            vec![PathBuf::from(SYSTEM_SOCKET)]
        );
    }

    #[test]
    fn a_runtime_dir_others_could_write_or_own_is_refused() {
        let dir = std::path::Path::new("/run/user/1000");
        let ok = DirFacts {
            is_dir: true,
            is_symlink: false,
            owner_uid: 1000,
            mode: 0o700,
        };
        assert_eq!(check_runtime_dir(dir, ok, 1000), Ok(()));
        assert_eq!(
            check_runtime_dir(dir, DirFacts { mode: 0o755, ..ok }, 1000),
            Ok(())
        );
        for (facts, says) in [
            (
                DirFacts {
                    owner_uid: 1001,
                    ..ok
                },
                "owned by uid 1001",
            ),
            (
                DirFacts { mode: 0o1777, ..ok },
                "writable by every user (mode 1777)",
            ),
            (DirFacts { mode: 0o770, ..ok }, "writable by its group"),
            (
                DirFacts {
                    is_symlink: true,
                    ..ok
                },
                "is a symlink",
            ),
            (
                DirFacts {
                    is_dir: false,
                    ..ok
                },
                "not a directory",
            ),
        ] {
            let e = check_runtime_dir(dir, facts, 1000).unwrap_err();
            assert!(e.0.contains(says), "{facts:?}: {e}");
            assert!(
                e.0.contains("/run/user/1000") && e.0.contains("--socket"),
                "{e}"
            );
        }
    }
}
