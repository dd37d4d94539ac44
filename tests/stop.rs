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
fn journal_rows(db: &Path) -> Vec<(String, String)> {
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
