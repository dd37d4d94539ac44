//! The trim executor's confinement on a hand-made cache: a symlinked `00`..`ff` directory is
//! skipped and reported (its target untouched), a `*-d` symlink is never followed or removed,
//! files Go does not own (`README`, other names) stay, an entry touched after the listing
//! is kept whole, and an `-a` that stays but cannot be read keeps every `-d`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use goguard_hygiene::gocache::{ActionRecord, CacheId};
use goguard_hygiene::trim::{self, RemovalOutcome, TrimPolicy};

fn id(b: u8) -> CacheId {
    let mut x = [0x5au8; 32];
    x[0] = b;
    CacheId(x)
}

fn old_file(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
    std::fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
        .unwrap();
}

#[test]
fn symlinks_are_never_followed_and_foreign_files_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for b in 0..=255u8 {
        if b != 0x01 {
            std::fs::create_dir_all(cache.join(format!("{b:02x}"))).unwrap();
        }
    }
    // 01 is a symlink to a directory outside the cache holding an old "entry".
    std::os::unix::fs::symlink(&outside, cache.join("01")).unwrap();
    let victim = outside.join(id(1).file_name(goguard_hygiene::gocache::EntryKind::Output));
    old_file(&victim, b"not yours");
    // An old, whole entry in 02/03, which goes.
    let rec = ActionRecord {
        action: id(2),
        output: id(3),
        size: 4,
        time_unix_nanos: 1,
    };
    let a = cache.join("02").join(format!("{}-a", id(2)));
    let d = cache.join("03").join(format!("{}-d", id(3)));
    old_file(&a, rec.to_line().as_bytes());
    old_file(&d, b"data");
    // A *-d symlink to a file outside: not followed, not removed.
    let outside_file = outside.join("precious");
    old_file(&outside_file, b"precious");
    let link = cache.join("04").join(format!("{}-d", id(4)));
    std::os::unix::fs::symlink(&outside_file, &link).unwrap();
    // Files that are not Go's entries.
    old_file(&cache.join("README"), b"readme");
    old_file(&cache.join("05").join("notes.txt"), b"x");

    let report = trim::execute(&cache, &TrimPolicy::default(), SystemTime::now()).unwrap();
    assert!(report.age_trim);
    assert_eq!(report.skipped_dirs.len(), 1, "{:?}", report.skipped_dirs);
    assert_eq!(report.skipped_dirs[0].dir, "01");
    assert_eq!(report.not_regular, 1);
    assert_eq!(report.entries_removed, 2);
    assert!(
        report
            .removals
            .iter()
            .all(|r| r.outcome == RemovalOutcome::Removed)
    );
    assert!(!a.exists() && !d.exists());
    assert!(victim.exists() && outside_file.exists());
    assert!(link.symlink_metadata().is_ok());
    assert!(cache.join("README").exists() && cache.join("05/notes.txt").exists());
    assert!(cache.join("trim.txt").exists());
}

#[test]
fn an_entry_used_after_listing_is_kept_with_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    for b in 0..=255u8 {
        std::fs::create_dir_all(cache.join(format!("{b:02x}"))).unwrap();
    }
    let rec = ActionRecord {
        action: id(0x10),
        output: id(0x11),
        size: 4,
        time_unix_nanos: 1,
    };
    let a = cache.join("10").join(format!("{}-a", id(0x10)));
    let d = cache.join("11").join(format!("{}-d", id(0x11)));
    old_file(&a, rec.to_line().as_bytes());
    old_file(&d, b"data");

    // Plan from a listing (the -a is past the age cutoff, so its record is not read), then a
    // build uses the -a (Go's `used` refreshes its mtime) before the removal: the executor's
    // re-check keeps it, reads it, and keeps the -d it names.
    let root = goguard_fs::RootDir::open(cache).unwrap();
    let now = SystemTime::now();
    let listing = trim::list(&root, Some(goguard_hygiene::gocache::age_cutoff(now))).unwrap();
    assert!(listing.entries.iter().all(|e| e.action.is_none()));
    let plan = trim::plan(&listing.entries, None, &TrimPolicy::default(), now);
    assert_eq!(plan.removals.len(), 2);
    std::fs::File::open(&a)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    let rows = trim::apply(&listing, &plan, false);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].outcome, RemovalOutcome::KeptUsed, "{rows:?}");
    assert_eq!(rows[1].outcome, RemovalOutcome::KeptWithAction, "{rows:?}");
    assert!(a.exists() && d.exists());
    // Untouched, the same plan removes both.
    let listing = trim::list(&root, None).unwrap();
    let plan = trim::plan(
        &listing.entries,
        None,
        &TrimPolicy::default(),
        SystemTime::now() + Duration::from_secs(30 * 86_400),
    );
    let rows = trim::apply(&listing, &plan, false);
    assert!(
        rows.iter().all(|r| r.outcome == RemovalOutcome::Removed),
        "{rows:?}"
    );
    assert!(!a.exists() && !d.exists());
}

#[test]
fn an_action_that_stays_and_cannot_be_read_keeps_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    for b in 0..=255u8 {
        std::fs::create_dir_all(cache.join(format!("{b:02x}"))).unwrap();
    }
    let mut paths = Vec::new();
    for (a, o) in [(0x20, 0x21), (0x30, 0x31)] {
        let rec = ActionRecord {
            action: id(a),
            output: id(o),
            size: 4,
            time_unix_nanos: 1,
        };
        let pa = cache.join(format!("{a:02x}")).join(format!("{}-a", id(a)));
        let pd = cache.join(format!("{o:02x}")).join(format!("{}-d", id(o)));
        old_file(&pa, rec.to_line().as_bytes());
        old_file(&pd, b"data");
        paths.push((pa, pd));
    }
    let root = goguard_fs::RootDir::open(cache).unwrap();
    let now = SystemTime::now();
    let listing = trim::list(&root, Some(goguard_hygiene::gocache::age_cutoff(now))).unwrap();
    let plan = trim::plan(&listing.entries, None, &TrimPolicy::default(), now);
    assert_eq!(plan.removals.len(), 4);
    // The first -a becomes a symlink after the listing: it stays (never unlinked through a
    // symlink), and what it names cannot be known without following it, so no -d goes.
    std::fs::remove_file(&paths[0].0).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &paths[0].0).unwrap();
    let rows = trim::apply(&listing, &plan, false);
    let outcome = |p: &Path| {
        let rel = p.strip_prefix(cache).unwrap().to_str().unwrap();
        rows.iter().find(|r| r.path == rel).unwrap().outcome.clone()
    };
    assert_eq!(outcome(&paths[0].0), RemovalOutcome::KeptNotAFile);
    assert_eq!(outcome(&paths[1].0), RemovalOutcome::Removed);
    assert_eq!(outcome(&paths[0].1), RemovalOutcome::KeptWithAction);
    assert_eq!(outcome(&paths[1].1), RemovalOutcome::KeptWithAction);
    assert!(paths[0].1.exists() && paths[1].1.exists() && !paths[1].0.exists());
}

#[test]
fn a_trim_asked_to_stop_removes_no_more_and_leaves_trim_txt_for_the_next_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for b in 0..=255u8 {
        std::fs::create_dir_all(cache.join(format!("{b:02x}"))).unwrap();
    }
    // 40 old, whole entries: each an -a in one directory and its -d in the next.
    let mut files = Vec::new();
    for i in 0..40u8 {
        let (action, output) = (id(i * 2), id(i * 2 + 1));
        let rec = ActionRecord {
            action,
            output,
            size: 4,
            time_unix_nanos: 1,
        };
        let a = cache
            .join(format!("{:02x}", i * 2))
            .join(format!("{action}-a"));
        let d = cache
            .join(format!("{:02x}", i * 2 + 1))
            .join(format!("{output}-d"));
        old_file(&a, rec.to_line().as_bytes());
        old_file(&d, b"data");
        files.push((a, d));
    }
    let asked = AtomicUsize::new(0);
    let stop = || asked.fetch_add(1, Ordering::SeqCst) >= 10;
    let dir = goguard_fs::RootDir::open(&cache).unwrap();
    let report =
        trim::execute_until(dir, &TrimPolicy::default(), SystemTime::now(), &stop).unwrap();
    let removed = report
        .removals
        .iter()
        .filter(|r| r.outcome == RemovalOutcome::Removed)
        .count();
    let stopped = report
        .removals
        .iter()
        .filter(|r| r.outcome == RemovalOutcome::KeptStopping)
        .count();
    let kept_with_action = report
        .removals
        .iter()
        .filter(|r| r.outcome == RemovalOutcome::KeptWithAction)
        .count();
    assert_eq!(removed, 10, "{:?}", report.removals);
    assert!(stopped > 0);
    // The -d of each -a not tried stays with it.
    assert_eq!(
        removed + stopped + kept_with_action,
        80,
        "{:?}",
        report.removals
    );
    assert!(!report.trim_txt_written);
    assert!(!cache.join("trim.txt").exists());
    // Never an -a left without its -d: a -d goes only after every -a was tried.
    for (a, d) in &files {
        if a.exists() {
            assert!(d.exists(), "{} kept but its output removed", a.display());
        }
    }
    // The next trim finishes the job and records it.
    let again = trim::execute(&cache, &TrimPolicy::default(), SystemTime::now()).unwrap();
    assert_eq!(again.entries_removed, 70);
    assert!(again.trim_txt_written);
    assert!(files.iter().all(|(a, d)| !a.exists() && !d.exists()));
}
