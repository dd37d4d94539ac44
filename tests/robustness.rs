//! Issue 13, item 7: the smaller ways goguardd misled or exposed its admins.
//! `socket_mode` with setuid/setgid/sticky bits is refused with its file and
//! line; a call that needs the roots, made while the first discovery runs,
//! waits for it (never "not inside any cache root"); malformed audit lines
//! reach the log escaped and bounded; the inotify watch limit makes `status`
//! say degraded, with the reason.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

fn require_root() {
    assert_root(
        "these tests need root (a system-mode goguardd, chown to other users); CI runs them as root",
    );
}

#[test]
fn socket_mode_with_setid_or_sticky_bits_is_refused_with_its_line() {
    let sb = Sandbox::new();
    for mode in ["7777", "1777", "4666", "2660"] {
        sb.write_config(&format!("metrics_listen = \"\"\nsocket_mode = \"{mode}\""));
        let out = Command::new(GOGUARDD)
            .arg("--check-config")
            .arg("--config")
            .arg(sb.config_path())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{mode} accepted: {err}");
        // Line 5: `[daemon]`, socket, state_dir, metrics_listen, then socket_mode.
        let place = format!("{}:5:15: ", sb.config_path().display());
        assert!(err.contains(&place), "{mode}: {err}");
        assert!(err.contains("setuid, setgid or sticky"), "{mode}: {err}");
    }
    // The daemon refuses to start on it, and creates no socket.
    let mut daemon = sb.spawn(&[]);
    assert_eq!(daemon.wait_exit(STARTUP).code(), Some(1));
    assert!(!sb.socket().exists());
    // Permission bits alone still work.
    sb.write_config("metrics_listen = \"\"\nsocket_mode = \"0777\"");
    let _daemon = sb.start();
    let mode = std::fs::symlink_metadata(sb.socket()).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o777);
}

#[test]
fn a_repair_asked_during_the_first_discovery_waits_for_it() {
    require_root();
    let sb = Sandbox::new();
    let root = sb.path().join("shared");
    // Enough drift that the first scan (which self-heals it) takes a while.
    for d in 0..100 {
        let dir = root.join(format!("{d:02x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..200 {
            let file = dir.join(format!("{f:03x}-a"));
            std::fs::write(&file, b"x").unwrap();
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        }
    }
    let target = root.join("00/000-a");
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\n",
        root.display()
    ));
    let daemon = sb.spawn(&[]);
    let socket = sb.socket();
    // The first moment the socket answers.
    let deadline = Instant::now() + STARTUP;
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "no answer:\n{}",
            daemon.log_text()
        );
        if socket.exists() {
            let out = ctl(&socket, &["status", "--json"]);
            if out.stdout.starts_with(b"{") {
                break json(&out);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let repair = ctl(&socket, &["repair", target.to_str().unwrap()]);
    let scan = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "scan")
        .unwrap()
        .clone();
    let said = format!("{}{}", stdout(&repair), stderr(&repair));
    assert!(
        !said.contains("not inside any cache root"),
        "a false refusal while starting: {said}"
    );
    assert!(
        repair.status.code() == Some(0)
            || said.contains("goguardd is starting: roots not discovered yet, retry"),
        "exit {:?}: {said}",
        repair.status.code()
    );
    assert_eq!(std::fs::metadata(&target).unwrap().uid(), 0);
    // The test means something only if the repair was asked while the first
    // scan ran.
    assert_eq!(
        scan["state"], "starting",
        "the first scan was already over when the socket first answered; use more files: {scan}"
    );
}

#[test]
fn malformed_audit_lines_are_logged_escaped() {
    require_root();
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = true\nlog = \"{}\"\n[scan]\ninterval_secs = 0",
        log.display()
    ));
    let daemon = sb.start();
    let mut evil = b"type=AVC msg=audit(\x1b]0;owned\x07\x1b[2J\x00\xff\xfe".to_vec();
    evil.extend(std::iter::repeat_n(b'A', 2000));
    evil.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&evil)
        .unwrap();
    let deadline = Instant::now() + STARTUP;
    let text = loop {
        let raw = std::fs::read(&daemon.log).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.contains("skipped a malformed line") {
            break raw;
        }
        assert!(Instant::now() < deadline, "nothing logged:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = text
        .split(|&b| b == b'\n')
        .find(|l| l.windows(24).any(|w| w == b"skipped a malformed line"))
        .unwrap();
    let shown = String::from_utf8_lossy(line);
    assert!(
        line.iter().all(|&b| (0x20..0x7f).contains(&b)),
        "raw bytes in the log line: {shown:?}"
    );
    assert!(
        shown.contains(r"\x1b]0;owned\x07\x1b[2J\x00\xff\xfe"),
        "{shown}"
    );
    assert!(shown.contains("... (2036 bytes)"), "bounded: {shown}");
    assert!(line.len() < 600, "bounded: {} bytes", line.len());
}

#[test]
fn the_watch_limit_makes_status_degraded_with_the_reason() {
    require_root();
    let sb = Sandbox::new();
    let root = sb.path().join("shared");
    for d in 0..20 {
        std::fs::create_dir_all(root.join(format!("{d:02x}"))).unwrap();
    }
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\nmax_watches = 8\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\n",
        root.display()
    ));
    // Not `start()`: it waits for `status` to exit 0, and a degraded daemon exits 1.
    let daemon = sb.spawn(&[]);
    let deadline = Instant::now() + STARTUP;
    let status = loop {
        let out = ctl(&sb.socket(), &["status", "--json"]);
        if !out.stdout.starts_with(b"{") {
            assert!(
                Instant::now() < deadline,
                "no answer:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let j = json(&out);
        let watcher = j["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "watcher")
            .unwrap()
            .clone();
        if watcher["state"] == "degraded" {
            assert_eq!(out.status.code(), Some(1), "degraded exits 1");
            assert_eq!(j["healthy"], false);
            break watcher;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher never said degraded: {j}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let detail = status["detail"].as_str().unwrap();
    assert!(
        detail.contains("inotify watch limit reached at")
            && detail.contains(&root.display().to_string())
            && detail.contains("max_watches"),
        "{detail}"
    );
    let text = stdout(&ctl(&sb.socket(), &["status"]));
    assert!(text.contains("— degraded,"), "{text}");
    assert!(text.contains("watcher         degraded"), "{text}");
}
