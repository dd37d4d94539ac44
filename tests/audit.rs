//! The audit pipeline end to end: goguardd follows an audit log the test
//! writes, keeps go-related denials in its store, streams them, survives
//! restarts, kill -9 and rotation without losing or double-counting, and
//! `goguardctl explain` reads logs offline.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

/// One raw kernel AVC event (AVC, SYSCALL, CWD, PATH, PROCTITLE, EOE) for
/// `comm` denied `perm` on `path`, with serial `serial`.
pub fn avc_event(serial: u64, comm: &str, perm: &str, path: &str) -> String {
    avc_event_exe(serial, comm, "/usr/lib/go-1.19/bin/go", perm, path)
}

/// The same, with the executable named.
pub fn avc_event_exe(serial: u64, comm: &str, exe: &str, perm: &str, path: &str) -> String {
    let ts = format!("{}.{:03}", 1_700_000_000 + serial / 1000, serial % 1000);
    let name = Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let id = format!("msg=audit({ts}:{serial})");
    format!(
        "type=AVC {id}: avc:  denied  {{ {perm} }} for  pid=4242 comm=\"{comm}\" name=\"{name}\" dev=\"dm-0\" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n\
         type=SYSCALL {id}: arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=c000123456 a2=80241 a3=1b6 items=1 ppid=4000 pid=4242 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=(none) ses=3 comm=\"{comm}\" exe=\"{exe}\" subj=system_u:system_r:container_t:s0:c1,c2 key=(null)\n\
         type=CWD {id}: cwd=\"/home/ann/src\"\n\
         type=PATH {id}: item=0 name=\"{path}\" inode=131 dev=fd:00 mode=040755 ouid=1000 ogid=1000 rdev=00:00 obj=unconfined_u:object_r:cache_home_t:s0 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n\
         type=PROCTITLE {id}: proctitle=676F006275696C64\n\
         type=EOE {id}: \n"
    )
}

/// A non-Go event that must be ignored.
fn unrelated_event(serial: u64) -> String {
    let ts = format!("{}.{:03}", 1_700_000_000 + serial / 1000, serial % 1000);
    format!(
        "type=AVC msg=audit({ts}:{serial}): avc:  denied  {{ read }} for  pid=77 comm=\"gopher\" name=\"x\" dev=\"dm-0\" ino=5 scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:var_t:s0 tclass=file permissive=0\n\
         type=SYSCALL msg=audit({ts}:{serial}): arch=c000003e syscall=2 success=no exit=-13 items=0 ppid=1 pid=77 auid=4294967295 uid=48 comm=\"gopher\" exe=\"/usr/sbin/gopher\" key=(null)\n\
         type=EOE msg=audit({ts}:{serial}): \n"
    )
}

/// Appends to a log (for other test modules).
pub fn append_pub(path: &Path, text: &str) {
    append(path, text)
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn audit_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"127.0.0.1:0\"\n[audit]\nenabled = true\nlog = \"{}\"\nevent_timeout_ms = 200\n\
         # The test events are from 2023: keep them.\nretention_days = 0",
        log.display()
    ));
    sb
}

fn denials_json(sb: &Sandbox, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["denials", "--json", "--limit", "0"];
    all.extend_from_slice(args);
    let out = ctl(&sb.socket(), &all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

fn total_count(sb: &Sandbox) -> u64 {
    denials_json(sb, &[])
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum()
}

fn wait_total(sb: &Sandbox, want: u64) {
    let deadline = Instant::now() + STARTUP;
    loop {
        let got = total_count(sb);
        if got == want {
            return;
        }
        assert!(
            got < want,
            "counted {got}, more than the {want} events written"
        );
        assert!(
            Instant::now() < deadline,
            "only {got} of {want} denials counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_denial_shows_in_watch_and_denials_quickly() {
    let sb = audit_sandbox();
    let log = sb.path().join("audit.log");
    let _daemon = sb.start();
    let mut watch = Command::new(GOGUARDCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // Give the stream a moment to subscribe, then measure several appends.
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::new();
    for i in 0..5u64 {
        let t = Instant::now();
        append(
            &log,
            &avc_event(
                100 + i,
                "go",
                "write",
                &format!("/home/ann/.cache/go-build/{i:02}"),
            ),
        );
        let line = lines.next().expect("watch printed a line").unwrap();
        latencies.push(t.elapsed());
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["kind"], "denial");
        assert_eq!(e["first_time"], true);
        assert_eq!(e["denial"]["comm"], "go");
        assert_eq!(
            e["denial"]["target"],
            format!("/home/ann/.cache/go-build/{i:02}")
        );
        assert_eq!(e["denial"]["permissions"], serde_json::json!(["write"]));
        assert_eq!(e["denial"]["tclass"], "dir");
    }
    latencies.sort();
    eprintln!(
        "append → watch latency: median {:?}, max {:?}",
        latencies[2], latencies[4]
    );
    // The target is 100 ms; a loaded CI machine running debug binaries gets
    // slack here, and docs/PERFORMANCE.md records the measured figures.
    assert!(latencies[2] < Duration::from_secs(1), "{latencies:?}");

    let t = Instant::now();
    append(
        &log,
        &avc_event(200, "compile", "read", "/home/ann/.cache/go-build/aa"),
    );
    let mut seen = false;
    while t.elapsed() < STARTUP {
        if denials_json(&sb, &["--comm", "compile"]).len() == 1 {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        seen,
        "the compile denial never showed in `goguardctl denials`"
    );
    eprintln!("append → denials latency: {:?}", t.elapsed());
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn denials_are_deduplicated_filtered_and_go_related_only() {
    let sb = audit_sandbox();
    let log = sb.path().join("audit.log");
    // Written before the daemon starts: read on its first run.
    append(
        &log,
        &avc_event(1, "go", "write", "/home/ann/.cache/go-build/01"),
    );
    append(&log, &unrelated_event(2));
    append(
        &log,
        "type=AVC msg=audit(garbage\nthis is not an audit line\n",
    );
    let _daemon = sb.start();
    append(
        &log,
        &avc_event(3, "go", "write", "/home/ann/.cache/go-build/01"),
    );
    append(
        &log,
        &avc_event(4, "link", "read", "/home/bob/go/pkg/mod/x"),
    );
    wait_total(&sb, 3);

    let all = denials_json(&sb, &[]);
    assert_eq!(all.len(), 2, "{all:#?}");
    let go = all.iter().find(|d| d["comm"] == "go").unwrap();
    assert_eq!(go["count"], 2);
    assert_eq!(go["status"], "new");
    assert_eq!(go["scontext"], "system_u:system_r:container_t:s0:c1,c2");
    assert_eq!(go["exe"], "/usr/lib/go-1.19/bin/go");
    assert!(go["last_raw"].as_str().unwrap().contains("type=PROCTITLE"));
    assert_eq!(denials_json(&sb, &["--comm", "link"]).len(), 1);
    assert_eq!(denials_json(&sb, &["--path", "/home/ann"]).len(), 1);
    assert_eq!(denials_json(&sb, &["--path", "/home/an"]).len(), 0);
    assert_eq!(denials_json(&sb, &["--status", "fixed"]).len(), 0);
    assert!(
        denials_json(&sb, &["--comm", "gopher"]).is_empty(),
        "gopher is not a Go tool"
    );

    let table = stdout(&ctl(&sb.socket(), &["denials"]));
    assert!(table.starts_with("LAST SEEN (UTC)"), "{table}");
    assert!(
        table.contains("{ write }") && table.contains("container_t → cache_home_t"),
        "{table}"
    );

    // Malformed lines were counted, not fatal.
    let addr = status_json(&sb.socket())["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = http_get(&addr, "/metrics", None).2;
    assert!(
        body.contains("goguard_audit_parse_errors_total{kind="),
        "{body}"
    );
    assert!(
        body.contains(
            "goguard_audit_denials_total{tclass=\"dir\",permission=\"write\",comm=\"go\"} 2"
        ),
        "{body}"
    );
    assert!(body.contains("goguard_audit_lag_bytes 0"), "{body}");
}

#[test]
fn ordinary_users_may_not_list_denials() {
    if !require_root("run a client as another user") {
        return;
    }
    let sb = audit_sandbox();
    let _daemon = sb.start();
    for args in [&["denials"][..], &["watch"][..]] {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(GOGUARDCTL)
            .arg("--socket")
            .arg(sb.socket())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("is for admins"), "{err}");
        assert!(err.contains("ask an admin"), "{err}");
    }
}

#[test]
fn restarts_kills_and_rotation_lose_nothing_and_count_nothing_twice() {
    let sb = audit_sandbox();
    let log = sb.path().join("audit.log");
    let mut written = 0u64;
    let next = |n: u64, log: &Path, written: &mut u64| {
        let mut text = String::new();
        for _ in 0..n {
            *written += 1;
            // Ten distinct denials, counted many times each.
            text.push_str(&avc_event(
                1000 + *written,
                "go",
                "write",
                &format!("/home/ann/.cache/go-build/{:02}", *written % 10),
            ));
        }
        append(log, &text);
    };

    let mut daemon = sb.start();
    next(50, &log, &mut written);
    wait_total(&sb, written);

    // A clean stop, events written while down, a restart.
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(STARTUP);
    next(30, &log, &mut written);
    let mut daemon = sb.start();
    wait_total(&sb, written);

    // kill -9 while events stream in, several times.
    for round in 0..5 {
        next(40, &log, &mut written);
        std::thread::sleep(Duration::from_millis(20 * round));
        daemon.signal(Signal::SIGKILL);
        daemon.wait_exit(STARTUP);
        next(10, &log, &mut written);
        daemon = sb.start();
    }
    wait_total(&sb, written);

    // Rotation while down: the tail of the renamed file, then the new one.
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(STARTUP);
    next(7, &log, &mut written);
    std::fs::rename(&log, sb.path().join("audit.log.1")).unwrap();
    std::fs::write(&log, "").unwrap();
    next(9, &log, &mut written);
    let daemon = sb.start();
    wait_total(&sb, written);

    // Rotation while running.
    std::fs::rename(&log, sb.path().join("audit.log.1")).unwrap();
    next(5, &sb.path().join("audit.log.1"), &mut written);
    std::fs::write(&log, "").unwrap();
    next(6, &log, &mut written);
    wait_total(&sb, written);
    assert_eq!(denials_json(&sb, &[]).len(), 10);
    drop(daemon);
}

#[test]
fn explain_reads_a_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut text = avc_event(1, "go", "write", "/home/ann/.cache/go-build/01");
    text.push_str(&avc_event(2, "go", "write", "/home/ann/.cache/go-build/01"));
    text.push_str(&unrelated_event(3));
    std::fs::write(&log, &text).unwrap();

    let run = |args: &[&str]| {
        Command::new(GOGUARDCTL)
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["explain", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "go-related denials found → 1");
    let text_out = stdout(&out);
    assert!(
        text_out.contains("2 go-related denials, 1 distinct"),
        "{text_out}"
    );
    assert!(
        text_out.contains("2× go { write } dir /home/ann/.cache/go-build/01"),
        "{text_out}"
    );
    assert!(
        text_out.contains("a container build uses a home cache"),
        "{text_out}"
    );

    let out = run(&["explain", "--json", log.to_str().unwrap()]);
    let records: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for key in [
        "node",
        "timestamp",
        "serial",
        "type",
        "permissions",
        "comm",
        "exe",
        "pid",
        "scontext",
        "tcontext",
        "tclass",
        "name",
        "path",
        "permissive",
        "go_related",
    ] {
        assert!(
            records[0].get(key).is_some(),
            "{key} missing: {}",
            records[0]
        );
    }
    assert_eq!(records[0]["timestamp"], "1700000000.001");
    assert_eq!(records[0]["serial"], 1);
    assert_eq!(records[0]["type"], "AVC");
    assert_eq!(records[0]["path"], "/home/ann/.cache/go-build/01");
    assert_eq!(records[0]["go_related"], true);
    let all = run(&["explain", "--json", "--all", log.to_str().unwrap()]);
    assert_eq!(stdout(&all).lines().count(), 3);

    // Standard input, and a log without go-related denials → 0.
    let mut child = Command::new(GOGUARDCTL)
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(unrelated_event(9).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no go-related denials found"));

    let missing = run(&["explain", "/nonexistent/audit.log"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read /nonexistent/audit.log"));
}

/// One block of a large log: `OTHER_PER_BLOCK` events without an AVC (SYSCALL, EXECVE,
/// PATH, PROCTITLE, EOE) and one go-related denial on a path of its own.
fn large_log_block(block: u64) -> String {
    let mut text = String::with_capacity(4096);
    for i in 0..OTHER_PER_BLOCK {
        let serial = block * (OTHER_PER_BLOCK + 1) + i + 1;
        let ts = format!("{}.{:03}", 1_700_000_000 + serial / 1000, serial % 1000);
        let id = format!("msg=audit({ts}:{serial})");
        text.push_str(&format!(
            "type=SYSCALL {id}: arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=8 items=2 ppid=1 pid={serial} auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"ls\" exe=\"/usr/bin/ls\" subj=unconfined_u:unconfined_r:unconfined_t:s0 key=\"exec\"\n\
             type=EXECVE {id}: argc=2 a0=\"ls\" a1=\"-l\"\n\
             type=PATH {id}: item=0 name=\"/usr/bin/ls\" inode=1234 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:bin_t:s0 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n\
             type=PROCTITLE {id}: proctitle=6C73002D6C\n\
             type=EOE {id}: \n"
        ));
    }
    let serial = block * (OTHER_PER_BLOCK + 1) + OTHER_PER_BLOCK + 1;
    text.push_str(&avc_event(
        serial,
        "go",
        "write",
        &format!(
            "/home/ann/.cache/go-build/{:02x}/{block:016x}-d",
            block % 256
        ),
    ));
    text
}

const OTHER_PER_BLOCK: u64 = 9;

/// Issue 15: `explain` streams. A 96 MB log piped in is explained in each mode with a peak
/// RSS of less than half its size (the whole-log reader held the log and every event, more
/// than three times its size). Bounded by memory, not by time. The peak is the child's own
/// `VmHWM` (its address space's high-water mark), sampled until it exits: `wait4`'s
/// `ru_maxrss` is not the child's own, since a child spawned by vfork+exec keeps as its
/// maximum the RSS of this test process at spawn time (CI measured 108 MB that way while
/// other tests held large buffers; goguardctl's own peak was 19 MB). The log has more
/// distinct denials than the text report keeps, so the text mode's bound is tested too.
#[test]
fn explain_streams_a_large_log_in_bounded_memory() {
    const LOG_BYTES: usize = 96 << 20;
    const CAP_KB: u64 = 48 << 10;
    let block_len = large_log_block(0).len();
    let blocks = (LOG_BYTES / block_len) as u64;
    for args in [
        &["explain", "--all", "--json", "-"][..],
        &["explain", "--json", "-"],
        &["explain", "--color", "never", "-"],
    ] {
        let mut child = Command::new(GOGUARDCTL)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until the child is reaped below its /proc entry stays; a zombie's has no VmHWM.
        let sampler = std::thread::spawn(move || {
            let mut peak_kb = 0u64;
            loop {
                let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break peak_kb;
                };
                let Some(hwm) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) else {
                    break peak_kb;
                };
                let kb: u64 = hwm.trim().trim_end_matches("kB").trim().parse().unwrap();
                peak_kb = peak_kb.max(kb);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for block in 0..blocks {
                stdin.write_all(large_log_block(block).as_bytes()).unwrap();
            }
        });
        let mut lines = 0u64;
        let mut head = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if head.len() < 2 {
                head.push(line);
            }
            lines += 1;
        }
        writer.join().unwrap();
        let peak_kb = sampler.join().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{args:?}: go-related denials → 1");
        assert!(peak_kb > 0, "{args:?}: no VmHWM sampled");
        eprintln!(
            "{args:?}: {} MB log, peak RSS {} KB",
            (blocks as usize * block_len) >> 20,
            peak_kb
        );
        assert!(
            peak_kb < CAP_KB,
            "{args:?}: peak RSS {peak_kb} KB for a {} MB log: explain no longer streams",
            (blocks as usize * block_len) >> 20
        );
        if args.contains(&"--json") {
            assert_eq!(lines, blocks, "{args:?}: one record per denial");
        } else {
            assert!(
                head[1].starts_with(&format!("{blocks} go-related denials, more than 4096")),
                "{head:?}"
            );
        }
    }
}

#[test]
fn a_denial_inside_a_cache_root_is_go_related_whatever_the_command() {
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    let root = sb.path().join("shared-cache");
    std::fs::create_dir(&root).unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[audit]\nenabled = true\nlog = \"{}\"\nretention_days = 0\n\
         [[root]]\npath = \"{}\"\nkind = \"custom\"",
        log.display(),
        root.display()
    ));
    let _daemon = sb.start();
    let inside = root.join("00/abc-d");
    append(
        &log,
        &avc_event_exe(1, "cp", "/usr/bin/cp", "write", inside.to_str().unwrap()),
    );
    append(
        &log,
        &avc_event_exe(2, "cp", "/usr/bin/cp", "write", "/srv/elsewhere/file"),
    );
    append(&log, &avc_event(3, "go", "read", "/srv/elsewhere/file"));
    wait_total(&sb, 2);
    let all = denials_json(&sb, &[]);
    let targets: Vec<&str> = all.iter().map(|d| d["target"].as_str().unwrap()).collect();
    assert!(targets.contains(&inside.to_str().unwrap()), "{targets:?}");
    assert!(
        all.iter()
            .all(|d| !(d["comm"] == "cp" && d["target"] == "/srv/elsewhere/file")),
        "{all:#?}"
    );
}
