//! Fuzz target: `parse_line`/`parse_record` and everything readable from a record (fields,
//! hex decoding, the AVC model) must never panic, whatever the bytes. The target itself
//! never does I/O, so every run is reproducible from its input alone.
#![no_main]

use goguard_audit::{Avc, EventId, EventTime, parse_line, parse_record, proctitle_display};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_record(data);
    for record in parse_line(data).flatten() {
        let _ = record.timestamp_str();
        for (_key, value) in record.fields() {
            let decoded = value.decoded();
            let _ = proctitle_display(&decoded);
            let _ = value.to_str_lossy();
        }
        let id = EventId {
            node: None,
            timestamp: record.timestamp_str().to_owned(),
            time: EventTime::default(),
            serial: record.serial,
        };
        if let Ok(Some(avc)) = Avc::from_record(&record, id) {
            let _ = avc.dedup_key();
            let _ = avc.to_json_record(false);
        }
    }
});
