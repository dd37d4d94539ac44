//! Conformance with `ausearch` 3.0.9 on the real-log corpus in `tests/corpus/` (a copy of
//! `../shared/corpus/audit`; `tests/corpus/PROVENANCE.md` says where each log comes from and
//! how `expected/` was produced).
//!
//! For every `<short>.log` (all of them: a new file is checked too) this test compares
//! 1. **records**: every `AVC`/`USER_AVC` record goguard finds in the log, with its event id,
//!    node, permissions, pid, comm, scontext, tcontext, tclass, name, path and permissive,
//!    against the same records read (with this parser) from `expected/<short>.ausearch-raw.txt`
//!    (`ausearch -if LOG -m AVC,USER_AVC --raw`), as multisets;
//! 2. **events**: goguard's events holding an `AVC` record against ausearch's events in
//!    `expected/<short>.ausearch-interpreted.txt` (`ausearch -if LOG -m AVC -i`, `----`
//!    separated, dates in UTC), as multisets of (node, time, serial, number of AVC records);
//! 3. **malformed lines**: the lines goguard rejects, by line number and reason.
//!
//! Where goguard deliberately differs from ausearch, [`allowed`] names each difference and
//! why, per file, and the test asserts the differences are exactly those: it fails when a new
//! difference appears and when a listed one disappears. The counts in `expected/COUNTS.tsv`
//! are cross-checked against what both sides found. This file only reads the corpus (the
//! library it tests does no I/O); it must never rewrite the corpus or its expected files,
//! which are bytes-exact copies of real logs and of real ausearch output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use goguard_audit::{AuditEvent, Avc, ErrorKind, Format, GoTools, parse_line, parse_log};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// One `AVC`/`USER_AVC` record and what goguard reads from it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    node: Option<String>,
    timestamp: String,
    serial: u64,
    record_type: String,
    fields: RowFields,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RowFields {
    /// An SELinux decision, with the fields both sides must agree on.
    Decision {
        decision: &'static str,
        permissions: Vec<String>,
        pid: Option<u32>,
        comm: Option<String>,
        scontext: Option<String>,
        tcontext: Option<String>,
        tclass: Option<String>,
        name: Option<String>,
        path: Option<String>,
        permissive: Option<bool>,
    },
    /// An `AVC`/`USER_AVC` record that is no SELinux decision (AppArmor, policy load notice).
    NotADecision,
    /// `avc:  denied` with a broken permission set.
    Malformed,
}

/// One event holding `AVC` records, as ausearch's `-i` output or goguard groups it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EventRow {
    node: Option<String>,
    secs: u64,
    millis: u32,
    serial: u64,
    avc_records: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Record,
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    /// goguard finds it, ausearch does not.
    GoguardOnly,
    /// ausearch reports it, goguard does not.
    AusearchOnly,
}

/// Which differing rows an allowance covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The rows of one event, by node and serial.
    Event {
        node: Option<&'static str>,
        serial: u64,
    },
    /// Every goguard event read from `ausearch -i` (interpreted) lines.
    EveryInterpretedEvent,
}

/// A deliberate difference from ausearch.
#[derive(Debug, Clone, Copy)]
struct Allowed {
    level: Level,
    side: Side,
    which: Which,
    reason: &'static str,
}

/// A line goguard rejects on purpose.
#[derive(Debug, Clone, Copy)]
struct AllowedError {
    line: usize,
    kind: ErrorKind,
    reason: &'static str,
}

const HOST_LINE: &str = "PROVENANCE rule 2: ausearch ignores lines that do not start with \
    type= or node=, so it drops the `host=dhcppc2 type=AVC ... host=dhcppc2 type=SYSCALL ...` \
    line of qemu_blk_image; goguard reads host= like node= and splits the two records glued on \
    that line, so it reports the qemu-kvm read denial";
const APPARMOR: &str = "PROVENANCE rule 1: ausearch drops every event whose AVC record has no \
    scontext/tcontext; goguard keeps the AppArmor `type=AVC apparmor=...` record (it is not an \
    SELinux decision, so no Avc is built from it)";
const INTERPRETED_GOGUARD: &str = "PROVENANCE rule 4: `ausearch -i` input; goguard reads the \
    human date (as UTC) and groups the records by their real serials";
const INTERPRETED_AUSEARCH: &str = "PROVENANCE rule 4: ausearch cannot parse the `ausearch -i` \
    time stamp and collapses every record of the file into one event `01/01/70 00:00:SS.000:0`, \
    SS being the month of the first date";

const fn event(
    level: Level,
    side: Side,
    node: Option<&'static str>,
    serial: u64,
    reason: &'static str,
) -> Allowed {
    Allowed {
        level,
        side,
        which: Which::Event { node, serial },
        reason,
    }
}

/// Interpreted input: ausearch's one collapsed event (`01/01/70 00:00:SECS.000:0`) against
/// goguard's real events.
const fn interpreted() -> [Allowed; 2] {
    [
        Allowed {
            level: Level::Event,
            side: Side::GoguardOnly,
            which: Which::EveryInterpretedEvent,
            reason: INTERPRETED_GOGUARD,
        },
        Allowed {
            level: Level::Event,
            side: Side::AusearchOnly,
            which: Which::Event {
                node: None,
                serial: 0,
            },
            reason: INTERPRETED_AUSEARCH,
        },
    ]
}

/// The deliberate differences from ausearch, per corpus file.
fn allowed(file: &str) -> Vec<Allowed> {
    use Level::*;
    use Side::*;
    match file {
        "audit2allow-test.log" | "setroubleshoot-testdata.log" => vec![
            event(Record, GoguardOnly, Some("dhcppc2"), 241, HOST_LINE),
            event(Event, GoguardOnly, Some("dhcppc2"), 241, HOST_LINE),
        ],
        "hillu-parser-testdata-lines.log" | "laurel-testdata-records.log" => vec![
            event(Record, GoguardOnly, None, 53732, APPARMOR),
            event(Event, GoguardOnly, None, 53732, APPARMOR),
        ],
        "golibaudit-ubuntu16-apparmor.log" => vec![
            event(Record, GoguardOnly, None, 61207, APPARMOR),
            event(Event, GoguardOnly, None, 61207, APPARMOR),
        ],
        "avcparser-2avc-interpreted.log"
        | "avcparser-dontaudit-interpreted.log"
        | "avcparser-tpm-enforcing-interpreted.log"
        | "avcparser-tpm-permissive-interpreted.log"
        | "go-toolchain-avc-excerpts.log" => interpreted().to_vec(),
        _ => Vec::new(),
    }
}

/// The lines goguard rejects on purpose, per corpus file (1-based line numbers).
fn allowed_errors(file: &str) -> Vec<AllowedError> {
    match file {
        "avcparser-dontaudit-interpreted.log" => vec![
            AllowedError {
                line: 1,
                kind: ErrorKind::NotARecord,
                reason: "the pasted shell prompt `[root@lx007jsyb ~]# ausearch ...` is no record",
            },
            AllowedError {
                line: 675,
                kind: ErrorKind::NotARecord,
                reason: "the shell prompt `[root@lx007jsyb ~]#` after the pasted output",
            },
        ],
        "go-toolchain-avc-excerpts.log" => vec![AllowedError {
            line: 2,
            kind: ErrorKind::JournalStyle,
            reason: "PROVENANCE rule 5: a journal line `AVC avc:  denied ...` has no type= and \
                no msg=audit(time:serial), so no event id; ausearch ignores it too",
        }],
        _ => Vec::new(),
    }
}

fn rows(events: &[AuditEvent]) -> Vec<Row> {
    let mut out = Vec::new();
    for ev in events {
        // try_avcs yields, in record order, one item per AVC record that is a decision (or
        // a malformed one); records where Avc::from_record says "not a decision" get none.
        let mut decisions = ev.try_avcs().into_iter();
        for r in ev.records() {
            if r.record_type != "AVC" && r.record_type != "USER_AVC" {
                continue;
            }
            let fields = match Avc::from_record(&r, ev.id.clone()) {
                Ok(None) => RowFields::NotADecision,
                _ => match decisions.next() {
                    Some(Ok(avc)) => decision_fields(&avc),
                    Some(Err(_)) => RowFields::Malformed,
                    None => panic!("{}: try_avcs is out of step with the records", ev.id),
                },
            };
            out.push(Row {
                node: ev.id.node.clone(),
                timestamp: ev.id.timestamp.clone(),
                serial: ev.id.serial,
                record_type: r.record_type.to_owned(),
                fields,
            });
        }
        assert!(decisions.next().is_none(), "{}: unmatched Avc", ev.id);
    }
    out.sort();
    out
}

fn decision_fields(avc: &Avc) -> RowFields {
    RowFields::Decision {
        decision: avc.decision.as_str(),
        permissions: avc.permissions.clone(),
        pid: avc.pid,
        comm: avc.comm.clone(),
        scontext: avc.scontext.clone(),
        tcontext: avc.tcontext.clone(),
        tclass: avc.tclass.clone(),
        name: avc.name.clone(),
        path: avc.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
        permissive: avc.permissive,
    }
}

/// goguard's events with at least one `AVC` record, and whether each was interpreted input.
fn goguard_events(events: &[AuditEvent]) -> Vec<(EventRow, bool)> {
    let mut out: Vec<(EventRow, bool)> = events
        .iter()
        .filter_map(|ev| {
            let avc_records = ev.records().filter(|r| r.record_type == "AVC").count();
            (avc_records > 0).then(|| {
                let row = EventRow {
                    node: ev.id.node.clone(),
                    secs: ev.id.time.secs,
                    millis: ev.id.time.millis,
                    serial: ev.id.serial,
                    avc_records,
                };
                (row, ev.format() == Format::Interpreted)
            })
        })
        .collect();
    out.sort();
    out
}

/// ausearch's events from its `-i` output: `----` separated blocks; the id is the one
/// ausearch printed (UTC, as the expected files were made with TZ=UTC).
fn ausearch_events(text: &[u8]) -> Vec<EventRow> {
    let mut out = Vec::new();
    let mut current: Option<EventRow> = None;
    for line in goguard_audit::lines(text) {
        if line.starts_with(b"----") {
            out.extend(current.take());
            continue;
        }
        for record in parse_line(line) {
            let r = record.unwrap_or_else(|e| panic!("ausearch -i output: {e}"));
            let row = current.get_or_insert_with(|| EventRow {
                node: r.node_lossy().map(|n| n.into_owned()),
                secs: r.time.secs,
                millis: r.time.millis,
                serial: r.serial,
                avc_records: 0,
            });
            row.avc_records += usize::from(r.record_type == "AVC");
        }
    }
    out.extend(current);
    out.sort();
    out
}

/// `a - b` and `b - a` of two sorted multisets.
fn multiset_diff<T: Ord + Clone>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

/// One actual difference, reduced to what an allowance matches on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Diff {
    level: Level,
    side: Side,
    node: Option<String>,
    serial: u64,
    interpreted: bool,
    detail: String,
}

impl Allowed {
    fn covers(&self, d: &Diff) -> bool {
        self.level == d.level
            && self.side == d.side
            && match self.which {
                Which::Event { node, serial } => d.node.as_deref() == node && d.serial == serial,
                Which::EveryInterpretedEvent => d.interpreted,
            }
    }
}

struct FileReport {
    file: String,
    problems: Vec<String>,
    explained: Vec<String>,
}

fn counts_tsv() -> BTreeMap<String, BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("expected/COUNTS.tsv"))
        .expect("expected/COUNTS.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let values = header
                .iter()
                .zip(&cols)
                .skip(1)
                .filter_map(|(h, v)| Some((h.to_string(), v.parse().ok()?)))
                .collect();
            (cols[0].to_owned(), values)
        })
        .collect()
}

fn check_file(log: &Path, counts: Option<&BTreeMap<String, u64>>) -> FileReport {
    let file = log.file_name().unwrap().to_string_lossy().into_owned();
    let short = file.trim_end_matches(".log");
    let expected = Path::new(CORPUS).join("expected");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let log_bytes = read(log.to_path_buf());
    let raw = read(expected.join(format!("{short}.ausearch-raw.txt")));
    let interpreted = read(expected.join(format!("{short}.ausearch-interpreted.txt")));
    let mut report = FileReport {
        file: file.clone(),
        problems: Vec::new(),
        explained: Vec::new(),
    };

    let (events, _errors) = parse_log(&log_bytes);
    let (expected_events, expected_errors) = parse_log(&raw);
    if !expected_errors.is_empty() {
        report.problems.push(format!(
            "ausearch --raw output has unparsable lines: {expected_errors:?}"
        ));
    }

    // 1 and 2: records and events.
    let ours = rows(&events);
    let theirs = rows(&expected_events);
    let our_events = goguard_events(&events);
    let their_events = ausearch_events(&interpreted);
    let mut diffs = Vec::new();
    let (g_only, a_only) = multiset_diff(&ours, &theirs);
    let interpreted_ids: Vec<(Option<String>, u64)> = our_events
        .iter()
        .filter(|(_, i)| *i)
        .map(|(e, _)| (e.node.clone(), e.serial))
        .collect();
    for (side, list) in [(Side::GoguardOnly, g_only), (Side::AusearchOnly, a_only)] {
        for r in list {
            diffs.push(Diff {
                level: Level::Record,
                side,
                interpreted: interpreted_ids.contains(&(r.node.clone(), r.serial)),
                node: r.node.clone(),
                serial: r.serial,
                detail: format!("{r:?}"),
            });
        }
    }
    let our_event_rows: Vec<EventRow> = our_events.iter().map(|(e, _)| e.clone()).collect();
    let (g_only, a_only) = multiset_diff(&our_event_rows, &their_events);
    for (side, list) in [(Side::GoguardOnly, g_only), (Side::AusearchOnly, a_only)] {
        for e in list {
            let interpreted =
                side == Side::GoguardOnly && our_events.iter().any(|(o, i)| *i && *o == e);
            diffs.push(Diff {
                level: Level::Event,
                side,
                node: e.node.clone(),
                serial: e.serial,
                interpreted,
                detail: format!("{e:?}"),
            });
        }
    }
    let allowances = allowed(&file);
    for d in &diffs {
        match allowances.iter().find(|a| a.covers(d)) {
            Some(a) => report.explained.push(format!(
                "{:?} {:?} {}: {}",
                d.level, d.side, d.detail, a.reason
            )),
            None => report.problems.push(format!(
                "unexplained difference {:?} {:?}: {}",
                d.level, d.side, d.detail
            )),
        }
    }
    for a in &allowances {
        if !diffs.iter().any(|d| a.covers(d)) {
            report
                .problems
                .push(format!("listed difference no longer occurs: {a:?}"));
        }
    }
    // The collapsed interpreted event holds exactly the AVC records goguard spread over many.
    if allowances
        .iter()
        .any(|a| a.which == Which::EveryInterpretedEvent)
    {
        let ours: usize = our_events.iter().map(|(e, _)| e.avc_records).sum();
        let theirs: usize = their_events.iter().map(|e| e.avc_records).sum();
        if ours != theirs {
            report.problems.push(format!("interpreted input: goguard has {ours} AVC records, ausearch's collapsed event {theirs}"));
        }
    }

    // 3: malformed lines, by line number.
    let mut rejected = Vec::new();
    for (n, line) in goguard_audit::lines(&log_bytes).enumerate() {
        for r in parse_line(line) {
            if let Err(e) = r
                && !e.kind.is_ignorable()
            {
                rejected.push((n + 1, e.kind));
            }
        }
    }
    let listed = allowed_errors(&file);
    for (line, kind) in &rejected {
        match listed.iter().find(|a| a.line == *line && a.kind == *kind) {
            Some(a) => report
                .explained
                .push(format!("line {line} rejected ({kind}): {}", a.reason)),
            None => report
                .problems
                .push(format!("line {line} rejected: {kind}")),
        }
    }
    for a in &listed {
        if !rejected.contains(&(a.line, a.kind)) {
            report
                .problems
                .push(format!("listed rejection no longer occurs: {a:?}"));
        }
    }

    // COUNTS.tsv, against what both sides found.
    match counts {
        None => report.problems.push("no row in expected/COUNTS.tsv".into()),
        Some(c) => {
            let count_type =
                |rows: &[Row], t: &str| rows.iter().filter(|r| r.record_type == t).count() as u64;
            let all_records = |evs: &[AuditEvent], t: &str| {
                evs.iter()
                    .flat_map(|e| e.records())
                    .filter(|r| r.record_type == t)
                    .count() as u64
            };
            let checks = [
                (
                    "AVC_records_in_file(type=AVC msg=)",
                    all_records(&events, "AVC"),
                ),
                ("USER_AVC_in_file", all_records(&events, "USER_AVC")),
                ("ausearch_AVC_records", count_type(&theirs, "AVC")),
                ("ausearch_USER_AVC_records", count_type(&theirs, "USER_AVC")),
                ("ausearch_AVC_events", their_events.len() as u64),
            ];
            for (column, found) in checks {
                if c.get(column) != Some(&found) {
                    report.problems.push(format!(
                        "COUNTS.tsv {column} = {:?}, found {found}",
                        c.get(column)
                    ));
                }
            }
        }
    }
    report
}

#[test]
fn corpus_matches_ausearch_except_listed_differences() {
    let counts = counts_tsv();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("tests/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert_eq!(
        logs.len(),
        counts.len(),
        "every .log has a COUNTS.tsv row and back"
    );
    let mut failed = false;
    for log in &logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let report = check_file(log, counts.get(&name));
        eprintln!(
            "== {} : {} explained difference(s)",
            report.file,
            report.explained.len()
        );
        for e in report.explained.iter().take(3) {
            eprintln!("   ok  {e}");
        }
        if report.explained.len() > 3 {
            eprintln!("   ok  ... {} more", report.explained.len() - 3);
        }
        for p in &report.problems {
            eprintln!("   FAIL {p}");
            failed = true;
        }
    }
    assert!(
        !failed,
        "goguard differs from ausearch beyond the listed differences (see above)"
    );
}

#[test]
fn the_go_toolchain_denial_is_go_related() {
    let log = std::fs::read(Path::new(CORPUS).join("go-toolchain-avc-excerpts.log")).unwrap();
    let (events, errors) = parse_log(&log);
    assert_eq!(errors.len(), 1);
    let avcs: Vec<Avc> = events.iter().flat_map(AuditEvent::avcs).collect();
    assert_eq!(avcs.len(), 1);
    let avc = &avcs[0];
    assert_eq!(avc.comm.as_deref(), Some("go"));
    assert_eq!(avc.id.timestamp, "02/26/2019 14:54:48.647");
    assert_eq!(avc.id.serial, 503);
    let no_roots: &[&str] = &[];
    assert!(GoTools::default().is_go_related(avc, no_roots));
    let json = serde_json::to_value(avc.to_json_record(true)).unwrap();
    assert_eq!(json["type"], "AVC");
    assert_eq!(json["permissions"], serde_json::json!(["unlink"]));
    assert_eq!(json["permissive"], true);
}

#[test]
fn no_other_corpus_denial_is_go_related() {
    // The corpus's only Go-toolchain denial is the one above; nothing else may match
    // (substring matching, as `ausearch -c go` does, would hit `cgo`-like names).
    let tools = GoTools::default();
    let no_roots: &[&str] = &[];
    for entry in std::fs::read_dir(CORPUS).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log")
            || path
                .file_name()
                .is_some_and(|n| n == "go-toolchain-avc-excerpts.log")
        {
            continue;
        }
        let (events, _) = parse_log(&std::fs::read(&path).unwrap());
        for avc in events.iter().flat_map(AuditEvent::avcs) {
            assert!(
                !tools.is_go_related(&avc, no_roots),
                "{}: {} comm={:?} exe={:?}",
                path.display(),
                avc.id,
                avc.comm,
                avc.exe
            );
        }
    }
}

/// Records handed out by an event are rebuilt from the parts their first parse found, not
/// parsed again: they must equal a fresh parse of their bytes, on every corpus log.
#[test]
fn stored_records_equal_a_fresh_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let (events, _) = parse_log(&std::fs::read(&path).unwrap());
        for e in &events {
            for r in e.records() {
                let mut again = parse_line(r.raw).next().unwrap().unwrap();
                again.node = r.node;
                assert_eq!(r, again, "{}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked} records");
}
