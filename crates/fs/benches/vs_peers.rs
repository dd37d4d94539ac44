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
use goguard_fs::{
    Control, FileContexts, RootDir, Visitor, WalkEntry, WalkOptions, relabel_decision, walk,
    walk_parallel,
};

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
    /// Threads for the parallel goguard passes (default: the machine's cores).
    threads: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        files: 200_000,
        dir: "/dev/shm/goguard-bench".into(),
        runs: 3,
        keep: false,
        only: None,
        reuse: false,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
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
            "--threads" => a.threads = it.next().unwrap().parse().unwrap(),
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

/// A visitor with three counters, made per thread for [`walk_parallel`].
struct Counting<F>(F, [u64; 3]);

impl<F: FnMut(&WalkEntry<'_>) -> [u64; 3]> Visitor for Counting<F> {
    fn entry(&mut self, e: &WalkEntry<'_>) -> Control {
        let c = (self.0)(e);
        for (total, n) in self.1.iter_mut().zip(c) {
            *total += n;
        }
        Control::Continue
    }
}

/// Walks `home` with `threads` threads, each with a visitor from `make`; sums the counters.
fn pass<F>(home: &Path, threads: usize, make: impl Fn() -> F + Sync) -> [u64; 3]
where
    F: FnMut(&WalkEntry<'_>) -> [u64; 3] + Send,
{
    let root = RootDir::open(home).unwrap();
    let (visitors, _) = walk_parallel(&root, &WalkOptions::default(), threads, || {
        Counting(make(), [0; 3])
    });
    let mut sum = [0u64; 3];
    for v in visitors {
        for (s, n) in sum.iter_mut().zip(v.1) {
            *s += n;
        }
    }
    sum
}

/// Walks `home`, looking up each entry's expected label under the key "/home/REL" and
/// comparing it with its label; with `relabel`, sets the decided label. Returns
/// (entries, mismatches, changed). Each thread opens its own file_contexts handle.
fn label_pass(fc_path: &Path, home: &Path, relabel: bool, threads: usize) -> (u64, u64, u64) {
    let [n, bad, changed] = pass(home, threads, || {
        let fc = FileContexts::open(fc_path).unwrap();
        let mut key: Vec<u8> = Vec::with_capacity(512);
        let mut cur: Vec<u8> = Vec::with_capacity(256);
        move |e: &WalkEntry<'_>| {
            if e.meta.is_symlink() {
                return [0; 3];
            }
            key.clear();
            key.extend_from_slice(b"/home");
            if !e.rel.as_os_str().is_empty() {
                key.push(b'/');
                key.extend_from_slice(e.rel.as_os_str().as_encoded_bytes());
            }
            key.push(0);
            let c = CStr::from_bytes_with_nul(&key).unwrap();
            let Ok(Some(expected)) = fc.lookup_cstr(c, e.meta.st_mode()) else {
                return [1, 0, 0];
            };
            let has = e.read_label(&mut cur).unwrap();
            if has && cur == expected.as_bytes() {
                return [1, 0, 0];
            }
            let mut changed = 0;
            if relabel {
                let current = has.then(|| String::from_utf8_lossy(&cur).into_owned());
                if let Some(new) = relabel_decision(current.as_deref(), &expected, true, &[]) {
                    let mut ent = e.open().unwrap();
                    changed = u64::from(ent.set_label(&new).unwrap().changed());
                }
            }
            [1, 1, changed]
        }
    });
    (n, bad, changed)
}

fn set_all_labels(home: &Path, ctx: &str) {
    pass(home, 2, || {
        |e: &WalkEntry<'_>| {
            if !e.meta.is_symlink() {
                e.open().unwrap().set_label(ctx).unwrap();
            }
            [0; 3]
        }
    });
}

fn acl_pass(home: &Path, ops: &[AclOp], threads: usize) -> u64 {
    pass(home, threads, || {
        |e: &WalkEntry<'_>| {
            let mut c = [0; 3];
            if !e.meta.is_symlink() {
                c[0] = u64::from(e.open().unwrap().apply_acl(ops).unwrap().changed());
            }
            c
        }
    })[0]
}

fn chown_pass(home: &Path, uid: u32, threads: usize) -> u64 {
    pass(home, threads, || {
        |e: &WalkEntry<'_>| {
            let mut c = [0; 3];
            if e.meta.uid != uid || e.meta.gid != uid {
                let mut ent = e.open().unwrap();
                c[0] = u64::from(ent.chown(Some(uid), Some(uid)).unwrap().changed());
            }
            c
        }
    })[0]
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
    let threads = args.threads;
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
                "scan" => drop(label_pass(&fc_path, &home, false, threads)),
                "relabel" => {
                    set_all_labels(&home, WRONG);
                    let t2 = Instant::now();
                    label_pass(&fc_path, &home, true, threads);
                    eprintln!("relabel only: {:?}", t2.elapsed());
                }
                "acl" => {
                    sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
                    let t2 = Instant::now();
                    acl_pass(&home, &ops, threads);
                    eprintln!("acl only: {:?}", t2.elapsed());
                }
                "chown" => drop(chown_pass(
                    &home,
                    CHOWN_TO + (t.elapsed().as_nanos() % 7) as u32,
                    threads,
                )),
                other => panic!("unknown pass {other}"),
            }
            eprintln!("{only}: {:?}", t.elapsed());
        }
        return;
    }
    let (entries, _, _) = label_pass(&fc_path, &home, false, 1);
    eprintln!("{entries} entries under {}", home.display());
    let ops = parse_ops(ACL_SPEC, false, &|_: NameKind, _: &str| None).unwrap();

    // (peer, goguard pass, peer median, peer with `-T threads` when it has threads,
    // goguard 1 thread, goguard `threads` threads)
    type Row<'a> = (
        &'a str,
        &'a str,
        Duration,
        Option<Duration>,
        Duration,
        Duration,
    );
    let mut rows: Vec<Row> = Vec::new();
    let nthreads = threads.to_string();
    let timed = |f: &mut dyn FnMut() -> u64| {
        let t = Instant::now();
        let n = f();
        (t.elapsed(), n)
    };

    // 1. check-only scan (labels all wrong, so both report every entry).
    set_all_labels(&home, WRONG);
    let (mut peer, mut one, mut par) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_par = Vec::new();
    for _ in 0..args.runs {
        for (t, out) in [("1", &mut peer), (nthreads.as_str(), &mut peer_par)] {
            out.push(time_cmd(
                Command::new("setfiles")
                    .args(["-T", t, "-n", "-r"])
                    .arg(&tree)
                    .arg("-F")
                    .arg(&fc_path)
                    .arg(&home),
            ));
        }
        for (n, out) in [(1, &mut one), (threads, &mut par)] {
            let (d, bad) = timed(&mut || label_pass(&fc_path, &home, false, n).1);
            assert!(bad > 0);
            out.push(d);
        }
    }
    rows.push((
        "setfiles -n -F",
        "check-only scan",
        median(peer),
        Some(median(peer_par)),
        median(one),
        median(par),
    ));

    // 2. relabel from wrong labels.
    let (mut peer, mut one, mut par) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_par = Vec::new();
    for _ in 0..args.runs {
        for (t, out) in [("1", &mut peer), (nthreads.as_str(), &mut peer_par)] {
            set_all_labels(&home, WRONG);
            out.push(time_cmd(
                Command::new("setfiles")
                    .args(["-T", t, "-r"])
                    .arg(&tree)
                    .arg("-F")
                    .arg(&fc_path)
                    .arg(&home),
            ));
        }
        for (n, out) in [(1, &mut one), (threads, &mut par)] {
            set_all_labels(&home, WRONG);
            let (d, changed) = timed(&mut || label_pass(&fc_path, &home, true, n).2);
            assert!(changed > 0);
            out.push(d);
        }
    }
    rows.push((
        "setfiles -F",
        "relabel",
        median(peer),
        Some(median(peer_par)),
        median(one),
        median(par),
    ));

    // 3. ACL apply from no ACLs.
    let (mut peer, mut one, mut par) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
        peer.push(time_cmd(
            Command::new("setfacl")
                .args(["-R", "-m", ACL_SPEC])
                .arg(&home),
        ));
        for (n, out) in [(1, &mut one), (threads, &mut par)] {
            sh(Command::new("setfacl").args(["-R", "-b"]).arg(&home));
            let (d, changed) = timed(&mut || acl_pass(&home, &ops, n));
            assert!(changed > 0);
            out.push(d);
        }
    }
    rows.push((
        "setfacl -R -m",
        "ACL apply",
        median(peer),
        None,
        median(one),
        median(par),
    ));

    // 4. chown of every entry.
    let (mut peer, mut one, mut par) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        sh(Command::new("chown").args(["-R", "-h", "0:0"]).arg(&home));
        peer.push(time_cmd(
            Command::new("chown")
                .args(["-R", "-h", &format!("{CHOWN_TO}:{CHOWN_TO}")])
                .arg(&home),
        ));
        for (n, out) in [(1, &mut one), (threads, &mut par)] {
            sh(Command::new("chown").args(["-R", "-h", "0:0"]).arg(&home));
            let (d, changed) = timed(&mut || chown_pass(&home, CHOWN_TO, n));
            assert!(changed > 0);
            out.push(d);
        }
    }
    rows.push((
        "chown -R",
        "chown",
        median(peer),
        None,
        median(one),
        median(par),
    ));

    println!(
        "\n{entries} entries on tmpfs, median of {} runs; 1 thread each, then {threads} threads \
         each (setfiles -T {threads}; setfacl and chown have no threads: their 1-thread time)\n",
        args.runs
    );
    println!(
        "| peer | peer 1 thread s | goguard-fs | goguard 1 thread s | speed-up | \
         peer {threads} threads s | goguard {threads} threads s | speed-up |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for (p, o, tp, tpn, t1, tn) in &rows {
        let (tp, t1, tn) = (tp.as_secs_f64(), t1.as_secs_f64(), tn.as_secs_f64());
        let tpn = tpn.map_or(tp, |d| d.as_secs_f64());
        println!(
            "| `{p}` | {tp:.3} | {o} | {t1:.3} | {:.2}x | {tpn:.3} | {tn:.3} | {:.2}x |",
            tp / t1,
            tpn / tn
        );
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
}
