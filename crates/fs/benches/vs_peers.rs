//! goguard-fs against its peers on one Go-shaped tree, in the same run: `setfiles -n -F` vs
//! a check-only label scan, `setfiles -F` vs a relabel, `setfacl -R -m` vs an ACL apply, and
//! `chown -R` vs a chown walk. Resets (wrong labels, `setfacl -R -b`, `chown -R`) happen
//! outside the timings. Prints medians of N runs and ratios.
//!
//! Usage: `cargo bench -p goguard-fs --bench vs_peers -- [--files N] [--dir D] [--runs R]
//! [--threads T]` (D defaults to /dev/shm/goguard-bench; the tree is made with
//! tests/data/gen_go_caches.py and removed at the end unless --keep).
//! Must only touch D.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use goguard_fs::acl::{AclOp, NameKind, parse_ops};
use goguard_fs::walk::FnVisitor;
use goguard_fs::{Control, FileContexts, RootDir, WalkEntry, WalkOptions, relabel_decision, walk};

const WRONG: &str = "unconfined_u:object_r:user_tmp_t:s0";
const ACL_SPEC: &str = "g:4242:rwX";
const CHOWN_TO: u32 = 4321;

struct Args {
    files: usize,
    dir: PathBuf,
    runs: usize,
    keep: bool,
    /// Run only this goguard pass in a loop (for profiling), no peers.
    only: Option<String>,
    /// Reuse an existing tree in --dir.
    reuse: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        files: 200_000,
        dir: "/dev/shm/goguard-bench".into(),
        runs: 3,
        keep: false,
        only: None,
        reuse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--files" => a.files = it.next().unwrap().parse().unwrap(),
            "--dir" => a.dir = it.next().unwrap().into(),
            "--runs" => a.runs = it.next().unwrap().parse().unwrap(),
            "--keep" => a.keep = true,
            "--reuse" => a.reuse = true,
            "--only" => a.only = it.next(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time_cmd(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    sh(cmd);
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Walks `home`, looking up each entry's expected label under the key "/home/REL" and
/// comparing it with its label; with `relabel`, sets the decided label. Returns
/// (entries, mismatches, changed).
fn label_pass(fc: &FileContexts, home: &Path, relabel: bool) -> (u64, u64, u64) {
    let root = RootDir::open(home).unwrap();
    let (mut n, mut bad, mut changed) = (0u64, 0u64, 0u64);
    let mut key: Vec<u8> = Vec::with_capacity(512);
    let mut cur: Vec<u8> = Vec::with_capacity(256);
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if e.meta.is_symlink() {
                return Control::Continue;
            }
            n += 1;
            key.clear();
            key.extend_from_slice(b"/home");
            if !e.rel.as_os_str().is_empty() {
                key.push(b'/');
                key.extend_from_slice(e.rel.as_os_str().as_encoded_bytes());
            }
            key.push(0);
            let c = CStr::from_bytes_with_nul(&key).unwrap();
            let Ok(Some(expected)) = fc.lookup_cstr(c, e.meta.st_mode()) else {
                return Control::Continue;
            };
            let has = e.read_label(&mut cur).unwrap();
            if has && cur == expected.as_bytes() {
                return Control::Continue;
            }
            bad += 1;
            if relabel {
                let current = has.then(|| String::from_utf8_lossy(&cur).into_owned());
                if let Some(new) = relabel_decision(current.as_deref(), &expected, true, &[]) {
                    let mut ent = e.open().unwrap();
                    changed += u64::from(ent.set_label(&new).unwrap().changed());
                }
            }
            Control::Continue
        }),
    );
    (n, bad, changed)
}

fn set_all_labels(home: &Path, ctx: &str) {
    let root = RootDir::open(home).unwrap();
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                e.open().unwrap().set_label(ctx).unwrap();
            }
            Control::Continue
        }),
    );
}

fn acl_pass(home: &Path, ops: &[AclOp]) -> u64 {
    let root = RootDir::open(home).unwrap();
    let mut changed = 0;
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                changed += u64::from(e.open().unwrap().apply_acl(ops).unwrap().changed());
            }
            Control::Continue
        }),
    );
    changed
}

fn chown_pass(home: &Path, uid: u32) -> u64 {
    let root = RootDir::open(home).unwrap();
    let mut changed = 0;
    walk(
        &root,
        &WalkOptions::default(),
        &mut FnVisitor(|e: &WalkEntry<'_>| {
            if e.meta.uid != uid || e.meta.gid != uid {
                changed += u64::from(
                    e.open()
                        .unwrap()
                        .chown(Some(uid), Some(uid))
                        .unwrap()
                        .changed(),
                );
            }
            Control::Continue
        }),
    );
    changed
}

fn main() {
    let args = parse_args();
    let fc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/file_contexts.test");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gen_go_caches.py");
    let tree = args.dir.join("tree");
    let home = tree.join("home");
    if !(args.reuse && home.is_dir()) {
        let _ = std::fs::remove_dir_all(&args.dir);
        std::fs::create_dir_all(&args.dir).unwrap();
        eprintln!("generating {} files in {} ...", args.files, tree.display());
        sh(Command::new("python3")
            .arg(&generator)
            .arg(&tree)
            .args(["--files", &args.files.to_string()]));
    }
    let fc = FileContexts::open(&fc_path).unwrap();
    if let Some(only) = &args.only {
        let ops = parse_ops(ACL_SPEC, false, &|_: NameKind, _: &str| None).unwrap();
        for _ in 0..args.runs {
            let t = Instant::now();
            match only.as_str() {
                "walk" => {
                    let root = RootDir::open(&home).unwrap();
                    let st = walk(
                        &root,
                        &WalkOptions::default(),
                        &mut FnVisitor(|_: &WalkEntry<'_>| Control::Continue),
                    );
                    eprintln!("{st:?}");
                }
                "scan" => drop(label_pass(&fc, &home, false)),
                "relabel" => {
                    set_all_labels(&home, WRONG);
                    let t2 = Instant::now();
                    label_pass(&fc, &home, true);
                    eprintln!("relabel only: {:?}", t2.elapsed());
                }
                "acl" => {
                    sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
                    let t2 = Instant::now();
                    acl_pass(&home, &ops);
                    eprintln!("acl only: {:?}", t2.elapsed());
                }
                "chown" => drop(chown_pass(
                    &home,
                    CHOWN_TO + (t.elapsed().as_nanos() % 7) as u32,
                )),
                other => panic!("unknown pass {other}"),
            }
            eprintln!("{only}: {:?}", t.elapsed());
        }
        return;
    }
    let (entries, _, _) = label_pass(&fc, &home, false);
    eprintln!("{entries} entries under {}", home.display());
    let ops = parse_ops(ACL_SPEC, false, &|_: NameKind, _: &str| None).unwrap();

    let mut rows: Vec<(&str, &str, Duration, Duration)> = Vec::new();
    let (mut peer, mut ours) = (Vec::new(), Vec::new());

    // 1. check-only scan (labels all wrong, so both report every entry).
    set_all_labels(&home, WRONG);
    for _ in 0..args.runs {
        peer.push(time_cmd(
            Command::new("setfiles")
                .arg("-n")
                .arg("-r")
                .arg(&tree)
                .arg("-F")
                .arg(&fc_path)
                .arg(&home),
        ));
        let t = Instant::now();
        let (_, bad, _) = label_pass(&fc, &home, false);
        ours.push(t.elapsed());
        assert!(bad > 0);
    }
    rows.push((
        "setfiles -n -F",
        "check-only scan",
        median(std::mem::take(&mut peer)),
        median(std::mem::take(&mut ours)),
    ));

    // 2. relabel from wrong labels.
    for _ in 0..args.runs {
        set_all_labels(&home, WRONG);
        peer.push(time_cmd(
            Command::new("setfiles")
                .arg("-r")
                .arg(&tree)
                .arg("-F")
                .arg(&fc_path)
                .arg(&home),
        ));
        set_all_labels(&home, WRONG);
        let t = Instant::now();
        let (_, _, changed) = label_pass(&fc, &home, true);
        ours.push(t.elapsed());
        assert!(changed > 0);
    }
    rows.push((
        "setfiles -F",
        "relabel",
        median(std::mem::take(&mut peer)),
        median(std::mem::take(&mut ours)),
    ));

    // 3. ACL apply from no ACLs.
    for _ in 0..args.runs {
        sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
        peer.push(time_cmd(
            Command::new("setfacl")
                .args(["-R", "-m", ACL_SPEC])
                .arg(&home),
        ));
        sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
        let t = Instant::now();
        let changed = acl_pass(&home, &ops);
        ours.push(t.elapsed());
        assert!(changed > 0);
    }
    rows.push((
        "setfacl -R -m",
        "ACL apply",
        median(std::mem::take(&mut peer)),
        median(std::mem::take(&mut ours)),
    ));

    // 4. chown of every entry.
    for _ in 0..args.runs {
        sh(Command::new("chown").args(["-R", "-h", "0:0"]).arg(&home));
        peer.push(time_cmd(
            Command::new("chown")
                .args(["-R", "-h", &format!("{CHOWN_TO}:{CHOWN_TO}")])
                .arg(&home),
        ));
        sh(Command::new("chown").args(["-R", "-h", "0:0"]).arg(&home));
        let t = Instant::now();
        let changed = chown_pass(&home, CHOWN_TO);
        ours.push(t.elapsed());
        assert!(changed > 0);
    }
    rows.push((
        "chown -R",
        "chown",
        median(std::mem::take(&mut peer)),
        median(std::mem::take(&mut ours)),
    ));

    println!(
        "\n{entries} entries on tmpfs, median of {} runs\n",
        args.runs
    );
    println!("| peer | peer s | goguard-fs | goguard s | speed-up (peer/goguard) |");
    println!("|---|---:|---|---:|---:|");
    for (p, o, tp, to) in &rows {
        println!(
            "| `{p}` | {:.3} | {o} | {:.3} | {:.2}x |",
            tp.as_secs_f64(),
            to.as_secs_f64(),
            tp.as_secs_f64() / to.as_secs_f64()
        );
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
}
