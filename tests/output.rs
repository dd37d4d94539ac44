//! What goguardctl prints of what users control (issue 18): names with escape
//! sequences and newlines in a user's GOCACHE, and a hostile `comm=` in an audit
//! record, reach the terminal escaped (no raw ESC, BEL, CR or LF inside a row,
//! one row per entry) while `--json` keeps them exactly; and listings too big
//! for one 4 MiB gRPC message arrive in pages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::users::TestUser;
use crate::util::*;

/// Sets the terminal title, erases the line, moves up and returns: overwrites the row above.
const TITLE: &str = "x\x1b]0;TITLE\x07\x1b[2K\x1b[1A\rFAKE";
/// A newline that would forge a whole findings row.
const FORGED: &str = "y\nerror     world_writable  ~root.ssh  0666  0644  auto";

fn require_root() {
    assert_root(
        "this test needs root (it creates users and runs a system goguardd); run it as root",
    );
}

/// The bytes a terminal must never get from a name: ESC, BEL, CR, C1 CSI, and LF except
/// as the end of a line.
fn assert_no_raw_controls(what: &str, out: &Output) {
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    for (i, line) in text.lines().enumerate() {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{what}: raw control character in line {i}: {line:?}\n{text:?}"
        );
    }
}

/// The lines of `out` that mention `needle` (escaped names contain it unescaped).
fn rows_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn hostile_names_and_audit_fields_are_escaped_on_the_terminal_and_exact_in_json() {
    require_root();
    let user = TestUser::create("esc");
    let gocache = user.gocache_with(&["00"]);
    // What a user can name things: a root-owned file (healed, journaled) and two
    // world-writable directories (only alerted on: findings until a repair).
    let title_file = gocache.join("00").join(TITLE);
    std::fs::write(&title_file, b"x").unwrap(); // root-owned: drift
    let mut dirs = Vec::new();
    for name in [TITLE, FORGED] {
        let d = gocache.join(format!("d-{name}"));
        std::fs::create_dir(&d).unwrap();
        user.give(&d);
        std::fs::set_permissions(&d, PermissionsExt::from_mode(0o777)).unwrap();
        dirs.push(d);
    }
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\"]\n[scan]\ninterval_secs = 0\n\
         [audit]\nenabled = true\nlog = \"{}\"\nevent_timeout_ms = 200\nretention_days = 0",
        user.name,
        log.display()
    ));
    let _daemon = sb.start();
    let socket = sb.socket();
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // findings, as the user: one row per finding, nothing raw.
    let findings = user.ctl_as(&socket, &["findings"]);
    assert_eq!(findings.status.code(), Some(1), "{}", stderr(&findings));
    assert_no_raw_controls("findings", &findings);
    let text = stdout(&findings);
    assert_eq!(text.lines().count(), 1 + dirs.len(), "{text}");
    assert_eq!(
        rows_with(&text, "world_writable").len(),
        dirs.len(),
        "{text}"
    );
    assert!(
        text.contains(r"d-x\e]0;TITLE\x07\e[2K\e[1A\rFAKE"),
        "{text}"
    );
    assert!(
        text.contains(r"d-y\nerror     world_writable  ~root.ssh"),
        "{text}"
    );
    // --json: the exact names.
    let list = json_with_code(&user.ctl_as(&socket, &["findings", "--json"]), 1);
    let mut paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    let mut want: Vec<String> = dirs.iter().map(|d| s(d)).collect();
    want.sort_unstable();
    assert_eq!(paths, want);

    // repair, as the user: its lines escape the names too, one per change.
    let repair = user.ctl_as(&socket, &["repair", &s(&gocache)]);
    assert_eq!(repair.status.code(), Some(0), "{}", stderr(&repair));
    assert_no_raw_controls("repair", &repair);
    assert_eq!(
        rows_with(&stdout(&repair), "chmod").len(),
        dirs.len(),
        "{}",
        stdout(&repair)
    );

    // journal, as the user: the self-heal of the root-owned file and the two chmods.
    let journal = user.ctl_as(&socket, &["journal"]);
    assert_eq!(journal.status.code(), Some(0), "{}", stderr(&journal));
    assert_no_raw_controls("journal", &journal);
    let records = json_with_code(&user.ctl_as(&socket, &["journal", "--json"]), 0);
    let records = records.as_array().unwrap();
    let text = stdout(&journal);
    assert_eq!(text.lines().count(), 1 + records.len(), "{text}");
    let journaled: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    for p in dirs.iter().chain([&title_file]) {
        assert!(
            journaled.contains(&s(p).as_str()),
            "{} not in {journaled:?}",
            s(p)
        );
    }

    // denials, as root: a comm= with escape sequences (hex-encoded, as the kernel
    // logs it) is decoded by goguardd and shown escaped.
    let comm = "\x1b]0;T\x07\x1b[2K\rX";
    let hex: String = comm.bytes().map(|b| format!("{b:02X}")).collect();
    let event = crate::audit::avc_event(1, "go", "write", &s(&gocache.join("00/denied")))
        .replace("comm=\"go\"", &format!("comm={hex}"));
    crate::audit::append_pub(&log, &event);
    let deadline = Instant::now() + STARTUP;
    let denials = loop {
        let out = ctl(&socket, &["denials", "--json"]);
        let list = json_with_code(&out, 0);
        if !list.as_array().unwrap().is_empty() {
            break list;
        }
        assert!(Instant::now() < deadline, "the denial never arrived");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(denials[0]["comm"], comm, "{denials}");
    for args in [&["denials"][..], &["denials", "--explain"]] {
        let out = ctl(&socket, args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_no_raw_controls("denials", &out);
        let text = stdout(&out);
        assert!(
            !rows_with(&text, r"\e]0;T\x07\e[2K\rX").is_empty(),
            "{args:?}: {text}"
        );
    }
    let table = stdout(&ctl(&socket, &["denials"]));
    assert_eq!(table.lines().count(), 2, "{table}");
    assert_eq!(rows_with(&table, r"\e]0;T\x07\e[2K\rX").len(), 1, "{table}");
}

#[test]
fn findings_too_big_for_one_message_arrive_in_pages() {
    require_root();
    const FILES: usize = 40_000;
    let sb = Sandbox::new();
    let root = sb.path().join("shared");
    // 40,000 world-writable files with 200-byte names: each finding carries the root, its
    // path and 4 short fields, about 370 bytes encoded, 14 MiB in all: over 3 times the
    // 4 MiB a reply may have.
    let name_tail = "n".repeat(200 - 10);
    for d in 0..40 {
        let dir = root.join(format!("{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..FILES / 40 {
            let f = dir.join(format!("{d:02}-{i:06}-{name_tail}"));
            std::fs::write(&f, b"").unwrap();
            std::fs::set_permissions(&f, PermissionsExt::from_mode(0o666)).unwrap();
        }
    }
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n[[root]]\npath = \"{}\"\nkind = \"custom\"",
        root.display()
    ));
    let _daemon = sb.start();
    let out = ctl(&sb.socket(), &["findings", "--json"]);
    let list = json_with_code(&out, 1);
    let list = list.as_array().unwrap();
    let files: Vec<&Value> = list
        .iter()
        .filter(|f| f["kind"] == "world_writable" && f["path"].as_str().unwrap().contains("-n"))
        .collect();
    assert_eq!(files.len(), FILES, "every world-writable file is listed");
    let mut paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), FILES, "no finding twice");
    // The unpaged reply would not fit: the strings alone are more than 4 MiB.
    let bytes: usize = list
        .iter()
        .map(|f| {
            [
                "root", "path", "kind", "observed", "expected", "severity", "heal",
            ]
            .iter()
            .map(|k| f[*k].as_str().unwrap().len())
            .sum::<usize>()
        })
        .sum();
    assert!(
        bytes > 4 << 20,
        "only {bytes} bytes: the test proves nothing"
    );
    // The table streams the same rows, one header.
    let table = ctl(&sb.socket(), &["findings"]);
    assert_eq!(table.status.code(), Some(1), "{}", stderr(&table));
    assert_eq!(stdout(&table).lines().count(), 1 + list.len());
}

#[test]
fn a_runtime_dir_another_user_owns_or_may_write_is_refused() {
    require_root();
    let user = TestUser::create("xdg");
    let sb = Sandbox::new();
    let run_as = |program: &str, runtime: &Path, args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", &user.name, "--", "env", "-u", "GOGUARD_SOCKET"])
            .arg(format!("XDG_RUNTIME_DIR={}", runtime.display()))
            .arg(format!("HOME={}", user.home.display()))
            .arg(program)
            .args(args)
            .output()
            .unwrap()
    };
    // The user's config: state in their home, the socket by default (in the runtime dir).
    let config = user.home.join("goguard.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[audit]\nenabled = false\n[discovery]\nenabled = false\n",
            user.home.join("state").display()
        ),
    )
    .unwrap();
    user.give(&config);
    let cases = [
        ("root-owned", 0o700, false, "is owned by uid 0, not by you"),
        (
            "world-writable",
            0o777,
            true,
            "is writable by every user (mode 0777)",
        ),
        ("group-writable", 0o770, true, "is writable by its group"),
    ];
    for (name, mode, give, says) in cases {
        let dir = sb.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        if give {
            user.give(&dir);
        }
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(mode)).unwrap();
        let ctl = run_as(GOGUARDCTL, &dir, &["status"]);
        assert_eq!(ctl.status.code(), Some(2), "{name}: {}", stderr(&ctl));
        assert!(stderr(&ctl).contains(says), "{name}: {}", stderr(&ctl));
        assert!(stderr(&ctl).contains("--socket"), "{}", stderr(&ctl));
        let daemon = run_as(
            GOGUARDD,
            &dir,
            &["--mode", "user", "--config", config.to_str().unwrap()],
        );
        assert_eq!(daemon.status.code(), Some(1), "{name}: {}", stderr(&daemon));
        assert!(
            stderr(&daemon).contains(says),
            "{name}: {}",
            stderr(&daemon)
        );
        assert!(
            !dir.join("goguard").exists(),
            "{name}: nothing was created in it"
        );
    }
    // The user's own 0700 directory is used: the client looks there (nothing answers).
    let own = sb.path().join("own");
    std::fs::create_dir(&own).unwrap();
    user.give(&own);
    std::fs::set_permissions(&own, PermissionsExt::from_mode(0o700)).unwrap();
    let ctl = run_as(GOGUARDCTL, &own, &["status"]);
    assert_eq!(ctl.status.code(), Some(2), "{}", stderr(&ctl));
    assert!(
        stderr(&ctl).contains(&format!(
            "{}/goguard/goguard.sock (no such socket)",
            own.display()
        )),
        "{}",
        stderr(&ctl)
    );
}
