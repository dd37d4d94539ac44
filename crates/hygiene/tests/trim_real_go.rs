//! GOCACHE trimming against the real Go toolchain: a cache filled by `go build`, entries aged
//! by setting mtimes, a trim by goguard, then `go build` again. Checks the age rule, that no
//! half entry is left, that `trim.txt` is written in Go's format and honored by Go, that
//! Go reuses what was kept (a second `go build -x` of a program whose entries were kept
//! runs no compile), and the size cap.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{GoEnv, write_tree};
use goguard_hygiene::gocache::{ActionRecord, unix_secs};
use goguard_hygiene::trim::{self, RemovalOutcome, TrimPolicy};

const DAY: Duration = Duration::from_secs(86_400);

/// Every `-a`/`-d` file of the cache: rel path → (size, mtime).
fn entries(gocache: &Path) -> HashMap<String, (u64, SystemTime)> {
    let mut out = HashMap::new();
    for b in 0..=255u8 {
        let dir = gocache.join(format!("{b:02x}"));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name.ends_with("-a") || name.ends_with("-d") {
                let m = e.metadata().unwrap();
                out.insert(format!("{b:02x}/{name}"), (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}

/// Rel path of the `-d` an `-a` refers to, when it parses.
fn output_of(gocache: &Path, action_rel: &str) -> Option<String> {
    let bytes = std::fs::read(gocache.join(action_rel)).ok()?;
    let rec = ActionRecord::parse(&bytes).ok()?;
    Some(format!("{}/{}-d", rec.output.subdir(), rec.output))
}

/// No kept usable `-a` without its `-d`.
fn assert_no_half_entries(gocache: &Path) {
    let all = entries(gocache);
    let mut checked = 0;
    for rel in all.keys().filter(|r| r.ends_with("-a")) {
        if let Some(out) = output_of(gocache, rel) {
            assert!(
                all.contains_key(&out),
                "{rel} kept but its output {out} is gone"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no action entries to check");
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::open(path).unwrap().set_modified(t).unwrap();
}

fn compile_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("/compile "))
        .map(str::to_string)
        .collect()
}

/// A module with local packages (Debian's Go 1.19 takes std from `$GOROOT/pkg`, not from
/// the cache, so only non-std packages exercise the cache): `cmd/p1` uses `a` and `b`,
/// `cmd/p2` uses `c`.
fn module(base: &Path) -> PathBuf {
    let dir = base.join("m");
    write_tree(
        &dir,
        &[
            ("go.mod", "module example.com/m\n\ngo 1.19\n"),
            (
                "a/a.go",
                "package a\n\nimport \"strings\"\n\nfunc A() string { return strings.Repeat(\"a\", 2) }\n",
            ),
            (
                "b/b.go",
                "package b\n\nimport (\n\t\"encoding/json\"\n\t\"example.com/m/a\"\n)\n\nfunc B() string { j, _ := json.Marshal(a.A()); return string(j) }\n",
            ),
            (
                "c/c.go",
                "package c\n\nimport \"fmt\"\n\nfunc C() string { return fmt.Sprint(\"c\", 1) }\n",
            ),
            (
                "cmd/p1/main.go",
                "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/b\"\n)\n\nfunc main() { fmt.Println(b.B()) }\n",
            ),
            (
                "cmd/p2/main.go",
                "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/c\"\n)\n\nfunc main() { fmt.Println(c.C()) }\n",
            ),
        ],
    );
    dir
}

#[test]
fn trim_by_go_rules_keeps_whole_entries_and_go_reuses_what_was_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let env = GoEnv::new(tmp.path());
    let m = module(tmp.path());
    env.go_ok(&m, &["build", "-o", "p1.bin", "./cmd/p1"]);

    // Ten days pass: every entry and Go's own trim.txt age.
    let ten_days_ago = SystemTime::now() - 10 * DAY;
    for rel in entries(&env.gocache).keys() {
        set_mtime(&env.gocache.join(rel), ten_days_ago);
    }
    // P2 builds now: Go's `used` refreshes the mtime of every entry it hits (they are older
    // than mtimeInterval). Go's own trim at the end of this build is not due (trim.txt was
    // written by the first build just now), so the old entries stay for us.
    let trim_txt_go = std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap();
    env.go_ok(&m, &["build", "-o", "p2.bin", "./cmd/p2"]);
    assert_eq!(
        std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap(),
        trim_txt_go
    );
    // Now make Go's last trim two days old, as if the host had been idle.
    let two_days_ago = unix_secs(SystemTime::now() - 2 * DAY);
    std::fs::write(env.gocache.join("trim.txt"), two_days_ago.to_string()).unwrap();

    let before = entries(&env.gocache);
    let cutoff = SystemTime::now() - 5 * DAY - Duration::from_secs(3600);
    let old: HashSet<&String> = before
        .iter()
        .filter(|(_, (_, m))| *m < cutoff)
        .map(|(k, _)| k)
        .collect();
    let fresh: HashSet<&String> = before.keys().filter(|k| !old.contains(k)).collect();
    assert!(
        !old.is_empty() && !fresh.is_empty(),
        "old {} fresh {}",
        old.len(),
        fresh.len()
    );
    // Outputs of fresh actions must survive even if they are old (whole entries).
    let protected: HashSet<String> = fresh
        .iter()
        .filter(|r| r.ends_with("-a"))
        .filter_map(|r| output_of(&env.gocache, r))
        .collect();

    // Dry run first: nothing changes.
    let dry = trim::execute(
        &env.gocache,
        &TrimPolicy {
            dry_run: true,
            ..TrimPolicy::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    assert!(dry.age_trim && dry.entries_removed > 0);
    assert_eq!(entries(&env.gocache).len(), before.len());

    let now = SystemTime::now();
    let report = trim::execute(&env.gocache, &TrimPolicy::default(), now).unwrap();
    assert!(report.age_trim, "{:?}", report.due);
    assert!(report.trim_txt_written);
    assert!(
        report
            .removals
            .iter()
            .all(|r| r.outcome == RemovalOutcome::Removed),
        "{:?}",
        report
            .removals
            .iter()
            .filter(|r| r.outcome != RemovalOutcome::Removed)
            .collect::<Vec<_>>()
    );
    let after = entries(&env.gocache);
    for k in &fresh {
        assert!(after.contains_key(*k), "fresh entry {k} was removed");
    }
    for k in &old {
        if protected.contains(*k) {
            assert!(
                after.contains_key(*k),
                "old output {k} of a fresh action was removed"
            );
        } else {
            assert!(!after.contains_key(*k), "old entry {k} was kept");
        }
    }
    assert_eq!(report.entries_removed as usize, before.len() - after.len());
    let freed: u64 = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(_, (s, _))| s)
        .sum();
    assert_eq!(report.bytes_freed, freed);
    assert_no_half_entries(&env.gocache);

    // trim.txt in Go's format: decimal Unix seconds, no newline.
    let txt = std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap();
    assert_eq!(txt, unix_secs(now).to_string());

    // Go reuses everything that was kept for P2: no compile at all.
    std::fs::remove_file(m.join("p2.bin")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.go_ok(&m, &["build", "-x", "-o", "p2.bin", "./cmd/p2"]);
    assert_eq!(
        compile_lines(&out),
        Vec::<String>::new(),
        "P2 recompiled after the trim"
    );
    // Go read our trim.txt as a recent trim and did not trim (it would rewrite the file).
    assert_eq!(
        std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap(),
        txt
    );

    // P1's own packages were trimmed: Go rebuilds them, and the build succeeds.
    std::fs::remove_file(m.join("p1.bin")).unwrap();
    let out = env.go_ok(&m, &["build", "-x", "-o", "p1.bin", "./cmd/p1"]);
    let compiles = compile_lines(&out);
    assert!(
        compiles.iter().any(|l| l.contains("-p example.com/m/a "))
            && compiles.iter().any(|l| l.contains("-p example.com/m/b ")),
        "expected P1-only packages to be recompiled: {compiles:?}"
    );
    let run = std::process::Command::new(m.join("p1.bin"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "\"aa\"\n");

    // Not due any more: a second trim lists nothing.
    let again = trim::execute(&env.gocache, &TrimPolicy::default(), SystemTime::now()).unwrap();
    assert!(!again.scanned && !again.age_trim);
}

#[test]
fn size_cap_evicts_lru_whole_entries_and_go_still_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let env = GoEnv::new(tmp.path());
    let m = module(tmp.path());
    env.go_ok(&m, &["build", "-o", "p1.bin", "./cmd/p1"]);
    env.go_ok(&m, &["build", "-o", "p2.bin", "./cmd/p2"]);
    let listed = entries(&env.gocache);
    let total: u64 = listed.values().map(|(s, _)| s).sum();
    // Spread the mtimes so LRU order is defined: entry i is i minutes older.
    let mut names: Vec<&String> = listed.keys().collect();
    names.sort();
    let now = SystemTime::now();
    for (i, rel) in names.iter().enumerate() {
        set_mtime(
            &env.gocache.join(rel),
            now - Duration::from_secs(60 * (i as u64 + 1)),
        );
    }
    let before = entries(&env.gocache);
    // What each -a names (read before the trim removes some).
    let names_d: std::collections::HashMap<String, Option<String>> = before
        .keys()
        .filter(|r| r.ends_with("-a"))
        .map(|a| {
            let rec = std::fs::read_to_string(env.gocache.join(a)).unwrap();
            let out = rec
                .split_whitespace()
                .nth(2)
                .map(|o| format!("{}/{o}-d", &o[..2]));
            (a.clone(), out)
        })
        .collect();
    let trim_txt = std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap();
    let cap = total / 2;
    // The default in-use grace (two hours) would spare everything this fresh cache holds; a
    // test cannot wait that long, so the grace is off here (its effect is unit-tested, and
    // the integration test trim_stress runs it with real builds).
    let policy = TrimPolicy {
        max_bytes: Some(cap),
        in_use_grace: Duration::ZERO,
        ..TrimPolicy::default()
    };
    let report = trim::execute(&env.gocache, &policy, SystemTime::now()).unwrap();
    assert!(!report.age_trim, "trim.txt is fresh: only the cap acts");
    assert!(!report.trim_txt_written);
    assert_eq!(
        std::fs::read_to_string(env.gocache.join("trim.txt")).unwrap(),
        trim_txt
    );
    assert!(report.cap.unwrap().met);
    let after = entries(&env.gocache);
    let kept: u64 = after.values().map(|(s, _)| s).sum();
    assert!(kept <= cap, "kept {kept} > cap {cap}");
    assert!(kept > 0 && after.len() < before.len());
    assert_eq!(report.bytes_kept(), kept);
    assert_no_half_entries(&env.gocache);
    // Whatever was evicted was used less recently than every kept entry (LRU), an entry
    // ranked by the newer of its -a's and its -d's mtimes, apart from outputs kept for a
    // kept action.
    let rank = |a: &String| {
        let d = names_d[a].as_ref().filter(|d| before.contains_key(*d));
        d.map_or(before[a].1, |d| before[a].1.max(before[d].1))
    };
    let newest_evicted = report
        .removals
        .iter()
        .filter(|r| r.path.ends_with("-a"))
        .map(|r| rank(&r.path))
        .max();
    if let Some(newest) = newest_evicted {
        for rel in after.keys().filter(|r| r.ends_with("-a")) {
            assert!(
                rank(rel) >= newest,
                "kept {rel} is older than an evicted entry"
            );
        }
    }

    for (bin, pkg, want) in [
        ("p1.bin", "./cmd/p1", "\"aa\"\n"),
        ("p2.bin", "./cmd/p2", "c1\n"),
    ] {
        std::fs::remove_file(m.join(bin)).unwrap();
        env.go_ok(&m, &["build", "-o", bin, pkg]);
        let run = std::process::Command::new(m.join(bin)).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), want);
    }
}
