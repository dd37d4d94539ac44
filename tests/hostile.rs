//! Issue 18, the rest: hostile content an ordinary user puts where a root goguardd reads,
//! watches and heals (huge and special files in a module cache, one user's tree against the
//! watch budget, other users' roots named in requests, trees deeper than PATH_MAX, default
//! ACLs). Each test attacks a real root daemon as a real unprivileged user (useradd) and
//! asserts what the attack now gets (docs/SECURITY.md). Every wait is bounded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::users::TestUser;
use crate::util::*;

/// One module version in a hand-made module cache: `cache/download/<m>/@v/<v>.ziphash` and
/// the extracted `<m>@<v>/` with a go.mod, made by root and given to the user later.
fn fake_module(modcache: &Path, module: &str, version: &str) -> std::path::PathBuf {
    let at_v = modcache.join(format!("cache/download/{module}/@v"));
    std::fs::create_dir_all(&at_v).unwrap();
    std::fs::write(
        at_v.join(format!("{version}.ziphash")),
        "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let dir = modcache.join(format!("{module}@{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), format!("module {module}\n")).unwrap();
    dir
}

fn sparse(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// Issue 18, item 6 (and the size limits of "every read is bounded"): a 16 GiB sparse file in
/// an extracted module, two 300 MiB files (600 MiB together, over Go's 500 MiB module limit),
/// (plus its 25-byte go.mod), a FIFO, and a 1 GiB `.ziphash`. `modcache verify` as the user must finish in seconds,
/// hash none of them, and report each module with the reason.
#[test]
fn modcache_verify_reports_oversized_and_special_files_without_hashing_them() {
    if !require_root("creates a user") {
        return;
    }
    let user = TestUser::create("hv");
    let modcache = user.home.join("go/pkg/mod");
    let big = fake_module(&modcache, "example.com/big", "v1.0.0");
    sparse(&big.join("big.bin"), 16 << 30);
    let total = fake_module(&modcache, "example.com/total", "v1.0.0");
    sparse(&total.join("a.bin"), 300 << 20);
    sparse(&total.join("b.bin"), 300 << 20);
    let fifo = fake_module(&modcache, "example.com/fifo", "v1.0.0");
    let out = Command::new("mkfifo")
        .arg(fifo.join("pipe"))
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfifo: {}", stderr(&out));
    fake_module(&modcache, "example.com/hash", "v1.0.0");
    sparse(
        &modcache.join("cache/download/example.com/hash/@v/v1.0.0.ziphash"),
        1 << 30,
    );
    user.give(&user.home.join("go"));

    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n\
         [scan]\ninterval_secs = 0\n[hygiene]\ntrim_interval_secs = 0\nverify_interval_secs = 0\n",
        user.name
    ));
    let _daemon = sb.start();

    let start = Instant::now();
    let out = user.ctl_as(&sb.socket(), &["modcache", "verify", "--json"]);
    let took = start.elapsed();
    eprintln!("modcache verify took {took:?}");
    let j = json_with_code(&out, 1);
    assert!(took < Duration::from_secs(10), "verify took {took:?}: {j}");
    let root = &j["roots"][0];
    assert_eq!(root["root"], modcache.display().to_string(), "{j}");
    assert_eq!(root["modules_verified"], 4, "{j}");
    // Only the go.mod files were read (a few bytes each), nothing of the big files.
    assert!(root["bytes_hashed"].as_u64().unwrap() < 4096, "{j}");
    let detail = |module: &str| -> String {
        let p = j["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["module"] == module)
            .unwrap_or_else(|| panic!("{module} not reported: {j}"));
        assert_eq!(p["status"], "corrupted", "{j}");
        p["detail"].as_str().unwrap().to_owned()
    };
    let d = detail("example.com/big");
    assert!(
        d.contains("example.com/big@v1.0.0/big.bin")
            && d.contains("17179869184 bytes")
            && d.contains("500 MiB")
            && d.contains("not hashed"),
        "{d}"
    );
    let d = detail("example.com/total");
    assert!(
        d.contains("total 629145625 bytes") && d.contains("not hashed"),
        "{d}"
    );
    let d = detail("example.com/fifo");
    assert!(
        d.contains("pipe") && d.contains("not a regular file"),
        "{d}"
    );
    let d = detail("example.com/hash");
    assert!(d.contains("ziphash") && d.contains("larger than"), "{d}");
}

/// Issue 18, item 7: `Repair`, `Trim` and `VerifyModules` naming another user's root answer
/// exactly as for a path that is no root at all (same exit code, same message with the
/// path replaced), so user B learns nothing about A's roots: neither that they exist, nor
/// their owner or kind.
#[test]
fn errors_about_roots_a_user_may_not_see_say_nothing_about_them() {
    if !require_root("creates users") {
        return;
    }
    let a = TestUser::create("ea");
    let b = TestUser::create("eb");
    let a_gocache = a.gocache_with(&["00"]);
    let a_modcache = a.home.join("go/pkg/mod");
    std::fs::create_dir_all(a_modcache.join("cache/download")).unwrap();
    a.give(&a.home.join("go"));
    b.gocache_with(&["00"]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\", \"{}\"]\n\
         [scan]\ninterval_secs = 0\n[hygiene]\ntrim_interval_secs = 0\nverify_interval_secs = 0\n",
        a.name, b.name
    ));
    let _daemon = sb.start();
    // A's roots are guarded (root sees them), so the refusal below is about them.
    let roots = stdout(&ctl(&sb.socket(), &["roots"]));
    assert!(
        roots.contains(&a_gocache.display().to_string())
            && roots.contains(&a_modcache.display().to_string()),
        "{roots}"
    );

    let missing = b.home.join("no/such/root");
    let same_answer = |args: &dyn Fn(&str) -> Vec<String>, theirs: &Path| {
        let ask = |p: &Path| {
            let args = args(p.to_str().unwrap());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = b.ctl_as(&sb.socket(), &args);
            let text =
                format!("{}{}", stdout(&out), stderr(&out)).replace(p.to_str().unwrap(), "<P>");
            (out.status.code(), text)
        };
        let (their_code, their_text) = ask(theirs);
        let (none_code, none_text) = ask(&missing);
        assert_eq!(their_code, Some(2), "{their_text}");
        assert_eq!(
            (their_code, &their_text),
            (none_code, &none_text),
            "another user's root and a missing one are told apart"
        );
        // (The kind a trim or verify names is the request's, the same for both.)
        for leak in [a.name.as_str(), "owned", "owner", "user ", "[[root]]"] {
            assert!(!their_text.contains(leak), "{leak:?} in {their_text}");
        }
        their_text
    };
    let text = same_answer(&|p| vec!["repair".into(), p.into()], &a_gocache);
    eprintln!("repair: {text}");
    same_answer(&|p| vec!["repair".into(), format!("{p}/00")], &a_gocache);
    let text = same_answer(&|p| vec!["trim".into(), p.into()], &a_gocache);
    eprintln!("trim: {text}");
    let text = same_answer(
        &|p| vec!["modcache".into(), "verify".into(), p.into()],
        &a_modcache,
    );
    eprintln!("verify: {text}");
    // The owner is still served.
    let own = a.ctl_as(&sb.socket(), &["repair", a_gocache.to_str().unwrap()]);
    assert_eq!(own.status.code(), Some(0), "{}", stderr(&own));
}

/// `getfacl -d --numeric` of `dir`'s default `other` entry (`other::rwx`).
fn default_other(dir: &Path) -> String {
    let out = Command::new(require_tool("getfacl", "acl"))
        .args(["-d", "--numeric", "--omit-header"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .find(|l| l.starts_with("other::"))
        .unwrap_or("")
        .to_owned()
}

/// Issue 18, item 7: in a root that declares ACLs, a group member gives a directory the
/// default ACL `d:o::rwx`, so everything anyone creates in it later is world-writable. That
/// is a `world_writable` finding (critical) naming the default entry; where world-writable
/// drift is self-healed the default entry loses `w`, and a file created afterwards is not
/// world-writable.
#[test]
fn a_world_writable_default_acl_in_an_acl_root_is_a_finding_and_healed() {
    if !require_root("creates users and a group, sets ACLs") {
        return;
    }
    let setfacl = require_tool("setfacl", "acl");
    let member = TestUser::create("am");
    let group = crate::security::TestGroup::create("ag", &[&member]);
    let sb = Sandbox::new();
    let alert = sb.path().join("shared-alert");
    let auto = sb.path().join("shared-auto");
    for dir in [&alert, &auto] {
        std::fs::create_dir(dir).unwrap();
        let out = Command::new("chown")
            .arg(format!("root:{}", group.name))
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o2775))
            .unwrap();
    }
    let root = |path: &Path, heal: &str| {
        format!(
            "[[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"{g}\"\n\
             acl = [\"g:{g}:rwX\", \"d:g:{g}:rwX\"]\nheal = {{ world_writable = \"{heal}\" }}\n",
            path.display(),
            g = group.name
        )
    };
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n{}{}",
        root(&alert, "alert"),
        root(&auto, "auto")
    ));
    let _daemon = sb.start();

    // The member prepares a directory with `d:o::rwx` in their home and moves it into each
    // root (goguardd hands new entries to root within milliseconds, so a directory made in
    // place could not be given an ACL by its member any more).
    for (i, top) in [&alert, &auto].into_iter().enumerate() {
        let staged = member.home.join(format!("evil{i}"));
        let out = crate::security::sh_as(
            &member,
            &format!(
                "mkdir {e} && {s} -d -m o::rwx {e} && mv {e} {t}/evil",
                e = staged.display(),
                s = setfacl.display(),
                t = top.display()
            ),
        );
        assert!(out.status.success(), "member: {}", stderr(&out));
    }

    // Self-healed root: the default entry loses `w` within seconds; a file another
    // process creates there afterwards is not world-writable.
    let healed = auto.join("evil");
    let start = Instant::now();
    while default_other(&healed) != "other::r-x" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "d:o::rwx not healed: {}",
            default_other(&healed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("d:o::rwx healed in {:?}", start.elapsed());
    // Alert-only root: a critical world_writable finding names the default entry.
    // (Findings of inotify-driven checks go to the event stream; the list is a scan's.)
    let evil = alert.join("evil");
    let rescan = ctl(&sb.socket(), &["rescan"]);
    // Exit 1: findings remain (the alert-only one).
    assert_eq!(rescan.status.code(), Some(1), "{}", stderr(&rescan));
    let deadline = Instant::now() + Duration::from_secs(10);
    let finding = loop {
        let out = ctl(&sb.socket(), &["findings", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        if let Some(f) = list
            .iter()
            .find(|f| f["path"] == evil.display().to_string() && f["kind"] == "world_writable")
        {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no world_writable finding for {}: {list:#?}",
            evil.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(finding["observed"], "d:o::rwx", "{finding}");
    assert_eq!(finding["severity"], "critical", "{finding}");
    assert_eq!(
        default_other(&evil),
        "other::rwx",
        "alert-only root was changed"
    );

    let out = crate::security::sh_as(&member, &format!("touch {}/new", healed.display()));
    assert!(out.status.success(), "{}", stderr(&out));
    let mode =
        std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(healed.join("new")).unwrap());
    assert_eq!(mode & 0o002, 0, "new file is world-writable: {mode:o}");
}

/// The watcher's component in `goguardctl status --json` (which exits 1 when something is
/// degraded).
fn watcher_component(socket: &Path) -> serde_json::Value {
    json(&ctl(socket, &["status", "--json"]))["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "watcher")
        .unwrap()
        .clone()
}

/// `last_scan_unix` of the root at `path`, as root's `goguardctl roots --json` lists it.
fn last_scan(socket: &Path, path: &Path) -> f64 {
    let j = json(&ctl(socket, &["roots", "--json"]));
    j["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path.display().to_string())
        .unwrap_or_else(|| panic!("{} not listed: {j}", path.display()))["last_scan_unix"]
        .as_f64()
        .unwrap()
}

/// A root-owned file planted at `path` (drift in a user's cache) and how long goguardd took
/// to give it back to `uid` (panics after `limit`).
fn healed_within(path: &Path, uid: u32, limit: Duration) -> Duration {
    use std::os::unix::fs::MetadataExt;
    std::fs::write(path, b"drift").unwrap();
    let start = Instant::now();
    while std::fs::metadata(path).unwrap().uid() != uid {
        assert!(
            start.elapsed() < limit,
            "{} not healed in {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Issue 18, attack 3: user A makes 5,000 directories in their own GOCACHE against a watch
/// budget of 2,000. A's root stops at its share (status: watcher degraded naming A's root
/// and why), B's drift is still healed within seconds, while and after A's directories are
/// made, drift beyond A's share is healed by the backstop scan of A's root alone, and A
/// rewriting their environment.d every half second neither rescans B's root nor causes more
/// than a debounced rediscovery or two.
#[test]
fn one_users_directories_cannot_starve_other_users() {
    if !require_root("creates users") {
        return;
    }
    let a = TestUser::create("fa");
    let b = TestUser::create("fb");
    let a_cache = a.gocache_with(&["00"]);
    let b_cache = b.gocache_with(&["00"]);
    for u in [&a, &b] {
        std::fs::create_dir_all(u.home.join(".config/environment.d")).unwrap();
        u.give(&u.home.join(".config"));
    }
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\", \"{}\"]\n\
         [scan]\ninterval_secs = 0\nmax_watches = 2000\nlimited_rescan_secs = 2\n\
         [hygiene]\ntrim_interval_secs = 0\nverify_interval_secs = 0\n",
        a.name, b.name
    ));
    let daemon = sb.start();
    let share = {
        let w = watcher_component(&sb.socket());
        assert_eq!(w["state"], "running", "{w}");
        w["detail"].as_str().unwrap().to_owned()
    };
    eprintln!("watcher before: {share}");

    // A makes 5,000 directories while B's cache drifts.
    let mut mkdirs = Command::new(require_tool("runuser", "util-linux"))
        .args(["-u", &a.name, "--", "sh", "-c"])
        .arg(format!(
            "cd {} && seq -f 'd%05g' 0 4999 | xargs mkdir",
            a_cache.display()
        ))
        .spawn()
        .unwrap();
    let mut during = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while mkdirs.try_wait().unwrap().is_none() || i < 3 {
        during.push(healed_within(
            &b_cache.join(format!("00/drift-{i}")),
            b.uid(),
            Duration::from_secs(5),
        ));
        i += 1;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "mkdir ran away"
        );
    }
    assert!(mkdirs.wait().unwrap().success());
    eprintln!(
        "A's 5,000 mkdirs took {:?}; B's drift healed meanwhile in {during:?}",
        started.elapsed()
    );

    // Status names A's root as over its share, not B's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let w = loop {
        let w = watcher_component(&sb.socket());
        if w["state"] == "degraded" {
            break w;
        }
        assert!(Instant::now() < deadline, "watcher never degraded: {w}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let detail = w["detail"].as_str().unwrap();
    eprintln!("watcher after: {detail}");
    assert!(
        detail.contains(&format!("{} holds its share", a_cache.display())),
        "{detail}"
    );
    assert!(!detail.contains(&b_cache.display().to_string()), "{detail}");
    // The counts catch up within a second: A took more than its share of 500 (half of what
    // the others leave) but far from the whole budget.
    std::thread::sleep(Duration::from_millis(1500));
    let w = watcher_component(&sb.socket());
    let detail = w["detail"].as_str().unwrap().to_owned();
    let watches: usize = detail
        .split(" inotify watches")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no watch count in {detail}"));
    eprintln!("watches held after A's flood: {watches}");
    assert!((500..=1100).contains(&watches), "{detail}");
    // B still heals fast after.
    let after = healed_within(
        &b_cache.join("00/drift-after"),
        b.uid(),
        Duration::from_secs(3),
    );
    eprintln!("B's drift healed after A's flood in {after:?}");

    // Drift beyond A's share is healed by the backstop scan of A's root (every 2 s here).
    let unwatched = a_cache.join("d04999/drift");
    let took = healed_within(&unwatched, a.uid(), Duration::from_secs(15));
    eprintln!("drift in an unwatched directory of A's root healed by the backstop in {took:?}");

    // A rewrites their environment.d every 0.5 s for 8 s: B's root is never scanned again,
    // and discovery runs once or twice (debounced), not four times.
    let b_scanned = last_scan(&sb.socket(), &b_cache);
    let rediscoveries =
        |d: &crate::util::Daemon| d.log_text().matches("discovering roots again").count();
    let before = rediscoveries(&daemon);
    let envd = a.home.join(".config/environment.d");
    for n in 0..16 {
        let out = crate::security::sh_as(
            &a,
            &format!(
                "echo FOO={n} > {d}/t{n}.conf && rm -f {d}/t{}.conf",
                n.max(1) - 1,
                d = envd.display()
            ),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rediscoveries(&daemon) == before {
        assert!(
            Instant::now() < deadline,
            "A's environment.d change never rediscovered:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let runs = rediscoveries(&daemon) - before;
    eprintln!("16 environment.d rewrites in 8 s: {runs} rediscoveries");
    assert!((1..=2).contains(&runs), "{runs} rediscoveries");
    assert_eq!(
        last_scan(&sb.socket(), &b_cache),
        b_scanned,
        "B's root was rescanned for A's environment change"
    );
}

/// A path-less AVC (`name=`, `dev=`, `ino=` only) of a go process.
fn pathless_avc(serial: u64, name: &str, dev: &str, ino: u64, class: &str) -> String {
    let id = format!("msg=audit(1700000000.{serial:03}:{serial})");
    format!(
        "type=AVC {id}: avc:  denied  {{ read }} for  pid=4242 comm=\"go\" name=\"{name}\" dev=\"{dev}\" ino={ino} scontext=unconfined_u:unconfined_r:gobuild_t:s0 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass={class} permissive=0\n\
         type=SYSCALL {id}: arch=c000003e syscall=257 success=no exit=-13 items=0 ppid=4000 pid=4242 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=(none) ses=3 comm=\"go\" exe=\"/usr/lib/go-1.19/bin/go\" subj=unconfined_u:unconfined_r:gobuild_t:s0 key=(null)\n\
         type=EOE {id}: \n"
    )
}

/// Issue 18, item 7: every tmpfs numbers its inodes afresh and the kernel names them all
/// `dev="tmpfs"`. A user's denial on a file in their tmpfs must not be resolved to the file
/// with the same inode and name in an admin's root on another tmpfs: matches on two devices
/// are ambiguous and nothing is resolved; a match on one tmpfs only is resolved; a file is
/// never the target of a `tclass=dir` denial.
#[test]
fn a_tmpfs_inode_is_never_resolved_on_another_tmpfs() {
    use std::os::unix::fs::MetadataExt;
    if !require_root("mounts tmpfs, creates a user, reads denials as an admin") {
        return;
    }
    let user = TestUser::create("tm");
    let sb = Sandbox::new();
    let admin_root = sb.path().join("admin");
    let user_root = sb.path().join("user");
    let _m1 = mount_tmpfs(&admin_root, "1m");
    let _m2 = mount_tmpfs(&user_root, "1m");
    user.give(&user_root);
    // The same names made in the same order: the same inode numbers on both tmpfs.
    std::fs::write(admin_root.join("f"), b"admin's").unwrap();
    std::fs::write(admin_root.join("g"), b"admin's only").unwrap();
    let out = crate::security::sh_as(&user, &format!("echo mine > {}/f", user_root.display()));
    assert!(out.status.success(), "{}", stderr(&out));
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&admin_root.join("f")),
        ino(&user_root.join("f")),
        "this kernel does not number tmpfs inodes per mount; the attack needs it"
    );
    assert_ne!(
        std::fs::metadata(&admin_root).unwrap().dev(),
        std::fs::metadata(&user_root).unwrap().dev()
    );
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = true\nlog = \"{}\"\nevent_timeout_ms = 200\n\
         retention_days = 0\n[scan]\ninterval_secs = 0\n[heal]\nauto = false\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"{}\"\n",
        log.display(),
        admin_root.display(),
        user_root.display(),
        user.name
    ));
    let _daemon = sb.start();
    crate::audit::append_pub(
        &log,
        &[
            // The user's own f: the same inode and name exist in the admin's root.
            pathless_avc(1, "f", "tmpfs", ino(&user_root.join("f")), "file"),
            // g exists on the admin's tmpfs only: resolved there.
            pathless_avc(2, "g", "tmpfs", ino(&admin_root.join("g")), "file"),
            // A dir denial never lands on a file.
            pathless_avc(3, "g", "tmpfs", ino(&admin_root.join("g")), "dir"),
        ]
        .concat(),
    );
    let deadline = Instant::now() + STARTUP;
    let all = loop {
        let out = ctl(
            &sb.socket(),
            &["denials", "--explain", "--json", "--limit", "0"],
        );
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if all.len() >= 3 {
            break all;
        }
        assert!(Instant::now() < deadline, "denials: {}", stdout(&out));
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets: Vec<String> = all
        .iter()
        .map(|d| d["target"].as_str().unwrap().to_owned())
        .collect();
    eprintln!("targets: {targets:?}");
    let admin_f = admin_root.join("f").display().to_string();
    let user_f = user_root.join("f").display().to_string();
    assert!(
        !targets.contains(&admin_f) && !targets.contains(&user_f),
        "an ambiguous tmpfs inode was resolved: {targets:?}"
    );
    assert!(targets.iter().any(|t| t == "f"), "{targets:?}");
    let admin_g = admin_root.join("g").display().to_string();
    assert_eq!(
        targets.iter().filter(|t| **t == admin_g).count(),
        1,
        "g (file) resolved once, not for the dir denial: {targets:?}"
    );
}

/// Descends `levels` directories of 200-byte names beneath `top` by fd (never by a path the
/// kernel would refuse as too long), making them when `make`, and returns the deepest
/// directory's fd.
fn deep_dir(top: &Path, levels: usize, make: bool) -> std::os::fd::OwnedFd {
    use rustix::fs::{Mode, OFlags};
    let name = "d".repeat(200);
    let mut fd = rustix::fs::open(top, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..levels {
        if make {
            match rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => panic!("mkdirat: {e}"),
            }
        }
        fd = rustix::fs::openat(
            &fd,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap();
    }
    fd
}

/// Owner of `name` in the directory `dir`.
fn owner_at(dir: &std::os::fd::OwnedFd, name: &str) -> u32 {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .unwrap()
        .st_uid
}

/// A root-owned file `name` in `dir` (drift in a user's cache).
fn plant_at(dir: &std::os::fd::OwnedFd, name: &str) {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
}

/// Issue 18, item 7: entries deeper than PATH_MAX (4096 bytes of path below the root) are
/// repaired through directory fds, one bounded step at a time: root's pollution 25 levels of
/// 200-byte names down (5,025 bytes) is given back to the user at the first scan, and by the
/// user's own `goguardctl repair`, and the journal records it.
#[test]
fn entries_deeper_than_path_max_are_repaired() {
    if !require_root("creates a user, chowns to root") {
        return;
    }
    let user = TestUser::create("dp");
    let gocache = user.gocache_with(&["00"]);
    let levels = 25;
    let bottom = deep_dir(&gocache, levels, true);
    user.give(&gocache);
    plant_at(&bottom, "at-start");
    assert_eq!(owner_at(&bottom, "at-start"), 0);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0\n\
         [hygiene]\ntrim_interval_secs = 0\nverify_interval_secs = 0\n",
        user.name
    ));
    let daemon = sb.start();
    // The first scan heals it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while owner_at(&bottom, "at-start") != user.uid() {
        assert!(
            Instant::now() < deadline,
            "not healed at {} bytes deep:\n{}",
            levels * 201,
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The user's own repair reaches it too (the watcher does not watch that deep).
    plant_at(&bottom, "asked");
    let out = user.ctl_as(&sb.socket(), &["repair", gocache.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(owner_at(&bottom, "asked"), user.uid(), "{}", stdout(&out));
    let journal = json(&user.ctl_as(&sb.socket(), &["journal", "--json"]));
    let text = journal.to_string();
    assert!(
        text.contains("/at-start\"") && text.contains("/asked\""),
        "both deep repairs journaled: {text:.2000}"
    );
}
