//! `goguardctl explain [--all] [--json] FILE|-`: reads an audit log offline
//! with the daemon's own parser, like `sealert -a`, and needs no daemon.
//!
//! Default output groups the go-related denials (same contexts, class,
//! permissions, target and command) with counts and what caused each; `--json`
//! prints one JSON object per AVC/USER_AVC record. Exit codes: 0 when no
//! go-related denial was found, 1 when some were, 2 on an error.
//!
//! Streaming: the log is read in 1 MiB blocks and each line is parsed once by the
//! assembler ([`Retention::AvcMaterial`]: events are completed and counted exactly as when
//! every record is kept, but only AVC events are copied and handed out). `--json` writes each
//! record as soon as its event is complete, through a buffer, in completion order (today's
//! order); diagnoses are memoised per denial shape (`diagnosis_shape`: every field the
//! diagnosis reads) in a bounded map, policy verdicts per access. The text report groups
//! denials by [`DenialKey`] and needs the whole log before it can sort; it keeps at most
//! [`MAX_TEXT_GROUPS`] groups (the first distinct ones seen) and counts the denials of later
//! shapes without showing them (a line says so). Memory is constant in the log's size: the
//! read buffer (grown only for a longer line), the assembler's bounded pending events, the
//! bounded memo maps and the bounded group table.
//!
//! Each denial comes with goguard-diagnose's diagnosis. With `--policy PATH`
//! the binary policy is read here and handed to libsepol as bytes, so
//! booleans, constraints and missing rules are told apart (audit2why);
//! without it the diagnosis says it had no policy. Offline, no root, label or
//! owner facts are known: those come from the daemon (`denials --explain`).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use goguard_audit::{
    AssemblerConfig, AuditEvent, Avc, DEFAULT_TIMEOUT, DenialKey, EventAssembler, GoTools, Output,
    Retention,
};

use goguard_diagnose::{DiagnosisInput, NO_POLICY, Policy, PolicyVerdict};

use crate::denials::{DiagnosisJson, selinux_type};
use crate::render::{Style, Table, term_safe};
use crate::timefmt;

/// A binary policy given with `--policy`.
pub struct PolicyInUse {
    pub policy: Policy,
    pub path: PathBuf,
}

impl PolicyInUse {
    pub fn load(path: &Path) -> Result<PolicyInUse, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let policy = Policy::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PolicyInUse {
            policy,
            path: path.to_owned(),
        })
    }

    /// What `policy_source` says.
    pub fn source(&self) -> String {
        format!("policy {}", self.path.display())
    }
}

/// The diagnosis of one AVC from the record alone (plus the policy's verdict).
pub fn diagnosis_of(avc: &Avc, policy: Option<&PolicyInUse>) -> DiagnosisJson {
    let verdict = policy.and_then(|p| p.policy.verdict_for(avc));
    diagnosis_with(avc, verdict.as_ref(), policy)
}

fn diagnosis_with(
    avc: &Avc,
    verdict: Option<&PolicyVerdict>,
    policy: Option<&PolicyInUse>,
) -> DiagnosisJson {
    let d = goguard_diagnose::diagnose(&DiagnosisInput {
        verdict,
        ..DiagnosisInput::new(avc)
    });
    let source = match policy {
        Some(p) => p.source(),
        None => format!("no --policy given; {NO_POLICY}"),
    };
    DiagnosisJson::from_diagnosis(&d, &source)
}

pub fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

/// Distinct denial shapes the text report keeps (each with its key and first AVC, about
/// 2 KB); denials of shapes first seen after these are counted, not shown. A report of
/// more distinct denials than this is not read by a person; `--json` has every record.
pub const MAX_TEXT_GROUPS: usize = 4096;
/// Entries of each memo map (diagnoses, verdicts); a full map is emptied and refilled.
const MAX_MEMO: usize = 4096;
/// Read block; a longer line grows the buffer to hold it.
const READ_BLOCK: usize = 1 << 20;
/// Output is handed to the writer in blocks of about this size.
const WRITE_BLOCK: usize = 1 << 16;
/// Complete events per batch handed to a `--json` worker.
const BATCH: usize = 256;
/// At most this many `--json` workers (one per core up to it).
const MAX_WORKERS: usize = 4;

/// What to print.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Not only go-related denials.
    pub all: bool,
    pub json: bool,
    pub policy: Option<&'a PolicyInUse>,
    pub style: &'a Style,
}

/// The counts of one `explain` run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    /// Records that belong to events.
    pub records: u64,
    /// AVC/USER_AVC decisions.
    pub avcs: u64,
    pub malformed: u64,
    /// Go-related `denied` decisions (the exit code: 1 when any).
    pub go_related_denials: u64,
}

/// Why `explain` stopped early.
#[derive(Debug)]
pub enum ExplainError {
    /// The log could not be read.
    Read(std::io::Error),
    /// The output could not be written (a closed pipe included).
    Write(std::io::Error),
}

/// Reads the log from `input` and writes the report to `out`, streaming: see the module
/// doc. Returns the counts (the exit code comes from them).
pub fn explain<R: Read, W: Write>(
    input: R,
    tools: &GoTools,
    opts: Options<'_>,
    out: W,
) -> Result<Counts, ExplainError> {
    let workers = std::env::var("GOGUARD_EXPLAIN_WORKERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
        });
    explain_on(input, tools, opts, out, workers)
}

/// [`explain`] with `workers` threads for `--json` (1: all on this thread).
pub fn explain_on<R: Read, W: Write>(
    input: R,
    tools: &GoTools,
    opts: Options<'_>,
    out: W,
    workers: usize,
) -> Result<Counts, ExplainError> {
    if opts.json && workers > 1 {
        return explain_json_parallel(input, tools, opts, out, workers);
    }
    let mut run = Run::new(tools, opts, out);
    let mut assembler = assembler();
    let mut done = Output::default();
    let mut failed = None;
    for_each_line(input, |line| {
        assembler.push_line_into(line, Duration::ZERO, &mut done);
        done.errors.clear();
        if !done.events.is_empty()
            && let Err(e) = run.events(&mut done.events)
        {
            failed = Some(e);
        }
        failed.is_none()
    })
    .map_err(ExplainError::Read)?;
    if let Some(e) = failed {
        return Err(ExplainError::Write(e));
    }
    done.events.extend(assembler.flush_all());
    run.events(&mut done.events).map_err(ExplainError::Write)?;
    let stats = assembler.stats();
    run.counts.events = stats.events_emitted + stats.events_discarded;
    run.counts.records = stats.event_records;
    run.counts.malformed = stats.errors;
    run.finish().map_err(ExplainError::Write)
}

/// The assembler `explain` reads with: every event counted and completed as with
/// [`Retention::All`], only AVC events copied.
fn assembler() -> EventAssembler {
    let mut config = AssemblerConfig::new(DEFAULT_TIMEOUT);
    config.retention = Retention::AvcMaterial;
    EventAssembler::with_config(config)
}

/// `--json` with the AVCs built, diagnosed and printed on `workers` threads: this thread
/// reads and assembles, hands batches of [`BATCH`] complete events to the workers in turn
/// and writes their output back in batch order, so the output is the same as on one
/// thread. At most `2 × workers` batches are in flight (memory stays bounded); each worker
/// has its own memo maps.
fn explain_json_parallel<R: Read, W: Write>(
    input: R,
    tools: &GoTools,
    opts: Options<'_>,
    mut out: W,
    workers: usize,
) -> Result<Counts, ExplainError> {
    use std::sync::mpsc;
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(workers);
        let mut from_workers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Vec<AuditEvent>>(2);
            let (result_tx, result_rx) = mpsc::channel();
            scope.spawn(move || {
                let mut run = Run::new(tools, opts, std::io::sink());
                for batch in rx {
                    if result_tx.send(run.json_batch(batch)).is_err() {
                        break;
                    }
                }
            });
            to_workers.push(tx);
            from_workers.push(result_rx);
        }
        let mut counts = Counts::default();
        let (mut sent, mut received) = (0usize, 0usize);
        let mut write_error = None;
        // Writes the oldest batch's output (waits for it).
        let mut receive = |received: &mut usize, write_error: &mut Option<std::io::Error>| {
            let Ok((bytes, c)) = from_workers[*received % workers].recv() else {
                return;
            };
            *received += 1;
            counts.avcs += c.avcs;
            counts.go_related_denials += c.go_related_denials;
            if write_error.is_none()
                && let Err(e) = out.write_all(&bytes)
            {
                *write_error = Some(e);
            }
        };
        let send = |batch: Vec<AuditEvent>, sent: &mut usize| {
            // A worker only stops when its channel closes, which happens below, after this.
            let _ = to_workers[*sent % workers].send(batch);
            *sent += 1;
        };
        let mut assembler = assembler();
        let mut done = Output::default();
        let mut batch = Vec::with_capacity(BATCH);
        for_each_line(input, |line| {
            assembler.push_line_into(line, Duration::ZERO, &mut done);
            done.errors.clear();
            batch.append(&mut done.events);
            if batch.len() >= BATCH {
                if sent - received >= 2 * workers {
                    receive(&mut received, &mut write_error);
                }
                send(
                    std::mem::replace(&mut batch, Vec::with_capacity(BATCH)),
                    &mut sent,
                );
            }
            write_error.is_none()
        })
        .map_err(ExplainError::Read)?;
        batch.extend(assembler.flush_all());
        if write_error.is_none() && !batch.is_empty() {
            send(batch, &mut sent);
        }
        while received < sent && write_error.is_none() {
            receive(&mut received, &mut write_error);
        }
        drop(to_workers);
        if let Some(e) = write_error {
            return Err(ExplainError::Write(e));
        }
        out.flush().map_err(ExplainError::Write)?;
        let stats = assembler.stats();
        counts.events = stats.events_emitted + stats.events_discarded;
        counts.records = stats.event_records;
        counts.malformed = stats.errors;
        Ok(counts)
    })
}

/// Calls `each` with every line of `input` (split at `\n`, kept out of the line; a last
/// line without `\n` counts), as [`goguard_audit::lines`] would on the whole input.
/// `each` returns false to stop reading (the output is gone).
fn for_each_line<R: Read>(
    mut input: R,
    mut each: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BLOCK];
    let (mut start, mut end) = (0, 0);
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else {
                // One line longer than the buffer.
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match input.read(&mut buf[end..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let scan_from = end;
        end += n;
        if let Some(last) = buf[scan_from..end].iter().rposition(|&b| b == b'\n') {
            let complete = scan_from + last + 1;
            for line in goguard_audit::lines(&buf[start..complete]) {
                if !each(line) {
                    return Ok(());
                }
            }
            start = complete;
        }
    }
    if start < end {
        each(&buf[start..end]);
    }
    Ok(())
}

/// One run's state: counts, memo maps, groups (text), the output buffer.
struct Run<'a, W: Write> {
    tools: &'a GoTools,
    opts: Options<'a>,
    counts: Counts,
    /// Policy verdicts per access (scontext, tcontext, tclass, permissions).
    verdicts: HashMap<(String, String, String, String), Option<PolicyVerdict>>,
    /// `--json`: the diagnosis object, serialized, per shape ([`diagnosis_shape`]).
    diagnoses: FastMap<Box<[u8]>, Rc<[u8]>>,
    /// The shape of the AVC at hand.
    shape: Vec<u8>,
    /// Text: the groups kept, and what was not kept.
    groups: BTreeMap<DenialKey, Group>,
    denied: u64,
    unshown_denials: u64,
    /// Pending output.
    buf: Vec<u8>,
    out: W,
}

/// One group of the text report.
struct Group {
    first: Avc,
    count: usize,
    first_seen: f64,
    last_seen: f64,
    related: bool,
}

/// The shape of a denial as far as its diagnosis goes: every field of an [`Avc`] that
/// [`goguard_diagnose::diagnose`] reads when only the record is known (offline there are
/// no label, owner or root facts): decision, scontext, tcontext, tclass, permissions (in
/// order), comm, path, name, exe, and ino when there is no path. Two AVCs of the same
/// shape get the same diagnosis. Encoded as bytes (each field tagged and
/// length-prefixed), so a look-up hashes one slice and a miss stores one allocation.
fn diagnosis_shape(avc: &Avc, key: &mut Vec<u8>) {
    fn field(key: &mut Vec<u8>, v: Option<&[u8]>) {
        match v {
            None => key.push(0),
            Some(v) => {
                key.push(1);
                key.extend_from_slice(&(v.len() as u64).to_le_bytes());
                key.extend_from_slice(v);
            }
        }
    }
    use std::os::unix::ffi::OsStrExt;
    fn path(p: &Option<PathBuf>) -> Option<&[u8]> {
        p.as_deref().map(|p| p.as_os_str().as_bytes())
    }
    key.clear();
    key.push(u8::from(avc.is_denied()));
    field(key, avc.scontext.as_deref().map(str::as_bytes));
    field(key, avc.tcontext.as_deref().map(str::as_bytes));
    field(key, avc.tclass.as_deref().map(str::as_bytes));
    key.extend_from_slice(&(avc.permissions.len() as u64).to_le_bytes());
    for p in &avc.permissions {
        field(key, Some(p.as_bytes()));
    }
    field(key, avc.comm.as_deref().map(str::as_bytes));
    field(key, path(&avc.path));
    field(key, avc.name.as_deref().map(str::as_bytes));
    field(key, path(&avc.exe));
    let ino = avc.ino.as_deref().filter(|_| avc.path.is_none());
    field(key, ino.map(str::as_bytes));
}

/// FNV-1a over 8-byte words: the memo keys are our own encoding of log fields, so a
/// cheap hash will do (a crafted log can only slow its own report down).
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<WordHasher>>;

impl<'a, W: Write> Run<'a, W> {
    fn new(tools: &'a GoTools, opts: Options<'a>, out: W) -> Run<'a, W> {
        Run {
            tools,
            opts,
            counts: Counts::default(),
            verdicts: HashMap::new(),
            diagnoses: FastMap::default(),
            shape: Vec::with_capacity(512),
            groups: BTreeMap::new(),
            denied: 0,
            unshown_denials: 0,
            buf: Vec::with_capacity(2 * WRITE_BLOCK),
            out,
        }
    }

    /// Handles (and drains) complete events; writes out a full buffer.
    fn events(&mut self, events: &mut Vec<AuditEvent>) -> std::io::Result<()> {
        self.handle(events);
        if self.buf.len() >= WRITE_BLOCK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// `--json` on a worker thread: the output of `events` and the counts of its AVCs.
    fn json_batch(&mut self, mut events: Vec<AuditEvent>) -> (Vec<u8>, Counts) {
        self.handle(&mut events);
        // About 1.5 KB per record printed: sized so a batch's output rarely reallocates.
        let out = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH * 1536));
        (out, std::mem::take(&mut self.counts))
    }

    /// Counts the AVCs of `events` (drained) and prints (`--json`, into the buffer) or
    /// groups (text) those asked for.
    fn handle(&mut self, events: &mut Vec<AuditEvent>) {
        let no_roots: [&Path; 0] = [];
        for e in events.drain(..) {
            for avc in e.avcs() {
                self.counts.avcs += 1;
                let related = self.tools.is_go_related(&avc, &no_roots);
                if related && avc.is_denied() {
                    self.counts.go_related_denials += 1;
                }
                if !(related || self.opts.all) {
                    continue;
                }
                if self.opts.json {
                    self.json_record(&avc, related);
                } else if avc.is_denied() {
                    self.group(avc, related);
                }
            }
        }
    }

    fn group(&mut self, avc: Avc, related: bool) {
        self.denied += 1;
        let t = avc.id.secs_f64();
        let key = avc.dedup_key();
        if let Some(g) = self.groups.get_mut(&key) {
            g.count += 1;
            g.first_seen = g.first_seen.min(t);
            g.last_seen = g.last_seen.max(t);
        } else if self.groups.len() < MAX_TEXT_GROUPS {
            self.groups.insert(
                key,
                Group {
                    first: avc,
                    count: 1,
                    first_seen: t,
                    last_seen: t,
                    related,
                },
            );
        } else {
            self.unshown_denials += 1;
        }
    }

    fn verdict(&mut self, avc: &Avc) -> Option<PolicyVerdict> {
        let p = self.opts.policy?;
        if self.verdicts.len() >= MAX_MEMO {
            self.verdicts.clear();
        }
        self.verdicts
            .entry((
                avc.scontext.clone().unwrap_or_default(),
                avc.tcontext.clone().unwrap_or_default(),
                avc.tclass.clone().unwrap_or_default(),
                avc.permissions.join(" "),
            ))
            .or_insert_with(|| p.policy.verdict_for(avc))
            .clone()
    }

    /// The diagnosis object of `avc` as JSON (keys sorted, as before).
    fn diagnosis_json(&mut self, avc: &Avc) -> Rc<[u8]> {
        let mut shape = std::mem::take(&mut self.shape);
        diagnosis_shape(avc, &mut shape);
        if let Some(d) = self.diagnoses.get(shape.as_slice()) {
            let d = d.clone();
            self.shape = shape;
            return d;
        }
        let verdict = self.verdict(avc);
        let d = diagnosis_with(avc, verdict.as_ref(), self.opts.policy);
        let mut j = Vec::with_capacity(512);
        j.extend_from_slice(b"{\"auto_fixable\":");
        j.extend_from_slice(if d.auto_fixable { b"true" } else { b"false" });
        j.extend_from_slice(b",\"explanation\":");
        json_str(&mut j, &d.explanation);
        j.extend_from_slice(b",\"fixes\":[");
        for (i, f) in d.fixes.iter().enumerate() {
            if i > 0 {
                j.push(b',');
            }
            json_str(&mut j, f);
        }
        j.extend_from_slice(b"],\"kind\":");
        json_str(&mut j, &d.kind);
        j.extend_from_slice(b",\"policy_source\":");
        json_str(&mut j, &d.policy_source);
        j.extend_from_slice(b",\"summary\":");
        json_str(&mut j, &d.summary);
        j.push(b'}');
        let j: Rc<[u8]> = j.into();
        if self.diagnoses.len() >= MAX_MEMO {
            self.diagnoses.clear();
        }
        self.diagnoses.insert(shape.as_slice().into(), j.clone());
        self.shape = shape;
        j
    }

    /// One line: the [`goguard_audit::JsonRecord`] of `avc` plus its `diagnosis`, keys in
    /// sorted order, exactly as `render::json_line` of a `serde_json::Value` prints it.
    fn json_record(&mut self, avc: &Avc, related: bool) {
        let diagnosis = self.diagnosis_json(avc);
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"auid\":");
        json_num(b, avc.auid);
        b.extend_from_slice(b",\"comm\":");
        json_opt_str(b, avc.comm.as_deref());
        b.extend_from_slice(b",\"cwd\":");
        json_opt_path(b, avc.cwd.as_deref());
        b.extend_from_slice(b",\"decision\":");
        json_str(b, avc.decision.as_str());
        b.extend_from_slice(b",\"dev\":");
        json_opt_str(b, avc.dev.as_deref());
        b.extend_from_slice(b",\"diagnosis\":");
        b.extend_from_slice(&diagnosis);
        b.extend_from_slice(b",\"exe\":");
        json_opt_path(b, avc.exe.as_deref());
        b.extend_from_slice(b",\"exit\":");
        json_num(b, avc.exit);
        b.extend_from_slice(b",\"go_related\":");
        b.extend_from_slice(if related { b"true" } else { b"false" });
        b.extend_from_slice(b",\"ino\":");
        json_opt_str(b, avc.ino.as_deref());
        b.extend_from_slice(b",\"name\":");
        json_opt_str(b, avc.name.as_deref());
        b.extend_from_slice(b",\"node\":");
        json_opt_str(b, avc.id.node.as_deref());
        b.extend_from_slice(b",\"path\":");
        json_opt_path(b, avc.path.as_deref());
        b.extend_from_slice(b",\"permissions\":[");
        for (i, p) in avc.permissions.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            json_str(b, p);
        }
        b.extend_from_slice(b"],\"permissive\":");
        match avc.permissive {
            Some(true) => b.extend_from_slice(b"true"),
            Some(false) => b.extend_from_slice(b"false"),
            None => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(b",\"pid\":");
        json_num(b, avc.pid);
        b.extend_from_slice(b",\"proctitle\":");
        json_opt_str(b, avc.proctitle.as_deref());
        b.extend_from_slice(b",\"scontext\":");
        json_opt_str(b, avc.scontext.as_deref());
        b.extend_from_slice(b",\"serial\":");
        json_num(b, Some(avc.id.serial));
        b.extend_from_slice(b",\"success\":");
        match avc.success {
            Some(true) => b.extend_from_slice(b"true"),
            Some(false) => b.extend_from_slice(b"false"),
            None => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(b",\"syscall\":");
        json_opt_str(b, avc.syscall.as_deref());
        b.extend_from_slice(b",\"tclass\":");
        json_opt_str(b, avc.tclass.as_deref());
        b.extend_from_slice(b",\"tcontext\":");
        json_opt_str(b, avc.tcontext.as_deref());
        b.extend_from_slice(b",\"timestamp\":");
        json_str(b, &avc.id.timestamp);
        b.extend_from_slice(b",\"type\":");
        json_str(b, avc.kind.as_str());
        b.extend_from_slice(b",\"uid\":");
        json_num(b, avc.uid);
        b.extend_from_slice(b"}\n");
    }

    /// Writes what is left: the rest of the JSON, or the whole text report.
    fn finish(mut self) -> std::io::Result<Counts> {
        if !self.opts.json {
            self.write_text()?;
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.counts)
    }

    /// The text report: counts, then the groups, most frequent first (ties: latest first,
    /// then by key), written group by group.
    fn write_text(&mut self) -> std::io::Result<()> {
        let (all, policy, style) = (self.opts.all, self.opts.policy, self.opts.style);
        let c = &self.counts;
        let mut out = format!(
            "read {} events ({} records, {} AVC/USER_AVC, {} malformed lines skipped)\n",
            c.events, c.records, c.avcs, c.malformed
        );
        let what = if all { "denials" } else { "go-related denials" };
        if self.groups.is_empty() {
            out.push_str(&format!("no {what} found\n"));
            self.buf.extend_from_slice(out.as_bytes());
            return Ok(());
        }
        if self.unshown_denials == 0 {
            out.push_str(&format!(
                "{} {what}, {} distinct:\n\n",
                self.denied,
                self.groups.len()
            ));
        } else {
            out.push_str(&format!(
                "{} {what}, more than {} distinct (the first {} distinct shown; {} denials of \
                 later ones are counted, not shown: --json lists every record):\n\n",
                self.denied,
                self.groups.len(),
                self.groups.len(),
                self.unshown_denials
            ));
        }
        self.buf.extend_from_slice(out.as_bytes());
        let groups = std::mem::take(&mut self.groups);
        let mut ordered: Vec<&Group> = groups.values().collect();
        ordered.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.last_seen.total_cmp(&a.last_seen))
        });
        for g in ordered {
            out.clear();
            render_group(&mut out, g, policy, style);
            self.buf.extend_from_slice(out.as_bytes());
            if self.buf.len() >= WRITE_BLOCK {
                self.out.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }
}

fn render_group(out: &mut String, g: &Group, policy: Option<&PolicyInUse>, style: &Style) {
    let a = &g.first;
    let target = a
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| a.name.clone())
        .unwrap_or_else(|| "?".into());
    out.push_str(&format!(
        "{} {} {{ {} }} {} {}\n",
        style.bold(&format!("{}×", g.count)),
        style.warn(&term_safe(a.comm.as_deref().unwrap_or("?"))),
        term_safe(&a.permissions.join(" ")),
        term_safe(a.tclass.as_deref().unwrap_or("?")),
        term_safe(&target)
    ));
    let mut t = Table::new(&["", ""]);
    let mut field =
        |k: &str, v: String| t.row(vec![(format!("  {k}"), format!("  {k}")), (v.clone(), v)]);
    field("source", a.scontext.clone().unwrap_or_default());
    field("target", a.tcontext.clone().unwrap_or_default());
    if let Some(exe) = &a.exe {
        field("exe", exe.display().to_string());
    }
    field(
        "seen",
        format!(
            "{} .. {} UTC",
            timefmt::utc(g.first_seen),
            timefmt::utc(g.last_seen)
        ),
    );
    if !g.related {
        field("go", "not go-related (shown because of --all)".into());
    }
    field("cause", cause(a));
    let rendered = t.render(&Style { color: false });
    // Skip the empty header line of the two-column table.
    out.extend(rendered.lines().skip(1).map(|l| format!("{l}\n")));
    out.push_str("  diagnosis:\n");
    out.push_str(&diagnosis_of(a, policy).render("    ", style));
    out.push('\n');
}

/// `s` as a JSON string, as serde_json writes it followed by [`crate::render::json_safe`].
fn json_str(out: &mut Vec<u8>, s: &str) {
    let plain = !needs_json_escape(s.as_bytes());
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(crate::render::json_line(s).as_bytes());
    }
}

/// True when `s` holds a byte serde_json or `json_safe` would not copy as is: a control
/// (< 0x20), `"`, `\\`, DEL or any non-ASCII byte. Eight bytes at a time.
fn needs_json_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of each byte of the result set where the byte of `w` is zero.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let special = w & HIGH // non-ASCII
            | w.wrapping_sub(0x20 * ONES) & !w & HIGH // < 0x20 (w < 0x80 here)
            | zero(w ^ (b'"' as u64 * ONES))
            | zero(w ^ (b'\\' as u64 * ONES))
            | zero(w ^ (0x7f * ONES));
        if special != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A path as `to_string_lossy` shows it (what [`Avc::to_json_record`] does).
fn json_opt_path(out: &mut Vec<u8>, p: Option<&Path>) {
    match p {
        Some(p) => json_str(out, &p.to_string_lossy()),
        None => out.extend_from_slice(b"null"),
    }
}

fn json_num<N: std::fmt::Display>(out: &mut Vec<u8>, n: Option<N>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// A sentence saying what happened and what usually causes it. The full
/// diagnosis (booleans, constraints, relabel advice) comes with the policy
/// analysis; this names the facts in the record.
pub fn cause(avc: &Avc) -> String {
    let source = avc.scontext.as_deref().map(selinux_type).unwrap_or("?");
    let target = avc.tcontext.as_deref().map(selinux_type).unwrap_or("?");
    let class = avc.tclass.as_deref().unwrap_or("?");
    let comm = avc.comm.as_deref().unwrap_or("?");
    let mut s = format!(
        "{comm} running as {source} may not {} this {class} labeled {target}",
        avc.permissions.join("/")
    );
    if avc.permissive == Some(true) {
        s.push_str(" (permissive: logged, not blocked)");
    }
    let hint = match target {
        t if t.ends_with("tmp_t") => {
            Some("files moved from /tmp keep tmp labels; a relabel (restorecon) fixes them")
        }
        // The XDG cache type is cache_home_t on Fedora/RHEL, xdg_cache_t in
        // refpolicy (Debian): the same home cache.
        "cache_home_t" | "xdg_cache_t" | "user_home_t" | "home_root_t" | "user_home_dir_t"
            if source == "container_t" =>
        {
            Some(
                "a container build uses a home cache: mount it with :Z, or give the build its own cache",
            )
        }
        "cache_home_t" | "xdg_cache_t" | "user_home_t" if source != "unconfined_t" => Some(
            "a confined service writes to a home cache: point its GOCACHE elsewhere, or declare the cache a root with a label it may write",
        ),
        _ => None,
    };
    if let Some(h) = hint {
        s.push_str("; ");
        s.push_str(h);
    }
    s
}

#[cfg(test)]
mod tests {
    //! The streaming report against the whole-log implementation it replaced (kept here,
    //! unchanged, as the oracle): byte for byte, on the corpus and on awkward input.

    use std::collections::{BTreeMap, HashMap};
    use std::path::Path;

    use goguard_audit::{Avc, DenialKey, GoTools};
    use goguard_diagnose::PolicyVerdict;

    use super::*;

    /// Everything `explain` learned from one log (the old, whole-log shape).
    struct Explained {
        records: usize,
        events: usize,
        malformed: usize,
        avcs: Vec<(Avc, bool)>,
    }

    fn analyze(bytes: &[u8], tools: &GoTools) -> Explained {
        let (events, errors) = goguard_audit::parse_log(bytes);
        let no_roots: [&Path; 0] = [];
        let mut avcs = Vec::new();
        let mut records = 0;
        for e in &events {
            records += e.len();
            for avc in e.avcs() {
                let related = tools.is_go_related(&avc, &no_roots);
                avcs.push((avc, related));
            }
        }
        Explained {
            records,
            events: events.len(),
            malformed: errors.iter().filter(|e| !e.kind.is_ignorable()).count(),
            avcs,
        }
    }

    fn render_json(x: &Explained, all: bool, policy: Option<&PolicyInUse>) -> String {
        // A verdict flips every boolean: ask once per distinct access.
        let mut verdicts: HashMap<(String, String, String, String), Option<PolicyVerdict>> =
            HashMap::new();
        let mut out = String::new();
        for (avc, related) in &x.avcs {
            if *related || all {
                let verdict = policy.and_then(|p| {
                    verdicts
                        .entry((
                            avc.scontext.clone().unwrap_or_default(),
                            avc.tcontext.clone().unwrap_or_default(),
                            avc.tclass.clone().unwrap_or_default(),
                            avc.permissions.join(" "),
                        ))
                        .or_insert_with(|| p.policy.verdict_for(avc))
                        .clone()
                });
                let mut record =
                    serde_json::to_value(avc.to_json_record(*related)).expect("json record");
                if let Some(obj) = record.as_object_mut() {
                    obj.insert(
                        "diagnosis".into(),
                        serde_json::to_value(diagnosis_with(avc, verdict.as_ref(), policy))
                            .expect("json diagnosis"),
                    );
                }
                out.push_str(&crate::render::json_line(&record));
                out.push('\n');
            }
        }
        out
    }

    struct RefGroup<'a> {
        first: &'a Avc,
        count: usize,
        first_seen: f64,
        last_seen: f64,
        related: bool,
    }

    fn render_text(
        x: &Explained,
        all: bool,
        policy: Option<&PolicyInUse>,
        style: &Style,
    ) -> String {
        let mut groups: BTreeMap<DenialKey, RefGroup<'_>> = BTreeMap::new();
        let mut denied = 0;
        for (avc, related) in &x.avcs {
            if !avc.is_denied() || !(*related || all) {
                continue;
            }
            denied += 1;
            let t = avc.id.secs_f64();
            groups
                .entry(avc.dedup_key())
                .and_modify(|g| {
                    g.count += 1;
                    g.first_seen = g.first_seen.min(t);
                    g.last_seen = g.last_seen.max(t);
                })
                .or_insert(RefGroup {
                    first: avc,
                    count: 1,
                    first_seen: t,
                    last_seen: t,
                    related: *related,
                });
        }
        let mut out = format!(
            "read {} events ({} records, {} AVC/USER_AVC, {} malformed lines skipped)\n",
            x.events,
            x.records,
            x.avcs.len(),
            x.malformed
        );
        let what = if all { "denials" } else { "go-related denials" };
        if groups.is_empty() {
            out.push_str(&format!("no {what} found\n"));
            return out;
        }
        out.push_str(&format!("{denied} {what}, {} distinct:\n\n", groups.len()));
        let mut ordered: Vec<&RefGroup<'_>> = groups.values().collect();
        ordered.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.last_seen.total_cmp(&a.last_seen))
        });
        for g in ordered {
            let a = g.first;
            let target = a
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| a.name.clone())
                .unwrap_or_else(|| "?".into());
            out.push_str(&format!(
                "{} {} {{ {} }} {} {}\n",
                style.bold(&format!("{}×", g.count)),
                style.warn(&term_safe(a.comm.as_deref().unwrap_or("?"))),
                term_safe(&a.permissions.join(" ")),
                term_safe(a.tclass.as_deref().unwrap_or("?")),
                term_safe(&target)
            ));
            let mut t = Table::new(&["", ""]);
            let mut field = |k: &str, v: String| {
                t.row(vec![(format!("  {k}"), format!("  {k}")), (v.clone(), v)])
            };
            field("source", a.scontext.clone().unwrap_or_default());
            field("target", a.tcontext.clone().unwrap_or_default());
            if let Some(exe) = &a.exe {
                field("exe", exe.display().to_string());
            }
            field(
                "seen",
                format!(
                    "{} .. {} UTC",
                    timefmt::utc(g.first_seen),
                    timefmt::utc(g.last_seen)
                ),
            );
            if !g.related {
                field("go", "not go-related (shown because of --all)".into());
            }
            field("cause", cause(a));
            let rendered = t.render(&Style { color: false });
            // Skip the empty header line of the two-column table.
            out.extend(rendered.lines().skip(1).map(|l| format!("{l}\n")));
            out.push_str("  diagnosis:\n");
            out.push_str(&diagnosis_of(a, policy).render("    ", style));
            out.push('\n');
        }
        out
    }

    /// A reader handing out `step` bytes at a time, to cut lines anywhere.
    struct Trickle<'a> {
        rest: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.rest.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest = &self.rest[n..];
            Ok(n)
        }
    }

    fn streamed(
        log: &[u8],
        all: bool,
        json: bool,
        step: usize,
        workers: usize,
    ) -> (String, Counts) {
        let style = Style { color: false };
        let opts = Options {
            all,
            json,
            policy: None,
            style: &style,
        };
        let mut out = Vec::new();
        let input = Trickle { rest: log, step };
        let counts =
            explain_on(input, &GoTools::default(), opts, &mut out, workers).expect("explain");
        (String::from_utf8(out).expect("utf-8"), counts)
    }

    fn reference(log: &[u8], all: bool, json: bool) -> (String, usize) {
        let x = analyze(log, &GoTools::default());
        let text = if json {
            render_json(&x, all, None)
        } else {
            render_text(&x, all, None, &Style { color: false })
        };
        let go = x.avcs.iter().filter(|(a, r)| *r && a.is_denied()).count();
        (text, go)
    }

    fn assert_same(name: &str, log: &[u8]) {
        for (all, json) in [(false, false), (true, false), (false, true), (true, true)] {
            let (want, go) = reference(log, all, json);
            for (step, workers) in [(usize::MAX, 1), (4093, 1), (7, 1), (4093, 3)] {
                let (got, counts) = streamed(log, all, json, step, workers);
                assert!(
                    got == want,
                    "{name} all={all} json={json} step={step} workers={workers}:\n\
                     --- streamed\n{got}\n--- reference\n{want}"
                );
                assert_eq!(counts.go_related_denials, go as u64, "{name}");
            }
        }
    }

    #[test]
    fn json_escape_check_agrees_with_the_byte_rule() {
        let slow = |s: &[u8]| {
            s.iter()
                .any(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
        };
        for b in 0..=255u8 {
            for len in 1..=17 {
                for at in 0..len {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert_eq!(needs_json_escape(&s), slow(&s), "byte {b:#x} at {at}/{len}");
                }
            }
        }
        assert!(!needs_json_escape(b""));
    }

    #[test]
    fn streaming_report_equals_the_whole_log_report_on_the_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/audit/tests/corpus");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                assert_same(&path.display().to_string(), &std::fs::read(&path).unwrap());
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} corpus logs in {}", dir.display());
    }

    #[test]
    fn streaming_report_equals_the_whole_log_report_on_awkward_input() {
        let mut log = Vec::new();
        // Control, DEL, C1 and bidi characters (hex-encoded comm), a path that is not
        // UTF-8, quotes and backslashes, CRLF, malformed lines, a node, USER_AVC, granted.
        log.extend_from_slice(b"type=AVC msg=audit(1700000000.001:1): avc:  denied  { write } for  pid=7 comm=676F1B5B316D7F C280E280AE name=\"go-build\" dev=\"vda\" ino=5 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\r\n");
        log.extend_from_slice(b"type=SYSCALL msg=audit(1700000000.001:1): arch=c000003e syscall=257 success=no exit=-13 items=1 pid=7 uid=1000 auid=1000 comm=\"go\" exe=2F746D702FFF2F67\n");
        log.extend_from_slice(b"type=CWD msg=audit(1700000000.001:1): cwd=\"/home/a \\\"q\\\"\"\n");
        log.extend_from_slice(b"type=PATH msg=audit(1700000000.001:1): item=0 name=2F686F6D652F612F2E63616368652F676F2D6275696C642FFE inode=5\n");
        log.extend_from_slice(
            b"type=PROCTITLE msg=audit(1700000000.001:1): proctitle=676F006275696C64\n",
        );
        log.extend_from_slice(b"type=EOE msg=audit(1700000000.001:1): \n");
        log.extend_from_slice(b"garbage line\n\n----\n");
        log.extend_from_slice(b"node=h1 type=AVC msg=audit(1700000001.500:2): avc:  granted  { read } for  pid=8 comm=\"vet\" path=\"/tmp/go-build1/b001/x.test\" scontext=u:r:unconfined_t:s0 tcontext=u:object_r:user_tmp_t:s0 tclass=file\n");
        log.extend_from_slice(b"type=USER_AVC msg=audit(1700000002.000:3): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='avc:  denied  { status } for auid=n/a uid=0 gid=0 cmdline=\"\" scontext=system_u:system_r:init_t:s0 tcontext=system_u:system_r:init_t:s0 tclass=system exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'\n");
        log.extend_from_slice(
            b"type=AVC msg=audit(1700000003.000:4): avc:  denied  { } for broken\n",
        );
        for serial in 5..40u32 {
            log.extend_from_slice(format!("type=AVC msg=audit(1700000{:03}.000:{serial}): avc:  denied  {{ read }} for  pid=9 comm=\"compile\" name=\"{}\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file\n", 4 + serial / 3, serial % 4).as_bytes());
        }
        // A long line, longer than the read block, then a last line without a newline.
        log.extend_from_slice(b"type=PROCTITLE msg=audit(1700000100.000:90): proctitle=");
        log.extend(std::iter::repeat_n(b'A', READ_BLOCK + 100));
        log.extend_from_slice(b"\ntype=AVC msg=audit(1700000100.000:90): avc:  denied  { exec } for  pid=3 comm=\"go\" path=\"/home/b/.cache/go-build/aa\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file");
        assert_same("awkward", &log);
        assert_same("empty", b"");
    }

    #[test]
    fn cause_names_the_home_cache_by_either_policys_cache_type() {
        // RHEL's cache_home_t and refpolicy's xdg_cache_t are the same
        // ~/.cache: the same hint for both.
        for ty in ["cache_home_t", "xdg_cache_t"] {
            for (source, hint) in [
                ("container_t", "a container build uses a home cache"),
                ("httpd_t", "a confined service writes to a home cache"),
            ] {
                let line = format!(
                    "type=AVC msg=audit(1700000000.001:1): avc:  denied  {{ write }} for  pid=7 comm=\"go\" name=\"go-build\" dev=\"vda\" ino=5 scontext=system_u:system_r:{source}:s0 tcontext=unconfined_u:object_r:{ty}:s0 tclass=dir permissive=0\n"
                );
                let (events, _) = goguard_audit::parse_log(line.as_bytes());
                let avc = events[0].avcs().pop().expect("one AVC");
                let said = cause(&avc);
                assert!(said.contains(hint), "{ty} from {source}: {said}");
            }
        }
    }
}
