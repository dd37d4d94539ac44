//! Attacks by ordinary users on a root goguardd (docs/SECURITY.md), each reproduced with real
//! users, real files and a real daemon, and each asserting that it now fails.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::users::TestUser;
use crate::util::*;

/// A throwaway group, removed on drop.
pub(crate) struct TestGroup {
    pub(crate) name: String,
}

impl TestGroup {
    pub(crate) fn create(tag: &str, members: &[&TestUser]) -> TestGroup {
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
pub(crate) fn sh_as(user: &TestUser, script: &str) -> std::process::Output {
    Command::new(require_tool("runuser", "util-linux"))
        .args(["-u", &user.name, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
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

/// Owner, mode and existence of every entry under `dir`, then every xattr (labels, ACLs)
/// as `getfattr` dumps it, for "nothing changed" assertions.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push(format!(
            "{} {}:{} {:o} ",
            p.display(),
            m.uid(),
            m.gid(),
            m.mode()
        ));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    let xattrs = Command::new(require_tool("getfattr", "attr"))
        .args(["-R", "-d", "-m", "-", "-e", "hex", "--absolute-names", "-P"])
        .arg(dir)
        .output()
        .unwrap();
    out.push(format!("xattrs:\n{}", stdout(&xattrs)));
    out
}

/// `go env -w KEY=VALUE…` as `user` with the real go, in the user's own environment.
fn go_env_w(user: &TestUser, settings: &[String]) {
    let out = Command::new(require_tool("runuser", "util-linux"))
        .args(["-u", &user.name, "--", "env", "-i"])
        .arg(format!("HOME={}", user.home.display()))
        .arg("PATH=/usr/bin:/bin")
        .arg(require_tool("go", "golang-go"))
        .args(["env", "-w"])
        .args(settings)
        .output()
        .unwrap();
    assert!(out.status.success(), "go env -w: {}", stderr(&out));
}

/// A root-owned tree an attacker points goguardd at: a 0700 directory with a 0600 secret,
/// and 30-day-old GOCACHE-shaped entries a trim would delete.
fn foreign_tree(at: &Path) {
    std::fs::create_dir_all(at.join("private")).unwrap();
    std::fs::set_permissions(at.join("private"), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(at.join("private/secret-name"), b"secret").unwrap();
    std::fs::set_permissions(
        at.join("private/secret-name"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::create_dir_all(at.join("ab")).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86400);
    for n in ["ab0123-a", "ab0123-d", "ab4567-a", "ab4567-d"] {
        let f = at.join("ab").join(n);
        std::fs::write(&f, b"x").unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_times(
            std::fs::FileTimes::new()
                .set_modified(old)
                .set_accessed(old),
        )
        .unwrap();
    }
}

fn root_paths(out: &std::process::Output) -> Vec<String> {
    let j = json(out);
    j["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 13, attacks 1, 3 and 4: `go env -w GOCACHE=` a root-owned tree, and GOMODCACHE at
/// another user's cache. Neither becomes a root; nothing there is listed, repaired,
/// trimmed or relabelled for the attacker; the victim's cache stays guarded.
#[test]
fn a_users_go_env_cannot_point_goguardd_at_trees_they_do_not_control() {
    if !require_root("creates users, root-owned trees") {
        return;
    }
    let attacker = TestUser::create("xa");
    let victim = TestUser::create("xv");
    let sb = Sandbox::new();
    let foreign = sb.path().join("srv-anything");
    foreign_tree(&foreign);
    let victim_cache = victim.gocache_with(&["ab"]);
    go_env_w(
        &attacker,
        &[
            format!("GOCACHE={}", foreign.display()),
            format!("GOMODCACHE={}", victim_cache.display()),
        ],
    );
    let before = snapshot(&foreign);
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\", \"{}\"]\n[scan]\ninterval_secs = 0",
        attacker.name, victim.name
    ));
    let _daemon = sb.start();
    let sock = sb.socket();

    // Roots: the victim's cache is the victim's; the attacker's settings are problems.
    let all = ctl(&sock, &["roots", "--json"]);
    let paths = root_paths(&all);
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with(foreign.to_str().unwrap())),
        "{paths:?}"
    );
    assert!(
        paths.contains(&victim_cache.display().to_string()),
        "{paths:?}"
    );
    let mine = attacker.ctl_as(&sock, &["roots", "--json"]);
    let j = json(&mine);
    assert!(
        root_paths(&mine)
            .iter()
            .all(|p| p.starts_with(attacker.home.to_str().unwrap()))
    );
    let problems = j["problems"].to_string();
    assert!(
        problems.contains(&format!("GOCACHE {} is not guarded", foreign.display()))
            && problems.contains(&format!(
                "GOMODCACHE {} is not guarded",
                victim_cache.display()
            ))
            && problems.contains("[[root]] path = "),
        "{problems}"
    );
    // Nothing inside the foreign tree is listed, repaired or trimmed for the attacker.
    let findings = attacker.ctl_as(&sock, &["findings", "--json", foreign.to_str().unwrap()]);
    assert!(
        !stdout(&findings).contains("secret-name"),
        "{}",
        stdout(&findings)
    );
    let repair = attacker.ctl_as(&sock, &["repair", foreign.to_str().unwrap()]);
    assert_ne!(repair.status.code(), Some(0), "{}", stdout(&repair));
    let trim = attacker.ctl_as(&sock, &["trim", "--force", foreign.to_str().unwrap()]);
    assert_ne!(trim.status.code(), Some(0), "{}", stdout(&trim));
    assert!(!foreign.join("trim.txt").exists());
    // A rescan by root changes nothing there either.
    let rescan = ctl(&sock, &["rescan"]);
    assert!(rescan.status.success(), "{}", stderr(&rescan));
    assert_eq!(snapshot(&foreign), before, "the foreign tree changed");

    // The victim's cache is still guarded: root pollution healed, the victim's repair works.
    let polluted = victim_cache.join("ab/0123-d");
    std::fs::write(&polluted, b"root wrote this").unwrap();
    wait_for(
        "the victim's cache to be healed",
        Duration::from_secs(10),
        || std::fs::metadata(&polluted).unwrap().uid() == victim.uid(),
    );
    let own = victim.ctl_as(&sock, &["repair", victim_cache.to_str().unwrap()]);
    assert_eq!(
        own.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&own),
        stderr(&own)
    );
}

/// Issue 13, attack 2: `~/.cache` replaced by a symlink to a root-owned directory. At start
/// and at a rescan nothing there changes and nothing is journaled; the problem names the
/// symlink.
#[test]
fn a_symlinked_ancestor_of_a_users_cache_is_never_followed() {
    if !require_root("creates users, root-owned trees") {
        return;
    }
    let user = TestUser::create("xl");
    let sb = Sandbox::new();
    let target = sb.path().join("root-owned-cache");
    std::fs::create_dir_all(target.join("go-build/ab")).unwrap();
    std::fs::write(target.join("go-build/ab/x-a"), b"x").unwrap();
    let _ = std::fs::remove_dir_all(user.home.join(".cache"));
    std::os::unix::fs::symlink(&target, user.home.join(".cache")).unwrap();
    let before = snapshot(&target);
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0",
        user.name
    ));
    let _daemon = sb.start();
    let sock = sb.socket();
    let r = ctl(&sock, &["rescan"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(snapshot(&target), before, "the symlink was followed");
    let roots = ctl(&sock, &["roots", "--json"]);
    let problems = json(&roots)["problems"].to_string();
    assert!(problems.contains("is a symlink"), "{problems}");
    let journal = ctl(&sock, &["journal", "--json"]);
    assert!(!stdout(&journal).contains("x-a"), "{}", stdout(&journal));

    // Swapped in after discovery admitted a real directory: refused when opened.
    std::fs::remove_file(user.home.join(".cache")).unwrap();
    let real = user.gocache_with(&["ab"]);
    let r = ctl(&sock, &["rescan"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(root_paths(&ctl(&sock, &["roots", "--json"])).contains(&real.display().to_string()));
    std::fs::rename(user.home.join(".cache"), user.home.join(".cache-real")).unwrap();
    std::os::unix::fs::symlink(&target, user.home.join(".cache")).unwrap();
    let repair = user.ctl_as(&sock, &["repair", real.to_str().unwrap()]);
    assert_ne!(repair.status.code(), Some(0), "{}", stdout(&repair));
    // Drift in the target that the watcher might report is not healed either.
    std::fs::write(target.join("go-build/ab/y-a"), b"y").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let m = std::fs::metadata(target.join("go-build/ab/y-a")).unwrap();
    assert_eq!(m.uid(), 0, "the symlink was followed");
    std::fs::remove_file(target.join("go-build/ab/y-a")).unwrap();
    assert_eq!(snapshot(&target), before, "the symlink was followed");
}

/// Issue 13, item 6: a `[[root]]` removed from the config and applied with SIGHUP is no
/// longer listed nor healed.
#[test]
fn a_reload_drops_a_removed_root_at_once() {
    if !require_root("chowns files to another user") {
        return;
    }
    let sb = Sandbox::new();
    let kept = sb.path().join("kept");
    let dropped = sb.path().join("dropped");
    for d in [&kept, &dropped] {
        std::fs::create_dir_all(d).unwrap();
    }
    let root = |p: &Path| {
        format!(
            "[[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\n",
            p.display()
        )
    };
    let base = "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n";
    sb.write_config(&format!("{base}{}{}", root(&kept), root(&dropped)));
    let daemon = sb.start();
    let sock = sb.socket();
    assert!(root_paths(&ctl(&sock, &["roots", "--json"])).contains(&dropped.display().to_string()));
    sb.write_config(&format!("{base}{}", root(&kept)));
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("the dropped root to go", Duration::from_secs(10), || {
        !root_paths(&ctl(&sock, &["roots", "--json"])).contains(&dropped.display().to_string())
    });
    let status = stdout(&ctl(&sock, &["status", "--json"]));
    assert!(status.contains("roots dropped"), "{status}");
    // Drift there is no longer healed; drift in the kept root still is.
    let f = dropped.join("f");
    std::fs::write(&f, b"x").unwrap();
    std::os::unix::fs::chown(&f, Some(1), Some(1)).unwrap();
    let g = kept.join("g");
    std::fs::write(&g, b"x").unwrap();
    std::os::unix::fs::chown(&g, Some(1), Some(1)).unwrap();
    wait_for(
        "the kept root to be healed",
        Duration::from_secs(10),
        || std::fs::metadata(&g).unwrap().uid() == 0,
    );
    assert_eq!(
        std::fs::metadata(&f).unwrap().uid(),
        1,
        "a dropped root was healed"
    );
}

/// Issue 18, item 2: a FIFO named by `GOENV` in environment.d, a 1 GiB sparse
/// environment.d file and `GOENV` at another user's 0600 env file. goguardd starts, a rescan
/// returns, and none of them is read (the FIFO never blocks discovery).
#[test]
fn hostile_environment_files_never_block_or_misdirect_discovery() {
    if !require_root("creates users") {
        return;
    }
    let user = TestUser::create("xf");
    let victim = TestUser::create("xg");
    let envd = user.home.join(".config/environment.d");
    std::fs::create_dir_all(&envd).unwrap();
    let fifo = user.home.join("env-fifo");
    let out = Command::new("mkfifo").arg(&fifo).output().unwrap();
    assert!(out.status.success(), "mkfifo: {}", stderr(&out));
    std::fs::write(
        envd.join("10-goenv.conf"),
        format!("GOENV={}\n", fifo.display()),
    )
    .unwrap();
    let big = std::fs::File::create(envd.join("20-big.conf")).unwrap();
    big.set_len(1 << 30).unwrap();
    user.give(&user.home.join(".config"));
    user.give(&fifo);
    // The victim's private env file, which the second user's GOENV names.
    let victim_env = victim.home.join(".config/go/env");
    std::fs::create_dir_all(victim_env.parent().unwrap()).unwrap();
    let moved = victim.home.join("private-cache");
    std::fs::write(&victim_env, format!("GOCACHE={}\n", moved.display())).unwrap();
    victim.give(&victim.home.join(".config"));
    std::fs::set_permissions(&victim_env, PermissionsExt::from_mode(0o600)).unwrap();

    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\", \"{}\"]\n[scan]\ninterval_secs = 0",
        user.name, victim.name
    ));
    let start = Instant::now();
    let _daemon = sb.start();
    let sock = sb.socket();
    let r = ctl(&sock, &["rescan"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "discovery was slow"
    );
    let paths = root_paths(&ctl(&sock, &["roots", "--json"]));
    // The user's GOCACHE is the default: nothing came from the FIFO or the big file.
    assert!(
        paths.contains(&user.home.join(".cache/go-build").display().to_string()),
        "{paths:?}"
    );
    // GOENV at the victim's 0600 file (set in the user's environment.d) is not read for
    // the user: no root of the user's points at the victim's private-cache.
    std::fs::write(
        envd.join("10-goenv.conf"),
        format!("GOENV={}\n", victim_env.display()),
    )
    .unwrap();
    user.give(&envd);
    let r = ctl(&sock, &["rescan"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let mine = user.ctl_as(&sock, &["roots", "--json"]);
    assert!(
        !stdout(&mine).contains("private-cache"),
        "the victim's env file was read for the user: {}",
        stdout(&mine)
    );
    // The victim's own root follows their file, as before.
    assert!(root_paths(&ctl(&sock, &["roots", "--json"])).contains(&moved.display().to_string()));
}

/// Issue 18, item 4: a user holds `trim.txt` locked. Root's trim of that cache gives up
/// after the lock timeout with an error saying so; many trims queue without taking every
/// thread, and `status` and other users' work go on meanwhile.
#[test]
fn a_users_lock_on_trim_txt_never_blocks_the_admin() {
    if !require_root("creates a user") {
        return;
    }
    let user = TestUser::create("xk");
    let cache = user.gocache_with(&["ab"]);
    std::fs::write(cache.join("trim.txt"), "1700000000\n").unwrap();
    user.give(&cache);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0",
        user.name
    ));
    let _daemon = sb.start();
    let sock = sb.socket();
    let mut holder = Command::new(require_tool("runuser", "util-linux"))
        .args(["-u", &user.name, "--", "flock", "-x"])
        .arg(cache.join("trim.txt"))
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Eight trims at once: they queue two at a time, each gives up after the timeout.
    let trims: Vec<_> = (0..8)
        .map(|_| {
            let sock = sock.clone();
            let cache = cache.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let out = ctl(&sock, &["trim", "--force", cache.to_str().unwrap()]);
                (t.elapsed(), out)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let st = ctl(&sock, &["status", "--json"]);
    assert!(st.status.code().is_some(), "{}", stderr(&st));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let journal = ctl(&sock, &["journal", "--json"]);
    assert!(journal.status.success(), "{}", stderr(&journal));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "journal took {:?}",
        t.elapsed()
    );
    // They queue two at a time and each gives up after the 5 s lock timeout.
    let results: Vec<_> = trims.into_iter().map(|t| t.join().unwrap()).collect();
    let _ = holder.kill();
    let _ = holder.wait();
    for (took, out) in &results {
        assert_ne!(out.status.code(), Some(0), "{}", stdout(out));
        let text = format!("{}{}", stdout(out), stderr(out));
        assert!(text.contains("locked"), "{text}");
        assert!(*took < Duration::from_secs(60), "a trim waited {took:?}");
    }
    let fastest = results.iter().map(|(t, _)| *t).min().unwrap();
    assert!(
        fastest < Duration::from_secs(10),
        "the first trim waited {fastest:?}"
    );
}
