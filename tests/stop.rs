//! Stopping goguardd in the middle of its work (issue 17): SIGTERM during the first scan of
//! a large root ends the process cleanly and quickly, and every change it made is journaled;
//! a SIGHUP during the first scan is applied once goguardd serves.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// `(path, kind)` of every journal row, read from the daemon's SQLite file with Python's
/// sqlite3 (the daemon is stopped; nothing else holds the file).
pub fn journal_rows(db: &Path) -> Vec<(String, String)> {
    let out = Command::new(require_tool("python3", "python3"))
        .args([
            "-c",
            "import sqlite3,sys\nfor p,k in sqlite3.connect(sys.argv[1]).execute('select path, kind from journal'): print(p+'\\t'+k)",
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reading the journal: {}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(p, k)| (p.to_owned(), k.to_owned()))
        .collect()
}

#[test]
fn sigterm_during_the_first_scan_exits_cleanly_and_journals_every_change() {
    if !require_root("chowns files to another user") {
        return;
    }
    let sb = Sandbox::new();
    let root = sb.path().join("big");
    const DIRS: usize = 300;
    const PER_DIR: usize = 200;
    for d in 0..DIRS {
        let dir = root.join(format!("{d:03x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..PER_DIR {
            let p = dir.join(format!("{f:04x}-a"));
            std::fs::write(&p, b"").unwrap();
            std::os::unix::fs::chown(&p, Some(1), Some(1)).unwrap();
        }
    }
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n[[root]]\npath = \"{}\"\n\
         kind = \"custom\"\nowner = \"root\"\ngroup = \"root\"",
        root.display()
    ));
    let mut daemon = sb.spawn(&[]);
    daemon.wait_socket_bound(&sb.socket());
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    let status = daemon.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", daemon.log_text());
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");

    let mut changed = std::collections::BTreeSet::new();
    for d in 0..DIRS {
        for f in 0..PER_DIR {
            let p = root.join(format!("{d:03x}/{f:04x}-a"));
            if std::fs::metadata(&p).unwrap().uid() == 0 {
                changed.insert(p.display().to_string());
            }
        }
    }
    let rows = journal_rows(&sb.state_dir().join("goguard.db"));
    let journaled: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|(p, k)| k == "chown" && p.ends_with("-a"))
        .map(|(p, _)| p.clone())
        .collect();
    eprintln!(
        "SIGTERM {:?} after the socket: exit 0 in {took:?}, {} of {} files changed, {} chown rows",
        Duration::from_millis(300),
        changed.len(),
        DIRS * PER_DIR,
        journaled.len()
    );
    // Every change has its row, and no row claims a change that did not happen.
    let missing: Vec<_> = changed.difference(&journaled).take(5).collect();
    assert!(
        missing.is_empty(),
        "changed without a journal row: {missing:?}"
    );
    let phantom: Vec<_> = journaled.difference(&changed).take(5).collect();
    assert!(phantom.is_empty(), "journaled but not changed: {phantom:?}");
}

#[test]
fn a_sighup_during_the_first_scan_is_not_lost() {
    assert_root("chowns files to another user");
    let sb = Sandbox::new();
    let first = sb.path().join("first");
    for d in 0..20 {
        let dir = first.join(format!("{d:02x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..250 {
            let p = dir.join(format!("{f:04x}-a"));
            std::fs::write(&p, b"").unwrap();
            std::os::unix::fs::chown(&p, Some(1), Some(1)).unwrap();
        }
    }
    let added = sb.path().join("added");
    std::fs::create_dir_all(&added).unwrap();
    let root = |p: &Path| {
        format!(
            "[[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"root\"\n",
            p.display()
        )
    };
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n{}",
        root(&first)
    ));
    let daemon = sb.spawn(&[]);
    let started = Instant::now();
    daemon.wait_socket_bound(&sb.socket());
    // The first scan of 5,000 drifted files is under way: a new root and a SIGHUP.
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 0\n{}{}",
        root(&first),
        root(&added)
    ));
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let sent = started.elapsed();
    daemon.wait_ready(&sb.socket());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let roots = json(&ctl(&sb.socket(), &["roots", "--json"]));
        let paths: Vec<&str> = roots["roots"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["path"].as_str())
            .collect();
        if paths.contains(&added.to_str().unwrap()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the SIGHUP sent {sent:?} after start was lost: roots {paths:?}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon.log_text().contains("reload"),
        "no reload in the log:\n{}",
        daemon.log_text()
    );
}

/// Issue 15: periodic scans run in a task of their own. While goguardd scans a root of
/// 200,000 entries again and again, the watchdog pings keep their interval (half of
/// `WATCHDOG_USEC`; a gap of `WATCHDOG_USEC` is what systemd kills for), and SIGTERM in the
/// middle of a periodic scan is answered in under a second, exit 0. The scan is checked to
/// take longer than `WATCHDOG_USEC`, so a supervisor that waited for it would be seen late.
#[test]
fn a_periodic_scan_of_a_200k_entry_root_delays_neither_the_watchdog_nor_sigterm() {
    assert_root("scans a root owned by root");
    const WATCHDOG: Duration = Duration::from_millis(600);
    let sb = Sandbox::new();
    let root = sb.path().join("big");
    for d in 0..400 {
        let dir = root.join(format!("{d:03x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..499 {
            std::fs::write(dir.join(format!("{f:04x}-a")), b"").unwrap();
        }
    }
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[scan]\ninterval_secs = 1\n[heal]\nauto = false\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"root\"",
        root.display()
    ));
    let notify_path = sb.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(STARTUP)).unwrap();
    let notify_s = notify_path.display().to_string();
    let usec = WATCHDOG.as_micros().to_string();
    let mut daemon = sb.spawn(&[
        ("NOTIFY_SOCKET", &notify_s),
        ("WATCHDOG_USEC", &usec),
        ("RUST_LOG", "info,goguardd::schedule=debug"),
    ]);
    let mut buf = vec![0u8; 4096];
    let mut recv = || {
        // A signal to this test process (another test's child ending) interrupts recv.
        let n = loop {
            match notify.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("waiting for a notification: {e}"),
            }
        };
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    while !recv().contains("READY=1") {}

    // Pings until three periodic scans are done (each followed by a second of rest), then
    // until the fourth has started and run for half of the shortest scan seen.
    let log_count = |what: &str| daemon.log_text().matches(what).count();
    let mut last_ping = Instant::now();
    let mut worst_gap = Duration::ZERO;
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while log_count("periodic scan done") < 3 {
        assert!(
            Instant::now() < deadline,
            "three periodic scans in 120 s:\n{}",
            daemon.log_text()
        );
        if recv() == "WATCHDOG=1\n" {
            worst_gap = worst_gap.max(last_ping.elapsed());
            last_ping = Instant::now();
            pings += 1;
        }
    }
    let log = daemon.log_text();
    let scans: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("periodic scan done"))
        .filter_map(|l| l.split("seconds=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    let entries_ok = log
        .lines()
        .filter(|l| l.contains("periodic scan done"))
        .all(|l| l.contains("entries=200001"));
    assert!(
        entries_ok,
        "every periodic scan walks the whole root:\n{log}"
    );
    let shortest = scans.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        shortest > WATCHDOG.as_secs_f64(),
        "the scans ({scans:?} s) are shorter than WATCHDOG_USEC: this test could not see a \
         late watchdog"
    );
    let started = log_count("periodic scan started");
    while log_count("periodic scan started") == started {
        assert!(Instant::now() < deadline, "a fourth periodic scan in 120 s");
        if recv() == "WATCHDOG=1\n" {
            worst_gap = worst_gap.max(last_ping.elapsed());
            last_ping = Instant::now();
            pings += 1;
        }
    }
    std::thread::sleep(Duration::from_secs_f64(shortest / 2.0));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    let status = daemon.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    let log = daemon.log_text();
    eprintln!(
        "periodic scans of 200,001 entries took {scans:?} s; {pings} watchdog pings, the \
         longest gap {worst_gap:?} (WATCHDOG_USEC {WATCHDOG:?}); SIGTERM mid-scan: exit in \
         {took:?}"
    );
    assert!(
        worst_gap < WATCHDOG,
        "a watchdog ping came {worst_gap:?} after the one before (WATCHDOG_USEC {WATCHDOG:?})"
    );
    assert_eq!(status.code(), Some(0), "{status:?}\n{log}");
    assert!(
        took < Duration::from_secs(1),
        "stopping took {took:?}\n{log}"
    );
    assert!(
        log.contains("periodic scan stopped: goguardd is stopping"),
        "SIGTERM came mid-scan:\n{log}"
    );
}
