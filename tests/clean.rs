//! `goguardctl clean` (issue 16, guide 4.3) with a module cache the real Go toolchain made:
//! a CI user's `rm -rf` of their workspace fails on Go's read-only module directories;
//! `goguardctl clean` run as that user removes it whole, `--keep` makes it writable so a
//! plain `rm -rf` (the oracle) then works; a symlink planted inside is removed and its
//! target left alone; a filesystem mounted inside is left and reported (exit 1).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle::as_user;
use crate::users::TestUser;
use crate::util::*;

/// A user's workspace with a module cache `go mod download` filled from a local proxy.
fn workspace_with_modules(user: &TestUser) -> PathBuf {
    let proxy = user.home.join("proxy");
    let ws = user.home.join("ws");
    let app = ws.join("src/app");
    crate::bundle::fake_proxy(&proxy, &app);
    user.give(&user.home);
    let proxy_url = format!("file://{}", proxy.display());
    let modcache = ws.join("gomodcache");
    let modcache_s = modcache.display().to_string();
    let go = require_tool("go", "golang-go");
    let out = as_user(
        user,
        go.to_str().unwrap(),
        &[
            ("GOPROXY", proxy_url.as_str()),
            ("GOSUMDB", "off"),
            ("GOFLAGS", "-mod=mod"),
            ("GOMODCACHE", modcache_s.as_str()),
        ],
    )
    .current_dir(&app)
    .args(["mod", "download", "all"])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    ws
}

fn read_only_dirs(dir: &Path) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                n += usize::from(m.permissions().mode() & 0o200 == 0);
                stack.push(e.path());
            }
        }
    }
    n
}

#[test]
fn clean_removes_a_workspace_with_a_go_module_cache_that_rm_cannot() {
    assert_root("creates users");
    let user = TestUser::create("cl");
    let ws = workspace_with_modules(&user);
    let locked = read_only_dirs(&ws.join("gomodcache"));
    assert!(locked >= 1, "Go left {locked} read-only directories");
    // The oracle: the user's own rm -rf fails on them.
    let rm = as_user(&user, "/bin/rm", &[])
        .arg("-rf")
        .arg(&ws)
        .output()
        .unwrap();
    assert!(!rm.status.success(), "rm -rf worked: {}", stderr(&rm));
    assert!(stderr(&rm).contains("Permission denied"), "{}", stderr(&rm));
    // A symlink to another user's directory, planted in the workspace: removed, not followed.
    let other = TestUser::create("cm");
    let victim = other.home.join("keep");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("sub/f"), b"x").unwrap();
    other.give(&other.home);
    // (rm -rf removed what it could: the read-only module directories are left.)
    let link = ws.join("evil");
    let out = as_user(&user, "/bin/ln", &[])
        .arg("-s")
        .arg(&victim)
        .arg(&link)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = as_user(&user, GOGUARDCTL, &[])
        .args(["clean", "--json"])
        .arg(&ws)
        .output()
        .unwrap();
    let j = json_with_code(&out, 0);
    assert_eq!(j["outcome"], "removed", "{j}");
    assert!(j["unlocked"].as_u64().unwrap() >= locked as u64, "{j}");
    assert!(!ws.exists(), "the workspace is gone");
    assert!(
        victim.join("sub/f").exists(),
        "the symlink's target is left"
    );
    // The human form on another workspace, and --keep then a plain rm -rf.
    let ws2 = workspace_with_modules(&user);
    let out = as_user(&user, GOGUARDCTL, &[])
        .args(["clean", "--keep"])
        .arg(&ws2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("made {} writable: ", ws2.display())),
        "{}",
        stdout(&out)
    );
    assert_eq!(read_only_dirs(&ws2), 0);
    let rm = as_user(&user, "/bin/rm", &[])
        .arg("-rf")
        .arg(&ws2)
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    // A path that is a symlink is refused (exit 2), not followed.
    let link2 = user.home.join("ws-link");
    std::os::unix::fs::symlink(&victim, &link2).unwrap();
    let out = as_user(&user, GOGUARDCTL, &[])
        .arg("clean")
        .arg(&link2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a symlink: not followed"),
        "{}",
        stderr(&out)
    );
    assert!(victim.join("sub/f").exists());
}

#[test]
fn clean_leaves_a_filesystem_mounted_inside_and_says_so() {
    assert_root("mounts a tmpfs");
    let sb = Sandbox::new();
    let ws = sb.path().join("ws");
    let mnt = ws.join("cache/tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::write(ws.join("cache/a"), b"a").unwrap();
    let _unmount = mount_tmpfs(&mnt, "1m");
    std::fs::write(mnt.join("inside"), b"kept").unwrap();
    let out = Command::new(GOGUARDCTL)
        .arg("clean")
        .arg(&ws)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cache/tmpfs: another filesystem is mounted here"),
        "{}",
        stderr(&out)
    );
    assert!(!ws.join("cache/a").exists(), "the rest is removed");
    assert_eq!(std::fs::read(mnt.join("inside")).unwrap(), b"kept");
}
