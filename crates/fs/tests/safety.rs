//! Safety tests with real files (run as root): openat2 refusals (symlink mid-path, trailing
//! symlink, `..`, absolute paths, mounts inside the root), symlinks never changed through,
//! targets outside the root untouched, the walk's mount and symlink handling, fd limits, and
//! idempotent chown/chmod/label/ACL with Outcome reporting.
//!
//! These tests must never change anything outside their temp dirs.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use common::{TmpfsMount, snapshot};
use goguard_fs::acl::{NameKind, parse_ops};
use goguard_fs::walk::FnVisitor;
use goguard_fs::{
    AclKind, Control, FsError, Outcome, Owner, RootDir, Visitor, WalkEntry, WalkOptions, walk,
    walk_parallel,
};

fn names(_: NameKind, _: &str) -> Option<u32> {
    None
}

/// A visitor that records the entries and mount points a walk reports, by relative path.
#[derive(Default)]
struct Seen {
    entries: Vec<String>,
    mounts: Vec<String>,
}

impl Visitor for Seen {
    fn entry(&mut self, e: &WalkEntry<'_>) -> Control {
        self.entries.push(e.rel.to_string_lossy().into_owned());
        Control::Continue
    }
    fn mount_point(&mut self, e: &WalkEntry<'_>) {
        self.mounts.push(e.rel.to_string_lossy().into_owned());
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

/// root/{dir/file, file, link_out -> outside/secret, link_dir -> outside, dir/link_in -> ../file}
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("dir/file"), b"x").unwrap();
    std::fs::write(root.join("file"), b"x").unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    symlink(outside.join("secret"), root.join("link_out")).unwrap();
    symlink(&outside, root.join("link_dir")).unwrap();
    symlink("../file", root.join("dir/link_in")).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        outside,
    }
}

#[test]
fn open_refuses_escapes_and_symlinks_in_the_path() {
    let f = fixture();
    let root = RootDir::open(&f.root).unwrap();
    assert!(root.open_entry("dir/file").is_ok());
    assert!(root.open_entry("").unwrap().meta().is_dir());
    assert!(matches!(
        root.open_entry("../outside/secret"),
        Err(FsError::NotBeneath { .. })
    ));
    assert!(matches!(
        root.open_entry("dir/../file"),
        Err(FsError::NotBeneath { .. })
    ));
    assert!(matches!(
        root.open_entry(f.outside.join("secret")),
        Err(FsError::NotBeneath { .. })
    ));
    // A symlink mid-path is never followed.
    assert!(matches!(
        root.open_entry("link_dir/secret"),
        Err(FsError::Symlink { .. })
    ));
    // A trailing symlink is opened as the link itself.
    let e = root.open_entry("link_out").unwrap();
    assert!(e.meta().is_symlink());
    assert_eq!(e.rel_path(), Path::new("link_out"));
    // Missing entries are a typed not-found.
    assert!(root.open_entry("nope").unwrap_err().is_not_found());
}

#[test]
fn root_must_not_be_a_symlink() {
    let f = fixture();
    let link = f.root.parent().unwrap().join("rootlink");
    symlink(&f.root, &link).unwrap();
    assert!(matches!(
        RootDir::open(&link),
        Err(FsError::RootIsSymlink { .. })
    ));
    assert!(matches!(
        RootDir::open(f.root.join("file")),
        Err(FsError::OpenRoot { .. })
    ));
}

#[test]
fn changes_through_a_symlink_never_reach_its_target() {
    let f = fixture();
    let before = snapshot(&f.outside);
    let root = RootDir::open(&f.root).unwrap();
    let ops = parse_ops("u:4321:rwx,d:u:4321:rwx", false, &names).unwrap();
    for rel in ["link_out", "link_dir"] {
        let mut e = root.open_entry(rel).unwrap();
        assert!(
            matches!(
                e.chmod(0o777),
                Err(FsError::Refused {
                    kind: "symlink",
                    ..
                })
            ),
            "{rel}"
        );
        assert!(matches!(
            e.set_label("system_u:object_r:tmp_t:s0"),
            Err(FsError::Refused { .. })
        ));
        assert!(matches!(e.apply_acl(&ops), Err(FsError::Refused { .. })));
        assert!(matches!(
            e.remove_acl(AclKind::Access),
            Err(FsError::Refused { .. })
        ));
        assert_eq!(e.acl(AclKind::Access).unwrap(), None);
        // chown changes the link itself (like chown -h), never the target.
        let out = e.chown(Some(4321), Some(4321)).unwrap();
        assert!(out.changed());
        let lmd = std::fs::symlink_metadata(f.root.join(rel)).unwrap();
        assert_eq!((lmd.uid(), lmd.gid()), (4321, 4321));
    }
    assert_eq!(
        snapshot(&f.outside),
        before,
        "nothing outside the root changed"
    );
}

#[test]
fn chown_chmod_label_acl_are_idempotent_and_report() {
    let f = fixture();
    let root = RootDir::open(&f.root).unwrap();
    let mut e = root.open_entry("dir/file").unwrap();
    let (uid0, gid0) = (e.meta().uid, e.meta().gid);
    assert_eq!(
        e.chown(Some(1000), Some(1001)).unwrap(),
        Outcome::Changed {
            before: Owner {
                uid: uid0,
                gid: gid0
            },
            after: Owner {
                uid: 1000,
                gid: 1001
            }
        }
    );
    assert_eq!(
        e.chown(Some(1000), Some(1001)).unwrap(),
        Outcome::AlreadyCompliant
    );
    assert_eq!(e.chown(None, None).unwrap(), Outcome::AlreadyCompliant);
    let md = std::fs::metadata(f.root.join("dir/file")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1001));

    let m0 = e.meta().mode;
    assert_eq!(
        e.chmod(0o2640).unwrap(),
        Outcome::Changed {
            before: m0,
            after: 0o2640
        }
    );
    assert_eq!(e.chmod(0o2640).unwrap(), Outcome::AlreadyCompliant);
    assert_eq!(
        std::fs::metadata(f.root.join("dir/file")).unwrap().mode() & 0o7777,
        0o2640
    );

    let ctx = "system_u:object_r:cache_home_t:s0";
    let before = e.label().unwrap();
    assert_eq!(
        e.set_label(ctx).unwrap(),
        Outcome::Changed {
            before,
            after: Some(ctx.to_owned())
        }
    );
    assert_eq!(e.set_label(ctx).unwrap(), Outcome::AlreadyCompliant);
    assert_eq!(e.label().unwrap().as_deref(), Some(ctx));
    let raw = common::run(
        std::process::Command::new("getfattr")
            .args(["--only-values", "-n", "security.selinux"])
            .arg(f.root.join("dir/file")),
    );
    assert_eq!(raw.trim_end_matches('\0'), ctx);
    assert!(matches!(
        e.set_label("not a context"),
        Err(FsError::BadContext { .. })
    ));

    let ops = parse_ops("g:4242:rwX", false, &names).unwrap();
    assert!(e.apply_acl(&ops).unwrap().changed());
    assert_eq!(e.apply_acl(&ops).unwrap(), Outcome::AlreadyCompliant);
    // The mask shows as group bits (setgid kept: we are root).
    assert_eq!(e.meta().mode, 0o2660);
    assert!(e.remove_acl(AclKind::Access).unwrap().changed());
    assert_eq!(
        e.remove_acl(AclKind::Access).unwrap(),
        Outcome::AlreadyCompliant
    );
    assert_eq!(e.acl(AclKind::Access).unwrap(), None);
    assert_eq!(e.meta().mode, 0o2640);
}

#[test]
fn mounts_inside_the_root_are_not_crossed() {
    let f = fixture();
    std::fs::write(f.outside.join("bound"), b"b").unwrap();
    let tmpfs = TmpfsMount::new(&f.root.join("mnt"));
    let bind = TmpfsMount::bind(&f.outside, &f.root.join("bind"));
    if let Some(_m) = &tmpfs {
        std::fs::write(f.root.join("mnt/inside"), b"i").unwrap();
    }
    let root = RootDir::open(&f.root).unwrap();
    if tmpfs.is_some() {
        assert!(matches!(
            root.open_entry("mnt"),
            Err(FsError::CrossesMount { .. })
        ));
        assert!(matches!(
            root.open_entry("mnt/inside"),
            Err(FsError::CrossesMount { .. })
        ));
    }
    if bind.is_some() {
        assert!(matches!(
            root.open_entry("bind/bound"),
            Err(FsError::CrossesMount { .. })
        ));
    }

    let mut seen = Seen::default();
    let stats = walk(&root, &WalkOptions::default(), &mut seen);
    let mut expect_mounts = Vec::new();
    if tmpfs.is_some() {
        expect_mounts.push("mnt".to_owned());
    }
    if bind.is_some() {
        expect_mounts.push("bind".to_owned());
    }
    seen.mounts.sort();
    expect_mounts.sort();
    assert_eq!(seen.mounts, expect_mounts);
    assert_eq!(stats.mount_points as usize, expect_mounts.len());
    assert!(
        !seen
            .entries
            .iter()
            .any(|e| e.starts_with("mnt/") || e.starts_with("bind/"))
    );
    // Symlinks are visited as symlinks, never entered.
    assert!(seen.entries.contains(&"link_dir".to_owned()));
    assert!(!seen.entries.iter().any(|e| e.starts_with("link_dir/")));
    if tmpfs.is_none() {
        // Fallback: the st_dev logic on the root itself: /dev/shm is another filesystem.
        let shm = RootDir::open("/dev/shm").unwrap();
        assert_ne!(shm.meta().dev, root.meta().dev);
    }
}

#[test]
fn a_parallel_walk_visits_exactly_what_the_walk_visits() {
    let f = fixture();
    for d in 0..12 {
        let dir = f.root.join(format!("{d:02x}/sub"));
        std::fs::create_dir_all(&dir).unwrap();
        for j in 0..20 {
            std::fs::write(dir.join(format!("e{j}-d")), b"").unwrap();
        }
    }
    let tmpfs = TmpfsMount::new(&f.root.join("0a/mnt"));
    if tmpfs.is_some() {
        std::fs::write(f.root.join("0a/mnt/inside"), b"i").unwrap();
    }
    let root = RootDir::open(&f.root).unwrap();
    let opts = WalkOptions {
        max_open_dirs: 3,
        max_depth: None,
    };
    let mut one = Seen::default();
    let stats = walk(&root, &opts, &mut one);
    one.entries.sort();
    assert!(one.entries.iter().any(|e| e == "0b/sub/e19-d"));
    for threads in [1, 2, 4] {
        let (seen, pstats) = walk_parallel(&root, &opts, threads, Seen::default);
        assert_eq!(seen.len(), threads);
        let mut entries: Vec<String> = seen.iter().flat_map(|s| s.entries.clone()).collect();
        let mounts: Vec<String> = seen.iter().flat_map(|s| s.mounts.clone()).collect();
        entries.sort();
        assert_eq!(entries, one.entries, "{threads} threads");
        assert_eq!(mounts, one.mounts, "{threads} threads");
        assert_eq!(
            (
                pstats.entries,
                pstats.dirs,
                pstats.files,
                pstats.symlinks,
                pstats.mount_points
            ),
            (
                stats.entries,
                stats.dirs,
                stats.files,
                stats.symlinks,
                stats.mount_points
            )
        );
    }
    // Never outside the root, never through its symlinks.
    assert!(
        !one.entries
            .iter()
            .any(|e| e.starts_with("link_dir/") || e.contains("secret"))
    );
    // A Stop from one visitor ends the walk early.
    let (_, stopped) = walk_parallel(&root, &opts, 2, || {
        FnVisitor(|e: &WalkEntry<'_>| {
            if e.depth >= 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
    });
    assert!(
        stopped.entries < stats.entries / 2,
        "{stopped:?} vs {stats:?}"
    );
}

#[test]
fn walk_visits_everything_once_with_bounded_fds() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("deep");
    // A chain 40 deep with 3 files per level, plus a wide directory.
    let mut p = base.clone();
    for i in 0..40 {
        p = p.join(format!("d{i}"));
        std::fs::create_dir_all(&p).unwrap();
        for j in 0..3 {
            std::fs::write(p.join(format!("f{j}")), b"").unwrap();
        }
    }
    std::fs::create_dir_all(base.join("wide")).unwrap();
    for j in 0..500 {
        std::fs::write(base.join("wide").join(format!("w{j}")), b"").unwrap();
    }
    let root = RootDir::open(&base).unwrap();
    let walk_all = |max_open: usize| {
        let mut rels = Vec::new();
        let stats = walk(
            &root,
            &WalkOptions {
                max_open_dirs: max_open,
                max_depth: None,
            },
            &mut FnVisitor(|e: &WalkEntry<'_>| {
                rels.push(e.rel.to_path_buf());
                Control::Continue
            }),
        );
        rels.sort();
        (rels, stats)
    };
    let (all, stats) = walk_all(256);
    assert_eq!(stats.entries, 1 + 40 * 4 + 1 + 500);
    assert_eq!(stats.dirs, 1 + 40 + 1);
    assert_eq!(stats.reopened, 0);
    let (limited, stats2) = walk_all(4);
    assert_eq!(limited, all);
    assert!(stats2.reopened > 0, "{stats2:?}");
    assert_eq!(stats2.errors, 0);
    let mut dedup = all.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), all.len());
}

#[test]
fn walk_entries_open_relative_to_their_directory() {
    let f = fixture();
    let root = RootDir::open(&f.root).unwrap();
    let mut changed = 0;
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                let mut ent = e.open().unwrap();
                assert_eq!(ent.rel_path(), e.rel);
                if ent.chown(Some(777), None).unwrap().changed() {
                    changed += 1;
                }
            }
            Control::Continue
        }),
    );
    assert_eq!(changed, 4); // ., dir, dir/file, file
    assert_eq!(
        std::fs::metadata(f.outside.join("secret")).unwrap().uid(),
        0
    );
}
