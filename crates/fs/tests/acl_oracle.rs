//! ACL oracle: the same setfacl edits applied with goguard-fs to copy A and with the real
//! `setfacl -R` to copy B of a generated Go-shaped tree (plus executable, non-executable,
//! read-only, setgid and pre-ACLed entries and a symlink out of the tree); then
//! `getfacl -R --absolute-names --numeric` of both must match entry by entry, and our own
//! getfacl text must match getfacl's bytes for every entry of A.
//!
//! Must never change anything outside the temp dir (the symlink's target is checked).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::{assert_maps_eq, gen_tree, getfacl_tree, run, snapshot};
use goguard_fs::acl::{AclOp, NameKind, parse_ops};
use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, RootDir, WalkEntry, WalkOptions, walk};

fn resolve(kind: NameKind, name: &str) -> Option<u32> {
    // Real /etc/group and /etc/passwd names, as setfacl resolves them.
    let file = match kind {
        NameKind::User => "/etc/passwd",
        NameKind::Group => "/etc/group",
    };
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut it = l.split(':');
        (it.next()? == name).then(|| it.nth(1)?.parse().ok())?
    })
}

fn extra_entries(root: &Path, outside: &Path) {
    let x = root.join("extra");
    std::fs::create_dir_all(x.join("sub")).unwrap();
    for (name, mode) in [
        ("exe", 0o755),
        ("plain", 0o644),
        ("ro", 0o444),
        ("gx", 0o610),
        ("none", 0o000),
    ] {
        let p = x.join(name);
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(x.join("sub"), std::fs::Permissions::from_mode(0o2750)).unwrap();
    std::fs::create_dir_all(x.join("rodir")).unwrap();
    std::fs::set_permissions(x.join("rodir"), std::fs::Permissions::from_mode(0o555)).unwrap();
    run(Command::new("setfacl")
        .args(["-m", "u:1234:r--,g:50:rwx"])
        .arg(x.join("plain")));
    run(Command::new("setfacl")
        .args(["-m", "u:1234:--x"])
        .arg(x.join("ro")));
    run(Command::new("setfacl")
        .args(["-m", "d:u:1234:r-x"])
        .arg(x.join("sub")));
    symlink(outside, x.join("link_out")).unwrap();
}

/// Applies `ops` to every non-symlink entry under `root` with goguard-fs; returns how many
/// changed.
fn apply_ours(root: &Path, ops: &[AclOp]) -> usize {
    let root = RootDir::open(root).unwrap();
    let mut changed = 0;
    let stats = walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                let out = e
                    .open()
                    .unwrap()
                    .apply_acl(ops)
                    .unwrap_or_else(|err| panic!("{err}"));
                changed += usize::from(out.changed());
            }
            Control::Continue
        }),
    );
    assert_eq!(stats.errors, 0);
    changed
}

/// Our getfacl rendering of every entry of `root`, keyed like [`getfacl_tree`].
fn our_getfacl(root_path: &Path) -> BTreeMap<String, String> {
    let root = RootDir::open(root_path).unwrap();
    let prefix = root_path.to_str().unwrap().to_owned();
    let mut out = BTreeMap::new();
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                let mut ent = e.open().unwrap();
                let name = root.abs_path(e.rel).to_string_lossy().into_owned();
                let text = ent
                    .acl_state()
                    .unwrap()
                    .getfacl_text(&name, e.meta.uid, e.meta.gid);
                let block = common::getfacl_blocks(&text, &prefix);
                out.extend(block);
            }
            Control::Continue
        }),
    );
    out
}

#[test]
fn setfacl_semantics_match_setfacl() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, outside) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("outside"),
    );
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    for t in [&a, &b] {
        gen_tree(t, 1200);
        extra_entries(t, &outside);
    }
    let outside_before = snapshot(&outside);
    assert_maps_eq("generated trees", &getfacl_tree(&a), &getfacl_tree(&b));

    let steps: &[(&str, bool)] = &[
        // (spec list, is removal)
        ("g:staff:rwX,d:g:staff:rwX", false),
        ("u:1000:rX,d:u:1000:rX", false),
        ("g:4242:r", false),
        ("u:1000", true),
        ("d:u:1000", true),
        ("m::r", false),
        ("g:staff:rwX", false),
        ("o::---,d:o::---", false),
    ];
    for (specs, remove) in steps {
        let ops = parse_ops(specs, *remove, &resolve).unwrap();
        let changed = apply_ours(&a, &ops);
        let flag = if *remove { "-x" } else { "-m" };
        run(Command::new("setfacl")
            .args(["-R", "-P", flag, specs])
            .arg(&b));
        let (ours, oracle) = (getfacl_tree(&a), getfacl_tree(&b));
        assert_maps_eq(&format!("after setfacl {flag} {specs}"), &ours, &oracle);
        // Our own text rendering is byte-equal to getfacl's, entry by entry.
        assert_maps_eq(
            &format!("getfacl text after {specs}"),
            &our_getfacl(&a),
            &ours,
        );
        // Idempotent: a second pass changes nothing.
        assert_eq!(apply_ours(&a, &ops), 0, "second pass of {specs}");
        eprintln!("{flag} {specs}: {changed} entries changed");
    }
    // Modes (group bits = mask) equal too, checked outside getfacl.
    let modes = |t: &Path| {
        snapshot(t)
            .into_iter()
            .map(|(p, s)| (p.strip_prefix(t).unwrap().to_path_buf(), s.mode))
            .collect::<BTreeMap<_, _>>()
    };
    assert_maps_eq("modes", &modes(&a), &modes(&b));
    // setfacl -b equivalent.
    let ops = [AclOp::RemoveAll];
    apply_ours(&a, &ops);
    run(Command::new("setfacl").args(["-R", "-P", "-b"]).arg(&b));
    assert_maps_eq("after -b", &getfacl_tree(&a), &getfacl_tree(&b));
    assert_maps_eq("modes after -b", &modes(&a), &modes(&b));
    assert_eq!(snapshot(&outside), outside_before);
}
