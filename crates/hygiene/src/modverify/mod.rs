//! Module cache verification: the verdict on one downloaded module version (pure), and the
//! walk of `GOMODCACHE/cache/download` that feeds it ([`verify_cache`]).
//!
//! # What `go mod verify` checks, and what we check
//! `go mod verify` (Go 1.19.8, `src/cmd/go/internal/modcmd/verify.go`, `verifyMod`
//! l.87–129, called from `runVerify` l.44) takes each module of the main module's build list and:
//! - reads `<v>.ziphash`; if it is missing, reports "missing ziphash" unless neither the zip
//!   nor the extracted directory exists (then there is nothing to verify);
//! - if `<v>.zip` exists, compares `dirhash.HashZip(zip)` with the ziphash ("zip has been
//!   modified");
//! - if the extracted directory exists (`modfetch.DownloadDir`, `modfetch/cache.go`
//!   l.66–122, which also flags a present `.partial` file or a missing ziphash), compares
//!   `dirhash.HashDir(dir, path@version)` with the ziphash ("dir has been modified").
//!
//! It never checks `.mod` files or go.sum (the go.sum is checked at download time,
//! `modfetch.checkModSum`). [`judge`] mirrors `verifyMod` for every version in the cache (not
//! only one build list), with these differences, each reported as a finding:
//! - a `.partial` file (written before extraction and removed after it, `modfetch/fetch.go`
//!   l.117–151) makes the version [`Finding::Incomplete`] and its directory is not hashed.
//!   `go mod verify` says nothing here: `DownloadDir` returns a `DownloadDirPartialError`,
//!   whose `Is(fs.ErrNotExist)` is true (`modfetch/cache.go` l.134), so `verifyMod` treats
//!   the directory as absent and checks only the zip; the next `go` command that needs the
//!   module removes the directory and extracts it again (`download`, fetch.go l.63–159: l.105–115 remove it).
//!   Not corruption, but not usable as it is either, so we report it;
//! - when the directory's hash differs but the zip is intact, the two are compared file by
//!   file: a directory that only lacks files is `Incomplete` (missing files), anything else is
//!   `Corrupted` with the names of the files that differ.
//!
//! Go's `.lock` files (`<v>.lock`, taken with `lockedfile.MutexAt` by `lockVersion`,
//! `modfetch/cache.go` l.138–147, and `cache/lock`, `SideLock` l.153) are kept on purpose and never
//! removed by Go: they are counted, not reported as leftovers. Leftovers are the temporary
//! files of interrupted writes: `<v>.zip<N>.tmp` (`downloadZip`'s `tempFile`, fetch.go l.227
//! and `modfetch/cache.go` l.661–671) and other `*.tmp` files in `@v`, and pre-1.16
//! extraction directories `<module>@<v>.tmp-*` (fetch.go l.105). Go removes them itself only
//! when it downloads that same version again.
//!
//! # Sizes
//! Everything read is bounded by the sizes Go itself allows (`golang.org/x/mod/zip`:
//! `MaxZipFile` 500 MiB for a module zip and for the total uncompressed size of its files,
//! `MaxGoMod` 16 MiB; an `h1:` ziphash is 47 bytes). A module cache is written by its user,
//! who can put anything in it: a zip, an extracted file or an extracted directory beyond
//! those limits is [`Finding::TooLarge`] and is not hashed (Go would never have produced it:
//! `modzip.Unzip` refuses such a zip), a `.ziphash` or `.mod` beyond its limit is unreadable.
//! Sizes come from `statx` before anything is read, and every read is capped again while
//! hashing (a file that grows meanwhile stops at the limit).
//!
//! This module's pure part must never do I/O; [`verify_cache`] only reads.

mod scan;

use std::path::PathBuf;
use std::time::Duration;

use crate::dirhash::Summary;
use crate::gosum::GoSumLine;

pub use scan::{verify_cache, verify_cache_in};

/// Go's limit on a module zip and on the total uncompressed size of its files
/// (`golang.org/x/mod/zip.MaxZipFile`, 500 MiB).
pub const MAX_ZIP_FILE: u64 = 500 << 20;
/// Go's limit on a `go.mod` file (`golang.org/x/mod/zip.MaxGoMod`, 16 MiB): also the largest
/// `<v>.mod` hashed for a go.sum check.
pub const MAX_GO_MOD: u64 = 16 << 20;
/// Largest `<v>.ziphash` read: Go writes one `h1:` hash (47 bytes); anything much longer is
/// not Go's.
pub const MAX_ZIPHASH: u64 = 4 << 10;

/// What was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// `cache/download/<module>/@v/<v>.zip`.
    Zip,
    /// The extracted `<module>@<v>/` directory.
    Dir,
    /// `cache/download/<module>/@v/<v>.mod` (go.sum checks only).
    GoMod,
}

impl Part {
    /// `"zip"`, `"dir"`, `"go.mod"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Zip => "zip",
            Part::Dir => "dir",
            Part::GoMod => "go.mod",
        }
    }
}

/// Why a version is incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncompleteReason {
    /// `<v>.partial` exists: an extraction did not finish.
    Partial,
    /// A zip or an extracted directory exists without `<v>.ziphash` (go: "missing ziphash").
    MissingZiphash,
    /// The extracted directory lacks these files of the (intact) zip.
    MissingFiles(Vec<String>),
}

/// One problem found with a module version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A hash differs from the ziphash.
    Corrupted {
        /// Which part.
        part: Part,
        /// The ziphash.
        expected: String,
        /// The hash computed.
        got: String,
        /// Files that differ (changed, extra or missing), when known.
        files: Vec<String>,
    },
    /// A part could not be read or hashed (an unreadable zip is corrupt to Go as well).
    Unreadable {
        /// Which part.
        part: Part,
        /// The error.
        error: String,
    },
    /// Not completely downloaded or extracted.
    Incomplete(IncompleteReason),
    /// A part, or one file in it, is larger than Go allows a module to be
    /// ([`MAX_ZIP_FILE`]): not hashed. Go never extracts such a module, so it was not written
    /// by Go.
    TooLarge {
        /// Which part.
        part: Part,
        /// The file that is too large (name as hashed, `module@version/...`), or `None` when
        /// it is the part's total.
        file: Option<String>,
        /// Its size in bytes (at least; reading stops at the limit).
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
}

/// Why a part (zip, extracted directory) has no [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartError {
    /// It could not be read or hashed.
    Unreadable(String),
    /// It is larger than Go allows: see [`Finding::TooLarge`].
    TooLarge {
        /// The file, or `None` for the total.
        file: Option<String>,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl PartError {
    fn finding(&self, part: Part) -> Finding {
        match self {
            PartError::Unreadable(error) => Finding::Unreadable {
                part,
                error: error.clone(),
            },
            PartError::TooLarge { file, size, limit } => Finding::TooLarge {
                part,
                file: file.clone(),
                size: *size,
                limit: *limit,
            },
        }
    }
}

impl From<String> for PartError {
    fn from(e: String) -> Self {
        PartError::Unreadable(e)
    }
}

/// The overall verdict on one module version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModuleVerdict {
    /// Everything present matches the ziphash.
    Intact,
    /// Something is missing, nothing is corrupt.
    Incomplete,
    /// A hash differs, or a part cannot be read.
    Corrupted,
}

impl ModuleVerdict {
    /// `"intact"`, `"incomplete"`, `"corrupted"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleVerdict::Intact => "intact",
            ModuleVerdict::Incomplete => "incomplete",
            ModuleVerdict::Corrupted => "corrupted",
        }
    }
}

/// The verdict from a list of findings.
pub fn verdict_of(findings: &[Finding]) -> ModuleVerdict {
    if findings.iter().any(|f| {
        matches!(
            f,
            Finding::Corrupted { .. } | Finding::Unreadable { .. } | Finding::TooLarge { .. }
        )
    }) {
        ModuleVerdict::Corrupted
    } else if findings.is_empty() {
        ModuleVerdict::Intact
    } else {
        ModuleVerdict::Incomplete
    }
}

/// What the cache holds for one module version, hashed (the input of [`judge`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionState {
    /// `<v>.ziphash`, trimmed (`bytes.TrimSpace`), when present; `Err` when unreadable.
    pub ziphash: Option<Result<String, String>>,
    /// The zip's summary when the zip exists; `Err` when it could not be read or is too large.
    pub zip: Option<Result<Summary, PartError>>,
    /// The extracted directory's summary (names prefixed `module@version/`) when it exists.
    pub dir: Option<Result<Summary, PartError>>,
    /// Whether `<v>.partial` exists.
    pub partial: bool,
}

/// Judges one version as `go mod verify`'s `verifyMod` does (see the module docs for the
/// differences). Returns the findings (empty: intact) and the parts that were checked.
pub fn judge(state: &VersionState) -> (Vec<Finding>, Vec<Part>) {
    let mut findings = Vec::new();
    let mut checked = Vec::new();
    if state.partial {
        findings.push(Finding::Incomplete(IncompleteReason::Partial));
    }
    let expected = match &state.ziphash {
        None => {
            if state.zip.is_some() || state.dir.is_some() {
                findings.push(Finding::Incomplete(IncompleteReason::MissingZiphash));
            }
            return (findings, checked);
        }
        Some(Err(e)) => {
            findings.push(Finding::Unreadable {
                part: Part::Zip,
                error: format!("ziphash: {e}"),
            });
            return (findings, checked);
        }
        Some(Ok(h)) => h,
    };
    let mut zip_ok: Option<&Summary> = None;
    if let Some(z) = &state.zip {
        checked.push(Part::Zip);
        match z {
            Err(e) => findings.push(e.finding(Part::Zip)),
            Ok(s) => {
                let got = s.h1();
                if &got == expected {
                    zip_ok = Some(s);
                } else {
                    findings.push(Finding::Corrupted {
                        part: Part::Zip,
                        expected: expected.clone(),
                        got,
                        files: Vec::new(),
                    });
                }
            }
        }
    }
    if let (Some(d), false) = (&state.dir, state.partial) {
        checked.push(Part::Dir);
        match d {
            Err(e) => findings.push(e.finding(Part::Dir)),
            Ok(s) => {
                let got = s.h1();
                if &got != expected {
                    findings.push(dir_finding(s, zip_ok, expected, got));
                }
            }
        }
    }
    (findings, checked)
}

fn dir_finding(dir: &Summary, zip: Option<&Summary>, expected: &str, got: String) -> Finding {
    let Some(zip) = zip else {
        return Finding::Corrupted {
            part: Part::Dir,
            expected: expected.to_string(),
            got,
            files: Vec::new(),
        };
    };
    let d = dir.diff(zip);
    if d.only_in_self.is_empty() && d.changed.is_empty() && !d.only_in_other.is_empty() {
        return Finding::Incomplete(IncompleteReason::MissingFiles(d.only_in_other));
    }
    let mut files = d.changed;
    files.extend(d.only_in_self);
    files.extend(d.only_in_other);
    files.sort();
    Finding::Corrupted {
        part: Part::Dir,
        expected: expected.to_string(),
        got,
        files,
    }
}

/// The result for one module version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    /// Module path (unescaped).
    pub module: String,
    /// Version (unescaped).
    pub version: String,
    /// The verdict.
    pub verdict: ModuleVerdict,
    /// What is wrong (empty when intact).
    pub findings: Vec<Finding>,
    /// What was hashed.
    pub checked: Vec<Part>,
    /// Bytes read to hash it (zip file size plus extracted files).
    pub bytes_hashed: u64,
}

/// Kinds of leftover temporary files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeftoverKind {
    /// `<v>.zip<N>.tmp`: an interrupted zip download.
    TempZip,
    /// Another `*.tmp` in `@v` (an interrupted `.info`/`.mod`/`list` write).
    TempFile,
    /// `<module>@<v>.tmp-*`: a pre-Go-1.16 extraction directory.
    TempDir,
}

/// A leftover temporary file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Path relative to GOMODCACHE.
    pub path: String,
    /// What it is.
    pub kind: LeftoverKind,
    /// Its age at verification time.
    pub age: Duration,
    /// Older than [`VerifyOptions::stale_after`]: no download is writing it any more.
    pub stale: bool,
}

/// The outcome of one go.sum line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoSumOutcome {
    /// The cache has it with this hash.
    Match,
    /// The cache has it with another hash.
    Mismatch {
        /// The cache's hash (ziphash or `.mod` hash).
        cache: String,
    },
    /// Not in the cache (no ziphash or zip; no `.mod`).
    NotInCache,
    /// Present but unreadable.
    Unreadable(String),
    /// Not an `h1:` hash: cannot be checked.
    UnknownHash,
}

/// One go.sum line checked against the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoSumCheck {
    /// The line.
    pub line: GoSumLine,
    /// What the cache says.
    pub outcome: GoSumOutcome,
}

/// How to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Module versions hashed in parallel (`go mod verify` uses GOMAXPROCS).
    pub jobs: usize,
    /// go.sum lines to check against the cache.
    pub gosum: Option<Vec<GoSumLine>>,
    /// Only verify module versions named in `gosum` (for `--gosum` on a shared cache).
    pub only_gosum_modules: bool,
    /// Temporary files older than this are stale leftovers.
    pub stale_after: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gosum: None,
            only_gosum_modules: false,
            stale_after: Duration::from_secs(3600),
        }
    }
}

/// Something that could not be examined (a directory that could not be listed, a name that
/// is not a valid escaped module path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to GOMODCACHE.
    pub path: String,
    /// Why.
    pub error: String,
}

/// The result of verifying one module cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// GOMODCACHE as given.
    pub root: PathBuf,
    /// One row per module version found (sorted by module, version).
    pub modules: Vec<ModuleReport>,
    /// Temporary files of interrupted writes.
    pub leftovers: Vec<Leftover>,
    /// `.lock` files seen (kept by Go on purpose; informational).
    pub lock_files: u64,
    /// go.sum checks, when asked.
    pub gosum: Vec<GoSumCheck>,
    /// What could not be examined.
    pub skipped: Vec<Skipped>,
}

impl VerifyReport {
    /// Module versions that are not intact.
    pub fn problems(&self) -> impl Iterator<Item = &ModuleReport> {
        self.modules
            .iter()
            .filter(|m| m.verdict != ModuleVerdict::Intact)
    }

    /// Everything intact, every go.sum line matched, nothing skipped.
    pub fn is_clean(&self) -> bool {
        self.problems().next().is_none()
            && self.skipped.is_empty()
            && self.gosum.iter().all(|c| c.outcome == GoSumOutcome::Match)
    }

    /// Bytes hashed in total.
    pub fn bytes_hashed(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes_hashed).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(files: &[(&str, u8)]) -> Summary {
        let mut files: Vec<(Vec<u8>, [u8; 32])> = files
            .iter()
            .map(|(n, b)| (n.as_bytes().to_vec(), [*b; 32]))
            .collect();
        files.sort();
        Summary { files }
    }

    #[test]
    fn judge_mirrors_verify_mod() {
        let good = summary(&[("m@v1.0.0/a.go", 1), ("m@v1.0.0/go.mod", 2)]);
        let h = good.h1();
        let state = VersionState {
            ziphash: Some(Ok(h.clone())),
            zip: Some(Ok(good.clone())),
            dir: Some(Ok(good.clone())),
            partial: false,
        };
        let (f, checked) = judge(&state);
        assert!(f.is_empty());
        assert_eq!(checked, vec![Part::Zip, Part::Dir]);

        // Nothing downloaded but a ziphash: nothing to verify, as in Go.
        let (f, checked) = judge(&VersionState {
            ziphash: Some(Ok(h.clone())),
            ..VersionState::default()
        });
        assert!(f.is_empty() && checked.is_empty());

        // A dir with no ziphash: "missing ziphash".
        let (f, _) = judge(&VersionState {
            dir: Some(Ok(good.clone())),
            ..VersionState::default()
        });
        assert_eq!(
            f,
            vec![Finding::Incomplete(IncompleteReason::MissingZiphash)]
        );

        // A changed file in the dir: corrupted, naming the file.
        let changed = summary(&[("m@v1.0.0/a.go", 9), ("m@v1.0.0/go.mod", 2)]);
        let (f, _) = judge(&VersionState {
            dir: Some(Ok(changed.clone())),
            ..state.clone()
        });
        assert_eq!(verdict_of(&f), ModuleVerdict::Corrupted);
        assert!(
            matches!(&f[0], Finding::Corrupted { part: Part::Dir, files, .. } if files == &vec!["m@v1.0.0/a.go".to_string()])
        );

        // A missing file: incomplete.
        let missing = summary(&[("m@v1.0.0/go.mod", 2)]);
        let (f, _) = judge(&VersionState {
            dir: Some(Ok(missing)),
            ..state.clone()
        });
        assert_eq!(
            f,
            vec![Finding::Incomplete(IncompleteReason::MissingFiles(vec![
                "m@v1.0.0/a.go".to_string()
            ]))]
        );
        assert_eq!(verdict_of(&f), ModuleVerdict::Incomplete);

        // A corrupt zip, and a .partial (the dir is then not hashed).
        let (f, checked) = judge(&VersionState {
            zip: Some(Ok(changed)),
            partial: true,
            ..state
        });
        assert_eq!(checked, vec![Part::Zip]);
        assert_eq!(f.len(), 2);
        assert_eq!(verdict_of(&f), ModuleVerdict::Corrupted);
    }

    #[test]
    fn an_oversized_part_is_a_finding_not_a_hash() {
        let good = summary(&[("m@v1.0.0/go.mod", 2)]);
        let too_large = PartError::TooLarge {
            file: Some("m@v1.0.0/big.bin".into()),
            size: 16 << 30,
            limit: MAX_ZIP_FILE,
        };
        let (f, checked) = judge(&VersionState {
            ziphash: Some(Ok(good.h1())),
            zip: Some(Ok(good.clone())),
            dir: Some(Err(too_large)),
            partial: false,
        });
        assert_eq!(checked, vec![Part::Zip, Part::Dir]);
        assert_eq!(
            f,
            vec![Finding::TooLarge {
                part: Part::Dir,
                file: Some("m@v1.0.0/big.bin".into()),
                size: 16 << 30,
                limit: MAX_ZIP_FILE,
            }]
        );
        assert_eq!(verdict_of(&f), ModuleVerdict::Corrupted);
    }
}
