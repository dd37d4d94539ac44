//! Offline module-cache prefill (issue 16): a *bundle* carries the module versions a set of
//! `go.mod`/`go.sum` files need from a connected host to an offline one, and is imported
//! into a GOMODCACHE so that `GOPROXY=off go build` works there.
//!
//! # The bundle
//! A directory, or the same tree as one uncompressed tar (`ustar`/GNU, read by offset: the
//! members are never extracted anywhere):
//! - `goguard-bundle.json`: the [`Manifest`] (format, go version, for each module version its
//!   `h1:` hashes and its files with size and SHA-256);
//! - `go.sum`: the go.sum lines of the bundled versions (the union of the exported projects');
//! - `cache/download/<escaped module>/@v/<escaped version>.{info,mod,zip,ziphash}`: Go's own
//!   file names (`modfetch.CachePath`), so a bundle directory is also a `file://` GOPROXY.
//!
//! A version whose zip has no go.sum line (a module in the build list whose packages are never
//! imported: go needs only its go.mod) is carried without zip and ziphash.
//!
//! # Import: verify everything, then place
//! [`import::plan`] reads the whole bundle and changes nothing: every version must have its
//! go.sum lines (the bundle's `go.sum`, and every `--gosum` file the caller trusts: all must
//! agree); each zip's `h1:` (computed here, `dirhash.HashZip` as `go mod verify` does) must
//! equal the go.sum line, the manifest and the bundle's `.ziphash`; each `.mod` its
//! `/go.mod` line; each file its manifest size and SHA-256; each `.info` must name its version.
//! Then the target is examined read-only: a file already there must be the same (a zip with
//! the same `h1:`, the same `.mod` bytes and ziphash; an existing `.info` is kept); anything
//! else, or a symlink or non-directory on the way, refuses the import. Only then does
//! [`import::place`] write, several versions at once (it waits on fsync, not on the CPU),
//! each under Go's own `<v>.lock`: each file to
//! `<v>.<ext>.goguard-<pid>-<n>.tmp` (`O_EXCL`, mode 0666 less the umask as Go creates them),
//! its bytes' SHA-256 compared again with the verified one while they are written, `fsync`,
//! then `renameat2(RENAME_NOREPLACE)` into place; `.info`, `.mod`, `.zip`, and `.ziphash`
//! last, because Go treats a zip without its ziphash as not downloaded; the `@v` directory
//! (and any directory made) is fsynced. The ziphash is written from the verified hash, never
//! copied.
//!
//! # Crashes and full disks
//! A file is either absent or whole at its name; a version's zip counts (for Go) only once its
//! ziphash is in. A failed write removes its temp file; temp files left by a crash match
//! `<v>.*.goguard-*.tmp` and are removed by the next import of that version (under the
//! lock). A re-run of the same import skips what is already placed and completes the rest.
//!
//! # Limits (honest)
//! - Trust comes from go.sum lines. Without `--gosum`, the bundle is checked against its own
//!   `go.sum`: that catches corruption and a changed zip or `.mod`, not a forger who rewrites
//!   the go.sum lines, the manifest and the ziphash together. Give the go.sum of the projects
//!   you build (`--gosum`) to check against what you trust; the sum database is not consulted.
//! - Zips are read into memory to hash them (at most Go's `MaxZipFile`, 500 MiB, each; one per
//!   worker thread), so the bytes hashed are the bytes whose SHA-256 is compared when placed.
//! - Versions are not extracted (go extracts from `cache/download` on first use, also with
//!   `GOPROXY=off`), `@v/list` is not written (only `go list -m -versions` and queries use
//!   it), and `cache/download/sumdb` is not carried.
//! - Only ordinary file I/O as the caller: the CLI imports into caches its caller owns;
//!   a shared root owned by another user is not filled through goguardd yet.
//!
//! # Layout
//! - this file: the [`Manifest`], member names, module path and version checks (pure);
//! - [`source`]: reading a bundle (directory or tar) by member name, bounded;
//! - [`export`]: writing a bundle from a module cache;
//! - [`import`]: [`import::plan`] (verify, read-only) and [`import::place`].

pub mod export;
pub mod import;
pub mod source;

use serde::{Deserialize, Serialize};

use crate::modpath;

/// The manifest's member name.
pub const MANIFEST: &str = "goguard-bundle.json";
/// The go.sum member's name.
pub const GO_SUM: &str = "go.sum";
/// The manifest's `format`.
pub const FORMAT: &str = "goguard-module-bundle/1";
/// Largest manifest or go.sum read from a bundle.
pub const MAX_MANIFEST: u64 = 64 << 20;
/// Largest `.info` read (Go writes about 60 bytes of JSON).
pub const MAX_INFO: u64 = 64 << 10;

/// What a bundled file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `<v>.info`: `{"Version":..,"Time":..}`.
    Info,
    /// `<v>.mod`: the module's go.mod.
    Mod,
    /// `<v>.zip`: the module.
    Zip,
    /// `<v>.ziphash`: the zip's `h1:`.
    Ziphash,
}

impl FileKind {
    /// The file name extension, as in Go's cache.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Info => "info",
            FileKind::Mod => "mod",
            FileKind::Zip => "zip",
            FileKind::Ziphash => "ziphash",
        }
    }

    /// The order files are placed in: the ziphash last.
    pub const PLACEMENT: [FileKind; 4] = [
        FileKind::Info,
        FileKind::Mod,
        FileKind::Zip,
        FileKind::Ziphash,
    ];
}

/// One bundled file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Member name, `cache/download/<escaped module>/@v/<escaped version>.<ext>`.
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
}

/// One module version in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    /// Module path, unescaped.
    pub path: String,
    /// Version, unescaped.
    pub version: String,
    /// The go.sum hash of the zip's content, when the zip is bundled.
    pub zip_h1: Option<String>,
    /// The go.sum hash of the go.mod.
    pub gomod_h1: String,
    /// Its files.
    pub files: Vec<FileEntry>,
}

impl ModuleEntry {
    /// `module@version`, as messages name it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.path, self.version)
    }

    /// The file of this kind, if bundled.
    pub fn file(&self, kind: FileKind) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.kind == kind)
    }
}

/// `goguard-bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// `go version` of the exporting host (informational).
    pub go_version: String,
    /// The module versions, sorted by path and version.
    pub modules: Vec<ModuleEntry>,
}

/// The directory of a module's files beneath GOMODCACHE (and in a bundle):
/// `cache/download/<escaped module>/@v`.
pub fn version_dir(module: &str) -> Result<String, String> {
    check_module_path(module)?;
    let esc = modpath::escape(module).map_err(|e| e.to_string())?;
    Ok(format!("cache/download/{esc}/@v"))
}

/// The file name of a version's file of `kind` inside [`version_dir`].
pub fn file_name(version: &str, kind: FileKind) -> Result<String, String> {
    check_version(version)?;
    let esc = modpath::escape(version).map_err(|e| e.to_string())?;
    Ok(format!("{esc}.{}", kind.ext()))
}

/// The member name (and path beneath GOMODCACHE) of a version's file.
pub fn member_name(module: &str, version: &str, kind: FileKind) -> Result<String, String> {
    Ok(format!(
        "{}/{}",
        version_dir(module)?,
        file_name(version, kind)?
    ))
}

/// A module path as it may become directory names: `/`-separated non-empty elements of
/// ASCII letters, digits and `-._~+`, none `.` or `..` or starting with `.` (a conservative
/// subset of `module.CheckPath`'s rules; anything else is refused, never used as a path).
pub fn check_module_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("module path {path:?}: {why}"));
    if path.is_empty() || path.len() > 1024 {
        return bad("empty or too long");
    }
    for elem in path.split('/') {
        if elem.is_empty() {
            return bad("empty path element");
        }
        if elem.starts_with('.') || elem.ends_with('.') {
            return bad("an element starts or ends with a dot");
        }
        if !elem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b))
        {
            return bad("characters other than letters, digits and -._~+");
        }
    }
    Ok(())
}

/// A version as it may become a file name: `v` then ASCII letters, digits and `.-+`.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = version.len() > 1
        && version.len() <= 256
        && version.starts_with('v')
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("version {version:?}: not a module version"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_gos_cache_paths_and_hostile_names_are_refused() {
        assert_eq!(
            member_name("github.com/BurntSushi/toml", "v1.2.0", FileKind::Ziphash).unwrap(),
            "cache/download/github.com/!burnt!sushi/toml/@v/v1.2.0.ziphash"
        );
        assert_eq!(
            member_name(
                "example.com/a",
                "v0.0.0-20240101000000-abcdef123456",
                FileKind::Mod
            )
            .unwrap(),
            "cache/download/example.com/a/@v/v0.0.0-20240101000000-abcdef123456.mod"
        );
        for bad in [
            "../etc",
            "a/../b",
            "/abs",
            "a//b",
            "a/.hidden",
            "a b",
            "a\nb",
            "",
        ] {
            assert!(check_module_path(bad).is_err(), "{bad:?}");
        }
        for bad in ["1.0.0", "v1/../x", "v", "v1.0.0/x", "v1\n"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}
