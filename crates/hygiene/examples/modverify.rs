//! `modverify GOMODCACHE [--gosum FILE] [--jobs N]`: verifies a module cache with
//! goguard-hygiene and prints one line per problem and a summary (bytes hashed, elapsed,
//! MB/s). Exit 0 when everything is intact, 1 when something is corrupt or incomplete, 2 on
//! error: the contract `goguardctl modcache verify` will have. Used by
//! `scripts/bench-modverify.sh`. Never changes the cache.

use std::process::ExitCode;
use std::time::Instant;

use goguard_hygiene::gosum;
use goguard_hygiene::modverify::{self, VerifyOptions};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut opts = VerifyOptions::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gosum" => {
                let path = args.next().expect("--gosum FILE");
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("{path}: {e}");
                        return ExitCode::from(2);
                    }
                };
                match gosum::parse(&text) {
                    Ok(lines) => opts.gosum = Some(lines),
                    Err(e) => {
                        eprintln!("{path}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--jobs" => opts.jobs = args.next().and_then(|n| n.parse().ok()).expect("--jobs N"),
            _ => root = Some(a),
        }
    }
    let Some(root) = root else {
        eprintln!("usage: modverify GOMODCACHE [--gosum FILE] [--jobs N]");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let report = match modverify::verify_cache(root.as_ref(), &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    for m in report.problems() {
        println!(
            "{} {}: {} {:?}",
            m.module,
            m.version,
            m.verdict.as_str(),
            m.findings
        );
    }
    for c in report
        .gosum
        .iter()
        .filter(|c| c.outcome != modverify::GoSumOutcome::Match)
    {
        println!(
            "go.sum:{}: {} {}: {:?}",
            c.line.line, c.line.module, c.line.version, c.outcome
        );
    }
    for l in &report.leftovers {
        println!("leftover {} ({:?}, stale={})", l.path, l.kind, l.stale);
    }
    for s in &report.skipped {
        println!("skipped {}: {}", s.path, s.error);
    }
    let bytes = report.bytes_hashed();
    println!(
        "modules={} problems={} lock_files={} bytes_hashed={} elapsed_s={:.3} mb_per_s={:.1}",
        report.modules.len(),
        report.problems().count(),
        report.lock_files,
        bytes,
        secs,
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
