//! Path resolution by inode: an AVC without a PATH record names its target
//! only by `name=`, `dev=` and `ino=`; this finds the full path when the
//! target lies inside a cache root.
//!
//! `dev=` is the superblock's `s_id`: a block device's kernel name (`dm-0`,
//! `sda1`, `vda`) for disk filesystems, the filesystem type (`tmpfs`,
//! `overlay`) for the others. A root is a candidate when its `st_dev` is the
//! block device's number (`/sys/class/block/NAME/dev`), or when its mount's
//! source is that device, or, for a non-block `dev=`, when its mount's
//! filesystem type (from `/proc/self/mountinfo`) is that name. Only candidate
//! roots are walked, with goguard-fs's fd-based walk (no symlink followed, no
//! mount crossed), and after [`MAX_WALK_ENTRIES`] entries per resolution. An
//! entry is the target when its inode, name and kind (`tclass`) match and, on a
//! filesystem named by type (tmpfs), its SELinux type is `tcontext`'s when it is
//! labeled ([`fits`]). On a block device the label is not asked: inode and name
//! name one file there, and self-healing has often relabelled the target by the
//! time its denial is read (found on an enforcing kernel).
//!
//! A block device's `dev=` names one filesystem: the first match wins. A
//! type name (`tmpfs`, `overlay`) names none in particular: every tmpfs has
//! its own inode numbers, so the same `ino=` exists on each (a user's file on
//! one, an admin's root on another). There the walk goes on through every
//! candidate root, and matches on more than one device (`st_dev`) make the
//! answer ambiguous: nothing is resolved ([`pick`]). Answers are cached,
//! bounded; a cached path is checked again (one `openat2`) before it is used.
//!
//! The matching rules are pure functions ([`parse_mountinfo`],
//! [`candidate_roots`], [`is_target`]); [`InodeResolver`] is the I/O around
//! them. Never changes anything, never reads outside the roots except
//! `/sys/class/block/NAME/dev` (NAME checked to be one path component) and
//! `/proc/self/mountinfo`.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use goguard_audit::Avc;
use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, RootDir, WalkOptions};

/// Entries visited at most per resolution (all candidate roots together).
pub const MAX_WALK_ENTRIES: u64 = 500_000;
/// Answers kept.
const CACHE: usize = 1024;
/// How long "not found" is believed before walking again.
const MISS_TTL: Duration = Duration::from_secs(60);
/// Walking time per [`BUDGET_WINDOW`] for denials that are not go-related by
/// their command (they are only *possibly* in a root): on a host whose homes
/// share the root filesystem, every path-less denial would qualify.
const SPECULATIVE_BUDGET: Duration = Duration::from_secs(2);
const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// One line of `/proc/self/mountinfo`, the fields the matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u64,
    /// `st_dev` of files on this mount (`major:minor`).
    pub dev: u64,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The mount source (`/dev/vda`, `tmpfs`, `overlay`).
    pub source: String,
}

/// Parses `/proc/self/mountinfo` (proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let (maj, min) = l.get(2)?.split_once(':')?;
            Some(MountEntry {
                mount_id: l.first()?.parse().ok()?,
                dev: rustix::fs::makedev(maj.parse().ok()?, min.parse().ok()?),
                mount_point: PathBuf::from(unescape_octal(l.get(4)?)),
                fstype: (*r.first()?).to_owned(),
                source: unescape_octal(r.get(1)?),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u16, |acc, c| acc * 8 + u16::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A root and the filesystem it lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFilesystem {
    pub root: PathBuf,
    /// `st_dev` of the root directory.
    pub dev: u64,
    /// Its mount, when found in mountinfo.
    pub mount: Option<MountEntry>,
}

/// Whether `name` can be a kernel device name to look up under
/// `/sys/class/block` (one non-empty path component).
pub fn is_device_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// The roots that may hold an inode of the filesystem the kernel calls
/// `avc_dev`. `block_dev`: the device number of `/sys/class/block/AVC_DEV`,
/// when `avc_dev` is a block device.
pub fn candidate_roots<'a>(
    avc_dev: &str,
    block_dev: Option<u64>,
    roots: &'a [RootFilesystem],
) -> Vec<&'a Path> {
    roots
        .iter()
        .filter(|r| match block_dev {
            Some(d) => {
                r.dev == d
                    || r.mount.as_ref().is_some_and(|m| {
                        m.source.rsplit('/').next() == Some(avc_dev)
                            && m.source.starts_with("/dev/")
                    })
            }
            // Not a block device: s_id is the filesystem's type name.
            None => r
                .mount
                .as_ref()
                .is_some_and(|m| m.fstype == avc_dev || m.source == avc_dev),
        })
        .map(|r| r.root.as_path())
        .collect()
}

/// Whether a walked entry is the AVC's target: the same inode and, when the
/// AVC has `name=`, that name as the last component (the root itself has no
/// name of its own here and matches by inode only).
pub fn is_target(entry_ino: u64, entry_name: &[u8], ino: u64, name: Option<&str>) -> bool {
    entry_ino == ino && name.is_none_or(|n| n.as_bytes() == entry_name || entry_name == b".")
}

/// Whether an entry of `kind` labeled `label` can be the target of an AVC with `tclass`
/// and `tcontext`: the kind must be the class's, and a labeled entry's SELinux type must be
/// the target context's (an unlabeled entry, on a host or filesystem without labels, is
/// judged by kind only). Unknown classes do not rule an entry out.
pub fn fits(
    kind: goguard_fs::FileKind,
    label: Option<&str>,
    tclass: Option<&str>,
    tcontext: Option<&str>,
) -> bool {
    use goguard_fs::FileKind as K;
    let kind_ok = match tclass {
        Some("file") => kind == K::File,
        Some("dir") => kind == K::Dir,
        Some("lnk_file") => kind == K::Symlink,
        Some("fifo_file") => kind == K::Fifo,
        Some("sock_file") => kind == K::Socket,
        Some("chr_file") => kind == K::CharDevice,
        Some("blk_file") => kind == K::BlockDevice,
        _ => true,
    };
    let type_of = goguard_policy::drift::context_type;
    let label_ok = match (label, tcontext) {
        (Some(l), Some(t)) => type_of(l) == type_of(t),
        _ => true,
    };
    kind_ok && label_ok
}

/// The answer from the matches found, each with its device: for a block device (`exact`)
/// the first; for a filesystem type name, the match only when every match lies on one
/// device (more than one device: ambiguous, `None`).
pub fn pick(matches: &[(PathBuf, u64)], exact: bool) -> Option<PathBuf> {
    let (first, dev) = matches.first()?;
    if exact || matches.iter().all(|(_, d)| d == dev) {
        Some(first.clone())
    } else {
        None
    }
}

/// (dev, ino, name) of an AVC that lacks a full path; `None` when it has one
/// or lacks any of them.
pub fn unresolved(avc: &Avc) -> Option<(String, u64, Option<String>)> {
    if avc.path.as_ref().is_some_and(|p| p.is_absolute()) {
        return None;
    }
    let ino = avc.ino.as_deref()?.parse().ok()?;
    Some((avc.dev.clone()?, ino, avc.name.clone()))
}

/// (dev, ino, name, tclass, tcontext).
type Key = (String, u64, Option<String>, Option<String>, Option<String>);

/// Finds targets by inode inside the roots, with a bounded cache.
#[derive(Default)]
pub struct InodeResolver {
    cache: HashMap<Key, (Option<PathBuf>, Instant)>,
    order: VecDeque<Key>,
    /// Start of the current budget window and the walking time spent in it
    /// on speculative (not go-related) look-ups.
    window: Option<(Instant, Duration)>,
    /// Speculative look-ups skipped because the budget was spent (a metric
    /// would go here; logged for now).
    pub skipped: u64,
}

/// How one resolution went, for logs and measurements.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkCost {
    pub roots_walked: usize,
    pub entries: u64,
    pub elapsed: Duration,
}

impl InodeResolver {
    /// The full path of `avc`'s target when it lacks one and lies inside one
    /// of `roots`. `go_related`: the command alone makes the denial
    /// go-related; other denials are looked up within a time budget.
    /// Blocking (walks).
    pub fn resolve(&mut self, avc: &Avc, roots: &[PathBuf], go_related: bool) -> Option<PathBuf> {
        let (dev, ino, name) = unresolved(avc)?;
        let key: Key = (dev, ino, name, avc.tclass.clone(), avc.tcontext.clone());
        if roots.is_empty() {
            return None;
        }
        if let Some((hit, at)) = self.cache.get(&key) {
            match hit {
                Some(p) if still_there(p, key.1, roots) => return Some(p.clone()),
                None if at.elapsed() < MISS_TTL => return None,
                _ => {}
            }
        }
        let now = Instant::now();
        let (start, spent) = match self.window {
            Some((start, spent)) if now.duration_since(start) < BUDGET_WINDOW => (start, spent),
            _ => (now, Duration::ZERO),
        };
        if !go_related && spent >= SPECULATIVE_BUDGET {
            self.skipped += 1;
            if self.skipped.is_power_of_two() {
                tracing::info!(
                    skipped = self.skipped,
                    "audit: inode look-ups of denials that are not go-related are over their time budget; skipping some"
                );
            }
            return None;
        }
        let target = Target {
            ino: key.1,
            name: key.2.as_deref(),
            tclass: key.3.as_deref(),
            tcontext: key.4.as_deref(),
        };
        let (found, cost) = find(&key.0, &target, roots);
        let spent = if go_related {
            spent
        } else {
            spent + cost.elapsed
        };
        self.window = Some((start, spent));
        tracing::debug!(dev = %key.0, ino = key.1, found = ?found, roots = cost.roots_walked, entries = cost.entries, us = cost.elapsed.as_micros() as u64, "audit: target looked up by inode");
        if self.order.len() >= CACHE
            && let Some(old) = self.order.pop_front()
        {
            self.cache.remove(&old);
        }
        if self
            .cache
            .insert(key.clone(), (found.clone(), Instant::now()))
            .is_none()
        {
            self.order.push_back(key);
        }
        found
    }
}

/// Whether `path` (inside one of `roots`) is still inode `ino`.
fn still_there(path: &Path, ino: u64, roots: &[PathBuf]) -> bool {
    let Some(root) = roots.iter().find(|r| path.starts_with(r)) else {
        return false;
    };
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    RootDir::open(root)
        .and_then(|d| d.open_entry(rel))
        .is_ok_and(|e| e.meta().ino == ino)
}

/// The filesystem of each existing root.
fn root_filesystems(roots: &[PathBuf]) -> Vec<RootFilesystem> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    roots
        .iter()
        .filter_map(|root| {
            let dir = RootDir::open(root).ok()?;
            let meta = *dir.meta();
            let mount = mounts
                .iter()
                .find(|m| meta.mnt_id != 0 && m.mount_id == meta.mnt_id)
                .or_else(|| {
                    mounts
                        .iter()
                        .filter(|m| m.dev == meta.dev && root.starts_with(&m.mount_point))
                        .max_by_key(|m| m.mount_point.components().count())
                })
                .cloned();
            Some(RootFilesystem {
                root: root.clone(),
                dev: meta.dev,
                mount,
            })
        })
        .collect()
}

/// `/sys/class/block/NAME/dev` as a device number.
fn block_device(name: &str) -> Option<u64> {
    if !is_device_name(name) {
        return None;
    }
    let text =
        std::fs::read_to_string(Path::new("/sys/class/block").join(name).join("dev")).ok()?;
    let (maj, min) = text.trim().split_once(':')?;
    Some(rustix::fs::makedev(maj.parse().ok()?, min.parse().ok()?))
}

/// What an AVC says of its target.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub ino: u64,
    pub name: Option<&'a str>,
    pub tclass: Option<&'a str>,
    pub tcontext: Option<&'a str>,
}

/// Walks the candidate roots for the entry: on a block device the first match wins; on a
/// filesystem named by type every candidate is walked and the answer must lie on one
/// device ([`pick`]).
pub fn find(avc_dev: &str, target: &Target<'_>, roots: &[PathBuf]) -> (Option<PathBuf>, WalkCost) {
    let started = Instant::now();
    let mut cost = WalkCost::default();
    let filesystems = root_filesystems(roots);
    let block = block_device(avc_dev);
    let exact = block.is_some();
    let mut candidates = candidate_roots(avc_dev, block, &filesystems);
    // Nested roots: walk the outer one only (it covers the inner one).
    candidates.sort_by_key(|p| p.components().count());
    let mut walked: Vec<&Path> = Vec::new();
    let mut matches: Vec<(PathBuf, u64)> = Vec::new();
    for root in candidates {
        if (exact && !matches.is_empty()) || cost.entries >= MAX_WALK_ENTRIES {
            break;
        }
        if walked.iter().any(|w| root.starts_with(w)) {
            continue;
        }
        walked.push(root);
        let Ok(dir) = RootDir::open(root) else {
            continue;
        };
        cost.roots_walked += 1;
        let mut visitor = FnVisitor(|e: &goguard_fs::WalkEntry<'_>| {
            cost.entries += 1;
            // The label rules out same-numbered inodes of other filesystems of one type
            // (tmpfs). A block device names one filesystem, where inode and name are
            // enough; there the label is not asked, since self-healing has often
            // relabelled the target by the time its denial is read (the denial is
            // usually why).
            let label = if exact {
                None
            } else {
                e.label().ok().flatten()
            };
            if is_target(e.meta.ino, e.name.to_bytes(), target.ino, target.name)
                && fits(
                    e.meta.kind,
                    label.as_deref(),
                    target.tclass,
                    target.tcontext,
                )
            {
                matches.push((root.join(e.rel), e.meta.dev));
                if exact {
                    return Control::Stop;
                }
            }
            if cost.entries >= MAX_WALK_ENTRIES {
                return Control::Stop;
            }
            Control::Continue
        });
        goguard_fs::walk(&dir, &WalkOptions::default(), &mut visitor);
    }
    cost.elapsed = started.elapsed();
    let found = pick(&matches, exact);
    if found.is_none() && !matches.is_empty() {
        tracing::info!(
            dev = avc_dev,
            ino = target.ino,
            matches = matches.len(),
            "audit: a target named only by filesystem type and inode matches entries on more \
             than one filesystem: not resolved"
        );
    }
    // `root.join("")` (the root itself) ends in '/': drop it.
    let found = found.map(|p: PathBuf| {
        let b = p.as_os_str().as_bytes();
        PathBuf::from(OsStr::from_bytes(b.strip_suffix(b"/").unwrap_or(b)))
    });
    (found, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw
25 22 0:23 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=100k
31 22 253:1 / /srv/go\\040cache rw - xfs /dev/sda1 rw
40 22 0:50 / /var/lib/containers/x rw - overlay overlay rw,lowerdir=/a
bad line
";

    fn fs(root: &str, dev: u64, mount: usize) -> RootFilesystem {
        RootFilesystem {
            root: root.into(),
            dev,
            mount: Some(parse_mountinfo(MOUNTINFO)[mount].clone()),
        }
    }

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].dev, rustix::fs::makedev(252, 0));
        assert_eq!(m[0].source, "/dev/mapper/vg-root");
        assert_eq!(m[1].fstype, "tmpfs");
        assert_eq!(m[2].mount_point, Path::new("/srv/go cache"));
        assert_eq!(m[2].mount_id, 31);
        assert_eq!(m[3].fstype, "overlay");
    }

    #[test]
    fn block_devices_match_by_number_or_source() {
        let roots = [
            fs("/home/a/.cache/go-build", rustix::fs::makedev(252, 0), 0),
            fs("/tmp/gocache", rustix::fs::makedev(0, 23), 1),
            fs("/srv/go cache/mod", rustix::fs::makedev(253, 1), 2),
        ];
        // dm-0 is 252:0 on this host.
        assert_eq!(
            candidate_roots("dm-0", Some(rustix::fs::makedev(252, 0)), &roots),
            [Path::new("/home/a/.cache/go-build")]
        );
        // btrfs-like: st_dev differs from the block device, the source names it.
        let mut odd = fs("/srv/go cache/mod", 99, 2);
        odd.dev = 99;
        assert_eq!(
            candidate_roots("sda1", Some(rustix::fs::makedev(8, 1)), &[odd]),
            [Path::new("/srv/go cache/mod")]
        );
        assert!(candidate_roots("sdb", Some(rustix::fs::makedev(8, 16)), &roots).is_empty());
    }

    #[test]
    fn non_block_filesystems_match_by_type() {
        let roots = [
            fs("/home/a/.cache/go-build", rustix::fs::makedev(252, 0), 0),
            fs("/tmp/gocache", rustix::fs::makedev(0, 23), 1),
            fs("/var/lib/containers/x/go", rustix::fs::makedev(0, 50), 3),
        ];
        assert_eq!(
            candidate_roots("tmpfs", None, &roots),
            [Path::new("/tmp/gocache")]
        );
        assert_eq!(
            candidate_roots("overlay", None, &roots),
            [Path::new("/var/lib/containers/x/go")]
        );
        assert!(candidate_roots("proc", None, &roots).is_empty());
        let unmounted = RootFilesystem {
            root: "/x".into(),
            dev: 1,
            mount: None,
        };
        assert!(candidate_roots("tmpfs", None, &[unmounted]).is_empty());
    }

    #[test]
    fn targets_match_inode_and_name() {
        assert!(is_target(42, b"a.go", 42, Some("a.go")));
        assert!(is_target(42, b"a.go", 42, None));
        assert!(!is_target(42, b"b.go", 42, Some("a.go")));
        assert!(!is_target(41, b"a.go", 42, Some("a.go")));
        // The root itself is visited as ".".
        assert!(is_target(42, b".", 42, Some("go-build")));
    }

    #[test]
    fn kind_and_label_type_must_fit_the_avc() {
        use goguard_fs::FileKind as K;
        let t = Some("system_u:object_r:cache_home_t:s0");
        assert!(fits(
            K::File,
            Some("u:object_r:cache_home_t:s0"),
            Some("file"),
            t
        ));
        assert!(!fits(
            K::File,
            Some("u:object_r:tmpfs_t:s0"),
            Some("file"),
            t
        ));
        assert!(!fits(K::Dir, None, Some("file"), t));
        assert!(
            fits(K::File, None, Some("file"), t),
            "unlabeled: by kind only"
        );
        assert!(fits(K::Dir, None, Some("process"), None));
    }

    #[test]
    fn a_type_named_filesystem_answers_only_from_one_device() {
        let a = (PathBuf::from("/srv/admin/f"), 10);
        let b = (PathBuf::from("/home/u/tmp/f"), 11);
        assert_eq!(pick(std::slice::from_ref(&a), false), Some(a.0.clone()));
        assert_eq!(pick(&[a.clone(), b.clone()], false), None);
        assert_eq!(pick(&[a.clone(), b], true), Some(a.0.clone()));
        assert_eq!(pick(&[], false), None);
    }

    #[test]
    fn device_names_are_one_component() {
        assert!(is_device_name("dm-0"));
        assert!(is_device_name("sda1"));
        for bad in ["", ".", "..", "../../etc", "a/b"] {
            assert!(!is_device_name(bad), "{bad}");
        }
    }

    #[test]
    fn finds_a_real_file_by_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/target.go"), "x").unwrap();
        let md = std::fs::metadata(root.join("a/b/target.go")).unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let m = parse_mountinfo(&mounts);
        let roots = [root.clone()];
        let fsys = root_filesystems(&roots);
        let mount = fsys[0].mount.clone().expect("mount of the temp dir");
        assert!(m.contains(&mount));
        // The kernel's name for it: the block device, else the fs type.
        let dev_name = if mount.source.starts_with("/dev/") {
            std::fs::canonicalize(&mount.source)
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        } else {
            mount.fstype.clone()
        };
        let t = |name| Target {
            ino: md.ino(),
            name: Some(name),
            tclass: Some("file"),
            tcontext: None,
        };
        let (found, cost) = find(&dev_name, &t("target.go"), &roots);
        assert_eq!(found.as_deref(), Some(root.join("a/b/target.go").as_path()));
        assert_eq!(cost.roots_walked, 1);
        assert!(cost.entries <= 5, "{cost:?}");
        let (none, _) = find(&dev_name, &t("other.go"), &roots);
        assert_eq!(none, None);
        let (dir_class, _) = find(
            &dev_name,
            &Target {
                tclass: Some("dir"),
                ..t("target.go")
            },
            &roots,
        );
        assert_eq!(dir_class, None, "a file is not the target of a dir AVC");
    }

    #[test]
    fn speculative_look_ups_stop_at_the_budget_and_go_ones_do_not() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("t.go"), "x").unwrap();
        let ino = std::fs::metadata(root.join("t.go")).unwrap().ino();
        let fsys = root_filesystems(std::slice::from_ref(&root));
        let mount = fsys[0].mount.clone().unwrap();
        let dev = if mount.source.starts_with("/dev/") {
            let real = std::fs::canonicalize(&mount.source).unwrap();
            real.file_name().unwrap().to_string_lossy().into_owned()
        } else {
            mount.fstype
        };
        let line = format!(
            "type=AVC msg=audit(1700000000.1:1): avc:  denied  {{ read }} for  pid=1 comm=\"unzip\" name=\"t.go\" dev=\"{dev}\" ino={ino} scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file permissive=0\n"
        );
        let (events, _) = goguard_audit::parse_log(line.as_bytes());
        let avc = &events[0].avcs()[0];
        let roots = [root.clone()];
        let mut r = InodeResolver {
            window: Some((Instant::now(), SPECULATIVE_BUDGET)),
            ..InodeResolver::default()
        };
        assert_eq!(r.resolve(avc, &roots, false), None);
        assert_eq!(r.skipped, 1);
        assert_eq!(r.resolve(avc, &roots, true), Some(root.join("t.go")));
        // Cached now, and checked again before use.
        assert_eq!(r.resolve(avc, &roots, false), Some(root.join("t.go")));
        std::fs::remove_file(root.join("t.go")).unwrap();
        assert_eq!(r.resolve(avc, &roots, true), None);
    }
}
