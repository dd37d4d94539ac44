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
