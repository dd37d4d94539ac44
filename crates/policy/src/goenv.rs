//! Go's own answer to "where are this user's caches?", computed without running `go`.
//!
//! Everything here mirrors the Go source line by line (Go 1.19 as shipped by Debian under
//! `/usr/lib/go-1.19/src`, and current golang/go master where it differs); the tests compare
//! [`resolve`] with the real `go env GOCACHE GOMODCACHE GOPATH GOENV` for many environments.
//!
//! The rules, with where Go states them:
//! - **Lookup** (`cmd/go/internal/cfg/cfg.go: Getenv`): a key's value is the process
//!   environment's if that is *non-empty*, else the `go env -w` file's, else (Go ≥ 1.21,
//!   `initEnvCache`) `$GOROOT/go.env`'s; an empty process value does not hide the file.
//!   `envOr`/`EnvOrAndChanged` fall back to a default when that lookup is empty.
//! - **GOENV** (`cfg.go: EnvFile`): `os.Getenv("GOENV")` only (never the file); `off` disables
//!   the file; else `os.UserConfigDir()` + `go/env` (`filepath.Join`, so cleaned).
//! - **os.UserConfigDir / os.UserCacheDir** (`os/file.go`): `$XDG_CONFIG_HOME` /
//!   `$XDG_CACHE_HOME` when non-empty, else `$HOME/.config` / `$HOME/.cache`; an error when
//!   neither is set. Go ≤ 1.23 uses a *relative* XDG value as is; Go ≥ 1.24 returns "path in
//!   $XDG_CACHE_HOME is relative" (golang/go#68470, PR #68471).
//! - **GOCACHE** (`cmd/go/internal/cache/default.go: DefaultDir`): `Getenv("GOCACHE")` if it
//!   is absolute (not cleaned) or `off`; any other non-empty value → `off` ("GOCACHE is not an
//!   absolute path"); empty → `filepath.Join(os.UserCacheDir(), "go-build")`, or `off` when
//!   UserCacheDir fails. Builds refuse `off` since Go 1.12 (`initDefaultCache`).
//! - **GOPATH** (`go/build/build.go: defaultGOPATH`, `cfg.go: defaultContext`/`gopath`):
//!   `Getenv("GOPATH")`, else `filepath.Join($HOME, "go")` unless that equals GOROOT (then
//!   empty), or empty without `$HOME`.
//! - **GOMODCACHE** (`cfg.go: GOMODCACHE = envOr("GOMODCACHE", gopathDir("pkg/mod"))`):
//!   computed at package init from the GOPATH *before* `main` checks it; `gopathDir` takes the
//!   first `filepath.SplitList` element and is empty when that element is empty.
//! - **GOPATH checks** (`cmd/go/main.go: main`): GOPATH == GOROOT only warns; otherwise each
//!   non-empty element starting with `~` is fatal ("GOPATH entry cannot start with shell
//!   metacharacter '~'"), and a relative element is fatal when GOPATH was set explicitly, or
//!   silently clears an inferred GOPATH (GOMODCACHE keeps its already computed value).
//! - **The `go env -w` file** (`cfg.go: initEnvCache`/`readEnvFile`): split at `\n`; a line
//!   counts when it has `=` and starts with `A`–`Z`; key = text before the first `=`, value =
//!   everything after it, byte for byte: no quote removal, no trimming (a `\r` stays), the last
//!   duplicate wins. `go env -w` itself refuses values with newlines, and `GOENV` (envcmd
//!   `checkEnvWrite`).
//!
//! Values are kept as strings, as Go keeps them; [`GoPaths::gocache_dir`] and friends give
//! the usable absolute directories.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// An environment: variable name → value. Absent and empty are different (Go treats an empty
/// value as unset for every variable used here).
pub type EnvMap = BTreeMap<String, String>;

/// The version of the `go` command whose rules apply, e.g. from `go env GOVERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    /// Always 1 so far.
    pub major: u32,
    /// `19` for go1.19.8.
    pub minor: u32,
}

impl GoVersion {
    /// The Go of Debian 12's `golang-go` (the oracle of the tests).
    pub const DEBIAN_12: GoVersion = GoVersion {
        major: 1,
        minor: 19,
    };

    /// Parses `go1.19.8`, `go1.22rc1`, `1.24.0` or `devel go1.25-abc` (first `1.N` found).
    pub fn parse(text: &str) -> Option<GoVersion> {
        let start = text.find("1.")?;
        let rest = &text[start + 2..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(GoVersion {
            major: 1,
            minor: digits.parse().ok()?,
        })
    }

    /// Go ≥ 1.24 refuses a relative `$XDG_CACHE_HOME`/`$XDG_CONFIG_HOME` (golang/go#68470).
    pub fn rejects_relative_xdg(self) -> bool {
        (self.major, self.minor) >= (1, 24)
    }

    /// Go ≥ 1.21 reads `$GOROOT/go.env` under the user's file (`cfg.go: initEnvCache`).
    pub fn reads_goroot_env(self) -> bool {
        (self.major, self.minor) >= (1, 21)
    }
}

/// The parsed `go env -w` file (or `$GOROOT/go.env`), with `cfg.go: readEnvFile` semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoEnvFile {
    /// Key → raw value; the last line for a key wins.
    pub vars: EnvMap,
}

impl GoEnvFile {
    /// Parses the file's text exactly as `readEnvFile` does (see the module doc).
    pub fn parse(text: &str) -> GoEnvFile {
        let mut vars = EnvMap::new();
        for line in text.split('\n') {
            let Some(eq) = line.find('=') else { continue };
            if !line.as_bytes()[0].is_ascii_uppercase() {
                continue;
            }
            vars.insert(line[..eq].to_owned(), line[eq + 1..].to_owned());
        }
        GoEnvFile { vars }
    }
}

/// Where the `go env -w` file is, per `cfg.go: EnvFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoEnvLocation {
    /// The file Go reads (it may be relative — then Go reads it relative to its working
    /// directory, which a daemon cannot know: [`GoEnvLocation::readable_path`] is `None`).
    File(String),
    /// `GOENV=off`.
    Off,
    /// No `$GOENV`, and `os.UserConfigDir` failed (the reason is Go's error text).
    Unknown(String),
}

impl GoEnvLocation {
    /// What `go env GOENV` prints: the file, or an empty line.
    pub fn go_env_value(&self) -> &str {
        match self {
            GoEnvLocation::File(f) => f,
            GoEnvLocation::Off | GoEnvLocation::Unknown(_) => "",
        }
    }

    /// The file to read on the user's behalf: only an absolute path qualifies.
    pub fn readable_path(&self) -> Option<PathBuf> {
        match self {
            GoEnvLocation::File(f) if is_abs(f) => Some(PathBuf::from(f)),
            _ => None,
        }
    }
}

/// The effective `GOCACHE`, per `cache/default.go: DefaultDir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoCacheSetting {
    /// The build cache directory (absolute, except with Go ≤ 1.23 and a relative
    /// `$XDG_CACHE_HOME`, which Go uses relative to its working directory).
    Dir(String),
    /// The cache is off, and every build fails with the reason.
    Off(GoCacheOff),
}

/// Why `GOCACHE` resolved to `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoCacheOff {
    /// `GOCACHE=off`: "build cache is disabled by GOCACHE=off, but required as of Go 1.12".
    Explicit,
    /// A non-absolute `GOCACHE`: "GOCACHE is not an absolute path".
    NotAbsolute(String),
    /// No `GOCACHE` and `os.UserCacheDir` failed: "GOCACHE is not defined and <err>".
    NoCacheDir(String),
}

impl GoCacheOff {
    /// The message `go build` dies with (`cache/default.go: initDefaultCache`).
    pub fn go_message(&self) -> String {
        match self {
            GoCacheOff::Explicit => {
                "build cache is disabled by GOCACHE=off, but required as of Go 1.12".into()
            }
            GoCacheOff::NotAbsolute(_) => "build cache is required, but could not be located: \
                 GOCACHE is not an absolute path"
                .into(),
            GoCacheOff::NoCacheDir(err) => format!(
                "build cache is required, but could not be located: GOCACHE is not defined and {err}"
            ),
        }
    }
}

/// A `cmd/go/main.go` GOPATH check that makes every `go` command exit with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoRefusal {
    /// An element starting with `~`.
    #[error("go: GOPATH entry cannot start with shell metacharacter '~': {0:?}")]
    TildeInGopath(String),
    /// A relative element in an explicitly set GOPATH.
    #[error("go: GOPATH entry is relative; must be absolute path: {0:?}.")]
    RelativeGopath(String),
}

/// Everything [`resolve`] needs: the user's environment as `go` would see it.
#[derive(Debug, Clone)]
pub struct GoEnvInputs<'a> {
    /// The process environment of the user's `go` (session env merged with environment.d,
    /// see [`crate::envd::session_environment`]); `HOME` included.
    pub process: &'a EnvMap,
    /// The parsed `go env -w` file, when it exists and was readable.
    pub env_file: Option<&'a GoEnvFile>,
    /// The parsed `$GOROOT/go.env` (ignored before Go 1.21).
    pub goroot_env: Option<&'a GoEnvFile>,
    /// `runtime.GOROOT()` of that `go` (e.g. `/usr/lib/go-1.19`), for the GOPATH == GOROOT rule.
    pub goroot: &'a str,
    /// Whose rules.
    pub version: GoVersion,
}

/// The result of [`resolve`]: what `go env` would print, and what Go would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoPaths {
    /// `go env GOENV`.
    pub goenv: GoEnvLocation,
    /// `go env GOCACHE`.
    pub gocache: GoCacheSetting,
    /// `go env GOPATH` (after `main`'s checks: may be emptied).
    pub gopath: String,
    /// `go env GOMODCACHE` (may be empty or relative; see [`GoPaths::gomodcache_dir`]).
    pub gomodcache: String,
    /// Set when every `go` command exits 2 before doing anything.
    pub refusal: Option<GoRefusal>,
    /// `main` warns "GOPATH set to GOROOT (…) has no effect".
    pub gopath_is_goroot: bool,
}

impl GoPaths {
    /// The value `go env KEY` prints for GOCACHE, GOMODCACHE, GOPATH or GOENV.
    pub fn go_env_value(&self, key: &str) -> Option<&str> {
        Some(match key {
            "GOCACHE" => match &self.gocache {
                GoCacheSetting::Dir(d) => d,
                GoCacheSetting::Off(_) => "off",
            },
            "GOMODCACHE" => &self.gomodcache,
            "GOPATH" => &self.gopath,
            "GOENV" => self.goenv.go_env_value(),
            _ => return None,
        })
    }

    /// The build cache directory a `go build` of this user writes, if Go can use one and it
    /// is absolute.
    pub fn gocache_dir(&self) -> Option<PathBuf> {
        match &self.gocache {
            GoCacheSetting::Dir(d) if self.refusal.is_none() && is_abs(d) => Some(d.into()),
            _ => None,
        }
    }

    /// The module cache a `go` of this user writes, if usable (`modfetch/cache.go:
    /// checkCacheDir` refuses an empty or relative one).
    pub fn gomodcache_dir(&self) -> Option<PathBuf> {
        (self.refusal.is_none() && is_abs(&self.gomodcache))
            .then(|| self.gomodcache.as_str().into())
    }
}

/// `filepath.IsAbs` on Unix.
pub fn is_abs(path: &str) -> bool {
    path.starts_with('/')
}

/// `os.Getenv`: a missing variable reads as "".
fn os_getenv<'a>(env: &'a EnvMap, key: &str) -> &'a str {
    env.get(key).map_or("", String::as_str)
}

/// `os.UserConfigDir` (os/file.go) on Unix.
pub fn user_config_dir(env: &EnvMap, version: GoVersion) -> Result<String, String> {
    xdg_dir(env, version, "XDG_CONFIG_HOME", "/.config")
}

/// `os.UserCacheDir` (os/file.go) on Unix.
pub fn user_cache_dir(env: &EnvMap, version: GoVersion) -> Result<String, String> {
    xdg_dir(env, version, "XDG_CACHE_HOME", "/.cache")
}

fn xdg_dir(env: &EnvMap, version: GoVersion, var: &str, suffix: &str) -> Result<String, String> {
    let dir = os_getenv(env, var);
    if dir.is_empty() {
        let home = os_getenv(env, "HOME");
        if home.is_empty() {
            return Err(format!("neither ${var} nor $HOME are defined"));
        }
        return Ok(format!("{home}{suffix}"));
    }
    if version.rejects_relative_xdg() && !is_abs(dir) {
        return Err(format!("path in ${var} is relative"));
    }
    Ok(dir.to_owned())
}

/// `cfg.go: EnvFile`: where the `go env -w` file is, from the process environment only.
pub fn env_file_location(process: &EnvMap, version: GoVersion) -> GoEnvLocation {
    match os_getenv(process, "GOENV") {
        "off" => GoEnvLocation::Off,
        "" => match user_config_dir(process, version) {
            Ok(dir) => GoEnvLocation::File(join(&[&dir, "go/env"])),
            Err(e) => GoEnvLocation::Unknown(e),
        },
        file => GoEnvLocation::File(file.to_owned()),
    }
}

/// Computes GOENV, GOCACHE, GOPATH and GOMODCACHE as `go env` does (see the module doc).
pub fn resolve(inputs: &GoEnvInputs<'_>) -> GoPaths {
    let process = inputs.process;
    let goroot_env = inputs
        .goroot_env
        .filter(|_| inputs.version.reads_goroot_env());
    // cfg.go: Getenv: a non-empty process value, else the user file, else $GOROOT/go.env.
    let getenv = |key: &str| -> String {
        let v = os_getenv(process, key);
        if !v.is_empty() {
            return v.to_owned();
        }
        for file in [inputs.env_file, goroot_env].into_iter().flatten() {
            if let Some(v) = file.vars.get(key) {
                return v.clone();
            }
        }
        String::new()
    };

    // cache/default.go: DefaultDir.
    let gocache = {
        let v = getenv("GOCACHE");
        if v == "off" {
            GoCacheSetting::Off(GoCacheOff::Explicit)
        } else if is_abs(&v) {
            GoCacheSetting::Dir(v)
        } else if !v.is_empty() {
            GoCacheSetting::Off(GoCacheOff::NotAbsolute(v))
        } else {
            match user_cache_dir(process, inputs.version) {
                Ok(dir) => GoCacheSetting::Dir(join(&[&dir, "go-build"])),
                Err(e) => GoCacheSetting::Off(GoCacheOff::NoCacheDir(e)),
            }
        }
    };

    // go/build: defaultGOPATH, then cmd/go cfg: envOr("GOPATH", gopath(ctxt)).
    let home = os_getenv(process, "HOME");
    let inferred = if home.is_empty() {
        String::new()
    } else {
        let def = join(&[home, "go"]);
        if clean(&def) == clean(inputs.goroot) {
            String::new()
        } else {
            def
        }
    };
    let explicit = getenv("GOPATH");
    let mut gopath = if explicit.is_empty() {
        inferred
    } else {
        explicit.clone()
    };

    // cfg.go: GOMODCACHE = envOr("GOMODCACHE", gopathDir("pkg/mod")), before main's checks.
    let gomodcache = {
        let v = getenv("GOMODCACHE");
        if !v.is_empty() {
            v
        } else {
            match split_list(&gopath).first() {
                Some(first) if !first.is_empty() => join(&[first, "pkg/mod"]),
                _ => String::new(),
            }
        }
    };

    // main.go: main's GOPATH checks.
    let mut refusal = None;
    let gopath_is_goroot = clean(&gopath) == clean(inputs.goroot);
    if !gopath_is_goroot {
        for p in split_list(&gopath.clone()) {
            if p.is_empty() {
                continue;
            }
            if p.starts_with('~') {
                refusal = Some(GoRefusal::TildeInGopath(p));
                break;
            }
            if !is_abs(&p) {
                if explicit.is_empty() {
                    gopath.clear();
                } else {
                    refusal = Some(GoRefusal::RelativeGopath(p));
                    break;
                }
            }
        }
    }

    GoPaths {
        goenv: env_file_location(process, inputs.version),
        gocache,
        gopath,
        gomodcache,
        refusal,
        gopath_is_goroot,
    }
}

/// `filepath.SplitList` on Unix: `""` → no elements, else split at `:`.
pub fn split_list(list: &str) -> Vec<String> {
    if list.is_empty() {
        Vec::new()
    } else {
        list.split(':').map(str::to_owned).collect()
    }
}

/// `filepath.Join` on Unix: join the non-empty elements with `/` and [`clean`]; `""` when all
/// are empty.
pub fn join(elems: &[&str]) -> String {
    let parts: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        clean(&parts.join("/"))
    }
}

/// `filepath.Clean` on Unix (purely lexical, Rob Pike's rules): one `/` between elements,
/// no `.` elements, `..` eats the element before it, `/..` is `/`, empty is `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(&last) if last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            e => out.push(e),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(pairs: &[(&str, &str)], file: Option<&str>, version: GoVersion) -> GoPaths {
        let process = env(pairs);
        let parsed = file.map(GoEnvFile::parse);
        resolve(&GoEnvInputs {
            process: &process,
            env_file: parsed.as_ref(),
            goroot_env: None,
            goroot: "/usr/lib/go-1.19",
            version,
        })
    }

    #[test]
    fn clean_matches_go() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("a/./b/..", "a"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("a/../..", ".."),
            ("./", "."),
        ] {
            assert_eq!(clean(i), o, "clean({i:?})");
        }
        assert_eq!(join(&["", ""]), "");
        assert_eq!(join(&["/h/", "go"]), "/h/go");
        assert_eq!(join(&["rel", "go-build"]), "rel/go-build");
    }

    #[test]
    fn env_file_is_parsed_like_read_env_file() {
        let f = GoEnvFile::parse(
            "GOCACHE=\"/q\"\n# GOPATH=/c\n  GOMODCACHE=/sp\nGOMODCACHE=/m \r\nlower=1\nNOEQ\n\nGOPATH=/a=b\nGOPATH=/last",
        );
        assert_eq!(f.vars.get("GOCACHE").unwrap(), "\"/q\"");
        assert_eq!(f.vars.get("GOMODCACHE").unwrap(), "/m \r");
        assert_eq!(f.vars.get("GOPATH").unwrap(), "/last");
        assert!(!f.vars.contains_key("lower") && !f.vars.contains_key("NOEQ"));
        assert_eq!(GoEnvFile::parse("").vars.len(), 0);
    }

    #[test]
    fn defaults_from_home() {
        let p = run(&[("HOME", "/home/u")], None, GoVersion::DEBIAN_12);
        assert_eq!(
            p.gocache,
            GoCacheSetting::Dir("/home/u/.cache/go-build".into())
        );
        assert_eq!(p.gopath, "/home/u/go");
        assert_eq!(p.gomodcache, "/home/u/go/pkg/mod");
        assert_eq!(
            p.goenv,
            GoEnvLocation::File("/home/u/.config/go/env".into())
        );
        assert_eq!(
            p.gocache_dir(),
            Some(PathBuf::from("/home/u/.cache/go-build"))
        );
    }

    #[test]
    fn process_beats_file_but_empty_does_not() {
        let file = "GOCACHE=/f/cache\nGOPATH=/f/gp\n";
        let p = run(
            &[("HOME", "/h"), ("GOCACHE", "/p/c"), ("GOPATH", "")],
            Some(file),
            GoVersion::DEBIAN_12,
        );
        assert_eq!(p.go_env_value("GOCACHE"), Some("/p/c"));
        assert_eq!(p.gopath, "/f/gp");
        assert_eq!(p.gomodcache, "/f/gp/pkg/mod");
    }

    #[test]
    fn gocache_off_and_relative() {
        let p = run(
            &[("HOME", "/h"), ("GOCACHE", "off")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert_eq!(p.gocache, GoCacheSetting::Off(GoCacheOff::Explicit));
        let p = run(
            &[("HOME", "/h"), ("GOCACHE", "rel")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert!(matches!(
            p.gocache,
            GoCacheSetting::Off(GoCacheOff::NotAbsolute(_))
        ));
        assert_eq!(p.gocache_dir(), None);
        let p = run(&[], None, GoVersion::DEBIAN_12);
        assert!(matches!(
            p.gocache,
            GoCacheSetting::Off(GoCacheOff::NoCacheDir(_))
        ));
        assert_eq!(p.goenv.go_env_value(), "");
    }

    #[test]
    fn relative_xdg_depends_on_version() {
        let e = [
            ("HOME", "/h"),
            ("XDG_CACHE_HOME", "rel"),
            ("XDG_CONFIG_HOME", "cfg"),
        ];
        let old = run(&e, None, GoVersion::DEBIAN_12);
        assert_eq!(old.gocache, GoCacheSetting::Dir("rel/go-build".into()));
        assert_eq!(old.gocache_dir(), None);
        assert_eq!(old.goenv, GoEnvLocation::File("cfg/go/env".into()));
        assert_eq!(old.goenv.readable_path(), None);
        let new = run(
            &e,
            None,
            GoVersion {
                major: 1,
                minor: 24,
            },
        );
        assert!(
            matches!(new.gocache, GoCacheSetting::Off(GoCacheOff::NoCacheDir(ref m)) if m.contains("relative"))
        );
        assert!(matches!(new.goenv, GoEnvLocation::Unknown(_)));
    }

    #[test]
    fn gopath_rules() {
        let p = run(
            &[("HOME", "/h"), ("GOPATH", "rel")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert_eq!(p.refusal, Some(GoRefusal::RelativeGopath("rel".into())));
        assert_eq!(p.gomodcache_dir(), None);
        let p = run(
            &[("HOME", "/h"), ("GOPATH", "~/x")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert_eq!(p.refusal, Some(GoRefusal::TildeInGopath("~/x".into())));
        let p = run(&[("HOME", "rel")], None, GoVersion::DEBIAN_12);
        assert_eq!(
            (p.gopath.as_str(), p.gomodcache.as_str()),
            ("", "rel/go/pkg/mod")
        );
        let p = run(
            &[("HOME", "/h"), ("GOPATH", ":/x")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert_eq!((p.gopath.as_str(), p.gomodcache.as_str()), (":/x", ""));
        let p = run(
            &[("HOME", "/h"), ("GOPATH", "/usr/lib/go-1.19")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert!(p.gopath_is_goroot && p.refusal.is_none());
        // $HOME/go == GOROOT: go/build leaves GOPATH empty.
        let p = run(
            &[("HOME", "/usr/lib/go-1.19/..")],
            None,
            GoVersion::DEBIAN_12,
        );
        assert_eq!(p.gopath, "/usr/lib/go");
        let process = env(&[("HOME", "/opt")]);
        let p = resolve(&GoEnvInputs {
            process: &process,
            env_file: None,
            goroot_env: None,
            goroot: "/opt/go",
            version: GoVersion::DEBIAN_12,
        });
        assert_eq!((p.gopath.as_str(), p.gomodcache.as_str()), ("", ""));
    }

    #[test]
    fn goroot_env_only_from_121_and_below_user_file() {
        let process = env(&[("HOME", "/h")]);
        let user = GoEnvFile::parse("GOPATH=/user\n");
        let root = GoEnvFile::parse("GOPATH=/root\nGOMODCACHE=/shared/mod\n");
        let at = |minor| {
            resolve(&GoEnvInputs {
                process: &process,
                env_file: Some(&user),
                goroot_env: Some(&root),
                goroot: "/usr/lib/go",
                version: GoVersion { major: 1, minor },
            })
        };
        assert_eq!(
            (at(21).gopath, at(21).gomodcache),
            ("/user".into(), "/shared/mod".into())
        );
        assert_eq!(at(19).gomodcache, "/user/pkg/mod");
    }

    #[test]
    fn version_parse() {
        assert_eq!(GoVersion::parse("go1.19.8"), Some(GoVersion::DEBIAN_12));
        assert_eq!(GoVersion::parse("go1.24rc1").map(|v| v.minor), Some(24));
        assert_eq!(GoVersion::parse("devel"), None);
    }
}
