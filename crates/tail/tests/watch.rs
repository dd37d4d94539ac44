//! `LogWatch` against real inotify: it wakes on appends and rotations of the log, not on
//! unrelated names, falls back to its timer when the directory is missing, and comes back when
//! the directory does. Latency is only asserted as "within 5 s", never tightly.

#![cfg(feature = "watch")]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use goguard_tail::{Follower, LogWatch, Start, Wake};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(5);
/// Long enough that a tick cannot be taken for an inotify wake-up in these tests.
const NO_TICK: Duration = Duration::from_secs(3600);

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// The daemon moves both into tasks.
#[test]
fn follower_watch_and_wait_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_type<T: Send>() {}
    send_type::<Follower>();
    send_type::<LogWatch>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut watch = LogWatch::new("/nonexistent-dir-for-goguard-test/audit.log", NO_TICK);
        send(&watch.changed());
    });
}

#[tokio::test]
async fn wakes_soon_after_an_append() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    append(&log, b"a\n");
    let mut watch = LogWatch::new(&log, NO_TICK);
    assert!(watch.is_watching(), "{:?}", watch.last_error());

    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            append(&log, b"b\n");
        })
    };
    let wake = timeout(PATIENCE, watch.changed()).await;
    assert_eq!(wake, Ok(Wake::Changed));
    writer.await.unwrap();
}

#[tokio::test]
async fn wakes_on_rotation_and_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    append(&log, b"a\n");
    let mut watch = LogWatch::new(&log, NO_TICK);

    fs::rename(&log, tmp.path().join("audit.log.1")).unwrap();
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(Wake::Changed));
    append(&log, b"b\n");
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(Wake::Changed));
}

#[tokio::test]
async fn ignores_other_names_in_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    let mut watch = LogWatch::new(&log, NO_TICK);
    append(&tmp.path().join("unrelated.txt"), b"x\n");
    // A wake-up here would be a bug; no wake-up within the time is the pass.
    assert!(
        timeout(Duration::from_millis(300), watch.changed())
            .await
            .is_err()
    );
    append(&log, b"a\n");
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(Wake::Changed));
}

#[tokio::test]
async fn missing_directory_runs_on_the_timer_until_it_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let log = dir.join("audit.log");
    let mut watch = LogWatch::new(&log, Duration::from_millis(20));
    assert!(!watch.is_watching());
    assert!(watch.last_error().is_some());
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(Wake::Tick));

    fs::create_dir(&dir).unwrap();
    assert_eq!(timeout(PATIENCE, watch.changed()).await, Ok(Wake::Tick));
    assert!(watch.is_watching(), "re-armed on the tick");
    assert!(watch.last_error().is_none());
}

#[tokio::test]
async fn removed_directory_drops_the_watch_and_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    fs::create_dir(&dir).unwrap();
    let log = dir.join("audit.log");
    let mut watch = LogWatch::new(&log, Duration::from_millis(20));
    assert!(watch.is_watching());
    fs::remove_dir(&dir).unwrap();
    // The IGNORED/DELETE_SELF event, or a tick first on a slow machine: either way the watch
    // must end up dropped.
    for _ in 0..10 {
        timeout(PATIENCE, watch.changed()).await.unwrap();
        if !watch.is_watching() {
            break;
        }
    }
    assert!(!watch.is_watching());
}

#[tokio::test]
async fn follower_and_watch_deliver_a_line_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    let mut follower = Follower::open(&log, Start::End).unwrap();
    let mut watch = LogWatch::new(&log, Duration::from_secs(1));

    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            append(&log, b"type=AVC msg=audit(1.0:1): denied\n");
        })
    };
    let got = timeout(PATIENCE, async {
        loop {
            let batch = follower.poll(1 << 20).unwrap();
            if let Some(line) = batch.lines().next() {
                return line.bytes.to_vec();
            }
            watch.changed().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(got, b"type=AVC msg=audit(1.0:1): denied");
    writer.await.unwrap();
}
