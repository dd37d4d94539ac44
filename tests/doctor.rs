//! `goguardctl doctor` end to end, one test per check on a real tree: a throwaway user runs
//! the real binary in a clean environment (HOME, USER, PATH only, as a login shell has),
//! first healthy (exit 0), then with the check's failure made for real (root-owned entries,
//! `chmod 777`, a root-owned GOCACHE set with the `go env -w` file, a shared `/opt` root,
//! a mislabeled file against a test file_contexts, GOTMPDIR on a noexec tmpfs). Each
//! broken case asserts the finding and its fix command in `--json`, then runs that fix
//! command and asserts the doctor is satisfied: the fixes are tested, not just printed.
//! A last test adds a running goguardd whose findings and denials the doctor includes.
//!
//! Everything made here (users, groups, directories, mounts, daemons) is removed on drop.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::users::TestUser;
use crate::util::*;

/// No daemon answers here: the local checks only.
const NO_SOCKET: &str = "/nonexistent/goguard-doctor-test.sock";

/// Doctor runs for a test user.
impl TestUser {
    fn gocache(&self) -> PathBuf {
        self.home.join(".cache/go-build")
    }

    /// A small build cache and module cache as Go lays them out, owned by the user; the
    /// extracted module is read-only as Go makes it (not drift).
    fn populate(&self) {
        let c = self.gocache();
        for d in ["00", "ab", "ff"] {
            std::fs::create_dir_all(c.join(d)).unwrap();
        }
        std::fs::write(
            c.join("README"),
            "This directory holds cached build artifacts.\n",
        )
        .unwrap();
        std::fs::write(c.join("trim.txt"), "1700000000\n").unwrap();
        std::fs::write(c.join(format!("ab/{}-a", "ab".repeat(32))), b"action").unwrap();
        std::fs::write(c.join(format!("ab/{}-d", "cd".repeat(32))), b"output").unwrap();
        let m = self.home.join("go/pkg/mod");
        std::fs::create_dir_all(m.join("cache/download/example.com/m/@v")).unwrap();
        std::fs::write(m.join("cache/download/example.com/m/@v/v1.0.0.zip"), b"zip").unwrap();
        let module = m.join("example.com/m@v1.0.0");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("m.go"), b"package m\n").unwrap();
        self.chown_home();
        run_ok(Command::new("chmod").args(["-R", "a-w"]).arg(&module));
    }

    fn chown_home(&self) {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{0}:{0}", self.name))
                .arg(&self.home),
        );
    }

    /// Writes the `go env -w` file (what `go env -w KEY=VALUE` leaves there).
    fn go_env_file(&self, text: &str) {
        std::fs::create_dir_all(self.home.join(".config/go")).unwrap();
        std::fs::write(self.home.join(".config/go/env"), text).unwrap();
        self.chown_home();
    }

    /// `runuser -u NAME -- env -i HOME USER LOGNAME PATH [env] PROGRAM ARGS`: the user's
    /// shell, without the test's environment.
    fn command(&self, env: &[(&str, &str)], program: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.name, "--", "/usr/bin/env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg("PATH=/usr/bin:/bin")
            .arg("GOTOOLCHAIN=local");
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program).current_dir("/");
        c
    }

    /// `goguardctl doctor --json` as this user: (exit code, report).
    fn doctor(&self, env: &[(&str, &str)], args: &[&str]) -> (i32, serde_json::Value) {
        self.doctor_on(NO_SOCKET, env, args)
    }

    fn doctor_on(
        &self,
        socket: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> (i32, serde_json::Value) {
        let out = self
            .command(env, GOGUARDCTL)
            .args(["--socket", socket, "doctor", "--json"])
            .args(args)
            .output()
            .unwrap();
        let code = out.status.code().expect("doctor exits");
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor printed no JSON ({e}), exit {code}:\n{}\n{}",
                stdout(&out),
                stderr(&out)
            )
        });
        (code, report)
    }

    /// Runs a fix command the doctor printed, as this user, in their clean environment.
    fn run_fix(&self, env: &[(&str, &str)], fix: &str) {
        let out = self
            .command(env, "/bin/sh")
            .args(["-c", fix])
            .output()
            .unwrap();
        assert!(out.status.success(), "fix {fix:?} failed: {}", stderr(&out));
    }
}

/// A directory outside every home, removed on drop (after its mount, if any).
struct Scratch {
    path: PathBuf,
    mounted: bool,
    group: Option<String>,
}

impl Scratch {
    fn new(path: PathBuf) -> Scratch {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch {
            path,
            mounted: false,
            group: None,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).output();
        }
        let _ = std::fs::remove_dir_all(&self.path);
        if let Some(g) = &self.group {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out
}

/// Runs a root fix command the doctor printed (`sudo` dropped: the tests are root).
fn run_root_fix(fix: &str) {
    let out = Command::new("/bin/sh")
        .args(["-c", &fix.replace("sudo ", "")])
        .output()
        .unwrap();
    assert!(out.status.success(), "fix {fix:?} failed: {}", stderr(&out));
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn findings<'a>(report: &'a serde_json::Value, id: &str) -> &'a Vec<serde_json::Value> {
    check(report, id)["findings"].as_array().unwrap()
}

/// The one finding of `kind` in check `id`.
fn finding<'a>(report: &'a serde_json::Value, id: &str, kind: &str) -> &'a serde_json::Value {
    let all: Vec<&serde_json::Value> = findings(report, id)
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect();
    assert_eq!(all.len(), 1, "one {kind} in {id}: {report:#}");
    all[0]
}

fn fixes(f: &serde_json::Value) -> Vec<String> {
    f["fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn notes(report: &serde_json::Value, id: &str) -> Vec<String> {
    check(report, id)["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Every check but `except` ran clean (no findings at all).
fn assert_only_problem_in(report: &serde_json::Value, except: &str) {
    for c in report["checks"].as_array().unwrap() {
        if c["check"] != except {
            assert_eq!(
                c["findings"].as_array().unwrap().len(),
                0,
                "unexpected findings in {}: {report:#}",
                c["check"]
            );
        }
    }
}

fn needs_root() -> bool {
    require_root("creates users, mounts, labels")
}

#[test]
fn doctor_reports_a_fresh_user_and_a_real_cache_as_healthy() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("dra");
    // Before any cache exists: Go will create it in the (writable) home.
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["healthy"], true);
    assert_eq!(r["user"]["name"], user.name.as_str());
    assert_eq!(r["user"]["uid"], user.uid());
    assert_eq!(
        r["go"]["GOCACHE"]["value"],
        user.gocache().to_str().unwrap()
    );
    assert_eq!(r["go"]["GOCACHE"]["source"], "default");
    assert_eq!(
        r["go"]["GOMODCACHE"]["value"],
        user.home.join("go/pkg/mod").to_str().unwrap()
    );
    assert_eq!(r["go"]["GOTMPDIR"]["value"], "/tmp");
    assert!(
        notes(&r, "cache_paths")
            .iter()
            .any(|n| n.contains("does not exist yet; go creates it")),
        "{r:#}"
    );
    // The real `go` agrees with goguard's computation.
    assert!(
        notes(&r, "cache_paths")
            .iter()
            .any(|n| n == "`go env` agrees with goguard's computation"),
        "{r:#}"
    );
    // No policy on this host: an info line, not a failure.
    assert_eq!(check(&r, "labels")["state"], "skipped");
    assert!(
        notes(&r, "labels")[0].starts_with("label check skipped: "),
        "{r:#}"
    );
    assert_eq!(check(&r, "daemon")["state"], "skipped");
    assert_eq!(
        notes(&r, "daemon")[0],
        "daemon not reachable: local checks only"
    );
    assert_eq!(r["daemon"]["reachable"], false);
    assert!(
        notes(&r, "tmp_exec")[0].contains("a probe script executed there"),
        "{r:#}"
    );

    // With caches as Go lays them out (read-only module dirs included): still healthy,
    // and the walk saw every entry.
    user.populate();
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
    let n = notes(&r, "foreign_owners");
    assert!(
        n.iter().any(|n| n.starts_with(&format!(
            "GOCACHE {}: 8 entries, all yours",
            user.gocache().display()
        ))),
        "{n:?}"
    );
    // The probe left nothing behind.
    let leftovers: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".goguard-doctor-probe.")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The text report: grouped by check, markers, no colour in a pipe.
    let out = user
        .command(&[], GOGUARDCTL)
        .args(["--socket", NO_SOCKET, "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("✓ cache paths\n"), "{text}");
    assert!(
        text.contains("· goguardd: skipped\n    daemon not reachable: local checks only\n"),
        "{text}"
    );
    assert!(text.ends_with("healthy: nothing to fix\n"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when not a terminal: {text:?}"
    );
}

#[test]
fn doctor_finds_root_owned_entries_in_gocache() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("drb");
    user.populate();
    // What `sudo go build` leaves behind.
    let gocache = user.gocache();
    std::fs::create_dir_all(gocache.join("7f")).unwrap();
    let entry = gocache.join(format!("7f/{}-d", "7f".repeat(32)));
    std::fs::write(&entry, b"root's output").unwrap();

    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["healthy"], false);
    let f = finding(&r, "foreign_owners", "foreign_owner");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["path"], gocache.to_str().unwrap());
    assert_eq!(f["count"], 2, "the directory and the file: {f:#}");
    let examples: Vec<&str> = f["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        examples.contains(&format!("{} (owner root)", entry.display()).as_str()),
        "{examples:?}"
    );
    let fix = fixes(f);
    let chown = format!("sudo chown -R {}: {}", user.name, gocache.display());
    assert_eq!(fix[0], chown, "no daemon: chown first");
    assert_eq!(fix[1], format!("goguardctl repair {}", gocache.display()));
    assert_only_problem_in(&r, "foreign_owners");

    run_root_fix(&fix[0]);
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "after {chown}: {r:#}");
}

#[test]
fn doctor_finds_world_writable_directories() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("drc");
    user.populate();
    let dir = user.gocache().join("ab");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();

    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 1, "{r:#}");
    let f = finding(&r, "world_writable", "world_writable");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["count"], 1);
    assert_eq!(
        f["examples"][0],
        format!("{} (directory 0777)", dir.display())
    );
    let fix = fixes(f);
    assert_eq!(
        fix,
        vec![format!(
            "find {} -perm -0002 ! -type l -exec chmod o-w {{}} +",
            user.gocache().display()
        )]
    );
    assert!(fix.iter().all(|f| !f.contains("777")));
    assert_only_problem_in(&r, "world_writable");

    // The user fixes it without sudo.
    user.run_fix(&[], &fix[0]);
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
}

#[test]
fn doctor_finds_a_root_owned_gocache_set_with_go_env_w() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("drd");
    let shared = Scratch::new(PathBuf::from(format!(
        "/usr/local/go-cache-test-{}",
        std::process::id()
    )));
    // root-owned 0755: the guide's `/usr/local/go/cache`.
    std::fs::set_permissions(
        &shared.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    user.go_env_file(&format!("GOCACHE={}\n", shared.path.display()));

    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["go"]["GOCACHE"]["value"], shared.path.to_str().unwrap());
    assert_eq!(
        r["go"]["GOCACHE"]["source"],
        format!("go env file {}/.config/go/env", user.home.display())
    );
    let f = finding(&r, "cache_paths", "not_writable");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["path"], shared.path.to_str().unwrap());
    assert!(
        f["message"].as_str().unwrap().contains("owned by root"),
        "{f:#}"
    );
    let fix = fixes(f);
    let expected = format!("go env -w GOCACHE={}", user.gocache().display());
    assert_eq!(fix, vec![expected.clone()]);
    // The real go sees the same GOCACHE the doctor does.
    assert!(
        notes(&r, "cache_paths")
            .iter()
            .any(|n| n == "`go env` agrees with goguard's computation"),
        "{r:#}"
    );

    user.run_fix(&[], &expected);
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["go"]["GOCACHE"]["value"],
        user.gocache().to_str().unwrap()
    );

    // GOCACHE=off exported in the shell: go build refuses; unset it.
    let (code, r) = user.doctor(&[("GOCACHE", "off")], &[]);
    assert_eq!(code, 1, "{r:#}");
    let f = finding(&r, "cache_paths", "gocache_off");
    assert_eq!(fixes(f), vec!["unset GOCACHE"]);
    assert_eq!(r["go"]["GOCACHE"]["source"], "environment");
    // A relative GOCACHE is refused too.
    let (code, r) = user.doctor(&[("GOCACHE", "rel/cache")], &[]);
    assert_eq!(code, 1, "{r:#}");
    finding(&r, "cache_paths", "gocache_relative");
}

#[test]
fn doctor_advises_a_group_and_default_acls_for_a_shared_root() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("dre");
    let group = format!("ggdgrp{}", std::process::id() % 100_000);
    let mut opt = Scratch::new(PathBuf::from(format!(
        "/opt/gg-doctor-{}",
        std::process::id()
    )));
    let _ = Command::new("groupdel").arg(&group).output();
    run_ok(Command::new("groupadd").arg(&group));
    opt.group = Some(group.clone());
    run_ok(Command::new("usermod").args(["-aG", &group, &user.name]));
    // /opt/go as admins set it up "to make it work": group-writable, no ACLs.
    let gopath = opt.path.join("go");
    let modcache = gopath.join("pkg/mod");
    std::fs::create_dir_all(modcache.join("cache/download")).unwrap();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("root:{group}"))
            .arg(&gopath),
    );
    run_ok(Command::new("chmod").args(["-R", "2775"]).arg(&gopath));
    user.go_env_file(&format!("GOPATH={}\n", gopath.display()));

    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["go"]["GOMODCACHE"]["value"], modcache.to_str().unwrap());
    // One finding for the GOPATH (its GOMODCACHE is inside it).
    let f = finding(&r, "shared_roots", "shared_root");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["path"], gopath.to_str().unwrap());
    assert!(
        f["message"].as_str().unwrap().contains("no default ACL"),
        "{f:#}"
    );
    let fix = fixes(f);
    let acl = format!(
        "sudo chgrp -R {group} {0} && sudo setfacl -R -m g:{group}:rwX,d:g:{group}:rwX {0}",
        gopath.display()
    );
    assert_eq!(fix[0], acl, "{fix:#?}");
    assert!(
        fix.iter()
            .any(|f| f.contains("[[root]]") && f.contains(&format!("group = \"{group}\""))),
        "a goguardd declaration: {fix:#?}"
    );
    assert!(
        fix.contains(&format!(
            "go env -w GOPATH={}",
            user.home.join("go").display()
        )),
        "{fix:#?}"
    );
    assert!(fix.iter().all(|f| !f.contains("777")), "{fix:#?}");
    // Root-owned entries are normal in a shared root: a note, not an error.
    assert!(findings(&r, "foreign_owners").is_empty(), "{r:#}");
    assert!(
        notes(&r, "foreign_owners")
            .iter()
            .any(|n| n.contains("as expected in a shared root")),
        "{r:#}"
    );
    // The user can write it (group), so the paths themselves are fine.
    assert!(findings(&r, "cache_paths").is_empty(), "{r:#}");

    run_root_fix(&acl);
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "after the ACLs: {r:#}");
    assert!(
        notes(&r, "shared_roots")
            .iter()
            .any(|n| n.contains(&format!("default ACLs give your group {group} rwx"))),
        "{r:#}"
    );
}

#[test]
fn doctor_finds_mislabeled_cache_entries_against_file_contexts() {
    if !needs_root() {
        return;
    }
    let setfiles = require_tool("setfiles", "policycoreutils");
    let user = TestUser::create("drf");
    user.populate();
    let sb = Sandbox::new();
    let fc = sb.path().join("file_contexts");
    std::fs::write(
        &fc,
        format!(
            "{}(/.*)?\tsystem_u:object_r:cache_home_t:s0\n",
            regex_escape(user.gocache().to_str().unwrap())
        ),
    )
    .unwrap();
    // Labeled as the policy says (what restorecon would do).
    let out = Command::new(&setfiles)
        .arg("-F")
        .arg(&fc)
        .arg(user.gocache())
        .output()
        .unwrap();
    assert!(out.status.success(), "setfiles: {}", stderr(&out));
    let fc_arg = fc.to_str().unwrap();
    let (code, r) = user.doctor(&[], &["--file-contexts", fc_arg]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(check(&r, "labels")["state"], "ran");
    assert!(
        notes(&r, "labels")
            .iter()
            .any(|n| n.contains("8 entries labeled as")),
        "{r:#}"
    );

    // Moved in from /tmp: keeps user_tmp_t.
    let moved = user.gocache().join(format!("ab/{}-d", "cd".repeat(32)));
    run_ok(
        Command::new(require_tool("setfattr", "attr"))
            .args(["-h", "-n", "security.selinux", "-v"])
            .arg("unconfined_u:object_r:user_tmp_t:s0")
            .arg(&moved),
    );
    let (code, r) = user.doctor(&[], &["--file-contexts", fc_arg]);
    assert_eq!(code, 1, "{r:#}");
    let f = finding(&r, "labels", "wrong_label");
    assert_eq!(f["count"], 1);
    // restorecon semantics: only the type changes.
    assert_eq!(
        f["examples"][0],
        format!(
            "{}: unconfined_u:object_r:user_tmp_t:s0, expected system_u:object_r:cache_home_t:s0",
            moved.display()
        )
    );
    let fix = fixes(f);
    assert_eq!(
        fix[0],
        format!("restorecon -Rv {}", user.gocache().display())
    );
    assert_eq!(
        fix[1],
        format!(
            "sudo setfiles -v {} {}",
            fc.display(),
            user.gocache().display()
        )
    );
    assert_only_problem_in(&r, "labels");

    // Bounded: at most N mismatches are compared.
    run_ok(
        Command::new(require_tool("setfattr", "attr"))
            .args(["-h", "-n", "security.selinux", "-v"])
            .arg("unconfined_u:object_r:user_tmp_t:s0")
            .arg(user.gocache().join("README"))
            .arg(user.gocache().join("trim.txt")),
    );
    let (_, r) = user.doctor(
        &[],
        &["--file-contexts", fc_arg, "--max-label-mismatches", "2"],
    );
    let f = finding(&r, "labels", "wrong_label");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("at least 2 entries"),
        "{f:#}"
    );

    run_root_fix(&fix[1]);
    let (code, r) = user.doctor(&[], &["--file-contexts", fc_arg]);
    assert_eq!(code, 0, "after {}: {r:#}", fix[1]);

    // An unusable --file-contexts is an error of the doctor itself.
    let out = user
        .command(&[], GOGUARDCTL)
        .args([
            "--socket",
            NO_SOCKET,
            "doctor",
            "--file-contexts",
            "/nonexistent/fc",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("--file-contexts"), "{}", stderr(&out));
}

#[test]
fn doctor_finds_gotmpdir_on_a_noexec_mount() {
    if !needs_root() {
        return;
    }
    let user = TestUser::create("drg");
    let pid = std::process::id();
    let mut noexec = Scratch::new(PathBuf::from(format!("/mnt/gg-doctor-noexec-{pid}")));
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,mode=1777,size=4m", "tmpfs"])
            .arg(&noexec.path),
    );
    noexec.mounted = true;
    let mut exec = Scratch::new(PathBuf::from(format!("/mnt/gg-doctor-exec-{pid}")));
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=1777,size=4m", "tmpfs"])
            .arg(&exec.path),
    );
    exec.mounted = true;

    // An exec-able tmpfs is fine (the probe runs there).
    user.go_env_file(&format!("GOTMPDIR={}\n", exec.path.display()));
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["go"]["GOTMPDIR"]["value"], exec.path.to_str().unwrap());
    assert!(
        notes(&r, "tmp_exec")[0].contains("a probe script executed there"),
        "{r:#}"
    );

    user.go_env_file(&format!("GOTMPDIR={}\n", noexec.path.display()));
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 1, "{r:#}");
    let f = finding(&r, "tmp_exec", "tmpdir_noexec");
    assert_eq!(f["path"], noexec.path.to_str().unwrap());
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("is on a noexec mount"), "{message}");
    assert!(
        message.contains("a probe script could not run there"),
        "{message}"
    );
    let good = user.home.join(".cache/go-tmp");
    let fix = fixes(f);
    assert_eq!(
        fix,
        vec![format!(
            "mkdir -p {0} && go env -w GOTMPDIR={0}",
            good.display()
        )]
    );
    assert_only_problem_in(&r, "tmp_exec");
    // Nothing left in the noexec mount.
    assert_eq!(std::fs::read_dir(&noexec.path).unwrap().count(), 0);

    user.run_fix(&[], &fix[0]);
    let (code, r) = user.doctor(&[], &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["go"]["GOTMPDIR"]["value"], good.to_str().unwrap());

    // TMPDIR on the noexec mount, GOTMPDIR unset: os.TempDir is used.
    user.go_env_file("");
    let tmpdir = noexec.path.to_str().unwrap();
    let (code, r) = user.doctor(&[("TMPDIR", tmpdir)], &[]);
    assert_eq!(code, 1, "{r:#}");
    finding(&r, "tmp_exec", "tmpdir_noexec");
}

#[test]
fn doctor_includes_the_daemons_findings_and_denials() {
    use std::time::{Duration, Instant};
    if !needs_root() {
        return;
    }
    let user = TestUser::create("drh");
    user.populate();
    // Root pollutes the cache before goguardd starts; report-only, so it stays.
    let gocache = user.gocache();
    let entry = gocache.join(format!("ab/{}-d", "ee".repeat(32)));
    std::fs::write(&entry, b"root's").unwrap();
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    // The user is in the admin group (their own), so they may list denials too.
    sb.write_config(&format!(
        "metrics_listen = \"\"\nadmin_group = \"{0}\"\n[audit]\nenabled = true\nlog = \"{1}\"\n\
         retention_days = 0\n[discovery]\nusers = [\"{0}\"]\n[scan]\ninterval_secs = 0\n\
         [heal]\nauto = false",
        user.name,
        log.display()
    ));
    let _daemon = sb.start();
    let event = crate::audit::avc_event(11, "go", "write", entry.to_str().unwrap());
    crate::audit::append_pub(&log, &event);
    let deadline = Instant::now() + STARTUP;
    loop {
        let out = ctl(&sb.socket(), &["denials", "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if all.iter().any(|d| d["target"] == entry.to_str().unwrap()) {
            break;
        }
        assert!(Instant::now() < deadline, "the denial never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }

    let socket = sb.socket();
    let (code, r) = user.doctor_on(socket.to_str().unwrap(), &[], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["daemon"]["reachable"], true);
    assert_eq!(r["daemon"]["socket"], socket.to_str().unwrap());
    let d = check(&r, "daemon");
    assert_eq!(d["state"], "ran");
    assert!(
        notes(&r, "daemon")[0].contains(gocache.to_str().unwrap()),
        "the daemon guards the user's GOCACHE: {r:#}"
    );
    let from_daemon: Vec<&serde_json::Value> = findings(&r, "daemon")
        .iter()
        .filter(|f| f["kind"] == "foreign_owner" && f["path"] == entry.to_str().unwrap())
        .collect();
    assert_eq!(from_daemon.len(), 1, "{r:#}");
    assert_eq!(
        fixes(from_daemon[0]),
        vec![format!(
            "goguardctl repair --kind foreign_owner {}",
            entry.display()
        )]
    );
    let denial = findings(&r, "daemon")
        .iter()
        .find(|f| f["kind"] == "denial")
        .unwrap_or_else(|| panic!("no denial in {r:#}"));
    assert_eq!(denial["path"], entry.to_str().unwrap());
    assert!(
        denial["message"]
            .as_str()
            .unwrap()
            .contains("SELinux denied { write } to go"),
        "{denial:#}"
    );
    assert_eq!(
        fixes(denial),
        vec![format!("goguardctl denials --path {}", entry.display())]
    );
    // The daemon guards this GOCACHE: its repair comes first, and works without sudo.
    let local = finding(&r, "foreign_owners", "foreign_owner");
    let fix = fixes(local);
    assert_eq!(fix[0], format!("goguardctl repair {}", gocache.display()));
    let out = user
        .command(&[], GOGUARDCTL)
        .args(["--socket", socket.to_str().unwrap(), "repair"])
        .arg(&gocache)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let (_, r) = user.doctor_on(socket.to_str().unwrap(), &[], &[]);
    assert!(findings(&r, "foreign_owners").is_empty(), "{r:#}");
    assert!(
        !findings(&r, "daemon")
            .iter()
            .any(|f| f["kind"] == "foreign_owner"),
        "the daemon's findings follow the repair: {r:#}"
    );
}
