//! Importing a bundle into a GOMODCACHE: [`plan`] verifies the whole bundle and examines the
//! target without changing anything; [`place`] writes what the plan says, version by version,
//! each file atomically and each version's `.ziphash` last (see the module docs of
//! [`crate::bundle`] for the rules and their reasons).
//!
//! Must never change the target before every module of the bundle verified, follow a symlink
//! in the target (every lookup is `openat2` beneath the root with `RESOLVE_NO_SYMLINKS`), make
//! a file visible at its name before it is whole and fsynced, or write bytes other than those
//! verified (their SHA-256 is compared again while they are written).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use goguard_fs::RootDir;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::source::BundleSource;
use super::{
    FORMAT, FileKind, GO_SUM, MANIFEST, MAX_INFO, MAX_MANIFEST, Manifest, ModuleEntry, file_name,
    member_name, version_dir,
};
use crate::beneath;
use crate::dirhash::{self, Budget};
use crate::gosum::{self, GoSumLine, SumKind};
use crate::modverify::{MAX_GO_MOD, MAX_ZIP_FILE, MAX_ZIPHASH};

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle does not verify: a module's file does not match its go.sum line, the
    /// manifest or its ziphash, or the bundle is malformed. Nothing was changed.
    #[error("{module}: {reason}")]
    DoesNotVerify {
        /// `module@version`, or the bundle's path when no module is concerned.
        module: String,
        /// What does not match.
        reason: String,
    },
    /// The cache already holds a different file for a module version.
    #[error("{module}: the module cache already holds a different {path}: {reason}")]
    Conflict {
        /// `module@version`.
        module: String,
        /// Path beneath GOMODCACHE.
        path: String,
        /// How it differs.
        reason: String,
    },
    /// Something on the way in the target is a symlink, a mount point or not a directory.
    #[error("{path}: {reason}")]
    Unsafe {
        /// Path beneath GOMODCACHE.
        path: String,
        /// What is there.
        reason: String,
    },
    /// A system call failed (a full disk is `StorageFull`).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Path beneath GOMODCACHE, or the bundle member.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ImportError {
    /// True when the disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ImportError::Io { source, .. }
            if source.kind() == io::ErrorKind::StorageFull
                || source.kind() == io::ErrorKind::QuotaExceeded)
    }

    fn io(op: &'static str, path: impl Into<String>, source: impl Into<io::Error>) -> Self {
        ImportError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// go.sum lines the caller trusts, with where each came from.
#[derive(Debug, Default, Clone)]
pub struct TrustedSums {
    /// (module, version, kind) → [(source, hash)].
    lines: HashMap<(String, String, SumKind), Vec<(String, String)>>,
}

impl TrustedSums {
    /// Adds the lines of one go.sum, named `source` in messages.
    pub fn add(&mut self, source: &str, lines: &[GoSumLine]) {
        for l in lines {
            self.lines
                .entry((l.module.clone(), l.version.clone(), l.kind))
                .or_default()
                .push((source.to_owned(), l.hash.clone()));
        }
    }

    /// Checks `hash` (computed from the bundle) against every line for it: there must be at
    /// least one, and all must say `hash`.
    fn check(&self, m: &ModuleEntry, kind: SumKind, what: &str, hash: &str) -> Result<(), String> {
        let key = (m.path.clone(), m.version.clone(), kind);
        let suffix = if kind == SumKind::GoMod {
            "/go.mod"
        } else {
            ""
        };
        let Some(lines) = self.lines.get(&key).filter(|l| !l.is_empty()) else {
            return Err(format!(
                "no go.sum line `{} {}{suffix}`: its {what} cannot be verified",
                m.path, m.version
            ));
        };
        for (source, want) in lines {
            if want != hash {
                return Err(format!(
                    "{what} does not match go.sum: it hashes to {hash}, {source} says {want}"
                ));
            }
        }
        Ok(())
    }
}

/// What to do with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write it.
    Place,
    /// The cache already has it (the same content, or an `.info` that is kept).
    Present,
}

/// One file of a planned version.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// What it is.
    pub kind: FileKind,
    /// Member name in the bundle (`None` for the ziphash, written from the verified hash).
    member: Option<String>,
    /// Content to write instead of a member (the ziphash).
    content: Option<Vec<u8>>,
    /// File name in the `@v` directory.
    pub name: String,
    /// Size.
    pub size: u64,
    /// SHA-256 of the verified content.
    sha256: [u8; 32],
    /// Place or leave.
    pub action: Action,
}

/// One verified module version and what to do with its files.
#[derive(Debug, Clone)]
pub struct PlannedVersion {
    /// The manifest's entry.
    pub entry: ModuleEntry,
    /// `cache/download/<escaped module>/@v`.
    pub dir: String,
    /// Its files, in placement order.
    pub files: Vec<PlannedFile>,
}

/// A verified bundle and what importing it will do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every version of the bundle.
    pub versions: Vec<PlannedVersion>,
    /// The exporting host's `go version`.
    pub go_version: String,
}

impl Plan {
    /// Files to write.
    pub fn files_to_place(&self) -> usize {
        self.files(Action::Place).count()
    }

    /// Files already present.
    pub fn files_present(&self) -> usize {
        self.files(Action::Present).count()
    }

    /// Bytes to write.
    pub fn bytes_to_place(&self) -> u64 {
        self.files(Action::Place).map(|f| f.size).sum()
    }

    fn files(&self, action: Action) -> impl Iterator<Item = &PlannedFile> {
        self.versions
            .iter()
            .flat_map(|v| v.files.iter())
            .filter(move |f| f.action == action)
    }
}

/// Reads and verifies the whole bundle against its go.sum and `trusted`, then examines the
/// target read-only (`None`: the module cache does not exist yet, every file is to be
/// placed). `jobs` zips are hashed at once.
pub fn plan(
    source: &BundleSource,
    trusted: &TrustedSums,
    root: Option<&RootDir>,
    jobs: usize,
) -> Result<Plan, ImportError> {
    let bundle_name = source.path().display().to_string();
    let malformed = |reason: String| ImportError::DoesNotVerify {
        module: bundle_name.clone(),
        reason,
    };
    let manifest = source
        .read(MANIFEST, MAX_MANIFEST)
        .map_err(|e| malformed(format!("{MANIFEST}: {e}: not a goguard bundle")))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| malformed(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(malformed(format!(
            "format {:?}, this goguardctl reads {FORMAT:?}",
            manifest.format
        )));
    }
    let sum_text = source
        .read(GO_SUM, MAX_MANIFEST)
        .map_err(|e| malformed(format!("{GO_SUM}: {e}")))?;
    let sum_text = String::from_utf8(sum_text).map_err(|e| malformed(format!("{GO_SUM}: {e}")))?;
    let lines = gosum::parse(&sum_text).map_err(|e| malformed(format!("{GO_SUM}: {e}")))?;
    let mut sums = trusted.clone();
    sums.add("the bundle's go.sum", &lines);

    let mut seen = std::collections::HashSet::new();
    for m in &manifest.modules {
        if !seen.insert((m.path.as_str(), m.version.as_str())) {
            return Err(malformed(format!("{} is listed twice", m.id())));
        }
    }

    // Verify every version (in parallel); report the first failure in manifest order.
    let results: Vec<Result<Vec<PlannedFile>, ImportError>> =
        parallel(&manifest.modules, jobs, |m| {
            verify_version(source, &sums, m)
        });
    let mut versions = Vec::with_capacity(results.len());
    for (m, r) in manifest.modules.iter().zip(results) {
        versions.push(PlannedVersion {
            entry: m.clone(),
            dir: version_dir(&m.path).map_err(|reason| ImportError::DoesNotVerify {
                module: m.id(),
                reason,
            })?,
            files: r?,
        });
    }

    // The target, read-only.
    if let Some(root) = root {
        for v in &mut versions {
            examine_target(root, v)?;
        }
    }
    Ok(Plan {
        versions,
        go_version: manifest.go_version,
    })
}

/// Runs `f` over `items` on `jobs` threads; results in `items`' order.
fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<R>>> =
        out.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    **slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    drop(slots);
    out.into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Verifies one version's files in the bundle; returns them in placement order.
fn verify_version(
    source: &BundleSource,
    sums: &TrustedSums,
    m: &ModuleEntry,
) -> Result<Vec<PlannedFile>, ImportError> {
    let refuse = |reason: String| ImportError::DoesNotVerify {
        module: m.id(),
        reason,
    };
    // Names come from the path and version, never from the manifest.
    let mut expected_names = HashMap::new();
    for kind in FileKind::PLACEMENT {
        expected_names.insert(
            kind,
            member_name(&m.path, &m.version, kind).map_err(refuse)?,
        );
    }
    let mut kinds = std::collections::HashSet::new();
    for f in &m.files {
        if !kinds.insert(f.kind) {
            return Err(refuse(format!("two {} files", f.kind.ext())));
        }
        if f.name != expected_names[&f.kind] {
            return Err(refuse(format!(
                "{:?} is not where Go keeps its {} ({})",
                f.name,
                f.kind.ext(),
                expected_names[&f.kind]
            )));
        }
    }
    let has = |k| kinds.contains(&k);
    if !has(FileKind::Mod) || !has(FileKind::Info) {
        return Err(refuse("the bundle lacks its .mod or .info".into()));
    }
    if has(FileKind::Zip) != has(FileKind::Ziphash) || has(FileKind::Zip) != m.zip_h1.is_some() {
        return Err(refuse(
            "a zip needs its .ziphash and its h1: in the manifest".into(),
        ));
    }

    // Reads a member within `limit` (its hash is checked against go.sum by the caller first,
    // so a changed file is named for what matters; then `manifest` checks size and SHA-256).
    let read = |kind: FileKind, limit: u64| -> Result<Vec<u8>, ImportError> {
        let f = m.file(kind).expect("checked above");
        if f.size > limit {
            return Err(refuse(format!(
                "its {} is {} bytes, over Go's limit of {limit}",
                kind.ext(),
                f.size
            )));
        }
        source
            .read(&f.name, limit)
            .map_err(|e| refuse(format!("{}: {e}", f.name)))
    };
    let manifest = |kind: FileKind, data: &[u8]| -> Result<(), ImportError> {
        let f = m.file(kind).expect("checked above");
        if data.len() as u64 != f.size {
            return Err(refuse(format!(
                "{} is {} bytes, the manifest says {}",
                f.name,
                data.len(),
                f.size
            )));
        }
        if dirhash::hex(&sha256(data)) != f.sha256 {
            return Err(refuse(format!(
                "{} does not match the manifest's SHA-256",
                f.name
            )));
        }
        Ok(())
    };

    let mut planned = Vec::new();
    let mut push = |kind: FileKind, data: &[u8], from_member: bool| -> Result<(), ImportError> {
        planned.push(PlannedFile {
            kind,
            member: from_member.then(|| expected_names[&kind].clone()),
            content: (!from_member).then(|| data.to_vec()),
            name: file_name(&m.version, kind).map_err(refuse)?,
            size: data.len() as u64,
            sha256: sha256(data),
            action: Action::Place,
        });
        Ok(())
    };

    let info = read(FileKind::Info, MAX_INFO)?;
    let info_version = serde_json::from_slice::<serde_json::Value>(&info)
        .ok()
        .and_then(|v| v.get("Version").and_then(|x| x.as_str()).map(str::to_owned));
    if info_version.as_deref() != Some(m.version.as_str()) {
        return Err(refuse(
            "its .info is not Go's {\"Version\": ...} for this version".into(),
        ));
    }
    manifest(FileKind::Info, &info)?;
    push(FileKind::Info, &info, true)?;

    let gomod = read(FileKind::Mod, MAX_GO_MOD)?;
    let gomod_h1 = dirhash::hash_go_mod(&gomod);
    sums.check(m, SumKind::GoMod, "go.mod", &gomod_h1)
        .map_err(refuse)?;
    if gomod_h1 != m.gomod_h1 {
        return Err(refuse(format!(
            "go.mod hashes to {gomod_h1}, the manifest says {}",
            m.gomod_h1
        )));
    }
    manifest(FileKind::Mod, &gomod)?;
    push(FileKind::Mod, &gomod, true)?;

    if let Some(zip_h1) = &m.zip_h1 {
        let zip = read(FileKind::Zip, MAX_ZIP_FILE)?;
        let budget = Budget::new(MAX_ZIP_FILE);
        let got = dirhash::summarize_zip_capped(io::Cursor::new(&zip), &budget)
            .map_err(|e| {
                refuse(format!(
                    "zip does not verify: it cannot be read as a zip ({e}), so it cannot \
                     match go.sum"
                ))
            })?
            .h1();
        sums.check(m, SumKind::Zip, "zip", &got).map_err(refuse)?;
        if &got != zip_h1 {
            return Err(refuse(format!(
                "zip hashes to {got}, the manifest says {zip_h1}"
            )));
        }
        manifest(FileKind::Zip, &zip)?;
        let ziphash = read(FileKind::Ziphash, MAX_ZIPHASH)?;
        if String::from_utf8_lossy(&ziphash).trim() != got {
            return Err(refuse(format!(
                "its .ziphash says {:?}, the zip hashes to {got}",
                String::from_utf8_lossy(&ziphash).trim()
            )));
        }
        push(FileKind::Zip, &zip, true)?;
        // Written as Go's hashZip writes it: the hash alone.
        push(FileKind::Ziphash, got.as_bytes(), false)?;
    }
    Ok(planned)
}

/// Whether an existing file in the cache is the one planned (`Ok(true)`), another
/// (`Ok(false)`, with how), or cannot be judged.
fn same_as_planned(dir: BorrowedFd<'_>, v: &PlannedVersion, f: &PlannedFile) -> Result<(), String> {
    let rel = Path::new(&f.name);
    match f.kind {
        FileKind::Info => Ok(()), // Go rewrites .info freely; an existing one is kept
        FileKind::Mod => {
            let data = beneath::read_bounded(dir, rel, MAX_GO_MOD).map_err(|e| e.to_string())?;
            let h = dirhash::hash_go_mod(&data);
            if h == v.entry.gomod_h1 {
                Ok(())
            } else {
                Err(format!(
                    "it hashes to {h}, go.sum says {}",
                    v.entry.gomod_h1
                ))
            }
        }
        FileKind::Ziphash => {
            let data = beneath::read_bounded(dir, rel, MAX_ZIPHASH).map_err(|e| e.to_string())?;
            let want = v.entry.zip_h1.as_deref().unwrap_or_default();
            let have = String::from_utf8_lossy(&data).trim().to_owned();
            if have == want {
                Ok(())
            } else {
                Err(format!("it says {have:?}, go.sum says {want}"))
            }
        }
        FileKind::Zip => {
            let file = beneath::open_file(dir, rel).map_err(|e| e.to_string())?;
            let size = file.metadata().map_err(|e| e.to_string())?.len();
            if size > MAX_ZIP_FILE {
                return Err(format!("it is {size} bytes, over Go's limit"));
            }
            let budget = Budget::new(MAX_ZIP_FILE);
            let h = dirhash::summarize_zip_capped(BufReader::new(file), &budget)
                .map_err(|e| format!("it cannot be hashed: {e}"))?
                .h1();
            let want = v.entry.zip_h1.as_deref().unwrap_or_default();
            if h == want {
                Ok(())
            } else {
                Err(format!("it hashes to {h}, go.sum says {want}"))
            }
        }
    }
}

fn unsafe_reason(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::LOOP) => Some("a symlink on the way: not followed"),
        Some(Errno::XDEV) => Some("a mount point on the way: not crossed"),
        Some(Errno::NOTDIR) => Some("not a directory on the way"),
        _ => None,
    }
}

/// Marks each planned file `Present` when the cache already has it; refuses a different one,
/// and a symlink or mount point on the way. Read-only.
fn examine_target(root: &RootDir, v: &mut PlannedVersion) -> Result<(), ImportError> {
    let dir = match beneath::open_dir(root.as_fd(), Path::new(&v.dir)) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(match unsafe_reason(&e) {
                Some(reason) => ImportError::Unsafe {
                    path: v.dir.clone(),
                    reason: reason.into(),
                },
                None => ImportError::io("open", v.dir.clone(), e),
            });
        }
    };
    let snapshot = v.clone();
    for f in &mut v.files {
        let path = format!("{}/{}", v.dir, f.name);
        match beneath::stat_at(dir.as_fd(), f.name.as_str()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImportError::io("stat", path, e)),
            Ok(st) if st.kind == FileType::Symlink => {
                return Err(ImportError::Unsafe {
                    path,
                    reason: "a symlink: not followed".into(),
                });
            }
            Ok(st) if st.kind != FileType::RegularFile => {
                return Err(ImportError::Unsafe {
                    path,
                    reason: "not a regular file".into(),
                });
            }
            Ok(_) => match same_as_planned(dir.as_fd(), &snapshot, f) {
                Ok(()) => f.action = Action::Present,
                Err(reason) => {
                    return Err(ImportError::Conflict {
                        module: v.entry.id(),
                        path,
                        reason,
                    });
                }
            },
        }
    }
    Ok(())
}

/// What [`place`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceReport {
    /// Versions with every file in place now.
    pub versions_complete: usize,
    /// Files written.
    pub files_placed: usize,
    /// Files that were already there.
    pub files_present: usize,
    /// Bytes written.
    pub bytes_placed: u64,
    /// Temp files of an earlier, interrupted import removed.
    pub leftovers_removed: usize,
}

/// Writes what `plan` says into `root`, `jobs` versions at once (placing waits on fsync far
/// more than on the CPU: versions placed side by side share the filesystem's journal
/// commits). Within a version the order is fixed (the ziphash last). On an error no further
/// version is started; what was placed stays (each file whole, each version's zip counted by
/// Go only with its ziphash) and is in the report; the first error in plan order is returned.
pub fn place(
    source: &BundleSource,
    root: &RootDir,
    plan: &Plan,
    jobs: usize,
) -> Result<PlaceReport, (ImportError, PlaceReport)> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results = parallel(&plan.versions, jobs, |v| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut report = PlaceReport::default();
        let r = place_version(source, root, v, &mut report);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        Some((r, report))
    });
    let mut total = PlaceReport::default();
    let mut first_error = None;
    for (r, report) in results.into_iter().flatten() {
        total.files_placed += report.files_placed;
        total.files_present += report.files_present;
        total.bytes_placed += report.bytes_placed;
        total.leftovers_removed += report.leftovers_removed;
        match r {
            Ok(()) => total.versions_complete += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(total),
        Some(e) => Err((e, total)),
    }
}

/// Opens `rel` beneath the root as a directory (`O_RDONLY`), making each missing component
/// (mode 0777 less the umask, as Go's `MkdirAll`) and fsyncing the parent of each one made.
fn make_dirs(root: &RootDir, rel: &str) -> Result<OwnedFd, ImportError> {
    let open = |dir: BorrowedFd<'_>, name: &str| {
        beneath::openat2_beneath(
            dir,
            Path::new(name),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
    };
    let fail = |op: &'static str, at: &str, e: io::Error| match unsafe_reason(&e) {
        Some(reason) => ImportError::Unsafe {
            path: at.to_owned(),
            reason: reason.into(),
        },
        None => ImportError::io(op, at.to_owned(), e),
    };
    let mut cur = open(root.as_fd(), ".").map_err(|e| fail("open", ".", e))?;
    let mut at = String::new();
    for comp in rel.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(comp);
        let next = match open(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(cur.as_fd(), comp, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(fail("mkdir", &at, e.into())),
                }
                rustix::fs::fsync(cur.as_fd()).map_err(|e| fail("fsync", &at, e.into()))?;
                open(cur.as_fd(), comp).map_err(|e| fail("open", &at, e))?
            }
            Err(e) => return Err(fail("open", &at, e)),
        };
        cur = next;
    }
    Ok(cur)
}

/// Whether `name` is a temp file an import of the version `escaped_version` left.
fn is_our_temp(name: &str, escaped_version: &str) -> bool {
    FileKind::PLACEMENT.iter().any(|k| {
        name.strip_prefix(escaped_version)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_prefix(k.ext()))
            .and_then(|r| r.strip_prefix(".goguard-"))
            .is_some_and(|r| r.ends_with(".tmp"))
    })
}

fn place_version(
    source: &BundleSource,
    root: &RootDir,
    v: &PlannedVersion,
    report: &mut PlaceReport,
) -> Result<(), ImportError> {
    let todo: Vec<&PlannedFile> = v
        .files
        .iter()
        .filter(|f| f.action == Action::Place)
        .collect();
    report.files_present += v.files.len() - todo.len();
    let Some(first) = v.files.first() else {
        return Ok(());
    };
    // Even a version already complete is visited: an interrupted import may have left a
    // temp file beside files a later run (or Go) completed.
    let dir = make_dirs(root, &v.dir)?;
    let escaped_version = first
        .name
        .rsplit_once('.')
        .map_or(first.name.as_str(), |(stem, _)| stem)
        .to_owned();
    // Go's own per-version lock (`lockVersion`): a go command downloading this version
    // meanwhile waits for us, and we for it.
    let lock_name = format!("{escaped_version}.lock");
    let lock = beneath::openat2_beneath(
        dir.as_fd(),
        Path::new(&lock_name),
        OFlags::RDWR | OFlags::CREATE,
        Mode::from_raw_mode(0o666),
    )
    .map_err(|e| ImportError::io("open", format!("{}/{lock_name}", v.dir), e))?;
    loop {
        match rustix::fs::flock(&lock, FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ImportError::io("lock", format!("{}/{lock_name}", v.dir), e)),
        }
    }
    // Temp files of an interrupted import of this version.
    let names = beneath::list_names(dir.as_fd()).map_err(|e| ImportError::io("list", &v.dir, e))?;
    for n in names {
        let Ok(name) = n.to_str() else { continue };
        if is_our_temp(name, &escaped_version)
            && beneath::stat_at(dir.as_fd(), &n).is_ok_and(|s| s.kind == FileType::RegularFile)
        {
            match rustix::fs::unlinkat(dir.as_fd(), &n, AtFlags::empty()) {
                Ok(()) => report.leftovers_removed += 1,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(ImportError::io("unlink", format!("{}/{name}", v.dir), e)),
            }
        }
    }
    for f in todo {
        if place_file(source, dir.as_fd(), v, f)? {
            report.files_placed += 1;
            report.bytes_placed += f.size;
        } else {
            report.files_present += 1;
        }
    }
    rustix::fs::fsync(&dir).map_err(|e| ImportError::io("fsync", &v.dir, e))?;
    drop(lock);
    Ok(())
}

static TEMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Writes one file through a temp file and renames it into place. `Ok(false)`: the same file
/// appeared meanwhile and was kept.
fn place_file(
    source: &BundleSource,
    dir: BorrowedFd<'_>,
    v: &PlannedVersion,
    f: &PlannedFile,
) -> Result<bool, ImportError> {
    let temp = format!(
        "{}.goguard-{}-{}.tmp",
        f.name,
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = format!("{}/{}", v.dir, f.name);
    let fd = beneath::openat2_beneath(
        dir,
        Path::new(&temp),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o666),
    )
    .map_err(|e| ImportError::io("create", format!("{}/{temp}", v.dir), e))?;
    let result = write_verified(source, File::from(fd), f, &v.entry.id(), &path).and_then(|()| {
        match rustix::fs::renameat_with(dir, &temp, dir, &f.name, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(ImportError::io("rename", path.clone(), e)),
        }
    });
    if !matches!(result, Ok(true)) {
        let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
    }
    if let Ok(false) = result {
        // Someone (a go command) placed it since the plan: keep theirs if it is the same.
        same_as_planned(dir, v, f).map_err(|reason| ImportError::Conflict {
            module: v.entry.id(),
            path: path.clone(),
            reason,
        })?;
    }
    result
}

/// Copies the verified content into `file`, comparing its SHA-256 again, and fsyncs it.
fn write_verified(
    source: &BundleSource,
    mut file: File,
    f: &PlannedFile,
    module: &str,
    path: &str,
) -> Result<(), ImportError> {
    let mut hasher = Sha256::new();
    let write_err = |e: io::Error| ImportError::io("write", path.to_owned(), e);
    match (&f.content, &f.member) {
        (Some(bytes), _) => {
            hasher.update(bytes);
            file.write_all(bytes).map_err(write_err)?;
        }
        (None, Some(member)) => {
            let mut r = source
                .reader(member, f.size)
                .map_err(|e| ImportError::io("read", member.clone(), e))?;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ImportError::io("read", member.clone(), e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(write_err)?;
            }
        }
        (None, None) => unreachable!("a planned file has content or a member"),
    }
    let got: [u8; 32] = hasher.finalize().into();
    if got != f.sha256 {
        return Err(ImportError::DoesNotVerify {
            module: module.to_owned(),
            reason: format!(
                "{}: the bundle changed while it was imported (not placed)",
                f.name
            ),
        });
    }
    file.sync_all()
        .map_err(|e| ImportError::io("fsync", path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_temp_names_are_leftovers() {
        assert!(is_our_temp("v1.0.0.zip.goguard-12-0.tmp", "v1.0.0"));
        assert!(is_our_temp("v1.0.0.ziphash.goguard-1-9.tmp", "v1.0.0"));
        assert!(!is_our_temp("v1.0.0.zip123456.tmp", "v1.0.0")); // Go's
        assert!(!is_our_temp("v1.0.0.1.zip.goguard-1-0.tmp", "v1.0.0"));
        assert!(!is_our_temp("v1.0.0.zip", "v1.0.0"));
    }
}
