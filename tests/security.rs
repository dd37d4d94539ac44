//! Attacks by ordinary users on a root goguardd (docs/SECURITY.md), each reproduced with real
//! users, real files and a real daemon, and each asserting that it now fails.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::users::TestUser;
use crate::util::*;

/// A throwaway group, removed on drop.
struct TestGroup {
    name: String,
}

impl TestGroup {
    fn create(tag: &str, members: &[&TestUser]) -> TestGroup {
        let name = format!("gg{tag}{}", std::process::id() % 100_000);
        let _ = Command::new("groupdel").arg(&name).output();
        let out = Command::new(require_tool("groupadd", "passwd"))
            .arg(&name)
            .output()
            .unwrap();
        assert!(out.status.success(), "groupadd: {}", stderr(&out));
        for m in members {
            let out = Command::new(require_tool("gpasswd", "passwd"))
                .args(["-a", &m.name, &name])
                .output()
                .unwrap();
            assert!(out.status.success(), "gpasswd: {}", stderr(&out));
        }
        TestGroup { name }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// `sh -c script` as `user` (a login-less `runuser`, the user's own groups).
fn sh_as(user: &TestUser, script: &str) -> std::process::Output {
    Command::new(require_tool("runuser", "util-linux"))
        .args(["-u", &user.name, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 18, attack 1: a group member drops a setuid copy of `id` into a shared root owned
/// by root. goguardd hands it to root (self-healing, and an admin's requested repair); the
/// file must never end root-owned with setuid/setgid, and a third user running it must not
/// get euid 0.
#[test]
fn a_setuid_file_handed_to_root_never_keeps_its_setuid_bit() {
    if !require_root("creates users and a group, chowns to root") {
        return;
    }
    let member = TestUser::create("sm");
    let third = TestUser::create("st");
    let group = TestGroup::create("sg", &[&member]);
    let sb = Sandbox::new();
    // Two shared roots: one self-healed at once, one healed only when an admin asks.
    let auto = sb.path().join("shared-auto");
    let asked = sb.path().join("shared-asked");
    for dir in [&auto, &asked] {
        std::fs::create_dir(dir).unwrap();
        // Group-writable with setgid, the usual shape of a shared cache.
        let out = Command::new("chown")
            .arg(format!("root:{}", group.name))
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::set_permissions(dir, PermissionsExt::from_mode(0o2775)).unwrap();
    }
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"{g}\"\n\
         heal = {{ world_writable = \"auto\" }}\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"{g}\"\n\
         mode = {{ file_require = \"0660\" }}\n\
         heal = {{ owner = \"alert\", mode = \"alert\", world_writable = \"alert\" }}",
        auto.display(),
        asked.display(),
        g = group.name
    ));
    let _daemon = sb.start();

    // Prepared in the member's home and moved in whole, as an attacker would (the daemon
    // heals within milliseconds of a create).
    let plant = |dir: &Path, mode: &str| {
        let staged = member.home.join("id.tmp");
        let out = sh_as(
            &member,
            &format!(
                "cp /usr/bin/id {s} && chmod {mode} {s}",
                s = staged.display()
            ),
        );
        assert!(out.status.success(), "staging: {}", stderr(&out));
        let m = std::fs::metadata(&staged).unwrap();
        assert_eq!(m.mode() & 0o7777, u32::from_str_radix(mode, 8).unwrap());
        let out = sh_as(
            &member,
            &format!("mv {} {}/id", staged.display(), dir.display()),
        );
        assert!(out.status.success(), "planting: {}", stderr(&out));
    };
    let runs_as_root = |file: &Path| {
        let out = sh_as(&third, &format!("{} -u", file.display()));
        assert!(
            out.status.success(),
            "running {}: {}",
            file.display(),
            stderr(&out)
        );
        stdout(&out).trim() == "0"
    };
    // The test can fail: a root-owned 4755 copy of `id` does give a third user euid 0 here.
    let control = sb.path().join("control-id");
    std::fs::copy("/usr/bin/id", &control).unwrap();
    std::fs::set_permissions(&control, PermissionsExt::from_mode(0o4755)).unwrap();
    assert!(
        runs_as_root(&control),
        "setuid does not work on this filesystem"
    );
    std::fs::remove_file(&control).unwrap();

    plant(&auto, "4757");

    // Self-healing: chown to root and o-w, at once.
    wait_for(
        "self-healing of the planted file",
        Duration::from_secs(10),
        || {
            let m = std::fs::metadata(auto.join("id")).unwrap();
            m.uid() == 0 && m.mode() & 0o002 == 0
        },
    );
    let m = std::fs::metadata(auto.join("id")).unwrap();
    assert_eq!(m.mode() & 0o6000, 0, "healed to {:o}", m.mode() & 0o7777);
    assert!(!runs_as_root(&auto.join("id")), "a third user got euid 0");

    // A requested repair of both kinds, with a mode rule that adds bits.
    for mode in ["4757", "6757", "2747"] {
        plant(&asked, mode);
        let m = std::fs::metadata(asked.join("id")).unwrap();
        assert_eq!(m.uid(), member.uid());
        assert_eq!(m.mode() & 0o7777, u32::from_str_radix(mode, 8).unwrap());
        let out = ctl(
            &sb.socket(),
            &[
                "repair",
                "--kind",
                "foreign_owner",
                "--kind",
                "wrong_group",
                "--kind",
                "world_writable",
                "--kind",
                "bad_mode",
                asked.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let m = std::fs::metadata(asked.join("id")).unwrap();
        assert_eq!(m.uid(), 0, "{}", stdout(&out));
        assert_eq!(
            m.mode() & 0o6000,
            0,
            "{mode} repaired to {:o}: {}",
            m.mode() & 0o7777,
            stdout(&out)
        );
        assert!(!runs_as_root(&asked.join("id")), "a third user got euid 0");
        // The journal shows the real modes, never a setid one as the result.
        let journal = ctl(&sb.socket(), &["journal", "--json"]);
        let text = stdout(&journal);
        assert!(
            !text.contains("→ 4") && !text.contains("\"after\":\"4"),
            "{text}"
        );
        std::fs::remove_file(asked.join("id")).unwrap();
    }
}
