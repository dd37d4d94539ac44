//! `trim GOCACHE [--max-bytes N] [--force] [--dry-run] [--grace-secs S]`: trims a build cache
//! with goguard-hygiene and prints a summary; the shape of `goguardctl trim`. Used by
//! `scripts/bench-trim.sh` and `scripts/bench-modverify.sh` for the trim timing.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use goguard_hygiene::trim::{self, TrimPolicy};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut policy = TrimPolicy::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--max-bytes" => policy.max_bytes = args.next().and_then(|n| n.parse().ok()),
            "--force" => policy.force = true,
            "--dry-run" => policy.dry_run = true,
            "--grace-secs" => {
                policy.in_use_grace =
                    Duration::from_secs(args.next().and_then(|n| n.parse().ok()).expect("S"))
            }
            _ => root = Some(a),
        }
    }
    let Some(root) = root else {
        eprintln!("usage: trim GOCACHE [--max-bytes N] [--force] [--dry-run] [--grace-secs S]");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    match trim::execute(root.as_ref(), &policy, SystemTime::now()) {
        Ok(r) => {
            println!(
                "due={:?} age_trim={} scanned={} removed={} freed={} kept={} cap={:?} trim_txt_written={} elapsed_s={:.3}",
                r.due,
                r.age_trim,
                r.entries_scanned,
                r.entries_removed,
                r.bytes_freed,
                r.bytes_kept(),
                r.cap,
                r.trim_txt_written,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
