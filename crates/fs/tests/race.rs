//! Symlink/directory swap race: a thread keeps exchanging a directory inside the root with a
//! symlink to a directory outside it (`renameat2(RENAME_EXCHANGE)`), while the main thread
//! chowns, chmods, labels and ACLs paths through it, both by path from the root and during
//! walks. Afterwards nothing outside the root may have changed owner, mode, ACL or label.
//!
//! Must never change anything outside its temp dir; the assertion is exactly that.

mod common;

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::snapshot;
use goguard_fs::acl::{NameKind, parse_ops};
use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, RootDir, WalkEntry, WalkOptions, walk};
use rustix::fs::{CWD, RenameFlags, renameat_with};

fn no_names(_: NameKind, _: &str) -> Option<u32> {
    None
}

#[test]
fn swapping_a_dir_with_a_symlink_never_leaks_changes_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root_path = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    for base in [root_path.join("d"), outside.join("target")] {
        std::fs::create_dir_all(base.join("sub")).unwrap();
        std::fs::write(base.join("f1"), b"1").unwrap();
        std::fs::write(base.join("sub/f2"), b"2").unwrap();
    }
    symlink(outside.join("target"), root_path.join("s")).unwrap();
    let before = snapshot(&outside);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (d, s) = (root_path.join("d"), root_path.join("s"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                renameat_with(CWD, &d, CWD, &s, RenameFlags::EXCHANGE).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let root = RootDir::open(&root_path).unwrap();
    let acl_ops = parse_ops("u:4321:rwx,d:u:4321:rwx,m::rwx", false, &no_names).unwrap();
    let (mut done, mut refused) = (0u64, 0u64);
    let labels = [
        "system_u:object_r:cache_home_t:s0",
        "unconfined_u:object_r:user_tmp_t:s0",
    ];
    for round in 0..2000u32 {
        for rel in ["d/f1", "d/sub", "d/sub/f2", "d", "s/f1", "s/sub/f2"] {
            let mut e = match root.open_entry(rel) {
                Ok(e) => e,
                Err(err) => {
                    assert!(err.is_refusal() || err.is_not_found(), "{err}");
                    refused += 1;
                    continue;
                }
            };
            let uid = 1000 + round % 7;
            let results = [
                e.chown(Some(uid), Some(uid)).map(|_| ()),
                e.chmod(if round % 2 == 0 { 0o600 } else { 0o755 })
                    .map(|_| ()),
                e.set_label(labels[(round % 2) as usize]).map(|_| ()),
                e.apply_acl(&acl_ops).map(|_| ()),
            ];
            for r in results {
                match r {
                    Ok(()) => done += 1,
                    Err(err) => {
                        assert!(err.is_refusal(), "{err}");
                        refused += 1;
                    }
                }
            }
        }
        if round % 50 == 0 {
            walk(
                &root,
                &WalkOptions::default(),
                &mut FnVisitor(|w: &WalkEntry<'_>| {
                    if let Ok(mut e) = w.open() {
                        let _ = e.chown(Some(2000 + round), None);
                        let _ = e.chmod(0o700);
                        let _ = e.set_label(labels[0]);
                        let _ = e.apply_acl(&acl_ops);
                    }
                    Control::Continue
                }),
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "{} swaps; {done} changes made inside the root, {refused} refused",
        swaps.load(Ordering::Relaxed)
    );
    assert!(done > 0 && refused > 0, "the race was exercised both ways");
    assert_eq!(
        snapshot(&outside),
        before,
        "nothing outside the root changed"
    );
}
