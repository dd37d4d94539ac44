//! Integration tests of `goguard-watch` against the real kernel: real inotify, real files in
//! temporary directories, real ACLs and xattrs, and (as root) a real tmpfs mount and a
//! lowered `fs.inotify.max_queued_events`.
//!
//! Tests never touch anything outside their temporary directories except the inotify sysctl
//! (restored at once) and a tmpfs they mount and unmount inside one; tests that need root
//! say so and pass without checking when not run as root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use goguard_watch::{Change, Notice, WatchConfig, WatchError, Watcher};

/// Held while creating an inotify instance, and while `max_queued_events` is lowered: the
/// kernel reads that sysctl when an instance is created, so no other test may create one then.
static INSTANCE_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    INSTANCE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn watcher(config: WatchConfig) -> Watcher {
    let _g = lock();
    Watcher::new(config).expect("inotify instance")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A test (or part of one) cannot run here: a failure under `GOGUARD_TESTS_STRICT=1`
/// (tests/run-all.sh, as root in CI), a note otherwise.
fn cannot_run(why: &str) {
    assert!(
        std::env::var_os("GOGUARD_TESTS_STRICT").is_none_or(|v| v != "1"),
        "cannot run ({why}) under GOGUARD_TESTS_STRICT=1: run tests/run-all.sh as root"
    );
    eprintln!("skipped: {why}");
}

fn changed(root_id: u32, p: &str, what: Change) -> impl Fn(&Notice) -> bool {
    let p = PathBuf::from(p);
    move |n| {
        matches!(n, Notice::Changed { root_id: r, rel_path, what: w, .. }
            if *r == root_id && *rel_path == p && *w == what)
    }
}

/// Takes notices until every predicate matched one, or panics after 5 s showing them all.
async fn expect_all(w: &mut Watcher, preds: &[&dyn Fn(&Notice) -> bool]) -> Vec<Notice> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        if preds.iter().all(|p| seen.iter().any(p)) {
            return seen;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.next()).await {
            Ok(n) => seen.push(n.expect("watcher failed")),
            Err(_) => {
                let missing: Vec<usize> = (0..preds.len())
                    .filter(|i| !seen.iter().any(preds[*i]))
                    .collect();
                panic!("timed out; predicates {missing:?} unmatched; notices: {seen:#?}");
            }
        }
    }
}

/// Every notice that arrives within `d`.
async fn drain(w: &mut Watcher, d: Duration) -> Vec<Notice> {
    let deadline = Instant::now() + d;
    let mut seen = Vec::new();
    while let Ok(n) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), w.next()).await
    {
        seen.push(n.expect("watcher failed"));
    }
    seen
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().expect(cmd);
    assert!(st.success(), "{cmd} {args:?} failed");
}

#[tokio::test]
async fn a_new_file_is_reported_created_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = watcher(WatchConfig::default());
    let rep = w.add_root(1, dir.path()).unwrap();
    assert_eq!(rep.dirs_watched, 1);
    assert!(!rep.pending && !rep.limit_hit);
    fs::write(dir.path().join("f"), b"x").unwrap();
    expect_all(
        &mut w,
        &[
            &changed(1, "f", Change::Created),
            &changed(1, "f", Change::Written),
        ],
    )
    .await;
}

#[tokio::test]
async fn chmod_chown_setfacl_and_root_chmod_are_attrib() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, dir.path()).unwrap();

    run("chmod", &["600", f.to_str().unwrap()]);
    expect_all(&mut w, &[&changed(1, "f", Change::Attrib)]).await;
    if is_root() {
        std::os::unix::fs::chown(&f, Some(1234), Some(1234)).unwrap();
        expect_all(&mut w, &[&changed(1, "f", Change::Attrib)]).await;
    } else {
        cannot_run("the chown part needs root");
    }
    run("setfacl", &["-m", "u:1234:rw", f.to_str().unwrap()]);
    expect_all(&mut w, &[&changed(1, "f", Change::Attrib)]).await;
    run("chmod", &["750", dir.path().to_str().unwrap()]);
    let seen = expect_all(&mut w, &[&changed(1, "", Change::Attrib)]).await;
    assert!(seen.iter().any(
        |n| matches!(n, Notice::Changed { rel_path, is_dir: true, .. } if rel_path.as_os_str().is_empty())
    ));
}

#[tokio::test]
async fn an_selinux_label_change_is_attrib() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, dir.path()).unwrap();
    let label = b"system_u:object_r:user_home_t:s0\0";
    match rustix::fs::lsetxattr(
        &f,
        "security.selinux",
        label,
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => {}
        Err(e) => {
            cannot_run(&format!("cannot set security.selinux here: {e}"));
            return;
        }
    }
    expect_all(&mut w, &[&changed(1, "f", Change::Attrib)]).await;
}

#[tokio::test]
async fn mkdir_p_and_files_made_at_once_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, dir.path()).unwrap();
    let deep = dir.path().join("a/b/c/d");
    fs::create_dir_all(&deep).unwrap();
    for p in ["a/1", "a/b/2", "a/b/c/3", "a/b/c/d/4"] {
        fs::write(dir.path().join(p), b"x").unwrap();
    }
    let seen = expect_all(
        &mut w,
        &[
            &changed(1, "a", Change::Created),
            &changed(1, "a/b", Change::Created),
            &changed(1, "a/b/c", Change::Created),
            &changed(1, "a/b/c/d", Change::Created),
            &changed(1, "a/1", Change::Created),
            &changed(1, "a/b/2", Change::Created),
            &changed(1, "a/b/c/3", Change::Created),
            &changed(1, "a/b/c/d/4", Change::Created),
            &|n| matches!(n, Notice::NewDirScanned { rel_path, .. } if rel_path == Path::new("a")),
        ],
    )
    .await;
    drain(&mut w, Duration::from_millis(200)).await;
    assert_eq!(w.stats().watches, 5, "{seen:#?}");
    // Later changes deep inside are seen too: the whole chain is watched.
    fs::write(deep.join("5"), b"x").unwrap();
    expect_all(&mut w, &[&changed(1, "a/b/c/d/5", Change::Created)]).await;
}

#[tokio::test]
async fn a_renamed_directory_reports_under_its_new_path() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("old/sub")).unwrap();
    let mut w = watcher(WatchConfig::default());
    assert_eq!(w.add_root(1, dir.path()).unwrap().dirs_watched, 3);
    fs::rename(dir.path().join("old"), dir.path().join("new")).unwrap();
    expect_all(
        &mut w,
        &[
            &changed(1, "old", Change::MovedOut),
            &changed(1, "new", Change::MovedIn),
            &changed(1, "new/sub", Change::Created),
        ],
    )
    .await;
    fs::write(dir.path().join("new/sub/f"), b"x").unwrap();
    let seen = expect_all(&mut w, &[&changed(1, "new/sub/f", Change::Created)]).await;
    assert!(
        !seen
            .iter()
            .any(|n| matches!(n, Notice::Changed { rel_path, .. } if rel_path.starts_with("old/"))),
        "{seen:#?}"
    );
    assert_eq!(w.stats().watches, 3);
}

#[tokio::test]
async fn a_directory_moved_out_of_the_root_is_no_longer_watched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("d/e")).unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, &root).unwrap();
    fs::rename(root.join("d"), dir.path().join("away")).unwrap();
    expect_all(&mut w, &[&changed(1, "d", Change::MovedOut)]).await;
    assert_eq!(w.stats().watches, 1);
    fs::write(dir.path().join("away/e/f"), b"x").unwrap();
    let seen = drain(&mut w, Duration::from_millis(300)).await;
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn a_deleted_directory_drops_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("d/e")).unwrap();
    fs::write(dir.path().join("d/e/f"), b"x").unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, dir.path()).unwrap();
    assert_eq!(w.stats().watches, 3);
    fs::remove_dir_all(dir.path().join("d")).unwrap();
    expect_all(
        &mut w,
        &[
            &changed(1, "d/e/f", Change::Removed),
            &changed(1, "d/e", Change::Removed),
            &changed(1, "d", Change::Removed),
        ],
    )
    .await;
    drain(&mut w, Duration::from_millis(100)).await;
    assert_eq!(w.stats().watches, 1);
}

#[tokio::test]
async fn symlinks_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink(outside.path(), root.join("l")).unwrap();
    let mut w = watcher(WatchConfig::default());
    assert_eq!(w.add_root(1, root).unwrap().dirs_watched, 1);
    std::os::unix::fs::symlink(outside.path(), root.join("l2")).unwrap();
    let seen = expect_all(&mut w, &[&changed(1, "l2", Change::Created)]).await;
    assert!(
        seen.iter()
            .all(|n| !matches!(n, Notice::Changed { is_dir: true, .. }))
    );
    fs::create_dir(outside.path().join("sub")).unwrap();
    fs::write(outside.path().join("f"), b"x").unwrap();
    let seen = drain(&mut w, Duration::from_millis(300)).await;
    assert!(
        seen.is_empty(),
        "changes outside the root were reported: {seen:#?}"
    );
    assert_eq!(w.stats().watches, 1);
}

#[tokio::test]
async fn a_root_that_does_not_exist_yet_is_watched_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home/alice/.cache/go-build");
    let mut w = watcher(WatchConfig::default());
    let rep = w.add_root(7, &root).unwrap();
    assert!(rep.pending);
    assert_eq!((w.stats().pending_roots, w.stats().watches), (1, 1));

    fs::create_dir_all(root.join("ab")).unwrap();
    expect_all(&mut w, &[&|n| *n == Notice::RootAppeared { root_id: 7 }]).await;
    assert_eq!(w.stats().pending_roots, 0);
    fs::write(root.join("ab/f"), b"x").unwrap();
    expect_all(&mut w, &[&changed(7, "ab/f", Change::Created)]).await;
    // The ancestor's watch is gone: only the root and ab are watched.
    assert_eq!(w.stats().watches, 2);

    // Gone, then back again.
    fs::remove_dir_all(dir.path().join("home/alice")).unwrap();
    expect_all(&mut w, &[&|n| *n == Notice::RootGone { root_id: 7 }]).await;
    assert_eq!(w.stats().pending_roots, 1);
    fs::create_dir_all(&root).unwrap();
    expect_all(&mut w, &[&|n| *n == Notice::RootAppeared { root_id: 7 }]).await;
    fs::write(root.join("g"), b"x").unwrap();
    expect_all(&mut w, &[&changed(7, "g", Change::Created)]).await;

    assert!(w.remove_root(7));
    assert!(!w.remove_root(7));
    assert_eq!(w.stats().watches, 0);
}

#[tokio::test]
async fn a_renamed_root_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    fs::create_dir_all(root.join("x")).unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, &root).unwrap();
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    expect_all(&mut w, &[&|n| *n == Notice::RootGone { root_id: 1 }]).await;
    assert_eq!((w.stats().watches, w.stats().pending_roots), (1, 1));
    fs::write(dir.path().join("elsewhere/x/f"), b"x").unwrap();
    let seen = drain(&mut w, Duration::from_millis(300)).await;
    assert!(seen.is_empty(), "{seen:#?}");
}

/// Restores a sysctl file when dropped.
struct Restore(&'static str, String);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = fs::write(self.0, &self.1);
    }
}

#[tokio::test]
async fn a_kernel_queue_overflow_is_reported() {
    const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";
    let mut w = {
        let _g = lock();
        let old = fs::read_to_string(KNOB).unwrap();
        if let Err(e) = fs::write(KNOB, "16") {
            cannot_run(&format!("cannot lower {KNOB}: {e}"));
            return;
        }
        let _restore = Restore(KNOB, old);
        Watcher::new(WatchConfig::default()).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    w.add_root(1, dir.path()).unwrap();
    for i in 0..200 {
        fs::write(dir.path().join(i.to_string()), b"x").unwrap();
    }
    expect_all(&mut w, &[&|n| *n == Notice::Overflow]).await;
    assert!(w.stats().overflows >= 1);
    // Watches were placed again; later changes are still seen.
    drain(&mut w, Duration::from_millis(200)).await;
    assert_eq!(w.stats().watches, 1);
    fs::write(dir.path().join("after"), b"x").unwrap();
    expect_all(&mut w, &[&changed(1, "after", Change::Created)]).await;
}

#[tokio::test]
async fn the_watch_budget_is_enforced_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        fs::create_dir(dir.path().join(format!("{i:02x}"))).unwrap();
    }
    let mut w = watcher(WatchConfig {
        max_watches: 10,
        ..WatchConfig::default()
    });
    let rep = w.add_root(1, dir.path()).unwrap();
    assert!(rep.limit_hit);
    assert_eq!(rep.dirs_watched, 10);
    assert_eq!(w.stats().watches, 10);
    expect_all(
        &mut w,
        &[&|n| matches!(n, Notice::WatchLimit { root_id: 1, .. })],
    )
    .await;
    // A new directory still gets its Created notice, and a WatchLimit for itself.
    fs::create_dir(dir.path().join("new")).unwrap();
    expect_all(
        &mut w,
        &[
            &changed(1, "new", Change::Created),
            &|n| matches!(n, Notice::WatchLimit { rel_path, .. } if rel_path == Path::new("new")),
        ],
    )
    .await;
    assert_eq!(w.stats().watches, 10);
    assert!(w.stats().limit_hits >= 2);
}

/// One root with a huge tree takes at most half the budget (or its share): the other roots
/// are watched whole and keep growing, while the big one reports `WatchLimit { root_share }`;
/// a later root gets half of what is left, and at least its share.
#[tokio::test]
async fn one_root_cannot_take_the_watch_budget_of_all() {
    let big = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    let mid = tempfile::tempdir().unwrap();
    for i in 0..50 {
        fs::create_dir(big.path().join(format!("{i:02x}"))).unwrap();
    }
    for i in 0..5 {
        fs::create_dir(small.path().join(format!("{i:02x}"))).unwrap();
    }
    for i in 0..15 {
        fs::create_dir(mid.path().join(format!("{i:02x}"))).unwrap();
    }
    let mut w = watcher(WatchConfig {
        max_watches: 40,
        root_share: 5,
        ..WatchConfig::default()
    });
    // Alone: half the budget.
    let rep = w.add_root(1, big.path()).unwrap();
    assert!(rep.limit_hit);
    assert_eq!((rep.dirs_watched, w.root_watches(1)), (20, 20));
    let rep = w.add_root(2, small.path()).unwrap();
    assert!(!rep.limit_hit);
    assert_eq!(w.root_watches(2), 6);
    expect_all(
        &mut w,
        &[&|n| {
            matches!(
                n,
                Notice::WatchLimit {
                    root_id: 1,
                    root_share: true,
                    ..
                }
            )
        }],
    )
    .await;
    // The small root still grows; the big one does not.
    fs::create_dir(small.path().join("new")).unwrap();
    fs::create_dir(big.path().join("new")).unwrap();
    expect_all(
        &mut w,
        &[
            &changed(2, "new", Change::Created),
            &changed(1, "new", Change::Created),
        ],
    )
    .await;
    assert_eq!((w.root_watches(1), w.root_watches(2)), (20, 7));
    // A third root: half of the 13 left (6), of its 16 directories.
    let rep = w.add_root(3, mid.path()).unwrap();
    assert!(rep.limit_hit);
    assert_eq!(w.root_watches(3), 6);
    assert_eq!(w.root_cap(3), 6);
    // A larger share is guaranteed even when half of what is left is less.
    w.set_root_share(9);
    assert_eq!(w.root_cap(3), 9);
}

/// A set interrupt flag stops a walk between directories.
#[tokio::test]
async fn an_interrupt_stops_a_walk() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        fs::create_dir(dir.path().join(format!("{i:02x}"))).unwrap();
    }
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let mut w = watcher(WatchConfig {
        interrupt: Some(&STOP),
        ..WatchConfig::default()
    });
    let rep = w.add_root(1, dir.path()).unwrap();
    assert_eq!((rep.dirs_watched, rep.limit_hit), (0, false));
}

/// Unmounts when dropped.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_tmpfs_mounted_inside_a_root_is_not_watched() {
    if !is_root() {
        cannot_run("mounting needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    fs::create_dir(&m).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "goguard-watch-test"])
        .arg(&m)
        .status()
        .unwrap();
    if !st.success() {
        cannot_run("cannot mount tmpfs here");
        return;
    }
    let _unmount = Unmount(m.clone());
    fs::create_dir(m.join("inner")).unwrap();
    let mut w = watcher(WatchConfig::default());
    let rep = w.add_root(1, dir.path()).unwrap();
    assert_eq!(rep.dirs_watched, 1);
    assert_eq!(rep.other_mounts, [PathBuf::from("m")]);
    assert_eq!(w.stats().mounts_skipped, 1);
    fs::write(m.join("f"), b"x").unwrap();
    fs::write(m.join("inner/g"), b"x").unwrap();
    fs::write(dir.path().join("h"), b"x").unwrap();
    let seen = expect_all(&mut w, &[&changed(1, "h", Change::Created)]).await;
    let seen = [seen, drain(&mut w, Duration::from_millis(200)).await].concat();
    assert!(
        seen.iter()
            .all(|n| matches!(n, Notice::Changed { rel_path, .. } if rel_path == Path::new("h"))),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn watches_and_memory_stay_bounded_for_5000_dirs() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        for j in 0..99 {
            fs::create_dir_all(dir.path().join(format!("{i:02x}/{j:02}"))).unwrap();
        }
    }
    // 50 + 50 * 99 = 5,000 directories beneath the root.
    let mut w = watcher(WatchConfig::default());
    let rep = w.add_root(1, dir.path()).unwrap();
    assert_eq!(rep.dirs_watched, 5_001);
    let stats = w.stats();
    assert_eq!(stats.watches, 5_001);
    eprintln!(
        "5,001 watches: map estimate {} bytes ({} per directory)",
        stats.map_bytes_estimate,
        stats.map_bytes_estimate / 5_001
    );
    assert!(stats.map_bytes_estimate < 5_001 * 200, "{stats:?}");
    assert!(w.remove_root(1));
    assert_eq!(w.stats().watches, 0);
    assert_eq!(w.stats().roots, 0);
}

#[tokio::test]
async fn bad_roots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = watcher(WatchConfig::default());
    w.add_root(1, dir.path()).unwrap();
    assert!(matches!(
        w.add_root(1, dir.path()),
        Err(WatchError::DuplicateRoot { root_id: 1 })
    ));
    assert!(matches!(
        w.add_root(2, Path::new("relative")),
        Err(WatchError::BadRootPath { .. })
    ));
    assert!(matches!(
        w.add_root(3, &dir.path().join("../x")),
        Err(WatchError::BadRootPath { .. })
    ));
    assert_eq!(w.stats().roots, 1);
}
