//! Benchmark: watch 100,000 directories shaped like Go caches (a `GOCACHE` with its 256
//! two-hex-digit directories, and a `GOMODCACHE` with `cache/download` and extracted module
//! trees), and print the time to add every watch, the process RSS before and after, the
//! watch count, the map estimate and the kernel slab growth.
//!
//! Run: `cargo bench -p goguard-watch` (as root, to raise `fs.inotify.max_user_watches` if it
//! is too low; it is restored on exit). Works in a temporary directory on /dev/shm (or the
//! default temp dir) and removes it; touches nothing else.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use goguard_watch::{Notice, WatchConfig, Watcher};

const DIRS: usize = 100_000;
const USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

fn status_kib(key: &str) -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    field_kib(&s, key)
}

fn meminfo_kib(key: &str) -> u64 {
    let s = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    field_kib(&s, key)
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Active objects and object size of the `inotify_inode_mark` slab, if readable.
fn mark_slab() -> Option<(u64, u64)> {
    let s = fs::read_to_string("/proc/slabinfo").ok()?;
    let l = s.lines().find(|l| l.starts_with("inotify_inode_mark "))?;
    let f: Vec<u64> = l
        .split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((f[0], f[2]))
}

fn mib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Creates `DIRS` directories under `base` (the two roots included), Go-cache shaped.
fn make_tree(base: &Path) -> (PathBuf, PathBuf) {
    let gocache = base.join("go-build");
    let modcache = base.join("pkg/mod");
    let made = std::cell::Cell::new(0usize);
    let mkdir = |p: &Path| {
        if made.get() < DIRS {
            fs::create_dir_all(p).expect("mkdir");
            made.set(made.get() + 1);
        }
    };
    mkdir(&gocache);
    for i in 0..256 {
        mkdir(&gocache.join(format!("{i:02x}")));
    }
    mkdir(&modcache);
    let download = modcache.join("cache/download/github.com");
    mkdir(&modcache.join("cache"));
    mkdir(&modcache.join("cache/download"));
    mkdir(&download);
    let github = modcache.join("github.com");
    mkdir(&github);
    'outer: for org in 0.. {
        mkdir(&download.join(format!("org{org}")));
        mkdir(&github.join(format!("org{org}")));
        for repo in 0..10 {
            mkdir(&download.join(format!("org{org}/repo{repo}")));
            mkdir(&download.join(format!("org{org}/repo{repo}/@v")));
            let m = github.join(format!("org{org}/repo{repo}@v1.{repo}.{org}"));
            mkdir(&m);
            for pkg in ["cmd", "internal", "pkg", "api", "testdata"] {
                mkdir(&m.join(pkg));
                for a in 0..4 {
                    mkdir(&m.join(format!("{pkg}/a{a}")));
                    for b in 0..4 {
                        mkdir(&m.join(format!("{pkg}/a{a}/b{b}")));
                    }
                }
                if made.get() >= DIRS {
                    break 'outer;
                }
            }
        }
    }
    (gocache, modcache)
}

fn main() {
    let old_limit = fs::read_to_string(USER_WATCHES).unwrap_or_default();
    let limit: usize = old_limit.trim().parse().unwrap_or(0);
    let raised = limit < DIRS + 50_000 && fs::write(USER_WATCHES, "262144").is_ok();
    if raised {
        println!("max_user_watches raised from {} to 262144", limit);
    } else {
        println!("max_user_watches: {limit}");
    }

    let base = tempfile::Builder::new()
        .prefix("goguard-watch-bench")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let t = Instant::now();
    let (gocache, modcache) = make_tree(base.path());
    println!(
        "created {DIRS} directories in {} in {:.2?}",
        base.path().display(),
        t.elapsed()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let rss0 = status_kib("VmRSS") as i64;
        let slab0 = meminfo_kib("Slab") as i64;
        let marks0 = mark_slab();

        let mut w = Watcher::new(WatchConfig {
            max_watches: 150_000,
            ..WatchConfig::default()
        })
        .expect("watcher");
        let t = Instant::now();
        let a = w.add_root(1, &gocache).expect("gocache");
        let b = w.add_root(2, &modcache).expect("modcache");
        let add = t.elapsed();
        let stats = w.stats();
        let rss1 = status_kib("VmRSS") as i64;
        let slab1 = meminfo_kib("Slab") as i64;
        let marks1 = mark_slab();

        println!(
            "add_root: {} + {} dirs in {add:.2?} ({:.2} µs per watch), limit hit: {}",
            a.dirs_watched,
            b.dirs_watched,
            add.as_secs_f64() * 1e6 / stats.watches as f64,
            a.limit_hit || b.limit_hit
        );
        println!("watches: {}", stats.watches);
        println!(
            "RSS: {} before, {} after: +{} ({} bytes per watch)",
            mib(rss0),
            mib(rss1),
            mib(rss1 - rss0),
            (rss1 - rss0) * 1024 / stats.watches as i64
        );
        println!(
            "map estimate: {} ({} bytes per watch)",
            mib(stats.map_bytes_estimate as i64 / 1024),
            stats.map_bytes_estimate / stats.watches
        );
        println!("kernel Slab: +{}", mib(slab1 - slab0));
        if let (Some((n0, size)), Some((n1, _))) = (marks0, marks1) {
            println!(
                "inotify_inode_mark: +{} objects x {size} B = {}",
                n1 as i64 - n0 as i64,
                mib((n1 as i64 - n0 as i64) * size as i64 / 1024)
            );
        }

        // A burst: 1,000 new directories with one file each, as `go build` fills a cache.
        let t = Instant::now();
        for i in 0..1000 {
            let d = gocache.join(format!("00/burst{i}"));
            fs::create_dir(&d).expect("mkdir");
            fs::write(d.join("f"), b"x").expect("write");
        }
        let mut files = std::collections::HashSet::new();
        let mut notices = 0;
        while files.len() < 1000 {
            match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
                Ok(Ok(n)) => {
                    notices += 1;
                    if let Notice::Changed { rel_path, .. } = &n
                        && rel_path.ends_with("f")
                        && rel_path.starts_with("00")
                    {
                        files.insert(rel_path.clone());
                    }
                    if n == Notice::Overflow {
                        println!("burst: overflow");
                        break;
                    }
                }
                _ => break,
            }
        }
        println!(
            "burst: 1,000 dirs + 1,000 files seen in {:.2?} ({notices} notices, files seen {})",
            t.elapsed(),
            files.len()
        );

        let t = Instant::now();
        w.remove_root(1);
        w.remove_root(2);
        println!(
            "remove_root both: {:.2?}, watches left {}, RSS {}",
            t.elapsed(),
            w.stats().watches,
            mib(status_kib("VmRSS") as i64)
        );
    });
    if raised {
        let _ = fs::write(USER_WATCHES, old_limit.trim());
    }
}
