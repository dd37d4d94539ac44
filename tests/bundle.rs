//! Offline module-cache prefill end to end (issue 16), with the real Go toolchain and real
//! unprivileged users: user A, on the "connected" side, downloads a chain of modules from a
//! local `file://` GOPROXY (crates/cli/scripts/fake-proxy.py) and exports them with
//! `goguardctl bundle export`; user B, with a fresh module cache and no proxy, imports the
//! bundle and builds with `GOPROXY=off`. Tampered bundles, a full disk (a small tmpfs) and a
//! symlink planted in the target are each refused or survived as the design says.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::users::{TestUser, go_build_command};
use crate::util::*;

const FAKE_PROXY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/cli/scripts/fake-proxy.py"
);

/// A command run as `user` with a clean environment (PATH, HOME, Go offline unless `env`
/// says otherwise).
pub fn as_user(user: &TestUser, program: &str, env: &[(&str, &str)]) -> Command {
    let gid = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .gid;
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &user.home)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .current_dir(&user.home)
        .uid(user.uid())
        .gid(gid.as_raw());
    c
}

fn gid_of(user: &TestUser) -> u32 {
    nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
}

/// This process's umask (children inherit it), from /proc without changing it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
}

/// The connected side: A's proxy and app, `go mod tidy` through the proxy, and the bundle
/// exported as a tar and as a directory. Returns (A, the tar, the directory, the app dir).
struct Connected {
    /// Kept so that A (and A's files) live as long as the test.
    _a: TestUser,
    tar: PathBuf,
    dir: PathBuf,
    app: PathBuf,
}

/// Runs crates/cli/scripts/fake-proxy.py: a `file://` GOPROXY at `proxy` serving a chain of
/// modules, and an app at `app` that needs them.
pub fn fake_proxy(proxy: &Path, app: &Path) {
    let out = Command::new(require_tool("python3", "python3"))
        .arg(FAKE_PROXY)
        .arg("--proxy")
        .arg(proxy)
        .arg("--app")
        .arg(app)
        .arg("chain")
        .output()
        .unwrap();
    ok(&out);
}

fn connected(tag: &str) -> Connected {
    let a = TestUser::create(tag);
    let proxy = a.home.join("proxy");
    let app = a.home.join("src/app");
    fake_proxy(&proxy, &app);
    a.give(&a.home);
    let proxy_url = format!("file://{}", proxy.display());
    let online = [
        ("GOPROXY", proxy_url.as_str()),
        ("GOSUMDB", "off"),
        ("GOFLAGS", "-mod=mod"),
    ];
    let go = require_tool("go", "golang-go");
    ok(&as_user(&a, go.to_str().unwrap(), &online)
        .current_dir(&app)
        .args(["mod", "tidy"])
        .output()
        .unwrap());
    let tar = a.home.join("modules.tar");
    let dir = a.home.join("modules");
    for out in [&tar, &dir] {
        let export = as_user(&a, GOGUARDCTL, &online)
            .args(["bundle", "export", "--json", "--out"])
            .arg(out)
            .arg(app.join("go.mod"))
            .output()
            .unwrap();
        let j = json_with_code(&export, 0);
        // a, b and Upper/c with their zips; d is in c's go.mod only, and go.sum has no line
        // for it (the pruned graph never needs it): not bundled.
        assert_eq!(j["versions"], 3, "{j}");
        assert_eq!(j["zips"], 3, "{j}");
        assert_eq!(j["not_in_go_sum"][0], "example.com/d@v1.0.0", "{j}");
    }
    Connected {
        _a: a,
        tar,
        dir,
        app,
    }
}

/// B's copy of the bundle (root copies it over, as a USB stick would) and of the app source.
fn carry(c: &Connected, b: &TestUser) -> (PathBuf, PathBuf, PathBuf) {
    let copy = |from: &Path, to: &Path| {
        let out = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .output()
            .unwrap();
        ok(&out);
    };
    let tar = b.home.join("modules.tar");
    let dir = b.home.join("modules");
    let app = b.home.join("app");
    copy(&c.tar, &tar);
    copy(&c.dir, &dir);
    copy(&c.app, &app);
    b.give(&b.home);
    (tar, dir, app)
}

fn import_as(b: &TestUser, bundle: &Path, modcache: &Path, extra: &[&str]) -> Output {
    as_user(b, GOGUARDCTL, &[])
        .args(["bundle", "import", "--json", "--modcache"])
        .arg(modcache)
        .args(extra)
        .arg(bundle)
        .output()
        .unwrap()
}

/// Every entry beneath `dir`: kind, mode, owner, and content hash (or link target).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                walk(base, &p, out);
                "dir".to_owned()
            } else {
                let f = std::fs::File::open(&p).unwrap();
                goguard_hygiene::dirhash::hex(&goguard_hygiene::dirhash::sha256_reader(f).unwrap())
            };
            out.insert(rel, format!("{what} {:o} {}", m.mode(), m.uid()));
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_bundle_exported_by_one_user_builds_offline_for_another() {
    if !require_root("creates users") {
        return;
    }
    let c = connected("xa");
    let b = TestUser::create("xb");
    let (tar, dir, app) = carry(&c, &b);
    let modcache = b.home.join("go/pkg/mod");

    // Without the modules, B's offline build fails (the test would prove nothing otherwise).
    let before = go_build_command(&app, &b.home, &[])
        .uid(b.uid())
        .gid(gid_of(&b))
        .output()
        .unwrap();
    assert!(!before.status.success(), "built without the modules?");

    // Root may not fill B's cache: the files would be root's (the guide's failure 1).
    std::fs::create_dir_all(&modcache).unwrap();
    b.give(&b.home.join("go"));
    let untouched = snapshot(&modcache);
    let by_root = Command::new(GOGUARDCTL)
        .args(["bundle", "import", "--modcache"])
        .arg(&modcache)
        .arg(&tar)
        .output()
        .unwrap();
    assert_eq!(by_root.status.code(), Some(2), "{}", stderr(&by_root));
    assert!(
        stderr(&by_root).contains(&format!("belongs to {}", b.name)),
        "{}",
        stderr(&by_root)
    );
    assert_eq!(snapshot(&modcache), untouched);

    let imported = import_as(&b, &tar, &modcache, &[]);
    let j = json_with_code(&imported, 0);
    assert_eq!(j["outcome"], "imported", "{j}");
    assert_eq!(j["versions_complete"], 3, "{j}");
    assert_eq!(j["files_placed"], 12, "{j}");
    // Everything is B's, with the modes Go gives its downloads (0666 less the umask).
    let umask = umask();
    for (path, what) in snapshot(&modcache) {
        let m = std::fs::symlink_metadata(modcache.join(&path)).unwrap();
        assert_eq!(m.uid(), b.uid(), "{path} {what}");
        let want = if m.is_dir() { 0o777 } else { 0o666 } & !umask;
        assert_eq!(m.permissions().mode() & 0o7777, want, "{path}");
    }
    let zip = modcache.join("cache/download/example.com/!upper/c/@v/v1.0.0.zip");
    assert!(zip.is_file(), "escaped path");

    // B builds offline (GOPROXY=off: go extracts the zips from cache/download itself), and
    // `go mod verify` agrees.
    let build = go_build_command(&app, &b.home, &[])
        .uid(b.uid())
        .gid(gid_of(&b))
        .output()
        .unwrap();
    ok(&build);
    let go = require_tool("go", "golang-go");
    let verify = as_user(&b, go.to_str().unwrap(), &[])
        .current_dir(&app)
        .args(["mod", "verify"])
        .output()
        .unwrap();
    ok(&verify);
    assert!(
        modcache.join("example.com/!upper/c@v1.0.0/c.go").is_file(),
        "go extracted the module"
    );

    // Again, and from the directory form: nothing to write.
    let again = import_as(&b, &dir, &modcache, &[]);
    let j = json_with_code(&again, 0);
    assert_eq!(
        (j["files_placed"].as_u64(), j["files_present"].as_u64()),
        (Some(0), Some(12)),
        "{j}"
    );
    // Into an empty cache, the directory form works as the tar does.
    let other = b.home.join("other-modcache");
    let j = json_with_code(&import_as(&b, &dir, &other, &[]), 0);
    assert_eq!(j["files_placed"], 12, "{j}");
}

/// Rewrites one member of a directory bundle, and (when `consistent`) its manifest entry's
/// size and SHA-256 too, so only the go.sum check can catch it.
fn tamper(dir: &Path, member: &str, change: impl FnOnce(&mut Vec<u8>), consistent: bool) {
    let p = dir.join(member);
    let mut data = std::fs::read(&p).unwrap();
    change(&mut data);
    std::fs::write(&p, &data).unwrap();
    if consistent {
        let mp = dir.join("goguard-bundle.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
        for module in m["modules"].as_array_mut().unwrap() {
            for f in module["files"].as_array_mut().unwrap() {
                if f["name"] == member {
                    f["size"] = data.len().into();
                    f["sha256"] = goguard_hygiene::dirhash::hex(
                        &goguard_hygiene::dirhash::sha256_reader(&data[..]).unwrap(),
                    )
                    .into();
                }
            }
        }
        std::fs::write(&mp, serde_json::to_vec(&m).unwrap()).unwrap();
    }
}

#[test]
fn a_tampered_bundle_is_refused_naming_the_module_and_changes_nothing() {
    if !require_root("creates users") {
        return;
    }
    let c = connected("ya");
    let b = TestUser::create("yb");
    let (_tar, dir, app) = carry(&c, &b);
    let modcache = b.home.join("go/pkg/mod");
    // B's cache already holds something of its own.
    std::fs::create_dir_all(modcache.join("cache/download/example.com/own/@v")).unwrap();
    std::fs::write(
        modcache.join("cache/download/example.com/own/@v/v0.1.0.mod"),
        "module example.com/own\n",
    )
    .unwrap();
    b.give(&b.home);
    let before = snapshot(&modcache);

    let b_zip = "cache/download/example.com/b/@v/v1.0.0.zip";
    let c_mod = "cache/download/example.com/!upper/c/@v/v1.0.0.mod";
    // (what, how, the module to name, whether to pass B's go.sum as --gosum)
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Tamper<'_>, &str, bool)> = vec![
        (
            "one byte of b's zip",
            Box::new(|d: &Path| {
                tamper(
                    d,
                    b_zip,
                    |z| {
                        let mid = z.len() / 2;
                        z[mid] ^= 0x20;
                    },
                    false,
                )
            }),
            "example.com/b@v1.0.0",
            false,
        ),
        (
            "b's zip, manifest made to match",
            Box::new(|d: &Path| {
                // A file renamed in the central directory (the names Go and goguard read):
                // still a valid zip, with the same size, and a manifest made to match.
                tamper(
                    d,
                    b_zip,
                    |z| {
                        let at = z.windows(4).rposition(|w| w == b"b.go").unwrap();
                        z[at] = b'x';
                    },
                    true,
                )
            }),
            "example.com/b@v1.0.0",
            false,
        ),
        (
            "c's .mod",
            Box::new(|d: &Path| tamper(d, c_mod, |m| m.extend_from_slice(b"// evil\n"), true)),
            "example.com/Upper/c@v1.0.0",
            false,
        ),
        (
            "c's .mod with the bundle's go.sum forged too, caught by --gosum",
            Box::new(|d: &Path| {
                tamper(d, c_mod, |m| m.extend_from_slice(b"// evil\n"), true);
                let forged =
                    goguard_hygiene::dirhash::hash_go_mod(&std::fs::read(d.join(c_mod)).unwrap());
                let sum = std::fs::read_to_string(d.join("go.sum")).unwrap();
                let sum: String = sum
                    .lines()
                    .map(|l| {
                        if l.starts_with("example.com/Upper/c v1.0.0/go.mod ") {
                            format!("example.com/Upper/c v1.0.0/go.mod {forged}\n")
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect();
                std::fs::write(d.join("go.sum"), sum).unwrap();
                let mp = d.join("goguard-bundle.json");
                let text = std::fs::read_to_string(&mp).unwrap();
                let m: serde_json::Value = serde_json::from_str(&text).unwrap();
                let old = m["modules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["path"] == "example.com/Upper/c")
                    .unwrap()["gomod_h1"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                std::fs::write(&mp, text.replace(&old, &forged)).unwrap();
            }),
            "example.com/Upper/c@v1.0.0",
            true,
        ),
    ];
    for (i, (what, make, module, trusted)) in cases.into_iter().enumerate() {
        let bad = b.home.join(format!("bad{i}"));
        ok(&Command::new("cp")
            .arg("-a")
            .arg(&dir)
            .arg(&bad)
            .output()
            .unwrap());
        make(&bad);
        b.give(&bad);
        let gosum = app.join("go.sum");
        let extra: Vec<&str> = if trusted {
            vec!["--gosum", gosum.to_str().unwrap()]
        } else {
            vec![]
        };
        let out = import_as(&b, &bad, &modcache, &extra);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let j = json(&out);
        assert_eq!(j["reason"], "does_not_verify", "{what}: {j}");
        assert_eq!(j["module"], module, "{what}: {j}");
        assert_eq!(j["changed"], false, "{what}: {j}");
        assert!(
            stderr(&out).contains(module) && stderr(&out).contains("does not verify"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(&modcache), before, "{what}: the cache changed");
        // A cache that does not exist yet is not even created.
        let never = b.home.join("never/pkg/mod");
        let out = import_as(&b, &bad, &never, &extra);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(!b.home.join("never").exists(), "{what}");
    }
    // The forged bundle passes without a trusted go.sum (the documented limit), so the last
    // case really was caught by --gosum.
    let forged = b.home.join("bad3");
    let j = json_with_code(&import_as(&b, &forged, &b.home.join("scratch"), &[]), 0);
    assert_eq!(j["outcome"], "imported", "{j}");
}

#[test]
fn a_full_disk_stops_the_import_cleanly_and_a_rerun_completes() {
    if !require_root("mounts a tmpfs") {
        return;
    }
    let c = connected("za");
    let b = TestUser::create("zb");
    let (tar, _dir, app) = carry(&c, &b);
    let modcache = b.home.join("small");
    std::fs::create_dir_all(&modcache).unwrap();
    // 6 pages: the first version's four files fit, the second's zip does not.
    let _unmount = mount_tmpfs(&modcache, "24k");
    b.give(&modcache);

    let out = import_as(&b, &tar, &modcache, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let j = json(&out);
    assert_eq!(j["reason"], "disk_full", "{j}");
    assert!(
        stderr(&out).contains("run the same command again"),
        "{}",
        stderr(&out)
    );
    let complete = j["versions_complete"].as_u64().unwrap();
    assert!(complete < 3, "{j}");
    // Nothing half-placed: no temp file left, every file present is whole, and a version
    // without its ziphash is one Go does not take as downloaded.
    let bundle = goguard_hygiene::bundle::source::BundleSource::open(&tar).unwrap();
    let mut ziphashes = 0;
    for (path, what) in snapshot(&modcache) {
        assert!(!path.ends_with(".tmp"), "temp file left: {path}");
        if what.starts_with("dir") || path.ends_with(".lock") {
            continue;
        }
        let want = bundle.read(&path, 1 << 20).unwrap();
        let have = std::fs::read(modcache.join(&path)).unwrap();
        if path.ends_with(".ziphash") {
            ziphashes += 1;
            assert_eq!(
                String::from_utf8_lossy(&want).trim(),
                String::from_utf8_lossy(&have)
            );
        } else {
            assert_eq!(want, have, "{path} is not whole");
        }
    }
    assert_eq!(ziphashes as u64, complete);

    // A crash's leftover temp file is removed by the re-run.
    let at_v = modcache.join("cache/download/example.com/a/@v");
    let grow = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(&modcache)
        .output()
        .unwrap();
    ok(&grow);
    std::fs::create_dir_all(&at_v).unwrap();
    std::fs::write(at_v.join("v1.0.0.zip.goguard-1-0.tmp"), b"half").unwrap();
    b.give(&modcache);
    let rerun = import_as(&b, &tar, &modcache, &[]);
    let j = json_with_code(&rerun, 0);
    assert_eq!(j["versions_complete"], 3, "{j}");
    assert!(j["leftovers_removed"].as_u64().unwrap() >= 1, "{j}");
    assert!(!at_v.join("v1.0.0.zip.goguard-1-0.tmp").exists());

    let modcache_env = modcache.display().to_string();
    let build = go_build_command(&app, &b.home, &[])
        .env("GOMODCACHE", &modcache_env)
        .uid(b.uid())
        .gid(gid_of(&b))
        .output()
        .unwrap();
    ok(&build);
}

#[test]
fn a_symlink_planted_in_the_target_cache_is_not_followed() {
    if !require_root("creates users") {
        return;
    }
    let c = connected("sa");
    let b = TestUser::create("sb");
    let (tar, _dir, _app) = carry(&c, &b);
    // B's cache/download/example.com is a symlink to a directory B may write: followed, the
    // import would succeed there.
    let modcache = b.home.join("go/pkg/mod");
    let outside = b.home.join("outside");
    std::fs::create_dir_all(modcache.join("cache/download")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, modcache.join("cache/download/example.com")).unwrap();
    b.give(&b.home);
    let out = import_as(&b, &tar, &modcache, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let j = json(&out);
    assert_eq!(j["reason"], "unsafe", "{j}");
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert!(snapshot(&outside).is_empty());

    // Root filling its own cache, with a symlink to /etc in it: /etc gets nothing.
    let root_cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root_cache.path().join("cache/download")).unwrap();
    std::os::unix::fs::symlink("/etc", root_cache.path().join("cache/download/example.com"))
        .unwrap();
    let etc_before: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let out = Command::new(GOGUARDCTL)
        .args(["bundle", "import", "--modcache"])
        .arg(root_cache.path())
        .arg(&tar)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let etc_after: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(etc_before, etc_after);
    assert!(!Path::new("/etc/b").exists() && !Path::new("/etc/!upper").exists());
}

#[test]
fn an_import_killed_at_any_instant_leaves_only_whole_files_and_a_rerun_completes() {
    // Run as whoever runs the tests (root or not): the cache is theirs.
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, app) = (tmp.path().join("proxy"), tmp.path().join("app"));
    let out = Command::new(require_tool("python3", "python3"))
        .arg(FAKE_PROXY)
        .arg("--proxy")
        .arg(&proxy)
        .arg("--app")
        .arg(&app)
        .args(["many", "--count", "8", "--size", "524288"])
        .output()
        .unwrap();
    ok(&out);
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let proxy_url = format!("file://{}", proxy.display());
    let env = |c: &mut Command| {
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", &proxy_url)
            .env("GOSUMDB", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOMODCACHE", tmp.path().join("connected"));
    };
    let mut tidy = Command::new(require_tool("go", "golang-go"));
    env(&mut tidy);
    ok(&tidy
        .current_dir(&app)
        .args(["mod", "tidy"])
        .output()
        .unwrap());
    let tar = tmp.path().join("b.tar");
    let mut export = Command::new(GOGUARDCTL);
    env(&mut export);
    ok(&export
        .args(["bundle", "export", "--out"])
        .arg(&tar)
        .arg(app.join("go.mod"))
        .output()
        .unwrap());
    let bundle = goguard_hygiene::bundle::source::BundleSource::open(&tar).unwrap();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    eprintln!("seed {seed}");
    let mut rng = seed;
    let mut killed_mid_way = 0;
    let rounds = 5;
    for round in 0..rounds {
        let modcache = tmp.path().join(format!("mc{round}"));
        let mut child = Command::new(GOGUARDCTL)
            .args(["bundle", "import", "--jobs", "1", "--modcache"])
            .arg(&modcache)
            .arg(&tar)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until placing has begun (the plan phase writes nothing), then a random delay.
        let started = std::time::Instant::now();
        while !modcache.join("cache").exists()
            && child.try_wait().unwrap().is_none()
            && started.elapsed() < STARTUP
        {
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let delay = u64::from(rng >> 8) % 400;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // Whatever the instant: every file at its own name is whole, a zip's ziphash only
        // follows its zip, and temp files are the only leftovers.
        let (mut temps, mut placed) = (0, 0);
        for (path, what) in snapshot(&modcache) {
            if what.starts_with("dir") || path.ends_with(".lock") {
                continue;
            }
            if path.ends_with(".tmp") {
                assert!(path.contains(".goguard-"), "{path}");
                temps += 1;
                continue;
            }
            placed += 1;
            let want = bundle.read(&path, 64 << 20).unwrap();
            let have = std::fs::read(modcache.join(&path)).unwrap();
            if let Some(zip) = path.strip_suffix("hash") {
                assert!(modcache.join(zip).is_file(), "{path} without its zip");
                assert_eq!(
                    String::from_utf8_lossy(&want).trim(),
                    String::from_utf8_lossy(&have)
                );
            } else {
                assert!(
                    want == have,
                    "{path} is not whole after a kill at {delay} ms"
                );
            }
        }
        if status.code().is_none() && placed < 32 {
            killed_mid_way += 1;
        }
        eprintln!(
            "round {round}: killed {delay} ms into placing ({status}): {placed} of 32 files \
             placed, {temps} temp files left"
        );
        let rerun = Command::new(GOGUARDCTL)
            .args(["bundle", "import", "--json", "--modcache"])
            .arg(&modcache)
            .arg(&tar)
            .output()
            .unwrap();
        let j = json_with_code(&rerun, 0);
        assert_eq!(j["versions_complete"], 8, "{j}");
        assert_eq!(j["leftovers_removed"], temps, "{j}");
        assert!(snapshot(&modcache).keys().all(|p| !p.ends_with(".tmp")));
        if round + 1 < rounds {
            continue;
        }
        let mut build = Command::new(require_tool("go", "golang-go"));
        env(&mut build);
        ok(&build
            .current_dir(&app)
            .env("GOPROXY", "off")
            .env("GOMODCACHE", &modcache)
            .args(["build", "-o", "/dev/null", "."])
            .output()
            .unwrap());
    }
    assert!(
        killed_mid_way > 0,
        "no kill landed during an import (seed {seed})"
    );
}
