//! Fuzz target: the `EventAssembler` fed arbitrary lines with arbitrary clocks, small limits
//! and both retention modes must never panic, and must hand back only events whose records
//! and AVCs can be read. Time comes from the input (never a clock), so every crash is
//! reproducible from its artifact.
#![no_main]

use std::time::Duration;

use goguard_audit::{AssemblerConfig, EventAssembler, GoTools, Retention};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let mut config = AssemblerConfig::new(Duration::from_millis(u64::from(control & 0x0f) * 300));
    config.max_pending = 1 + usize::from(control >> 4);
    config.max_event_bytes = 64 + 64 * usize::from(control >> 5);
    config.retention = if control & 0x80 == 0 {
        Retention::All
    } else {
        Retention::AvcEvents
    };
    let mut assembler = EventAssembler::with_config(config);
    let tools = GoTools::default();
    let roots = ["/home/a/.cache/go-build"];
    let mut now = Duration::ZERO;
    let mut check = |events: Vec<goguard_audit::AuditEvent>| {
        for event in events {
            let _ = event.records().count();
            for avc in event.avcs() {
                let go = tools.is_go_related(&avc, &roots);
                let _ = avc.to_json_record(go);
                let _ = avc.dedup_key();
            }
            let _ = event.id.to_string();
        }
    };
    for line in input.split(|&b| b == b'\n') {
        now += Duration::from_millis(u64::from(line.len() as u8));
        let out = assembler.push_line(line, now);
        check(out.events);
        if line.first() == Some(&b'!') {
            check(assembler.flush_expired(now));
        }
    }
    check(assembler.flush_all());
});
