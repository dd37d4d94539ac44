//! Helpers shared by the integration tests: running the real tools (setfacl, getfacl,
//! setfiles, getfattr, the tree generator), snapshots of a tree's owner/mode/ACL/label, and
//! a tmpfs mount guard.
//!
//! These helpers must never touch anything outside the temp dirs the tests create.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `tests/data/NAME` in this crate.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Generates a Go-shaped tree at `root` (must not exist) with `files` files.
pub fn gen_tree(root: &Path, files: usize) {
    run(Command::new("python3")
        .arg(data("gen_go_caches.py"))
        .arg(root)
        .args(["--files", &files.to_string(), "--seed", "7"]));
}

/// What a snapshot records for each path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
    pub label: Option<Vec<u8>>,
}

fn lget(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Owner, mode, ACLs and label of `path` and everything beneath it (not following symlinks).
pub fn snapshot(path: &Path) -> BTreeMap<PathBuf, Snap> {
    let mut out = BTreeMap::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.insert(
            p.clone(),
            Snap {
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode(),
                acl_access: lget(&p, "system.posix_acl_access"),
                acl_default: lget(&p, "system.posix_acl_default"),
                label: lget(&p, "security.selinux"),
            },
        );
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// Splits `getfacl -R` output into blocks keyed by the `# file:` name with `prefix` removed.
pub fn getfacl_blocks(text: &str, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let first = block.lines().next().unwrap();
        let name = first
            .strip_prefix("# file: ")
            .expect("block starts with # file:");
        let rel = name.strip_prefix(prefix).unwrap_or(name).to_owned();
        let body: Vec<&str> = block.lines().skip(1).collect();
        out.insert(rel, body.join("\n"));
    }
    out
}

/// `getfacl -R --absolute-names --numeric ROOT` split into blocks relative to ROOT.
pub fn getfacl_tree(root: &Path) -> BTreeMap<String, String> {
    let text = run(Command::new("getfacl")
        .args(["-R", "--absolute-names", "--numeric", "-P"])
        .arg(root));
    getfacl_blocks(&text, root.to_str().unwrap())
}

/// Compares two maps and panics with the first differences in full.
pub fn assert_maps_eq<K: std::fmt::Debug + Ord, V: std::fmt::Debug + PartialEq>(
    what: &str,
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) {
    let mut diffs = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            Some(vb) if vb == va => {}
            Some(vb) => diffs.push(format!("{k:?}:\n  ours:   {va:?}\n  oracle: {vb:?}")),
            None => diffs.push(format!("{k:?}: only in ours")),
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("{k:?}: only in oracle"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences (of {} entries); first ones:\n{}",
        diffs.len(),
        a.len(),
        diffs.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// A tmpfs mounted for the life of the guard, if this process may mount.
pub struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// Mounts a tmpfs at `at` (created); `None` (with a message) if mounting is not permitted.
    pub fn new(at: &Path) -> Option<TmpfsMount> {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "goguard-test"])
            .arg(at)
            .status();
        match st {
            Ok(s) if s.success() => Some(TmpfsMount(at.to_path_buf())),
            _ => {
                eprintln!("NOTE: mounting a tmpfs is not permitted here; mount tests fall back");
                None
            }
        }
    }

    /// Bind-mounts `src` at `at` (same filesystem, other mount).
    pub fn bind(src: &Path, at: &Path) -> Option<TmpfsMount> {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(at)
            .status();
        match st {
            Ok(s) if s.success() => Some(TmpfsMount(at.to_path_buf())),
            _ => {
                eprintln!("NOTE: bind mounts are not permitted here; bind test skipped");
                None
            }
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
