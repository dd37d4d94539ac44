//! Writing a bundle from a module cache: for each module version asked for, its `.info`,
//! `.mod` and (when go.sum has its zip line) `.zip` are read beneath GOMODCACHE (never through
//! a symlink), checked against the go.sum lines (a corrupt cache is never exported), and
//! written with the manifest and the go.sum lines into a directory or a tar, first under a
//! temporary name beside the destination, renamed into place when complete.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use goguard_fs::RootDir;
use sha2::{Digest, Sha256};

use super::{
    FORMAT, FileEntry, FileKind, GO_SUM, MANIFEST, MAX_INFO, Manifest, ModuleEntry, member_name,
};
use crate::beneath;
use crate::dirhash::{self, Budget};
use crate::gosum::{GoSumLine, SumKind};
use crate::modverify::{MAX_GO_MOD, MAX_ZIP_FILE};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Two go.sum files disagree about a hash.
    #[error("{module}: the go.sum files disagree: {first} vs {second}")]
    SumConflict {
        /// `module version[/go.mod]`.
        module: String,
        /// One hash.
        first: String,
        /// The other.
        second: String,
    },
    /// The module cache's copy does not match go.sum (or is missing).
    #[error("{module}: {reason}")]
    Cache {
        /// `module@version`.
        module: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the bundle failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What went into a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Versions bundled.
    pub versions: usize,
    /// Of which with a zip.
    pub zips: usize,
    /// Bytes of files bundled.
    pub bytes: u64,
    /// Versions go listed but no go.sum has any line for (not bundled), as `module@version`.
    pub skipped: Vec<String>,
}

/// The union of go.sum lines, one hash per (module, version, kind); a disagreement is an error.
pub fn merge_sums(
    lines: impl IntoIterator<Item = GoSumLine>,
) -> Result<BTreeMap<(String, String, SumKind), String>, ExportError> {
    let mut out: BTreeMap<(String, String, SumKind), String> = BTreeMap::new();
    for l in lines {
        let key = (l.module.clone(), l.version.clone(), l.kind);
        match out.get(&key) {
            Some(h) if *h != l.hash => {
                return Err(ExportError::SumConflict {
                    module: format!(
                        "{} {}{}",
                        l.module,
                        l.version,
                        if l.kind == SumKind::GoMod {
                            "/go.mod"
                        } else {
                            ""
                        }
                    ),
                    first: h.clone(),
                    second: l.hash,
                });
            }
            _ => {
                out.insert(key, l.hash);
            }
        }
    }
    Ok(out)
}

enum Sink {
    Dir(PathBuf),
    Tar(tar::Builder<BufWriter<File>>),
}

impl Sink {
    fn add(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Dir(dir) => {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, data)
            }
            Sink::Tar(b) => {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, data)
            }
        }
    }
}

/// Bundles `versions` (module, version) from the module cache `modcache` into `out` (a tar
/// when its name ends in `.tar`, else a directory that must not exist yet).
pub fn export(
    modcache: &RootDir,
    versions: &BTreeSet<(String, String)>,
    sums: &BTreeMap<(String, String, SumKind), String>,
    go_version: &str,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| ExportError::Io { op, path, source }
    };
    let is_tar = out.extension().is_some_and(|e| e == "tar");
    if out.exists() {
        return Err(io_err("create", out)(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists: give a new name",
        )));
    }
    let mut temp_name = out.as_os_str().to_owned();
    temp_name.push(format!(".goguard-{}.tmp", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let mut sink = if is_tar {
        let f = File::create(&temp).map_err(io_err("create", &temp))?;
        Sink::Tar(tar::Builder::new(BufWriter::new(f)))
    } else {
        std::fs::create_dir(&temp).map_err(io_err("create", &temp))?;
        Sink::Dir(temp.clone())
    };
    let result = fill(modcache, versions, sums, go_version, &mut sink);
    let finish = result.and_then(|report| {
        if let Sink::Tar(b) = sink {
            let w = b.into_inner().map_err(io_err("write", &temp))?;
            let f = w
                .into_inner()
                .map_err(|e| io_err("write", &temp)(e.into_error()))?;
            f.sync_all().map_err(io_err("fsync", &temp))?;
        }
        std::fs::rename(&temp, out).map_err(io_err("rename", out))?;
        Ok(report)
    });
    if finish.is_err() {
        let _ = if is_tar {
            std::fs::remove_file(&temp)
        } else {
            std::fs::remove_dir_all(&temp)
        };
    }
    finish
}

fn fill(
    modcache: &RootDir,
    versions: &BTreeSet<(String, String)>,
    sums: &BTreeMap<(String, String, SumKind), String>,
    go_version: &str,
    sink: &mut Sink,
) -> Result<ExportReport, ExportError> {
    let mut report = ExportReport::default();
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        go_version: go_version.to_owned(),
        modules: Vec::new(),
    };
    let mut sum_lines = String::new();
    for (module, version) in versions {
        let id = format!("{module}@{version}");
        let bad = |reason: String| ExportError::Cache {
            module: id.clone(),
            reason,
        };
        let gomod_sum = sums.get(&(module.clone(), version.clone(), SumKind::GoMod));
        let zip_sum = sums.get(&(module.clone(), version.clone(), SumKind::Zip));
        let Some(gomod_sum) = gomod_sum else {
            report.skipped.push(id.clone());
            continue;
        };
        let name = |kind| member_name(module, version, kind).map_err(bad);
        let read = |kind: FileKind, limit: u64| -> Result<Vec<u8>, ExportError> {
            let n = name(kind)?;
            beneath::read_bounded(modcache.as_fd(), Path::new(&n), limit)
                .map_err(|e| bad(format!("{n} in the module cache: {e}")))
        };
        let mut files = Vec::new();
        let mut add = |kind: FileKind, data: &[u8], sink: &mut Sink| -> Result<(), ExportError> {
            let n = name(kind)?;
            sink.add(&n, data).map_err(|e| ExportError::Io {
                op: "write",
                path: PathBuf::from(&n),
                source: e,
            })?;
            report.bytes += data.len() as u64;
            files.push(FileEntry {
                name: n,
                kind,
                size: data.len() as u64,
                sha256: dirhash::hex(&Sha256::digest(data)),
            });
            Ok(())
        };
        let info = read(FileKind::Info, MAX_INFO)?;
        add(FileKind::Info, &info, sink)?;
        let gomod = read(FileKind::Mod, MAX_GO_MOD)?;
        let h = dirhash::hash_go_mod(&gomod);
        if &h != gomod_sum {
            return Err(bad(format!(
                "the cached go.mod hashes to {h}, go.sum says {gomod_sum}: the cache is \
                 corrupt (`go clean -modcache`, then download again)"
            )));
        }
        add(FileKind::Mod, &gomod, sink)?;
        sum_lines.push_str(&format!("{module} {version}/go.mod {gomod_sum}\n"));
        if let Some(zip_sum) = zip_sum {
            let zip = read(FileKind::Zip, MAX_ZIP_FILE)?;
            let budget = Budget::new(MAX_ZIP_FILE);
            let h = dirhash::summarize_zip_capped(io::Cursor::new(&zip), &budget)
                .map_err(|e| bad(format!("the cached zip cannot be hashed: {e}")))?
                .h1();
            if &h != zip_sum {
                return Err(bad(format!(
                    "the cached zip hashes to {h}, go.sum says {zip_sum}: the cache is \
                     corrupt (`go clean -modcache`, then download again)"
                )));
            }
            add(FileKind::Zip, &zip, sink)?;
            add(FileKind::Ziphash, h.as_bytes(), sink)?;
            sum_lines.push_str(&format!("{module} {version} {zip_sum}\n"));
            report.zips += 1;
        }
        report.versions += 1;
        manifest.modules.push(ModuleEntry {
            path: module.clone(),
            version: version.clone(),
            zip_h1: zip_sum.cloned(),
            gomod_h1: gomod_sum.clone(),
            files,
        });
    }
    let io = |n: &str| {
        let path = PathBuf::from(n);
        move |source| ExportError::Io {
            op: "write",
            path,
            source,
        }
    };
    sink.add(GO_SUM, sum_lines.as_bytes()).map_err(io(GO_SUM))?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io(MANIFEST)(e.into()))?;
    sink.add(MANIFEST, &json).map_err(io(MANIFEST))?;
    Ok(report)
}
