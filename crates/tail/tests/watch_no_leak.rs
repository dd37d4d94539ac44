//! `LogWatch` never leaks inotify instances or watches: creating and dropping many, and
//! re-arming one after its directory went away and came back, leaves exactly what was there.
//! Alone in its own test binary, so no other test's inotify fds are counted.

#![cfg(feature = "watch")]

use std::fs;
use std::time::Duration;

use goguard_tail::LogWatch;

/// The inotify fds of this process, with the number of watches each holds.
fn inotify_fds() -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if target.to_string_lossy() != "anon_inode:inotify" {
            continue;
        }
        let fd = entry.file_name().to_string_lossy().into_owned();
        let Ok(info) = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let watches = info
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .count();
        out.push((fd, watches));
    }
    out
}

#[tokio::test]
async fn no_inotify_instance_or_watch_outlives_its_log_watch() {
    let before = inotify_fds().len();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    fs::create_dir(&dir).unwrap();
    let log = dir.join("audit.log");

    for _ in 0..100 {
        let w = LogWatch::new(&log, Duration::from_secs(1));
        assert!(w.is_watching());
    }
    assert_eq!(inotify_fds().len(), before, "dropped watches are closed");

    let mut w = LogWatch::new(&log, Duration::from_millis(10));
    assert_eq!(inotify_fds().len(), before + 1);
    for _ in 0..5 {
        fs::remove_dir(&dir).unwrap();
        while w.is_watching() {
            w.changed().await;
        }
        assert_eq!(inotify_fds().len(), before, "a dead watch is closed");
        fs::create_dir(&dir).unwrap();
        while !w.is_watching() {
            w.changed().await;
        }
        let fds = inotify_fds();
        assert_eq!(fds.len(), before + 1, "one instance after re-arming");
        assert!(fds.iter().any(|(_, watches)| *watches == 1), "{fds:?}");
    }
    drop(w);
    assert_eq!(inotify_fds().len(), before);
}
