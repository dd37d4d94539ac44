//! Cache hygiene end to end with a real Go toolchain and a real goguardd: `goguardctl trim`
//! removes what Go's own rules say (entries unused for 5 days) and what a size cap evicts,
//! and the user's `go build` still succeeds afterwards, reusing what was kept;
//! `goguardctl modcache verify` agrees with `go mod verify` on an intact and a corrupted
//! module cache filled from a local `file://` GOPROXY the test builds, and checks go.sum.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use crate::users::{TestUser, go_build_command};
use crate::util::*;

/// A second program in the user's home (its own packages, so its own cache entries).
fn second_project(user: &TestUser) -> PathBuf {
    let dir = user.home.join("src/other");
    std::fs::create_dir_all(dir.join("shapes")).unwrap();
    std::fs::write(dir.join("go.mod"), "module example.com/other\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.join("shapes/shapes.go"),
        "package shapes\n\nfunc Area(w, h int) int { return w * h }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n\n\t\"example.com/other/shapes\"\n)\n\n\
         func main() { fmt.Println(strings.Repeat(\"x\", shapes.Area(2, 3))) }\n",
    )
    .unwrap();
    user.give(&user.home.join("src"));
    dir
}

/// Whether a `go build -x` ran the compiler.
fn compiled(out: &Output) -> bool {
    stderr(out)
        .lines()
        .any(|l| l.contains("/pkg/tool/") && l.contains("/compile "))
}

/// `go build [extra]` as the user.
fn build_as(user: &TestUser, project: &Path, extra: &[&str]) -> Output {
    let gid = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .gid;
    go_build_command(project, &user.home, extra)
        .uid(user.uid())
        .gid(gid.as_raw())
        .output()
        .unwrap()
}

/// The `-a`/`-d` entries of a GOCACHE, by relative path.
fn entries(gocache: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for d in std::fs::read_dir(gocache).unwrap().flatten() {
        if !d.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with("-a") || name.ends_with("-d") {
                out.insert(format!("{}/{name}", d.file_name().to_string_lossy()));
            }
        }
    }
    out
}

fn set_mtime(path: &Path, t: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

fn hygiene_sandbox(user: &TestUser, extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = false\n[discovery]\nusers = [\"{}\"]\n\
         [scan]\ninterval_secs = 0\n[hygiene]\ntrim_interval_secs = 0\nverify_interval_secs = 0\n\
         {extra}",
        user.name
    ));
    sb
}

/// Asserts `out` exited with `code` (showing its output if not) and parses its JSON.
/// A test user with two programs in their home and their GOCACHE path; `None` (the test
/// skips) when not root.
fn user_with_two_programs(tag: &str) -> Option<(TestUser, PathBuf, PathBuf, PathBuf)> {
    if !require_root("creates a user") {
        return None;
    }
    let user = TestUser::create(tag);
    let hello = user.project();
    let other = second_project(&user);
    let gocache = user.home.join(".cache/go-build");
    Some((user, hello, other, gocache))
}

#[test]
fn a_trim_removes_what_go_would_and_builds_still_reuse_what_was_kept() {
    let Some((user, hello, other, gocache)) = user_with_two_programs("t") else {
        return;
    };
    for p in [&hello, &other] {
        let b = build_as(&user, p, &[]);
        assert!(b.status.success(), "{}", stderr(&b));
    }
    let all = entries(&gocache);
    // Everything unused for 10 days; then a build of `hello` uses (and so refreshes, as Go
    // refreshes an entry older than an hour) exactly the entries it needs.
    let old = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for e in &all {
        set_mtime(&gocache.join(e), old);
    }
    assert!(build_as(&user, &hello, &[]).status.success());
    // (That build may add entries of its own, e.g. for the link step.)
    let all = entries(&gocache);
    let fresh: std::collections::BTreeSet<String> = all
        .iter()
        .filter(|e| {
            std::fs::metadata(gocache.join(e))
                .unwrap()
                .modified()
                .unwrap()
                > SystemTime::now() - Duration::from_secs(3600)
        })
        .cloned()
        .collect();
    assert!(
        !fresh.is_empty() && fresh.len() < all.len(),
        "{} of {}",
        fresh.len(),
        all.len()
    );

    let sb = hygiene_sandbox(&user, "");
    let _daemon = sb.start();
    // Go trimmed this cache today (trim.txt, written by the builds): not due without --force.
    let not_due = ctl(&sb.socket(), &["trim", "--json", gocache.to_str().unwrap()]);
    assert_eq!(not_due.status.code(), Some(0), "{}", stderr(&not_due));
    let j = json(&not_due);
    assert_eq!(j["results"][0]["ran"], false, "{j}");
    assert_eq!(entries(&gocache), all);

    // A dry run says what would go and removes nothing.
    let dry = ctl(&sb.socket(), &["trim", "--dry-run", "--force", "--json"]);
    let j = json(&dry);
    let planned = j["results"][0]["entries_removed"].as_u64().unwrap();
    assert_eq!(planned as usize, all.len() - fresh.len(), "{j}");
    assert_eq!(entries(&gocache), all);

    // The user trims their own cache, without sudo.
    let trim = user.ctl_as(&sb.socket(), &["trim", "--force", "--json"]);
    let j = json_with_code(&trim, 0);
    assert_eq!(j["results"][0]["ran"], true, "{j}");
    assert!(j["results"][0]["bytes_freed"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(
        entries(&gocache),
        fresh,
        "exactly the entries unused for 5 days go"
    );
    // trim.txt is Go's format and the cache owner's.
    let trim_txt = std::fs::read_to_string(gocache.join("trim.txt")).unwrap();
    let t: i64 = trim_txt.trim_end().parse().unwrap();
    assert!((roots_now() - t).abs() < 120, "{trim_txt:?}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(gocache.join("trim.txt")).unwrap().uid(),
        user.uid()
    );

    // `hello` builds from what was kept: nothing is compiled again (`go build -x` prints
    // every command it runs), and every kept entry is still there. `other` lost its
    // entries: it compiles again, and succeeds.
    let b = build_as(&user, &hello, &["-x"]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(!compiled(&b), "hello was compiled again:\n{}", stderr(&b));
    assert!(fresh.is_subset(&entries(&gocache)));
    let b = build_as(&user, &other, &["-x"]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(
        compiled(&b),
        "other's entries were trimmed; it must compile"
    );

    // Another user may not trim this cache, and is not told whose it is.
    let stranger = TestUser::create("u");
    let refused = stranger.ctl_as(&sb.socket(), &["trim", gocache.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("is not a gocache root goguardd guards for uid"),
        "{}",
        stderr(&refused)
    );
}

fn roots_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_size_cap_evicts_least_recently_used_entries_whole() {
    let Some((user, hello, other, gocache)) = user_with_two_programs("s") else {
        return;
    };
    assert!(build_as(&user, &other, &[]).status.success());
    // `other`'s entries were used three hours ago (past the cap's two-hour grace, not
    // expired); `hello`'s now.
    let three_hours = SystemTime::now() - Duration::from_secs(3 * 3600);
    for e in entries(&gocache) {
        set_mtime(&gocache.join(e), three_hours);
    }
    assert!(build_as(&user, &hello, &[]).status.success());
    let size = |set: &std::collections::BTreeSet<String>| -> u64 {
        set.iter()
            .map(|e| std::fs::metadata(gocache.join(e)).map_or(0, |m| m.len()))
            .sum()
    };
    let total = size(&entries(&gocache));
    // What `hello` used or made is fresh (Go refreshed what it reused): never evicted.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let fresh: std::collections::BTreeSet<String> = entries(&gocache)
        .into_iter()
        .filter(|e| {
            std::fs::metadata(gocache.join(e))
                .unwrap()
                .modified()
                .unwrap()
                > hour_ago
        })
        .collect();
    // A cap a little above what the fresh entries need.
    let cap = size(&fresh) + 4096;
    assert!(cap < total, "cap {cap} total {total}");
    let sb = hygiene_sandbox(&user, &format!("gocache_max_size = {cap}\n"));
    let _daemon = sb.start();
    let trim = ctl(&sb.socket(), &["trim", "--json"]);
    let j = json_with_code(&trim, 0);
    let r = &j["results"][0];
    assert!(r["evicted_for_size"].as_u64().unwrap() > 0, "{j}");
    assert!(r["bytes_after"].as_u64().unwrap() <= cap, "{j}");
    let left = entries(&gocache);
    assert!(size(&left) <= cap);
    assert!(
        fresh.is_subset(&left),
        "an entry used within the hour was evicted"
    );
    // No half entries: every kept action's output is kept.
    for a in left.iter().filter(|e| e.ends_with("-a")) {
        let record = std::fs::read_to_string(gocache.join(a)).unwrap();
        let out_id = record.split_whitespace().nth(2).unwrap();
        let d = format!("{}/{out_id}-d", &out_id[..2]);
        let size_field: u64 = record.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(
            size_field == 0 || left.contains(&d),
            "{a} refers to missing {d}"
        );
    }
    // Builds still work.
    assert!(build_as(&user, &hello, &[]).status.success());
    assert!(build_as(&user, &other, &[]).status.success());
}

/// A file:// GOPROXY with one module `example.com/lib` v1.0.0, made with python3's zipfile
/// (zip entries are `module@version/name`, as the proxy protocol wants).
fn make_proxy(dir: &Path) {
    let script = r#"
import os, sys, zipfile
proxy = sys.argv[1]
v = os.path.join(proxy, "example.com", "lib", "@v")
os.makedirs(v, exist_ok=True)
files = {
    "go.mod": "module example.com/lib\n\ngo 1.19\n",
    "lib.go": "package lib\n\nfunc Greeting() string { return \"hello\" }\n",
    "LICENSE": "public domain\n",
}
open(os.path.join(v, "list"), "w").write("v1.0.0\n")
open(os.path.join(v, "v1.0.0.info"), "w").write('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
open(os.path.join(v, "v1.0.0.mod"), "w").write(files["go.mod"])
with zipfile.ZipFile(os.path.join(v, "v1.0.0.zip"), "w") as z:
    for name, text in files.items():
        z.writestr("example.com/lib@v1.0.0/" + name, text)
"#;
    let out = Command::new(require_tool("python3", "python3"))
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `go` as the user in `project`, with the module cache in the user's GOPATH and the proxy.
fn go_as(user: &TestUser, project: &Path, proxy: &Path, args: &[&str]) -> Output {
    let gid = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .gid;
    Command::new(require_tool("go", "golang-go"))
        .current_dir(project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &user.home)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "-mod=mod")
        .args(args)
        .uid(user.uid())
        .gid(gid.as_raw())
        .output()
        .unwrap()
}

#[test]
fn modcache_verify_agrees_with_go_mod_verify_and_checks_go_sum() {
    if !require_root("creates a user") {
        return;
    }
    let user = TestUser::create("m");
    let proxy = user.home.join("proxy");
    make_proxy(&proxy);
    let app = user.home.join("src/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("go.mod"),
        "module example.com/app\n\ngo 1.19\n\nrequire example.com/lib v1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Greeting()) }\n",
    )
    .unwrap();
    user.give(&user.home);
    let dl = go_as(
        &user,
        &app,
        &proxy,
        &["mod", "download", "-x", "example.com/lib"],
    );
    assert!(dl.status.success(), "{}", stderr(&dl));
    let tidy = go_as(&user, &app, &proxy, &["build", "-o", "/dev/null", "."]);
    assert!(tidy.status.success(), "{}", stderr(&tidy));
    let gosum = app.join("go.sum");
    assert!(
        std::fs::read_to_string(&gosum)
            .unwrap()
            .contains("example.com/lib v1.0.0 h1:")
    );

    let sb = hygiene_sandbox(&user, "");
    let _daemon = sb.start();
    let modcache = user.home.join("go/pkg/mod");
    // Intact: both agree.
    let go_ok = go_as(&user, &app, &proxy, &["mod", "verify"]);
    assert!(go_ok.status.success(), "{}", stderr(&go_ok));
    let ours = user.ctl_as(&sb.socket(), &["modcache", "verify", "--json"]);
    let j = json_with_code(&ours, 0);
    assert_eq!(j["intact"], true, "{j}");
    assert_eq!(j["roots"][0]["root"], modcache.display().to_string(), "{j}");
    assert!(
        j["roots"][0]["modules_verified"].as_u64().unwrap() >= 1,
        "{j}"
    );
    // go.sum lines match the cache.
    let with_sum = user.ctl_as(
        &sb.socket(),
        &[
            "modcache",
            "verify",
            "--gosum",
            gosum.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(with_sum.status.code(), Some(0), "{}", stdout(&with_sum));

    // An extracted file changed: go mod verify fails naming the module; so do we.
    let lib_go = modcache.join("example.com/lib@v1.0.0/lib.go");
    let dir = lib_go.parent().unwrap();
    Command::new("chmod")
        .arg("u+w")
        .arg(dir)
        .arg(&lib_go)
        .status()
        .unwrap();
    std::fs::write(
        &lib_go,
        "package lib\n\nfunc Greeting() string { return \"pwned\" }\n",
    )
    .unwrap();
    let go_bad = go_as(&user, &app, &proxy, &["mod", "verify"]);
    assert!(!go_bad.status.success());
    let go_text = format!("{}{}", stdout(&go_bad), stderr(&go_bad));
    assert!(go_text.contains("example.com/lib v1.0.0"), "{go_text}");
    let ours = user.ctl_as(&sb.socket(), &["modcache", "verify", "--json"]);
    assert_eq!(ours.status.code(), Some(1), "{}", stdout(&ours));
    let j = json(&ours);
    let p = &j["problems"][0];
    assert_eq!(
        (
            p["module"].as_str(),
            p["version"].as_str(),
            p["status"].as_str()
        ),
        (Some("example.com/lib"), Some("v1.0.0"), Some("corrupted")),
        "{j}"
    );
    assert!(p["detail"].as_str().unwrap().contains("lib.go"), "{j}");
    let text = user.ctl_as(&sb.socket(), &["modcache", "verify"]);
    assert!(
        stdout(&text).contains("example.com/lib@v1.0.0"),
        "{}",
        stdout(&text)
    );

    // A go.sum that disagrees with the cache is reported for the line.
    let tampered = user.home.join("tampered.sum");
    let sum = std::fs::read_to_string(&gosum).unwrap();
    let mut lines: Vec<String> = sum.lines().map(str::to_owned).collect();
    for l in lines
        .iter_mut()
        .filter(|l| l.starts_with("example.com/lib v1.0.0 h1:"))
    {
        *l = "example.com/lib v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    }
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let ours = user.ctl_as(
        &sb.socket(),
        &[
            "modcache",
            "verify",
            "--gosum",
            tampered.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(ours.status.code(), Some(1));
    assert!(stdout(&ours).contains("go.sum line"), "{}", stdout(&ours));
    // A missing go.sum file is an error that says what to give.
    let missing = ctl(
        &sb.socket(),
        &["modcache", "verify", "--gosum", "/nonexistent/go.sum"],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("go.sum"), "{}", stderr(&missing));
}

#[test]
fn an_abandoned_cache_is_trimmed_on_schedule() {
    if !require_root("creates a user") {
        return;
    }
    let user = TestUser::create("v");
    let hello = user.project();
    let gocache = user.home.join(".cache/go-build");
    assert!(build_as(&user, &hello, &[]).status.success());
    // Nobody has used it for a week, and Go's last trim was a week ago.
    let old = SystemTime::now() - Duration::from_secs(7 * 86_400);
    for e in entries(&gocache) {
        set_mtime(&gocache.join(e), old);
    }
    let week_ago = roots_now() - 7 * 86_400;
    std::fs::write(gocache.join("trim.txt"), format!("{week_ago}\n")).unwrap();
    assert!(!entries(&gocache).is_empty());

    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0\n\
         [hygiene]\ntrim_interval_secs = 1\nverify_interval_secs = 0\n",
        user.name
    ));
    let _daemon = sb.start();
    let deadline = std::time::Instant::now() + STARTUP;
    while !entries(&gocache).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never trimmed the abandoned cache"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The entries go before the trim records itself: wait for trim.txt, read the way Go's
    // lockedfile.Read does (a shared flock; the writer truncates, then writes, under an
    // exclusive one), so a rewrite in progress is never read half-done.
    let read_trim_txt = || -> String {
        let f = std::fs::File::open(gocache.join("trim.txt")).unwrap();
        let mut locked = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockShared)
            .map_err(|(_, e)| e)
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut *locked, &mut text).unwrap();
        text
    };
    let t = loop {
        let text = read_trim_txt();
        let t: i64 = text
            .trim_end()
            .parse()
            .unwrap_or_else(|e| panic!("trim.txt read under Go's lock: {text:?}: {e}"));
        if t > week_ago + 86_400 || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(t > week_ago + 86_400, "trim.txt was not renewed: {t}");
    // The next tick finds nothing due (trim.txt is fresh): the build cache refills and stays.
    assert!(build_as(&user, &hello, &[]).status.success());
    std::thread::sleep(Duration::from_secs(3));
    assert!(!entries(&gocache).is_empty());
}
