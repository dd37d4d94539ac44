//! Label oracle: a generated Go-shaped tree with some entries mislabeled is relabeled with
//! goguard-fs (file_contexts lookup + restorecon decision + set) in copy A and with the real
//! `setfiles -r ROOT [-F] tests/data/file_contexts.test ROOT/home` in copy B; the
//! `security.selinux` of every entry must then be equal. Both the default (type only) and the
//! forced (`-F`, whole context) modes are compared.
//!
//! The trees live under an alternate root, as file_contexts.test describes: the lookup key is
//! the path with that root prefix stripped. Symlinks are left out of the comparison: setfiles
//! labels them, goguard-fs refuses to write through a symlink entry.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_maps_eq, data, gen_tree, run, snapshot};
use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, FileContexts, RootDir, WalkEntry, WalkOptions, relabel_decision, walk};

const WRONG_TYPE: &str = "unconfined_u:object_r:user_tmp_t:s0:c5";
const SAME_TYPE_OTHER_USER: &str = "system_u:object_r:cache_home_t:s0";

/// Mislabels every 3rd entry (wrong type and range) and every 5th (other user), in walk
/// order sorted by path so both copies get the same pre-state.
fn mislabel(home: &Path) {
    let root = RootDir::open(home).unwrap();
    let mut rels = Vec::new();
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            rels.push(e.rel.to_path_buf());
            Control::Continue
        }),
    );
    rels.sort();
    for (i, rel) in rels.iter().enumerate() {
        let ctx = match (i % 3, i % 5) {
            (0, _) => WRONG_TYPE,
            (_, 0) => SAME_TYPE_OTHER_USER,
            _ => continue,
        };
        root.open_entry(rel).unwrap().set_label(ctx).unwrap();
    }
}

/// restorecon over `alt_root/home` with our code; returns the number of entries changed.
fn relabel_ours(fc: &FileContexts, alt_root: &Path, force: bool) -> usize {
    let home = alt_root.join("home");
    let root = RootDir::open(&home).unwrap();
    let mut changed = 0;
    let mut key = PathBuf::new();
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if e.meta.is_symlink() {
                return Control::Continue;
            }
            key.clear();
            key.push("/home");
            key.push(e.rel);
            let Some(expected) = fc.lookup(&key, e.meta.st_mode()) else {
                return Control::Continue;
            };
            let mut ent = e.open().unwrap();
            let current = ent.label().unwrap();
            if let Some(new) = relabel_decision(current.as_deref(), &expected, force, &[]) {
                changed += usize::from(ent.set_label(&new).unwrap().changed());
            }
            Control::Continue
        }),
    );
    changed
}

fn labels(home: &Path) -> BTreeMap<PathBuf, Option<String>> {
    snapshot(home)
        .into_iter()
        .filter(|(p, _)| !std::fs::symlink_metadata(p).unwrap().is_symlink())
        .map(|(p, s)| {
            let l = s.label.map(|v| goguard_fs::label::decode_xattr(&v));
            (p.strip_prefix(home).unwrap().to_path_buf(), l)
        })
        .collect()
}

#[test]
fn relabel_matches_setfiles() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for t in [&a, &b] {
        gen_tree(t, 1500);
        // Entries the rules treat specially: <<none>> and a symlink out of the tree.
        std::fs::write(t.join("home/alice/.cache/go-build/testexpire.txt"), b"1").unwrap();
        std::os::unix::fs::symlink(&outside, t.join("home/alice/.cache/go-build/out")).unwrap();
        mislabel(&t.join("home"));
    }
    let outside_before = snapshot(&outside);
    let none_rel = Path::new("alice/.cache/go-build/testexpire.txt");
    let none_before = labels(&a.join("home"))[none_rel].clone();
    let fc_path = data("file_contexts.test");
    let fc = FileContexts::open(&fc_path).unwrap();
    assert_maps_eq(
        "pre-state",
        &labels(&a.join("home")),
        &labels(&b.join("home")),
    );

    for force in [false, true] {
        let changed = relabel_ours(&fc, &a, force);
        let mut cmd = Command::new("setfiles");
        cmd.arg("-r").arg(&b);
        if force {
            cmd.arg("-F");
        }
        run(cmd.arg(&fc_path).arg(b.join("home")));
        let (ours, oracle) = (labels(&a.join("home")), labels(&b.join("home")));
        assert_maps_eq(&format!("labels (force={force})"), &ours, &oracle);
        assert!(changed > 0);
        eprintln!(
            "force={force}: {changed} entries relabeled, {} compared",
            ours.len()
        );
        assert_eq!(
            relabel_ours(&fc, &a, force),
            0,
            "second pass changes nothing"
        );
    }
    // The <<none>> file kept its label; ci's download dir got the MCS range.
    let home = a.join("home");
    let l = labels(&home);
    assert_eq!(l[none_rel], none_before);
    assert_eq!(
        l[Path::new("ci/go/pkg/mod/cache/download")].as_deref(),
        Some("system_u:object_r:container_file_t:s0:c1,c2")
    );
    assert_eq!(snapshot(&outside), outside_before);
}

#[test]
fn lookup_matches_selabel_lookup_tool() {
    let fc_path = data("file_contexts.test");
    let fc = FileContexts::open(&fc_path).unwrap();
    let cases: &[(&str, u32)] = &[
        ("/home/alice/.cache/go-build/ab", libc::S_IFDIR),
        ("/home/ci/go/pkg/mod/cache/download/sumdb/x", libc::S_IFREG),
        ("/home/alice/.cache/go-build/testexpire.txt", libc::S_IFREG),
        ("/home", libc::S_IFDIR),
        ("/home", libc::S_IFREG),
        ("/srv/gocache/x", 0),
    ];
    for (path, mode) in cases {
        let got = fc.lookup(Path::new(path), *mode);
        let expect = match (*path, *mode) {
            ("/home/alice/.cache/go-build/testexpire.txt", _) => None,
            ("/home", m) if m == libc::S_IFREG => Some("system_u:object_r:default_t:s0"),
            ("/home", _) => Some("system_u:object_r:home_root_t:s0"),
            ("/home/alice/.cache/go-build/ab", _) => Some("unconfined_u:object_r:cache_home_t:s0"),
            ("/home/ci/go/pkg/mod/cache/download/sumdb/x", _) => {
                Some("system_u:object_r:container_ro_file_t:s0")
            }
            _ => Some("system_u:object_r:container_file_t:s0"),
        };
        assert_eq!(got.as_deref(), expect, "{path} {mode:o}");
    }
}
