//! Issue 13, attack 5: an ordinary user floods the control socket. A real
//! goguardd (root) and a real unprivileged user (useradd) running a small
//! flood client (python3 under runuser) that opens thousands of Unix
//! connections, sends the HTTP/2 preface and holds them; bounded: it stops by
//! itself after a few seconds, and talks to the sandbox's socket only.
//!
//! Under the flood root's `goguardctl status` must answer in under a second,
//! drift made in a declared root must be self-healed, the daemon's fds stay
//! within the caps, and once the flood's connections close its RSS must come
//! back to within 20% of what it was before. Connections that never send a
//! request are closed after `first_request_timeout_secs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::users::TestUser;
use crate::util::*;

/// The HTTP/2 client preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The flood client: opens `n` connections to the socket, sends the preface on
/// each, holds them for `hold` seconds, closes them and prints a JSON summary.
/// Every step is bounded (connect timeout, a 90 s alarm for the whole run).
const FLOOD_PY: &str = r#"
import json, resource, signal, socket, sys, time
path, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
signal.alarm(90)
preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
socks, errors = [], 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(preface)
    except OSError:
        errors += 1
    socks.append(s)
time.sleep(0.5)
def closed_by_server(s):
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
closed = sum(1 for s in socks if closed_by_server(s))
print(json.dumps({"opened": n, "errors": errors, "closed_by_server": closed}), flush=True)
time.sleep(hold)
held = sum(1 for s in socks if not closed_by_server(s))
for s in socks:
    s.close()
print(json.dumps({"held_to_the_end": held}), flush=True)
"#;

fn require_root() {
    assert_root(
        "the flood tests need root: they create a user with useradd and run a root goguardd \
         (CI runs them as root)",
    );
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Root's `goguardctl status`, timed.
fn timed_status(socket: &Path) -> Duration {
    let t = Instant::now();
    let out = ctl(socket, &["status", "--json"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "status: {}", stderr(&out));
    took
}

/// The value of one sample line of the daemon's metrics.
fn metric(addr: &str, sample: &str) -> f64 {
    let (_, _, body) = http_get(addr, "/metrics", None);
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_users_connection_flood_leaves_root_served_healing_on_and_memory_back() {
    require_root();
    let user = TestUser::create("fl");
    let sb = Sandbox::new();
    let shared = sb.path().join("shared");
    std::fs::create_dir_all(shared.join("ab")).unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"127.0.0.1:0\"\n[scan]\ninterval_secs = 0\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"\nowner = \"root\"\n",
        shared.display()
    ));
    let daemon = sb.start();
    let socket = sb.socket();
    let pid = daemon.pid();
    let metrics_addr = status_json(&socket)["metrics_address"]
        .as_str()
        .expect("metrics on")
        .to_owned();
    // Warm up: the allocator's arenas and the runtime's threads as in normal use.
    for _ in 0..20 {
        timed_status(&socket);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(pid);
    let fds_before = open_fds(pid);

    const CONNECTIONS: usize = 3000;
    let mut flood = Command::new("runuser")
        .args(["-u", &user.name, "--", "python3", "-c", FLOOD_PY])
        .arg(&socket)
        .arg(CONNECTIONS.to_string())
        .arg("6")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs as the test user");
    let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines();
    let Some(Ok(first)) = lines.next() else {
        let mut err = String::new();
        flood
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("the flood client did not report: {err}");
    };
    let opened: serde_json::Value = serde_json::from_str(&first).unwrap();

    // The flood holds its connections now.
    let fds_during = open_fds(pid);
    let mut rss_peak = rss_kib(pid);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        slowest = slowest.max(timed_status(&socket));
        rss_peak = rss_peak.max(rss_kib(pid));
    }
    // Drift made during the flood is healed.
    let file = shared.join("ab/x-a");
    std::fs::write(&file, b"x").unwrap();
    let t = Instant::now();
    std::os::unix::fs::chown(&file, Some(user.uid()), None).unwrap();
    while std::fs::metadata(&file).unwrap().uid() != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "drift made during the flood was not healed:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let healed_in = t.elapsed();
    rss_peak = rss_peak.max(rss_kib(pid));
    let refused = metric(
        &metrics_addr,
        "goguard_connections_refused_total{reason=\"per_user\"}",
    );

    let last = lines.next().expect("the flood client ends").unwrap();
    let end: serde_json::Value = serde_json::from_str(&last).unwrap();
    let status = flood.wait().unwrap();
    let mut err = String::new();
    flood
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "the flood client failed: {err}");

    // Memory comes back once the connections are gone.
    let t = Instant::now();
    let mut rss_after = rss_kib(pid);
    while rss_after as f64 > rss_before as f64 * 1.2 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(250));
        rss_after = rss_kib(pid);
    }
    let fds_after = open_fds(pid);
    eprintln!(
        "flood: {opened} {end}; status slowest {slowest:?}; drift healed in {healed_in:?}; \
         RSS KiB before {rss_before} peak {rss_peak} after {rss_after}; fds before {fds_before} \
         during {fds_during} after {fds_after}; refused {refused}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "root's status took {slowest:?} under the flood"
    );
    let admitted = CONNECTIONS as u64 - opened["closed_by_server"].as_u64().unwrap();
    assert!(
        admitted <= 64,
        "the default cap is 64 connections per user, {admitted} were kept open: {opened}"
    );
    assert_eq!(
        end["held_to_the_end"], 64,
        "the admitted ones are served: {end}"
    );
    assert!(
        refused >= (CONNECTIONS - 64) as f64,
        "refusals counted: {refused}"
    );
    assert!(
        fds_during <= fds_before + 64 + 16,
        "fds went from {fds_before} to {fds_during} under the flood"
    );
    assert!(
        rss_after as f64 <= rss_before as f64 * 1.2,
        "RSS stayed at {rss_after} KiB after the flood (before: {rss_before} KiB, peak {rss_peak} KiB)"
    );
    // Nothing stays broken: the daemon is healthy, and its user still connects.
    assert_eq!(status_json(&socket)["healthy"], true);
    let out = user.ctl_as(&socket, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Reads until the peer closes; returns how long that took, or panics after `limit`.
fn closed_within(stream: &mut UnixStream, limit: Duration) -> Duration {
    let t = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return t.elapsed(), // reset: closed as well
        }
        assert!(
            t.elapsed() < limit,
            "the connection was still open after {limit:?}"
        );
    }
}

#[test]
fn connections_without_a_request_are_closed_after_the_deadline() {
    require_root();
    let sb = Sandbox::new();
    sb.write_config(
        "metrics_listen = \"127.0.0.1:0\"\nfirst_request_timeout_secs = 2\n[scan]\ninterval_secs = 0",
    );
    let _daemon = sb.start();
    let socket = sb.socket();
    let addr = status_json(&socket)["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = Instant::now();
    let mut silent = UnixStream::connect(&socket).unwrap();
    let mut preface_only = UnixStream::connect(&socket).unwrap();
    preface_only.write_all(PREFACE).unwrap();
    closed_within(&mut silent, Duration::from_secs(8));
    let a = start.elapsed();
    closed_within(&mut preface_only, Duration::from_secs(8));
    let b = start.elapsed();
    assert!(
        a >= Duration::from_millis(1500) && b >= Duration::from_millis(1500),
        "closed too early: {a:?} {b:?}"
    );
    assert_eq!(
        metric(
            &addr,
            "goguard_connections_timed_out_total{reason=\"first_request\"}"
        ),
        2.0
    );
    // A client that asks at once is served as before.
    assert!(timed_status(&socket) < Duration::from_secs(1));
}
