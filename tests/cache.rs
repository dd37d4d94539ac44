//! Cache roots end to end with a real Go toolchain: the guide's failure
//! (`sudo go build` leaves root-owned entries in a user's GOCACHE and the
//! user's next build fails), repaired on the user's own request without sudo,
//! and by self-healing at the daemon's scan; refusals for other users and for
//! paths outside every root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::users::{TestUser, go_build_command};
use crate::util::*;

/// As root, with the user's HOME: what `sudo -E go build` does. `-a` puts
/// the standard library into the cache, as every build does from Go 1.20 on
/// (Debian 12's Go 1.19 ships it precompiled); the user's next build then
/// needs to write those same entries and fails on the root-owned files.
fn root_go_build(project: &Path, home: &Path) -> Output {
    go_build_command(project, home, &["-a"]).output().unwrap()
}

fn owners_under(dir: &Path) -> std::collections::BTreeSet<u32> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        out.insert(meta.uid());
        if meta.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn cache_sandbox(user: &TestUser) -> Sandbox {
    cache_sandbox_heal(user, true)
}

/// With `auto` false goguardd only reports; repairs happen on request.
fn cache_sandbox_heal(user: &TestUser, auto: bool) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = false\n[discovery]\nusers = [\"{}\"]\n\
         [scan]\ninterval_secs = 0\n[heal]\nauto = {auto}",
        user.name
    ));
    sb
}

#[test]
fn a_user_repairs_a_cache_polluted_by_root_without_sudo() {
    if !require_root("creates a user, builds as root") {
        return;
    }
    let user = TestUser::create("a");
    let project = user.project();
    // Report-only, so the repair the user asks for is what fixes the cache
    // (self-healing would fix it first).
    let sb = cache_sandbox_heal(&user, false);
    let _daemon = sb.start();
    let gocache = user.home.join(".cache/go-build");

    // The roots goguardd found for the user, before the cache exists.
    let out = user.ctl_as(&sb.socket(), &["roots", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let roots: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = roots["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&gocache.to_str().unwrap()), "{paths:?}");

    // The guide's failure.
    let root_build = root_go_build(&project, &user.home);
    assert!(
        root_build.status.success(),
        "root build: {}",
        stderr(&root_build)
    );
    assert!(
        owners_under(&gocache).contains(&0),
        "root left nothing root-owned?"
    );
    let failed = user.go_build(&project);
    assert!(
        !failed.status.success(),
        "the user's build should fail on a root-owned cache"
    );
    assert!(
        stderr(&failed).contains("permission denied"),
        "{}",
        stderr(&failed)
    );

    // Another user may not repair it; nor may anyone repair outside every root.
    let nobody = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(GOGUARDCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(["repair", gocache.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(
        stderr(&nobody).contains("not inside any cache root"),
        "{}",
        stderr(&nobody)
    );
    let outside = user.ctl_as(&sb.socket(), &["repair", "/etc"]);
    assert_eq!(outside.status.code(), Some(2));
    assert!(
        stderr(&outside).contains("not inside any cache root"),
        "{}",
        stderr(&outside)
    );
    let escape = user.ctl_as(
        &sb.socket(),
        &["repair", &format!("{}/../../..", gocache.display())],
    );
    assert_eq!(escape.status.code(), Some(2), "{}", stdout(&escape));
    assert!(
        owners_under(&gocache).contains(&0),
        "refused requests changed nothing"
    );

    // A dry run changes nothing and says what it would do.
    let dry = user.ctl_as(
        &sb.socket(),
        &["repair", "--dry-run", gocache.to_str().unwrap()],
    );
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}{}",
        stdout(&dry),
        stderr(&dry)
    );
    assert!(
        stdout(&dry).contains("would change chown"),
        "{}",
        stdout(&dry)
    );
    assert!(owners_under(&gocache).contains(&0));

    // The user asks; goguardd repairs; the build works.
    let fixed = user.ctl_as(&sb.socket(), &["repair", gocache.to_str().unwrap()]);
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "{}{}",
        stdout(&fixed),
        stderr(&fixed)
    );
    assert!(
        stdout(&fixed).contains("changed chown"),
        "{}",
        stdout(&fixed)
    );
    assert_eq!(
        owners_under(&gocache),
        [user.uid()].into(),
        "every entry is the user's again"
    );
    let ok = user.go_build(&project);
    assert!(
        ok.status.success(),
        "the user's build after the repair: {}",
        stderr(&ok)
    );

    // Idempotent: nothing left to do.
    let again = user.ctl_as(&sb.socket(), &["repair", gocache.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("nothing to repair"),
        "{}",
        stdout(&again)
    );
    let findings = user.ctl_as(
        &sb.socket(),
        &["findings", "--json", "--path", gocache.to_str().unwrap()],
    );
    assert_eq!(findings.status.code(), Some(0), "{}", stdout(&findings));
}

#[test]
fn self_healing_returns_a_polluted_cache_to_its_owner() {
    if !require_root("creates a user, builds as root") {
        return;
    }
    let user = TestUser::create("b");
    let project = user.project();
    let sb = cache_sandbox(&user);
    let gocache = user.home.join(".cache/go-build");
    let root_build = root_go_build(&project, &user.home);
    assert!(
        root_build.status.success(),
        "root build: {}",
        stderr(&root_build)
    );
    assert!(!user.go_build(&project).status.success());

    // goguardd's scan at start heals the per-user root (owner: auto).
    let _daemon = sb.start();
    assert_eq!(owners_under(&gocache), [user.uid()].into());
    assert!(user.go_build(&project).status.success());
    // The admin sees the roots and the journal of what was done.
    let roots = ctl(&sb.socket(), &["roots"]);
    assert!(
        stdout(&roots).contains(gocache.to_str().unwrap()),
        "{}",
        stdout(&roots)
    );
}

#[test]
fn drift_is_healed_from_its_inotify_event_and_a_fight_is_quarantined() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};
    if !require_root("creates a user, chowns to root") {
        return;
    }
    let user = TestUser::create("c");
    let uid = user.uid();
    let gocache = user.gocache_with(&["00"]);
    let sb = cache_sandbox(&user);
    let daemon = sb.start();
    let mut watch = Command::new(GOGUARDCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(["watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(300));

    // A root-owned entry appears (what `sudo go build` leaves): healed at once.
    let mut latencies = Vec::new();
    for i in 0..10 {
        let f = gocache.join(format!("00/{i:02}-d"));
        let t = Instant::now();
        std::fs::write(&f, b"x").unwrap(); // we are root: root-owned
        while std::fs::metadata(&f).unwrap().uid() != uid {
            assert!(
                t.elapsed() < STARTUP,
                "{} was never given back",
                f.display()
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        latencies.push(t.elapsed());
        let line = lines.next().unwrap().unwrap();
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["kind"], "repair", "{line}");
        assert_eq!(e["repair"]["operation"], "chown", "{line}");
        assert_eq!(e["repair"]["path"], f.display().to_string(), "{line}");
    }
    latencies.sort();
    eprintln!(
        "drift → healed: median {:?}, p90 {:?}, max {:?}",
        latencies[4], latencies[8], latencies[9]
    );
    assert!(latencies[4] < Duration::from_secs(1), "{latencies:?}");

    // A burst, as a root build leaves it: every entry is given back.
    let burst_dir = gocache.join("0b");
    std::fs::create_dir(&burst_dir).unwrap();
    std::os::unix::fs::chown(&burst_dir, Some(uid), None).unwrap();
    let t = Instant::now();
    let files: Vec<PathBuf> = (0..500)
        .map(|i| burst_dir.join(format!("{i:03}-a")))
        .collect();
    for f in &files {
        std::fs::write(f, b"x").unwrap();
    }
    let written = t.elapsed();
    for f in &files {
        while std::fs::metadata(f).unwrap().uid() != uid {
            assert!(
                t.elapsed() < STARTUP,
                "{} was never given back",
                f.display()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eprintln!(
        "burst of 500 root-owned files: written in {written:?}, all healed {:?} after the first write",
        t.elapsed()
    );
    // Drain the repair events of the burst (and of the directory's chown).
    let mut repairs = 0;
    while repairs < 500 {
        let e: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if e["kind"] == "repair" && e["repair"]["path"].as_str().unwrap().contains("/0b/") {
            repairs += 1;
        }
    }
    // Each of them is journaled once, by goguardd itself (the rows are written off
    // the healing path; reading the journal waits for them).
    let journal = ctl(
        &sb.socket(),
        &[
            "journal",
            "--json",
            "--limit",
            "10000",
            "--path",
            burst_dir.to_str().unwrap(),
        ],
    );
    let rows = json(&journal);
    let rows = rows.as_array().unwrap();
    let mut journaled: Vec<&str> = rows
        .iter()
        .filter(|r| r["path"] != burst_dir.to_str().unwrap())
        .map(|r| {
            assert_eq!(r["operation"], "chown", "{r}");
            assert!(
                r["after"].as_str().unwrap().starts_with(&format!("{uid}:")),
                "{r}"
            );
            assert!(r["requester_uid"].is_null(), "{r}");
            assert!(r["cause"].as_str().unwrap().starts_with("self-heal"), "{r}");
            r["path"].as_str().unwrap()
        })
        .collect();
    journaled.sort_unstable();
    let expected: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    assert_eq!(journaled, expected, "the burst's journal");

    // World-writable is only alerted on: the mode stays, a finding is streamed.
    let dir = gocache.join("00");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let line = lines.next().unwrap().unwrap();
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["kind"], "finding", "{line}");
    assert_eq!(e["finding"]["kind"], "world_writable", "{line}");
    assert_eq!(e["finding"]["heal"], "alert", "{line}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o777);
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // Something keeps chowning one file back: after a few rounds goguardd
    // stops fighting and says so.
    let f = gocache.join("00/contested-d");
    std::fs::write(&f, b"x").unwrap();
    let mut quarantined = false;
    for _ in 0..12 {
        let t = Instant::now();
        while std::fs::metadata(&f).unwrap().uid() != uid && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if std::fs::metadata(&f).unwrap().uid() != uid {
            quarantined = true;
            break;
        }
        std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
    }
    assert!(quarantined, "the loop guard never stepped in");
    let mut saw = false;
    for line in lines.by_ref().take(20) {
        let e: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if e["kind"] == "quarantined" {
            assert_eq!(e["quarantined"]["path"], f.display().to_string());
            assert_eq!(e["quarantined"]["kind"], "foreign_owner");
            saw = true;
            break;
        }
    }
    assert!(saw, "no quarantined event on the stream");
    let _ = watch.kill();
    let _ = watch.wait();

    // The quarantine outlives a restart: the start-up scan (self-healing) leaves the path.
    drop(daemon);
    let _daemon = sb.start();
    assert_eq!(
        std::fs::metadata(&f).unwrap().uid(),
        0,
        "a restart ended the quarantine"
    );
    // Everything else is still healed at start-up.
    let other = gocache.join("00/after-restart-d");
    std::fs::write(&other, b"x").unwrap();
    let t = Instant::now();
    while std::fs::metadata(&other).unwrap().uid() != uid {
        assert!(t.elapsed() < STARTUP, "healing stopped after the restart");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_denial_on_a_drifted_cache_entry_is_fixed_and_linked_to_its_repair() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};
    if !require_root("creates a user, chowns to root") {
        return;
    }
    let user = TestUser::create("d");
    let gocache = user.gocache_with(&["ab"]);
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = true\nlog = \"{}\"\nretention_days = 0\n\
         [discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0",
        log.display(),
        user.name
    ));
    let _daemon = sb.start();
    // Root leaves an entry; the user's go is denied on it.
    let entry = gocache.join("ab/abcdef-d");
    std::fs::write(&entry, b"x").unwrap();
    let event = crate::audit::avc_event(7, "go", "write", entry.to_str().unwrap());
    crate::audit::append_pub(&log, &event);
    let deadline = Instant::now() + STARTUP;
    let denial = loop {
        let out = ctl(&sb.socket(), &["denials", "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(d) = all.into_iter().find(|d| d["status"] == "fixed") {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the denial was never marked fixed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(denial["target"], entry.display().to_string());
    assert!(denial["fixed_by_repair"].as_i64().unwrap() > 0, "{denial}");
    assert_eq!(std::fs::metadata(&entry).unwrap().uid(), user.uid());
}

/// `getfacl -R` of a tree, with the tree's own path cut out so two trees compare.
fn getfacl_tree(root: &Path) -> String {
    let out = Command::new(require_tool("getfacl", "acl"))
        .args(["-R", "--absolute-names", "--numeric"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).replace(root.to_str().unwrap(), "ROOT")
}

#[test]
fn a_declared_shared_root_gets_its_acls_exactly_as_setfacl_gives_them() {
    if !require_root("chown, ACLs on files of several owners") {
        return;
    }
    let sb = Sandbox::new();
    let make_tree = |top: &Path| {
        for d in [
            "cache/download/example.com/m/@v",
            "example.com/m@v1.0.0/sub",
            "00",
        ] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        std::fs::write(top.join("cache/download/example.com/m/@v/v1.0.0.zip"), b"z").unwrap();
        std::fs::write(top.join("00/abc-d"), b"d").unwrap();
        let tool = top.join("00/tool");
        std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let ro = top.join("example.com/m@v1.0.0/sub/x.go");
        std::fs::write(&ro, b"package x").unwrap();
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    };
    let ours = sb.path().join("shared");
    let theirs = sb.path().join("oracle");
    make_tree(&ours);
    make_tree(&theirs);
    let spec = "g:daemon:rwX,d:g:daemon:rwX";
    let oracle = Command::new(require_tool("setfacl", "acl"))
        .args(["-R", "-m", spec])
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(oracle.status.success(), "{}", stderr(&oracle));

    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n[[root]]\npath = \"{}\"\nkind = \"custom\"\n\
         acl = [\"g:daemon:rwX\", \"d:g:daemon:rwX\"]",
        ours.display()
    ));
    let _daemon = sb.start();
    let ours_acl = getfacl_tree(&ours);
    let theirs_acl = getfacl_tree(&theirs);
    assert_eq!(ours_acl, theirs_acl, "goguard's ACLs differ from setfacl's");
    assert!(ours_acl.contains("group:1:rwx"), "{ours_acl}");
    // The ACLs are as declared; what is left is the read-only file the owner
    // cannot write (a custom root expects owner write; only alerted on), and
    // another repair changes nothing.
    let findings = ctl(&sb.socket(), &["findings", "--json"]);
    assert_eq!(findings.status.code(), Some(1), "{}", stdout(&findings));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&findings.stdout).unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["kind"], "bad_mode");
    assert!(list[0]["path"].as_str().unwrap().ends_with("sub/x.go"));
    let again = ctl(
        &sb.socket(),
        &[
            "repair",
            "--kind",
            "missing_acl_entry",
            ours.to_str().unwrap(),
        ],
    );
    assert!(
        stdout(&again).contains("nothing to repair"),
        "{}",
        stdout(&again)
    );
    assert_eq!(getfacl_tree(&ours), theirs_acl);
}

/// Every entry's `security.selinux`, with the tree's path cut out.
fn labels_of(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let label = Command::new(require_tool("getfattr", "attr"))
            .args([
                "--absolute-names",
                "--only-values",
                "-h",
                "-n",
                "security.selinux",
            ])
            .arg(&p)
            .output()
            .unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.push((
            rel,
            String::from_utf8_lossy(&label.stdout)
                .trim_end_matches('\0')
                .to_owned(),
        ));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn relabels_equal_what_setfiles_does_with_the_same_file_contexts() {
    if !require_root("writes security.selinux") {
        return;
    }
    let setfiles = require_tool("setfiles", "policycoreutils");
    let sb = Sandbox::new();
    let fc = sb.path().join("file_contexts");
    let base = regex_escape(sb.path().to_str().unwrap());
    std::fs::write(
        &fc,
        format!(
            "{base}/(ours|theirs)(/.*)?\tsystem_u:object_r:cache_home_t:s0\n\
             {base}/(ours|theirs)/00(/.*)?\tsystem_u:object_r:container_file_t:s0\n\
             {base}/(ours|theirs)/00/keep\t<<none>>\n"
        ),
    )
    .unwrap();
    let make = |top: &Path| {
        for d in ["00", "01/deep", "02"] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        for f in ["00/a-d", "00/keep", "01/deep/b-a", "02/c-d", "README"] {
            std::fs::write(top.join(f), b"x").unwrap();
        }
        // Moved in from /tmp: the wrong label everywhere.
        let out = Command::new(require_tool("setfattr", "attr"))
            .args([
                "-h",
                "-n",
                "security.selinux",
                "-v",
                "unconfined_u:object_r:user_tmp_t:s0",
            ])
            .args(["--"])
            .arg(top.join("00/a-d"))
            .arg(top.join("00/keep"))
            .arg(top.join("01/deep/b-a"))
            .arg(top.join("02"))
            .arg(top.join("README"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let ours = sb.path().join("ours");
    let theirs = sb.path().join("theirs");
    make(&ours);
    make(&theirs);
    let oracle = Command::new(setfiles)
        .arg(&fc)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        oracle.status.success(),
        "setfiles: {}{}",
        stdout(&oracle),
        stderr(&oracle)
    );

    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n[selinux]\nfile_contexts = \"{}\"\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"",
        fc.display(),
        ours.display()
    ));
    let _daemon = sb.start();
    let a = labels_of(&ours);
    let b = labels_of(&theirs);
    assert_eq!(a, b, "goguard's labels differ from setfiles'");
    assert!(
        a.iter()
            .any(|(_, l)| l == "unconfined_u:object_r:container_file_t:s0"),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|(p, l)| p == "00/keep" && l.contains("user_tmp_t")),
        "<<none>> is left alone: {a:?}"
    );
}

#[test]
fn roots_are_discovered_again_when_go_env_w_changes_them() {
    use std::time::{Duration, Instant};
    if !require_root("creates a user") {
        return;
    }
    let user = TestUser::create("e");
    let sb = cache_sandbox(&user);
    let _daemon = sb.start();
    let roots = |sb: &Sandbox| -> Vec<String> {
        let out = ctl(&sb.socket(), &["roots", "--json"]);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        j["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let default = user.home.join(".cache/go-build").display().to_string();
    assert!(roots(&sb).contains(&default));
    // What `go env -w GOCACHE=...` writes.
    let moved = user.home.join("gocache2").display().to_string();
    std::fs::create_dir_all(user.home.join(".config/go")).unwrap();
    std::fs::write(
        user.home.join(".config/go/env"),
        format!("GOCACHE={moved}\n"),
    )
    .unwrap();
    let t = Instant::now();
    loop {
        let now = roots(&sb);
        if now.contains(&moved) && !now.contains(&default) {
            break;
        }
        assert!(
            t.elapsed() < STARTUP,
            "roots never followed the go env file: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("go env -w → roots re-read in {:?}", t.elapsed());
}

#[test]
fn a_hard_linked_file_is_reported_and_never_changed() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !require_root("creates a user, chowns to root") {
        return;
    }
    let user = TestUser::create("h");
    let gocache = user.gocache_with(&["ab"]);
    // A root-owned file outside the root, with a second name inside it; and a plain
    // root-owned entry next to it, which is healed as usual.
    let outside = user.home.join("outside-secret");
    std::fs::write(&outside, b"secret").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let linked = gocache.join("ab/linked-d");
    std::fs::hard_link(&outside, &linked).unwrap();
    let plain = gocache.join("ab/plain-d");
    std::fs::write(&plain, b"x").unwrap();

    let sb = cache_sandbox(&user);
    let _daemon = sb.start();
    assert_eq!(std::fs::metadata(&plain).unwrap().uid(), user.uid());
    let meta = std::fs::metadata(&outside).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));

    // Reported, with the reason; an explicit repair leaves it and says something is left.
    let findings = ctl(&sb.socket(), &["findings", "--json"]);
    let text = stdout(&findings);
    assert!(
        text.contains("linked-d") && text.contains("hard-linked"),
        "{text}"
    );
    let repair = ctl(&sb.socket(), &["repair", linked.to_str().unwrap()]);
    assert_eq!(repair.status.code(), Some(1), "{}", stdout(&repair));
    let meta = std::fs::metadata(&outside).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
}

/// Issue 15: roots scanned side by side (`[scan] parallel_roots`) heal and journal exactly
/// what one root at a time does. Two sandboxes get the same six drifted roots (different
/// sizes, so the threads finish out of order); one goguardd scans them one after another,
/// the other on three threads. Every drifted file is given back in both, each has one
/// `chown` row, and `roots --json` reports the same entries and no findings per root.
#[test]
fn roots_scanned_side_by_side_heal_and_journal_what_one_at_a_time_does() {
    use std::os::unix::fs::MetadataExt;
    assert_root("chowns files to another user");
    let mut outcomes = Vec::new();
    for parallel in [1, 3] {
        let sb = Sandbox::new();
        let mut roots = String::new();
        let mut files = Vec::new();
        for r in 0..6 {
            let root = sb.path().join(format!("root{r}"));
            for d in 0..(2 + r * 3) {
                let dir = root.join(format!("{d:02x}"));
                std::fs::create_dir_all(&dir).unwrap();
                for f in 0..60 {
                    let p = dir.join(format!("{f:04x}-a"));
                    std::fs::write(&p, b"x").unwrap();
                    std::os::unix::fs::chown(&p, Some(1), Some(1)).unwrap();
                    files.push(p);
                }
            }
            roots.push_str(&format!(
                "[[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"root\"\n",
                root.display()
            ));
        }
        sb.write_config(&format!(
            "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\nparallel_roots = {parallel}\n{roots}"
        ));
        let mut daemon = sb.start();
        let listed = json(&ctl(&sb.socket(), &["roots", "--json"]));
        let per_root: Vec<(String, u64, usize)> = listed["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let path = r["path"].as_str().unwrap();
                let name = Path::new(path).file_name().unwrap().to_string_lossy();
                (
                    name.into_owned(),
                    r["entries"].as_u64().unwrap(),
                    r["findings"].as_array().map_or(0, Vec::len),
                )
            })
            .collect();
        daemon.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(
            daemon.wait_exit(std::time::Duration::from_secs(20)).code(),
            Some(0)
        );
        let not_given_back = files
            .iter()
            .filter(|p| std::fs::metadata(p).unwrap().uid() != 0)
            .count();
        assert_eq!(not_given_back, 0, "parallel_roots = {parallel}");
        let rows = crate::stop::journal_rows(&sb.state_dir().join("goguard.db"));
        let mut chowned: Vec<String> = rows
            .iter()
            .filter(|(_, k)| k == "chown")
            .map(|(p, _)| {
                Path::new(p)
                    .strip_prefix(sb.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        chowned.sort();
        assert_eq!(chowned.len(), files.len(), "parallel_roots = {parallel}");
        chowned.dedup();
        assert_eq!(chowned.len(), files.len(), "one row per file");
        outcomes.push((per_root, chowned));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert!(
        outcomes[0].0.iter().all(|(_, _, findings)| *findings == 0),
        "{:?}",
        outcomes[0].0
    );
}
