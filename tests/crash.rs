//! goguardd killed at random instants while it changes files (issue 17): after every round,
//! every file whose owner or mode goguardd changed has exactly one journal row for that
//! change, and no row claims a change that did not happen. Rounds: `kill -9` during the
//! first scan of a root, during a self-healing burst and during a requested repair; SIGTERM
//! during the first scan (exit 0 within 1 s). After a `kill -9` the daemon is started once
//! more with self-healing off, so what it settles from the files (the intents the killed
//! process left) is all that changes in the journal, and the files stay as the kill left
//! them.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

/// The uid and gid the "wrong owner" files get (goguardd gives them back to root).
const WRONG: u32 = 1;

/// A small xorshift generator: the instants are random, the seed is printed.
struct Instants(u64);

impl Instants {
    fn new() -> Instants {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("crash rounds: seed {seed}");
        Instants(seed)
    }

    fn below(&mut self, max_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % max_ms)
    }
}

/// One journal row, as the test reads it.
#[derive(Debug)]
struct Row {
    path: String,
    kind: String,
    before: String,
    cause: String,
}

/// The journal rows and the number of unsettled intents, read with Python's sqlite3 (the
/// daemon is stopped).
fn read_db(db: &Path) -> (Vec<Row>, usize) {
    let out = Command::new(require_tool("python3", "python3"))
        .args([
            "-c",
            "import sqlite3,sys\n\
             c=sqlite3.connect(sys.argv[1])\n\
             print(c.execute('select count(*) from journal_intents').fetchone()[0])\n\
             for r in c.execute('select path, kind, before, cause from journal'): print('\\t'.join(r))",
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "reading the store: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let intents = lines.next().unwrap().parse().unwrap();
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "row {l:?}");
            Row {
                path: f[0].into(),
                kind: f[1].into(),
                before: f[2].into(),
                cause: f[3].into(),
            }
        })
        .collect();
    (rows, intents)
}

/// Creates `dirs × per_dir` files of mode 0666 owned by `WRONG` beneath `root`.
fn polluted_tree(root: &Path, dirs: usize, per_dir: usize) -> Vec<PathBuf> {
    let mut files = Vec::with_capacity(dirs * per_dir);
    for d in 0..dirs {
        let dir = root.join(format!("{d:02x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            let p = dir.join(format!("{f:04x}-d"));
            pollute(&p);
            files.push(p);
        }
    }
    files
}

/// A file as `sudo go build` might leave one: world-writable, another user's.
fn pollute(p: &Path) {
    std::fs::write(p, b"x").unwrap();
    std::fs::set_permissions(p, PermissionsExt::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(p, Some(WRONG), Some(WRONG)).unwrap();
}

/// The config of a round: `root` owned by root, world-writable files healed too; `heal`
/// is the root's owner heal action, `auto` the daemon's self-healing switch.
fn round_config(sb: &Sandbox, root: &Path, owner_heal: &str, auto: bool) {
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[heal]\nauto = {auto}\n[scan]\ninterval_secs = 0\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\ngroup = \"root\"\n\
         heal = {{ owner = \"{owner_heal}\", world_writable = \"auto\" }}",
        root.display()
    ));
}

/// After a round: starts goguardd once more with self-healing off (it settles what the
/// stopped one left), stops it, and checks the journal against the files of `root`.
/// Returns (files changed, rows settled at the restart).
fn settle_and_check(sb: &Sandbox, root: &Path, files: &[PathBuf], label: &str) -> (usize, usize) {
    round_config(sb, root, "auto", false);
    let mut daemon = sb.start();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{label}: {}", daemon.log_text());
    check_journal(sb, root, files, label)
}

/// Every owner or mode change goguardd made to `files` has exactly one row; nothing else
/// has one; no intent is left unsettled.
fn check_journal(sb: &Sandbox, root: &Path, files: &[PathBuf], label: &str) -> (usize, usize) {
    let (rows, intents) = read_db(&sb.state_dir().join("goguard.db"));
    assert_eq!(intents, 0, "{label}: intents left unsettled");
    let prefix = format!("{}/", root.display());
    let mut by_path: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.path.starts_with(&prefix)) {
        by_path.entry(r.path.as_str()).or_default().push(r);
    }
    let mut changed = 0;
    for f in files {
        let meta = std::fs::metadata(f).unwrap();
        let key = f.display().to_string();
        let rows = by_path.remove(key.as_str()).unwrap_or_default();
        let count = |kind: &str| rows.iter().filter(|r| r.kind == kind).count();
        let owner_changed = meta.uid() != WRONG;
        let mode_changed = meta.mode() & 0o002 == 0;
        assert!(
            meta.uid() == 0 || meta.uid() == WRONG,
            "{key}: uid {}",
            meta.uid()
        );
        assert_eq!(
            count("chown"),
            usize::from(owner_changed),
            "{label}: {key} (uid {}) has {} chown rows: {rows:?}",
            meta.uid(),
            count("chown")
        );
        assert_eq!(
            count("chmod"),
            usize::from(mode_changed),
            "{label}: {key} (mode {:o}) has {} chmod rows: {rows:?}",
            meta.mode(),
            count("chmod")
        );
        for r in &rows {
            match r.kind.as_str() {
                "chown" => assert_eq!(r.before, format!("{WRONG}:{WRONG}"), "{label}: {r:?}"),
                "chmod" => assert_eq!(r.before, "0666", "{label}: {r:?}"),
                other => panic!("{label}: unexpected row kind {other}: {r:?}"),
            }
        }
        changed += usize::from(owner_changed || mode_changed);
    }
    assert!(
        by_path.is_empty(),
        "{label}: rows for paths that are not test files: {:?}",
        by_path.keys().take(3).collect::<Vec<_>>()
    );
    let settled = rows
        .iter()
        .filter(|r| r.path.starts_with(&prefix) && r.cause.contains("recorded at the next start"))
        .count();
    (changed, settled)
}

/// A new root `name` of 5,000 drifted files and a goguardd started on it, a random instant
/// (under 1.5 s) after its socket appeared: its first scan is under way or done.
fn first_scan_under_way(
    sb: &Sandbox,
    rng: &mut Instants,
    name: &str,
) -> (PathBuf, Vec<PathBuf>, Daemon, Duration) {
    let root = sb.path().join(name);
    let files = polluted_tree(&root, 20, 250);
    round_config(sb, &root, "auto", true);
    let daemon = sb.spawn(&[]);
    // The first scan runs after the socket is bound.
    daemon.wait_socket_bound(&sb.socket());
    let after = rng.below(1500);
    std::thread::sleep(after);
    (root, files, daemon, after)
}

#[test]
fn kill_9_during_first_scans_never_leaves_a_change_unjournaled() {
    assert_root("chowns files to another user and back");
    let sb = Sandbox::new();
    let mut rng = Instants::new();
    let (mut total_changed, mut total_settled) = (0, 0);
    for round in 0..6 {
        let (root, files, mut daemon, after) =
            first_scan_under_way(&sb, &mut rng, &format!("first-scan-{round}"));
        daemon.signal(Signal::SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
        let label = format!("first scan, round {round}, kill -9 {after:?} after the socket");
        let (changed, settled) = settle_and_check(&sb, &root, &files, &label);
        eprintln!(
            "{label}: {changed} of {} files changed, {settled} rows settled at restart",
            files.len()
        );
        total_changed += changed;
        total_settled += settled;
    }
    // The rounds must have hit goguardd while it was changing files, not only before or
    // after: some changes happened, and not every file was done in every round.
    assert!(total_changed > 0, "no round changed anything");
    assert!(
        total_changed < 6 * 5000,
        "every round finished before its kill"
    );
    eprintln!(
        "first scans: {total_changed} files changed in 6 rounds, {total_settled} rows settled from intents"
    );
}

#[test]
fn kill_9_during_self_healing_bursts_and_requested_repairs_never_leaves_a_change_unjournaled() {
    assert_root("chowns files to another user and back");
    let sb = Sandbox::new();
    let mut rng = Instants::new();
    let mut changed_total = 0;
    for round in 0..4 {
        // Self-healing: a burst written into a root goguardd watches.
        let root = sb.path().join(format!("burst-{round}"));
        std::fs::create_dir_all(&root).unwrap();
        round_config(&sb, &root, "auto", true);
        let mut daemon = sb.start();
        let writer_root = root.clone();
        let writer = std::thread::spawn(move || {
            let mut files = Vec::new();
            for d in 0..10 {
                let dir = writer_root.join(format!("{d:02x}"));
                std::fs::create_dir_all(&dir).unwrap();
                for f in 0..200 {
                    let p = dir.join(format!("{f:04x}-d"));
                    pollute(&p);
                    files.push(p);
                }
            }
            files
        });
        let after = rng.below(600);
        std::thread::sleep(after);
        daemon.signal(Signal::SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
        let files = writer.join().unwrap();
        let label = format!("self-healing burst, round {round}, kill -9 {after:?} into it");
        let (changed, settled) = settle_and_check(&sb, &root, &files, &label);
        eprintln!(
            "{label}: {changed} of {} files changed, {settled} rows settled at restart",
            files.len()
        );
        changed_total += changed;

        // A requested repair of a root whose owner drift is only alerted on.
        let root = sb.path().join(format!("repair-{round}"));
        let files = polluted_tree(&root, 20, 250);
        round_config(&sb, &root, "alert", false);
        let mut daemon = sb.start();
        let socket = sb.socket();
        let target = root.display().to_string();
        let repair = std::thread::spawn(move || {
            ctl(
                &socket,
                &[
                    "repair",
                    &target,
                    "--kind",
                    "foreign_owner",
                    "--kind",
                    "world_writable",
                ],
            )
        });
        let after = rng.below(1500);
        std::thread::sleep(after);
        daemon.signal(Signal::SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
        let _ = repair.join();
        let label = format!("requested repair, round {round}, kill -9 {after:?} into it");
        let (changed, settled) = settle_and_check(&sb, &root, &files, &label);
        eprintln!(
            "{label}: {changed} of {} files changed, {settled} rows settled at restart",
            files.len()
        );
        changed_total += changed;
    }
    assert!(changed_total > 0, "no round changed anything");
}

#[test]
fn sigterm_during_first_scans_exits_0_within_a_second_and_journals_every_change() {
    assert_root("chowns files to another user and back");
    let sb = Sandbox::new();
    let mut rng = Instants::new();
    for round in 0..3 {
        let (root, files, mut daemon, after) =
            first_scan_under_way(&sb, &mut rng, &format!("term-{round}"));
        daemon.signal(Signal::SIGTERM);
        let t = Instant::now();
        let status = daemon.wait_exit(Duration::from_secs(10));
        let took = t.elapsed();
        assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
        assert!(
            took < Duration::from_secs(1),
            "round {round}: stopping took {took:?}"
        );
        // A clean stop settles everything itself: checked before any restart.
        let label = format!("SIGTERM round {round}, {after:?} after the socket");
        let (changed, settled) = check_journal(&sb, &root, &files, &label);
        assert_eq!(settled, 0, "{label}: a clean stop left intents to settle");
        eprintln!(
            "{label}: exit 0 in {took:?}, {changed} of {} files changed",
            files.len()
        );
    }
}

#[test]
fn intents_left_by_a_crash_are_settled_from_the_files_at_the_next_start() {
    assert_root("chowns files to another user and back");
    let sb = Sandbox::new();
    let root = sb.path().join("cache");
    let files = polluted_tree(&root, 1, 6);
    let [made, not_made, someone_else, chmodded, gone, elsewhere] = &files[..] else {
        unreachable!()
    };
    // A first run creates the store; nothing is healed (self-healing off).
    settle_and_check(&sb, &root, &files, "before the crash");
    // What a killed goguardd leaves: intents, and some of their changes made.
    std::os::unix::fs::chown(made, Some(0), Some(0)).unwrap();
    std::os::unix::fs::chown(someone_else, Some(2), Some(2)).unwrap();
    std::fs::set_permissions(chmodded, PermissionsExt::from_mode(0o664)).unwrap();
    std::fs::remove_file(gone).unwrap();
    let other_root = sb.path().join("not-guarded-now");
    let mut script = String::from("import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nrows=[\n");
    let root_s = root.display().to_string();
    for (path, root, kind, target, before) in [
        (made, root_s.clone(), "chown", "0:0", "1:1"),
        (not_made, root_s.clone(), "chown", "0:0", "1:1"),
        (someone_else, root_s.clone(), "chown", "0:0", "1:1"),
        (chmodded, root_s.clone(), "chmod", "-0002", "0666"),
        (gone, root_s.clone(), "chown", "0:0", "1:1"),
        (
            elsewhere,
            other_root.display().to_string(),
            "chown",
            "0:0",
            "1:1",
        ),
    ] {
        script += &format!(
            "({:?},{:?},{:?},{:?},{:?}),\n",
            path.display().to_string(),
            root,
            kind,
            target,
            before
        );
    }
    script += "]\nfor p,r,k,t,b in rows: c.execute(\"insert into journal_intents (at,path,root,kind,target,before,cause) values (5.0,?,?,?,?,?,'self-heal: x')\",(p,r,k,t,b))\nc.commit()\n";
    let out = Command::new(require_tool("python3", "python3"))
        .args(["-c", &script])
        .arg(sb.state_dir().join("goguard.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    round_config(&sb, &root, "auto", false);
    let mut daemon = sb.start();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let (rows, intents) = read_db(&sb.state_dir().join("goguard.db"));
    assert_eq!(
        intents, 1,
        "the intent of a root not guarded now waits for it"
    );
    let row_of = |p: &Path| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.path == p.display().to_string())
            .collect()
    };
    let made_rows = row_of(made);
    assert_eq!(made_rows.len(), 1, "{rows:?}");
    assert_eq!(made_rows[0].kind, "chown");
    assert_eq!(made_rows[0].before, "1:1");
    assert!(
        made_rows[0]
            .cause
            .starts_with("self-heal: x (recorded at the next start"),
        "{:?}",
        made_rows[0].cause
    );
    assert_eq!(row_of(chmodded).len(), 1, "{rows:?}");
    assert_eq!(row_of(chmodded)[0].kind, "chmod");
    for p in [not_made, someone_else, gone, elsewhere] {
        assert!(row_of(p).is_empty(), "{}: {rows:?}", p.display());
    }
    // The daemon's log says what it settled.
    assert!(
        daemon.log_text().contains("made=2 not_made=3"),
        "{}",
        daemon.log_text()
    );
}
