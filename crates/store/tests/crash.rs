//! The crash test: `record_batch` under `kill -9` neither loses nor double-counts an event.
//!
//! The parent re-executes this very test binary (`current_exe`, `--exact crash_writer_child`,
//! an env var naming the database) as a writer process. The writer resumes from the stored
//! cursor and feeds a deterministic stream of `EVENTS` observations in batches of varying
//! size, each batch committed with `cursor.offset` = index of the next event. The parent
//! SIGKILLs it at a random moment (sometimes before it has even opened the database), then
//! checks the database against the stream: for every key, count, first/last seen and last
//! event id must be exactly those of the events in the committed prefix `[0, cursor)`.
//! After `ROUNDS` kills, a last writer runs to the end and the totals must match the whole
//! stream. The seed is printed; `GOGUARD_CRASH_SEED=<n>` replays a run. This test must
//! never leave a writer running: every child is killed or waited for.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use goguard_store::{AuditCursor, DenialFilter, DenialKey, DenialObservation, PageRequest, Store};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Events in the stream.
const EVENTS: u64 = 100_000;
/// Kill-and-restart rounds (`GOGUARD_CRASH_ROUNDS=<n>` for a longer soak).
const ROUNDS: u32 = 30;
/// Distinct denial keys in the stream.
const KEYS: u64 = 29;
const LOG: &str = "/var/log/audit/audit.log";
/// Env var that turns `crash_writer_child` into the writer, naming its database.
const WRITER_ENV: &str = "GOGUARD_STORE_CRASH_WRITER_DB";
/// What the writer prints once it is about to write (on its own line).
const READY: &str = "GOGUARD-STORE-WRITER-READY";

/// SplitMix64: a tiny deterministic generator, enough for a test.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn key_index(i: u64) -> u64 {
    mix(i) % KEYS
}

fn key(k: u64) -> DenialKey {
    DenialKey::new(
        "system_u:system_r:container_t:s0",
        "unconfined_u:object_r:user_home_t:s0",
        if k % 2 == 0 { "file" } else { "dir" },
        ["read", "write"],
        format!("/home/u{}/.cache/go-build/{k:02}", k % 4),
        "go",
    )
}

fn seen_at(i: u64) -> f64 {
    1_700_000_000.0 + i as f64 * 0.001
}

fn event_id(i: u64) -> String {
    format!("node:{:.3}:{i}", seen_at(i))
}

fn event(i: u64) -> DenialObservation {
    DenialObservation {
        key: key(key_index(i)),
        seen_at: seen_at(i),
        event_id: event_id(i),
        raw: format!(
            "type=AVC msg=audit({:.3}:{i}): avc: denied {{ read write }} for pid={} comm=\"go\"",
            seen_at(i),
            1000 + i % 5000
        ),
        exe: Some("/usr/lib/golang/bin/go".into()),
        go_related: true,
    }
}

/// Batch size at a position of the stream: 1..=64, varying (small batches: many commits,
/// so many kills land near one).
fn batch_len(start: u64) -> u64 {
    1 + mix(start ^ 0x5eed) % 64
}

fn cursor_after(end: u64) -> AuditCursor {
    AuditCursor {
        log_path: LOG.into(),
        dev: 64769,
        ino: 4242,
        offset: end,
        last_event_id: end.checked_sub(1).map(event_id),
        replay_keys: Vec::new(),
    }
}

/// Not a test on its own: the writer process of `kill_9_never_loses_or_double_counts`.
#[test]
fn crash_writer_child() {
    let Some(db) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let mut store = Store::open(Path::new(&db)).unwrap();
    let mut next = store.load_cursor(LOG).unwrap().map_or(0, |c| c.offset);
    println!("\n{READY} {next}");
    while next < EVENTS {
        let end = (next + batch_len(next)).min(EVENTS);
        let batch: Vec<_> = (next..end).map(event).collect();
        let recorded = store.record_batch(&batch, &cursor_after(end)).unwrap();
        assert!(recorded.iter().all(|r| r.is_new == (r.count == 1)));
        next = end;
    }
}

/// What the database must hold for the prefix `[0, end)` of the stream.
#[derive(Debug, PartialEq)]
struct Expected {
    count: u64,
    first_seen: f64,
    last_seen: f64,
    last_event_id: String,
}

fn expected(end: u64) -> BTreeMap<String, Expected> {
    let mut map: BTreeMap<String, Expected> = BTreeMap::new();
    for i in 0..end {
        let k = key(key_index(i));
        map.entry(k.target.clone() + " " + &k.tclass)
            .and_modify(|e| {
                e.count += 1;
                e.last_seen = seen_at(i);
                e.last_event_id = event_id(i);
            })
            .or_insert(Expected {
                count: 1,
                first_seen: seen_at(i),
                last_seen: seen_at(i),
                last_event_id: event_id(i),
            });
    }
    map
}

/// Opens the database as the restarted daemon would and checks it against the stream.
/// Returns the committed prefix length.
fn verify(db: &Path) -> u64 {
    let store = Store::open(db).unwrap();
    let cursor = store.load_cursor(LOG).unwrap();
    let end = cursor.as_ref().map_or(0, |c| c.offset);
    if let Some(c) = &cursor {
        assert_eq!(c, &cursor_after(end));
    }
    let rows = store
        .list_denials(&DenialFilter::default(), &PageRequest::first(1000))
        .unwrap()
        .items;
    let stored: BTreeMap<String, Expected> = rows
        .into_iter()
        .map(|r| {
            (
                r.key.target + " " + &r.key.tclass,
                Expected {
                    count: r.count,
                    first_seen: r.first_seen,
                    last_seen: r.last_seen,
                    last_event_id: r.last_event_id,
                },
            )
        })
        .collect();
    let want = expected(end);
    if stored != want {
        for (k, w) in &want {
            let got = stored.get(k);
            if got != Some(w) {
                eprintln!("key {k}: stored {got:?}, expected {w:?}");
            }
        }
        for k in stored.keys().filter(|k| !want.contains_key(*k)) {
            eprintln!("key {k}: stored but not in the prefix");
        }
        panic!("database disagrees with the first {end} events of the stream");
    }
    assert!(store.integrity_check().unwrap().is_empty());
    end
}

fn spawn_writer(db: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the writer's stdout until it says it is ready; false if it exited first.
fn wait_ready(child: &mut std::process::Child) -> bool {
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.contains(READY) => return true,
            Ok(_) => {}
        }
    }
}

#[test]
fn kill_9_never_loses_or_double_counts() {
    let seed = std::env::var("GOGUARD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed: {seed} (replay with GOGUARD_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/goguard.db");

    let mut rng = seed;
    let mut rand = |bound: u64| {
        rng = mix(rng);
        rng % bound
    };
    let mut committed = 0;
    let mut killed = 0;
    let mut mid_stream = 0;
    let (mut written_while_alive, mut alive_us) = (0u64, 0u64);
    let rounds: u32 = std::env::var("GOGUARD_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds {
        let mut child = spawn_writer(&db);
        // One round in four: kill before the writer is ready (while it opens, creates or
        // migrates the database). Otherwise: at a random moment of its writing.
        let early = rand(4) == 0;
        if !early {
            assert!(wait_ready(&mut child), "writer exited before it was ready");
        }
        // Aim each kill at about EVENTS / (2 * ROUNDS) events into the run, whatever the
        // build's speed: the bound comes from the rate measured in the previous rounds.
        let target = (EVENTS / (2 * u64::from(rounds))) as f64;
        let max_us = if early {
            15_000
        } else if written_while_alive > 0 {
            ((2.0 * target / (written_while_alive as f64 / alive_us as f64)) as u64)
                .clamp(1_000, 1_000_000)
        } else {
            60_000
        };
        let delay = Duration::from_micros(rand(max_us));
        std::thread::sleep(delay);
        let sent = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).is_ok();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        let was_killed = status.signal() == Some(libc_sigkill());
        assert!(
            was_killed || status.success(),
            "writer failed on its own in round {round}: {status:?}"
        );
        killed += u32::from(sent && was_killed);
        let now = verify(&db);
        assert!(
            now >= committed,
            "cursor went backwards: {now} < {committed}"
        );
        mid_stream += u32::from(was_killed && now > committed && now < EVENTS);
        if !early && was_killed {
            written_while_alive += now - committed;
            alive_us += delay.as_micros() as u64;
        }
        eprintln!(
            "round {round:2}: {} after {delay:?}, committed {committed:6} -> {now:6}",
            if was_killed { "killed" } else { "finished" },
        );
        committed = now;
    }

    // Finish the stream without interruption.
    let start = Instant::now();
    let mut child = spawn_writer(&db);
    assert!(child.wait().unwrap().success());
    assert_eq!(verify(&db), EVENTS);
    eprintln!(
        "{killed} of {rounds} rounds killed ({mid_stream} mid-stream after progress); \
         final run finished the stream in {:?}",
        start.elapsed()
    );
    assert!(
        killed >= rounds / 2,
        "too few writers were killed mid-run ({killed}); the stream is too short"
    );
}

fn libc_sigkill() -> i32 {
    Signal::SIGKILL as i32
}
