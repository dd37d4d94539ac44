//! Throughput benchmark (not a timed test): streams one audit log through the
//! `EventAssembler` the way the daemon does, and prints MB/s, events/s and peak RSS.
//!
//! ```text
//! cargo bench -p goguard-audit --bench parse -- LOG [--retention avc|all] [--no-avcs] [--tsv]
//! GOGUARD_BENCH_LOG=LOG cargo bench -p goguard-audit --bench parse
//! ```
//!
//! The file is read in fixed 4 MiB chunks, so memory stays constant whatever its size.
//! When `LOG.stats.json` (written by `scripts/gen_audit_log.py`) exists, the counts are
//! checked against it and the process exits 1 on a mismatch. Every completed event's AVCs
//! are built and matched against the Go tools and the generator's cache roots, as the
//! daemon would; `--no-avcs` skips that to measure parsing and assembly alone. This file may read the log and /proc/self/status (the library may not);
//! it never writes anything but its report, and it is not a timed test: it never fails on
//! speed, only on counts that disagree with the generator's.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use goguard_audit::{
    AssemblerConfig, AuditEvent, AvcKind, EventAssembler, GoTools, Output, Relevance, Retention,
};

const CHUNK: usize = 4 << 20;

#[derive(Default)]
struct Counts {
    events_with_avc: u64,
    kernel_avc_records: u64,
    user_avc_records: u64,
    denied: u64,
    go_tool_avc_events: u64,
    go_path_avc_events: u64,
    go_related_avcs: u64,
    errors: u64,
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut log: Option<PathBuf> = std::env::var_os("GOGUARD_BENCH_LOG").map(PathBuf::from);
    let mut retention = Retention::AvcEvents;
    let mut tsv = false;
    let mut build_avcs = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--retention" => {
                retention = match args.next().as_deref() {
                    Some("all") => Retention::All,
                    Some("avc") => Retention::AvcEvents,
                    other => die(&format!("--retention avc|all, not {other:?}")),
                }
            }
            "--tsv" => tsv = true,
            "--no-avcs" => build_avcs = false,
            a if a.starts_with('-') => die(&format!("unknown option {a}")),
            path => log = Some(PathBuf::from(path)),
        }
    }
    let Some(log) = log else {
        die(
            "usage: parse LOG [--retention avc|all] [--no-avcs] [--tsv]   (or GOGUARD_BENCH_LOG=LOG)",
        );
    };

    let go = GoTools::default();
    let roots: Vec<PathBuf> = ["alice", "bob", "ci", "builder", "dev", "carol"]
        .iter()
        .flat_map(|u| {
            [
                PathBuf::from(format!("/home/{u}/.cache/go-build")),
                PathBuf::from(format!("/home/{u}/go/pkg/mod")),
            ]
        })
        .collect();

    let mut config = AssemblerConfig::new(goguard_audit::DEFAULT_TIMEOUT);
    config.retention = retention;
    let mut asm = EventAssembler::with_config(config);
    let mut counts = Counts::default();
    let mut file =
        std::fs::File::open(&log).unwrap_or_else(|e| die(&format!("{}: {e}", log.display())));
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0usize;
    let mut bytes = 0u64;
    let mut out = Output::default();
    let start = Instant::now();
    loop {
        let n = file
            .read(&mut buf[filled..])
            .unwrap_or_else(|e| die(&format!("read: {e}")));
        bytes += n as u64;
        filled += n;
        let eof = n == 0;
        let now = start.elapsed();
        let mut consumed = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[consumed..filled]) {
            asm.push_line_into(&buf[consumed..consumed + i], now, &mut out);
            consumed += i + 1;
        }
        if eof && consumed < filled {
            asm.push_line_into(&buf[consumed..filled], now, &mut out);
            consumed = filled;
        }
        drain(
            &mut out,
            build_avcs.then_some((&go, &roots[..])),
            &mut counts,
        );
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if eof {
            break;
        }
        if filled == buf.len() {
            // A line longer than the buffer: a real tailer bounds it; here, grow.
            buf.resize(buf.len() * 2, 0);
        }
    }
    out.events.extend(asm.flush_all());
    drain(
        &mut out,
        build_avcs.then_some((&go, &roots[..])),
        &mut counts,
    );
    let elapsed = start.elapsed();
    let stats = asm.stats();
    let events_total = stats.events_emitted + stats.events_discarded;
    let hwm_kib = vm_hwm_kib();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mb_s = bytes as f64 / 1e6 / secs;
    let ev_s = events_total as f64 / secs;
    if tsv {
        println!(
            "goguard\t{bytes}\t{:.6}\t{mb_s:.1}\t{events_total}\t{ev_s:.0}\t{hwm_kib}",
            elapsed.as_secs_f64()
        );
    } else {
        println!("log            {}", log.display());
        println!(
            "retention      {retention:?}{}",
            if build_avcs { "" } else { ", AVCs not built" }
        );
        println!("bytes          {bytes}");
        println!("time           {:.3} s", elapsed.as_secs_f64());
        println!("throughput     {mb_s:.1} MB/s");
        println!(
            "events         {events_total} ({ev_s:.0} events/s; {} handed out)",
            stats.events_emitted
        );
        println!("records        {}", stats.records);
        println!(
            "avc records    {} kernel, {} user, {} denied",
            counts.kernel_avc_records, counts.user_avc_records, counts.denied
        );
        println!("go-related     {} AVCs", counts.go_related_avcs);
        println!("parse errors   {}", stats.errors + counts.errors);
        println!("evicted        {}", stats.events_evicted);
        println!("peak RSS       {hwm_kib} KiB (VmHWM)");
    }
    if build_avcs && !check_against_stats(&log, &counts, events_total, &stats, retention) {
        std::process::exit(1);
    }
}

fn drain(out: &mut Output, avcs: Option<(&GoTools, &[PathBuf])>, counts: &mut Counts) {
    counts.errors += out.errors.len() as u64;
    out.errors.clear();
    for ev in out.events.drain(..) {
        if let Some((go, roots)) = avcs {
            count_event(&ev, go, roots, counts);
        }
    }
}

fn count_event(ev: &AuditEvent, go: &GoTools, roots: &[PathBuf], counts: &mut Counts) {
    let avcs = ev.avcs();
    let (mut kernel, mut tool, mut path) = (false, false, false);
    for avc in &avcs {
        match avc.kind {
            AvcKind::Kernel => {
                counts.kernel_avc_records += 1;
                kernel = true;
            }
            AvcKind::User => counts.user_avc_records += 1,
        }
        counts.denied += u64::from(avc.is_denied());
        let relevance = go.relevance(avc, roots);
        counts.go_related_avcs += u64::from(relevance.is_some());
        match relevance {
            Some(Relevance::CacheRoot(_)) => path = true,
            Some(_) => {
                tool = true;
                // A Go tool's AVC may also be in a cache: count it for both.
                path |= avc
                    .path
                    .as_deref()
                    .is_some_and(|p| roots.iter().any(|r| p.starts_with(r)));
            }
            None => {}
        }
        // What the store would key on; built to cost what the daemon pays.
        std::hint::black_box(avc.dedup_key());
    }
    if kernel {
        counts.events_with_avc += 1;
        counts.go_tool_avc_events += u64::from(tool);
        counts.go_path_avc_events += u64::from(path);
    }
}

/// Compares with the generator's `LOG.stats.json`, if there is one.
fn check_against_stats(
    log: &std::path::Path,
    counts: &Counts,
    events_total: u64,
    stats: &goguard_audit::AssemblerStats,
    retention: Retention,
) -> bool {
    let mut name = log.as_os_str().to_owned();
    name.push(".stats.json");
    let Ok(text) = std::fs::read_to_string(&name) else {
        return true;
    };
    let Ok(expected) = serde_json::from_str::<serde_json::Value>(&text) else {
        eprintln!("check: cannot read {}", PathBuf::from(name).display());
        return false;
    };
    let want = |k: &str| expected[k].as_u64();
    let user_avc = expected["records_by_type"]["USER_AVC"].as_u64();
    let mut checks: BTreeMap<&str, (Option<u64>, u64)> = BTreeMap::from([
        ("records", (want("records"), stats.records)),
        ("avc_events", (want("avc_events"), counts.events_with_avc)),
        (
            "avc_records",
            (want("avc_records"), counts.kernel_avc_records),
        ),
        ("USER_AVC records", (user_avc, counts.user_avc_records)),
        (
            "go_toolchain_avc_events",
            (want("go_toolchain_avc_events"), counts.go_tool_avc_events),
        ),
        (
            "go_path_visible_avc_events",
            (
                want("go_path_visible_avc_events"),
                counts.go_path_avc_events,
            ),
        ),
        ("parse errors", (Some(0), stats.errors + counts.errors)),
    ]);
    // Only with every record kept is every event seen: `Retention::AvcEvents` never opens
    // an event for records an AVC does not need.
    if retention == Retention::All {
        checks.insert("events", (want("events"), events_total));
    }
    let mut ok = true;
    for (what, (want, got)) in checks {
        match want {
            Some(w) if w == got => {}
            Some(w) => {
                eprintln!("check: {what}: expected {w}, got {got}");
                ok = false;
            }
            None => eprintln!("check: {what}: not in stats file"),
        }
    }
    if ok {
        eprintln!("check: counts match {}", PathBuf::from(name).display());
    }
    ok
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}
