//! Events: the records that share one `(node, time stamp, serial)`, assembled from lines
//! that may arrive interleaved, and handed out once complete.
//!
//! An event is complete when
//! - its `EOE` record arrives (the kernel ends every multi-record event with one);
//! - it is a single-record user-space event (`USER_AVC`, `USER_LOGIN`, `SERVICE_START`...):
//!   those never get an `EOE`, so they are complete at once;
//! - the **log clock** has moved on: a record stamped more than `timeout` after the event
//!   arrives. This is what completes events while a backlog is read faster than real time,
//!   and it is what `ausearch` does;
//! - the **wall clock** has moved on: `timeout` has passed (by the caller's `now`) since the
//!   event's first record arrived. This completes the last events of a quiet live log; the
//!   daemon calls [`EventAssembler::flush_expired`] on a timer for that;
//! - more than `max_pending` events are pending: the oldest is completed (`Evicted`, counted).
//!
//! Not used: "the serial is far behind newer ones". Serials are per node and restart at boot,
//! and the log clock already completes an event once newer records are `timeout` later.
//!
//! Grouping is by key only, so the odd corpus case of one key reused by two unrelated events
//! (setroubleshoot's hand-assembled logs) merges them while both are pending; once the first
//! is complete, a later record with the same key starts a new event. `EOE` records complete
//! an event but are not stored in it.
//!
//! Invariants: no clocks are read here (time comes in as `now`), no I/O, memory is bounded by
//! `max_pending` events of at most `max_event_bytes` each (plus a small buffer pool), and the
//! hot path does one hash look-up and one copy per kept record; an event handed out gets an
//! exact-size copy of its records while its working buffers go back to the pool.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ParseError;
use crate::record::{EventTime, Format, Record, RecordClass, parse_line, reparse};

/// Where one kept record and the parts its first parse found lie in its event's buffer, so
/// handing the record out again parses nothing.
#[derive(Debug, Clone, Copy)]
struct Span {
    raw: (u32, u32),
    record_type: (u32, u32),
    timestamp: (u32, u32),
    body: (u32, u32),
    enrichment: Option<(u32, u32)>,
    format: Format,
    class: RecordClass,
    /// False when a part could not be located inside `raw` (never seen): the record is
    /// parsed again from `raw` instead.
    located: bool,
}

impl Span {
    /// The record, borrowed from `buf`; `node`, `time` and `serial` are the event's (equal
    /// for all its records: they are its key).
    fn record<'a>(
        &self,
        buf: &'a [u8],
        node: Option<&'a [u8]>,
        time: EventTime,
        serial: u64,
    ) -> Option<Record<'a>> {
        let part = |(start, end): (u32, u32)| buf.get(start as usize..end as usize);
        let raw = part(self.raw)?;
        if !self.located {
            return reparse(raw, node);
        }
        Some(Record {
            node,
            record_type: std::str::from_utf8(part(self.record_type)?).ok()?,
            timestamp: part(self.timestamp)?,
            time,
            serial,
            format: self.format,
            body: part(self.body)?,
            enrichment: match self.enrichment {
                Some(e) => Some(part(e)?),
                None => None,
            },
            raw,
            class: self.class,
        })
    }
}

/// The identity of an event: equal ids mean the records belong together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The `node=` name, if the records had one (as text; invalid UTF-8 replaced).
    pub node: Option<String>,
    /// The time stamp exactly as written in the log: `1700000000.123`, or
    /// `08/13/2025 15:10:41.085` for `ausearch -i` input.
    pub timestamp: String,
    /// The time stamp as numbers (for `ausearch -i` input: the date read as UTC).
    pub time: EventTime,
    pub serial: u64,
}

impl EventId {
    /// The time stamp as seconds since the epoch.
    pub fn secs_f64(&self) -> f64 {
        self.time.as_secs_f64()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "node={node} ")?;
        }
        write!(f, "audit({}:{})", self.timestamp, self.serial)
    }
}

/// Why an event was considered complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    /// Its `EOE` record arrived.
    Eoe,
    /// A single-record user-space event (`USER_AVC`, ...), complete on arrival.
    Standalone,
    /// `timeout` passed on the caller's clock since its first record.
    Timeout,
    /// A record stamped more than `timeout` later arrived.
    LogClock,
    /// Pushed out because more than `max_pending` events were pending.
    Evicted,
    /// [`EventAssembler::flush_all`] (end of input), or the node table was full.
    Flushed,
}

/// A complete event: its id and its records, owned.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: EventId,
    pub completion: Completion,
    /// True when records were dropped because the event outgrew `max_event_bytes`.
    pub truncated: bool,
    /// The records' bytes (`Record::raw` of each), back to back.
    buf: Vec<u8>,
    /// Where each record (and its parsed parts) lies in `buf`, in arrival order.
    spans: Vec<Span>,
    /// True when a stored record is an `AVC` or `USER_AVC` (set while assembling, so
    /// [`has_avc`](Self::has_avc) does not parse the records again).
    has_avc: bool,
}

impl AuditEvent {
    /// The records, in arrival order, borrowed from the stored bytes (not parsed again: the
    /// parts the first parse found are stored with them).
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        let node = self.id.node.as_deref().map(str::as_bytes);
        let (time, serial) = (self.id.time, self.id.serial);
        self.spans
            .iter()
            .filter_map(move |s| s.record(&self.buf, node, time, serial))
    }

    /// Number of stored records.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no record is stored (never the case for events the assembler emits).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The format of the event's first record.
    pub fn format(&self) -> Format {
        self.records().next().map_or(Format::Raw, |r| r.format)
    }

    /// True when the event holds an `AVC` or `USER_AVC` record. Constant time: events
    /// without one can be skipped before anything is parsed again.
    pub fn has_avc(&self) -> bool {
        self.has_avc
    }
}

/// Which records the assembler keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Every record of every event (for `explain` and tests).
    All,
    /// Only events with an `AVC`/`USER_AVC` record, and of those only the records an [`Avc`]
    /// draws on (`AVC`, `USER_AVC`, `SYSCALL`, `CWD`, `PATH`, `AVC_PATH`, `PROCTITLE`).
    /// What the daemon wants: other events are never copied or handed out.
    ///
    /// [`Avc`]: crate::Avc
    AvcEvents,
    /// Events are assembled, completed, evicted and truncated exactly as with
    /// [`All`](Self::All) (so counts and hand-out order are the same), but only the events
    /// with an `AVC`/`USER_AVC` record are handed out, holding only the records an [`Avc`]
    /// draws on; the others are counted in `events_discarded` without being copied. What a
    /// streaming reader of a whole log wants (`goguardctl explain`): every event is
    /// `events_emitted + events_discarded`, every record of them
    /// [`AssemblerStats::event_records`].
    ///
    /// [`Avc`]: crate::Avc
    AvcMaterial,
}

/// Limits and policy of an [`EventAssembler`].
#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    /// How long an event may wait for more records, on the log clock and on the wall clock.
    pub timeout: Duration,
    /// At most this many events are pending; beyond it the oldest is completed.
    pub max_pending: usize,
    /// Records that would grow one event beyond this many bytes are dropped (its first
    /// record is always kept) and the event is marked `truncated`.
    pub max_event_bytes: usize,
    pub retention: Retention,
}

impl AssemblerConfig {
    /// The defaults: `max_pending` 4096, `max_event_bytes` 1 MiB, [`Retention::All`].
    pub fn new(timeout: Duration) -> AssemblerConfig {
        AssemblerConfig {
            timeout,
            max_pending: 4096,
            max_event_bytes: 1 << 20,
            retention: Retention::All,
        }
    }
}

/// Counters for metrics. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    pub lines: u64,
    /// Records parsed (a line can hold two).
    pub records: u64,
    /// Blank lines and `ausearch` separators, skipped without an error.
    pub ignored_lines: u64,
    /// Lines returned as [`ParseError`]s.
    pub errors: u64,
    /// Events handed out.
    pub events_emitted: u64,
    /// Complete events dropped by [`Retention::AvcEvents`] because they hold no AVC.
    pub events_discarded: u64,
    /// Events completed early because `max_pending` was reached.
    pub events_evicted: u64,
    /// Records dropped because their event outgrew `max_event_bytes`.
    pub records_dropped: u64,
    /// Records that belong to an event (`EOE` and dropped records not included): with
    /// [`Retention::All`] and [`Retention::AvcMaterial`], the sum of every event's
    /// `len()` had every record been kept.
    pub event_records: u64,
}

/// What one call handed out: complete events and rejected lines.
#[derive(Debug, Default)]
pub struct Output {
    pub events: Vec<AuditEvent>,
    pub errors: Vec<ParseError>,
}

/// Distinct node names remembered at once; past this the assembler flushes and forgets.
const MAX_NODES: usize = 4096;
/// Spare event buffers kept for reuse, and the largest buffer worth keeping.
const POOL_SIZE: usize = 64;
const POOL_MAX_BYTES: usize = 64 * 1024;

/// Groups records into events by `(node, time stamp, serial)`.
///
/// Feed it lines with [`push_line`](Self::push_line); call
/// [`flush_expired`](Self::flush_expired) on a timer and [`flush_all`](Self::flush_all) at
/// the end of input. `now` is any monotonic clock the caller chooses (e.g. the elapsed time
/// since the daemon started); offline callers may pass `Duration::ZERO` every time and rely
/// on the log clock.
#[derive(Debug)]
pub struct EventAssembler {
    config: AssemblerConfig,
    /// Pending events by key.
    pending: HashMap<Key, Pending, BuildHasherDefault<KeyHasher>>,
    /// Pending events in arrival order (wall-clock expiry, eviction), with what the test
    /// needs, so the hot path checks the oldest one without a hash look-up. Entries of
    /// events completed otherwise go stale and are skipped (`seq` differs or the key is gone).
    order: VecDeque<OrderEntry>,
    /// Pending events by event time, earliest first (log-clock expiry; a log's time can go
    /// backwards, so arrival order is not enough). Stale entries as in `order`.
    by_time: BinaryHeap<Reverse<(u64, u64, Key)>>,
    next_seq: u64,
    /// Node names seen, interned: index + 1 is the node id in keys (0 = no node).
    node_ids: HashMap<Box<[u8]>, u32>,
    node_names: Vec<(Box<[u8]>, Arc<str>)>,
    last_node: u32,
    /// Buffers of discarded events, reused for new ones.
    pool: Vec<EventBuffers>,
    timeout_ms: u64,
    stats: AssemblerStats,
}

/// An event's record bytes and the spans of its records in them.
type EventBuffers = (Vec<u8>, Vec<Span>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    node: u32,
    millis: u32,
    secs: u64,
    serial: u64,
}

#[derive(Debug, Clone, Copy)]
struct OrderEntry {
    key: Key,
    seq: u64,
    first_seen: Duration,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    node: Option<Arc<str>>,
    time: EventTime,
    serial: u64,
    /// Where the time stamp text lies in `buf` (inside the first record).
    timestamp: (u32, u32),
    buf: Vec<u8>,
    spans: Vec<Span>,
    /// An AVC record arrived (decides [`Retention::AvcEvents`]).
    has_avc: bool,
    /// An AVC record is stored (one dropped by `max_event_bytes` is not).
    stored_avc: bool,
    truncated: bool,
    /// The bytes the event's records take, stored or not: under
    /// [`Retention::AvcMaterial`] `max_event_bytes` applies to this, so truncation is the
    /// same as with [`Retention::All`].
    logical_len: usize,
}

/// A multiply-rotate hasher for the all-integer `Key` (serials are kernel-assigned, so
/// there is no adversary to defend against with SipHash).
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) fn is_avc_type(record_type: &str) -> bool {
    record_type == "AVC" || record_type == "USER_AVC"
}

impl EventAssembler {
    /// An assembler with the default limits and [`Retention::All`].
    pub fn new(timeout: Duration) -> EventAssembler {
        EventAssembler::with_config(AssemblerConfig::new(timeout))
    }

    pub fn with_config(config: AssemblerConfig) -> EventAssembler {
        let timeout_ms = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
        EventAssembler {
            config,
            pending: HashMap::default(),
            order: VecDeque::new(),
            by_time: BinaryHeap::new(),
            next_seq: 0,
            node_ids: HashMap::new(),
            node_names: Vec::new(),
            last_node: 0,
            pool: Vec::new(),
            timeout_ms,
            stats: AssemblerStats::default(),
        }
    }

    pub fn config(&self) -> &AssemblerConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Number of events waiting for more records.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one line (its `\n`/`\r\n` may be included). Returns the events this completed
    /// and the line's error, if it was malformed. Blank lines and `ausearch` separators are
    /// skipped silently.
    pub fn push_line(&mut self, line: &[u8], now: Duration) -> Output {
        let mut out = Output::default();
        self.push_line_into(line, now, &mut out);
        out
    }

    /// [`push_line`](Self::push_line) appending to an existing [`Output`], for callers that
    /// batch many lines.
    pub fn push_line_into(&mut self, line: &[u8], now: Duration, out: &mut Output) {
        self.stats.lines += 1;
        for item in parse_line(line) {
            match item {
                Ok(record) => self.push_record(&record, now, out),
                Err(e) if e.kind.is_ignorable() => self.stats.ignored_lines += 1,
                Err(e) => {
                    self.stats.errors += 1;
                    out.errors.push(e);
                }
            }
        }
    }

    /// Feeds one parsed record.
    pub fn push_record(&mut self, record: &Record<'_>, now: Duration, out: &mut Output) {
        self.stats.records += 1;
        let time_ms = record.time.as_millis();
        self.expire(now, Some(time_ms), out);
        let node = self.intern(record.node, out);
        let key = Key {
            node,
            millis: record.time.millis,
            secs: record.time.secs,
            serial: record.serial,
        };
        let class = record.class;
        if class == RecordClass::Eoe {
            if let Some(p) = self.pending.remove(&key) {
                self.complete(p, Completion::Eoe, out);
            }
            return;
        }
        let is_avc = class.is_avc();
        let retention = self.config.retention;
        let track_all = retention != Retention::AvcEvents;
        // Whether this record's bytes are kept in its event.
        let store = match retention {
            Retention::All => true,
            Retention::AvcEvents | Retention::AvcMaterial => {
                is_avc || class == RecordClass::AvcMaterial
            }
        };
        if class.is_standalone() && !self.pending.contains_key(&key) {
            if track_all || is_avc {
                let p = self.new_pending(record, node, store);
                self.complete(p, Completion::Standalone, out);
            } else {
                self.stats.events_discarded += 1;
            }
            return;
        }
        if !track_all && !store {
            return;
        }
        let max_bytes = self.config.max_event_bytes;
        if let Some(p) = self.pending.get_mut(&key) {
            let len = match retention {
                Retention::AvcMaterial => p.logical_len,
                _ => p.buf.len(),
            };
            if len + record.raw.len() > max_bytes {
                p.truncated = true;
                self.stats.records_dropped += 1;
            } else {
                self.stats.event_records += 1;
                p.logical_len += record.raw.len();
                if store {
                    push_record(&mut p.buf, &mut p.spans, record);
                    p.stored_avc |= is_avc;
                }
            }
            p.has_avc |= is_avc;
            return;
        }
        let p = self.new_pending(record, node, store);
        self.order.push_back(OrderEntry {
            key,
            seq: p.seq,
            first_seen: now,
        });
        self.by_time.push(Reverse((time_ms, p.seq, key)));
        self.pending.insert(key, p);
        if self.pending.len() > self.config.max_pending {
            self.evict_oldest(out);
        }
        let limit = 2 * self.config.max_pending + 64;
        if self.order.len() > limit || self.by_time.len() > limit {
            self.compact();
        }
    }

    /// Completes the events whose wall-clock `timeout` has passed by `now`.
    pub fn flush_expired(&mut self, now: Duration) -> Vec<AuditEvent> {
        let mut out = Output::default();
        self.expire(now, None, &mut out);
        out.events
    }

    /// Completes every pending event, oldest first (end of input, shutdown).
    pub fn flush_all(&mut self) -> Vec<AuditEvent> {
        let mut out = Output::default();
        self.flush_into(&mut out);
        out.events
    }

    fn flush_into(&mut self, out: &mut Output) {
        while let Some(entry) = self.order.pop_front() {
            if let Some(p) = self.take_live(entry.key, entry.seq) {
                self.complete(p, Completion::Flushed, out);
            }
        }
        self.by_time.clear();
        // Every pending event has an order entry; this only guards the invariant.
        let rest: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        for p in rest {
            self.complete(p, Completion::Flushed, out);
        }
    }

    /// Removes and returns the pending event an order entry stands for, unless stale.
    fn take_live(&mut self, key: Key, seq: u64) -> Option<Pending> {
        match self.pending.get(&key) {
            Some(p) if p.seq == seq => self.pending.remove(&key),
            _ => None,
        }
    }

    fn expire(&mut self, now: Duration, record_time_ms: Option<u64>, out: &mut Output) {
        // Log clock: every event stamped more than `timeout` before this record.
        if let Some(t) = record_time_ms {
            while let Some(&Reverse((time_ms, seq, key))) = self.by_time.peek() {
                if t <= time_ms.saturating_add(self.timeout_ms) {
                    break;
                }
                self.by_time.pop();
                if let Some(p) = self.take_live(key, seq) {
                    self.complete(p, Completion::LogClock, out);
                }
            }
        }
        // Wall clock: events that arrived `timeout` or more before `now`.
        while let Some(&front) = self.order.front() {
            let waited = now.checked_sub(front.first_seen);
            if waited.is_none_or(|w| w < self.config.timeout) {
                break;
            }
            self.order.pop_front();
            if let Some(p) = self.take_live(front.key, front.seq) {
                self.complete(p, Completion::Timeout, out);
            }
        }
    }

    fn evict_oldest(&mut self, out: &mut Output) {
        while let Some(entry) = self.order.pop_front() {
            if let Some(p) = self.take_live(entry.key, entry.seq) {
                self.stats.events_evicted += 1;
                self.complete(p, Completion::Evicted, out);
                return;
            }
        }
    }

    /// Drops the stale entries of `order` and `by_time`.
    fn compact(&mut self) {
        let pending = &self.pending;
        let live = |key: &Key, seq: u64| pending.get(key).is_some_and(|p| p.seq == seq);
        self.order.retain(|e| live(&e.key, e.seq));
        self.by_time
            .retain(|Reverse((_, seq, key))| live(key, *seq));
    }

    fn intern(&mut self, node: Option<&[u8]>, out: &mut Output) -> u32 {
        let Some(node) = node else { return 0 };
        if self.last_node != 0
            && let Some((bytes, _)) = self.node_names.get(self.last_node as usize - 1)
            && **bytes == *node
        {
            return self.last_node;
        }
        if let Some(&id) = self.node_ids.get(node) {
            self.last_node = id;
            return id;
        }
        if self.node_names.len() >= MAX_NODES {
            // Pending keys refer to node ids: complete them before forgetting the names.
            self.flush_into(out);
            self.node_ids.clear();
            self.node_names.clear();
        }
        let id = self.node_names.len() as u32 + 1;
        let name: Arc<str> = Arc::from(String::from_utf8_lossy(node).as_ref());
        self.node_names.push((node.into(), name));
        self.node_ids.insert(node.into(), id);
        self.last_node = id;
        id
    }

    /// A pending event started by `record`; `store`: keep the record's bytes (else only its
    /// time stamp text is kept, to name the event).
    fn new_pending(&mut self, record: &Record<'_>, node: u32, store: bool) -> Pending {
        let (mut buf, mut spans) = self
            .pool
            .pop()
            .unwrap_or_else(|| (Vec::with_capacity(2048), Vec::with_capacity(8)));
        self.stats.event_records += 1;
        let base = buf.len();
        let (ts_start, ts_end) = if store {
            push_record(&mut buf, &mut spans, record);
            // The time stamp text is inside `raw`; remember where, to name the event later.
            let offset =
                (record.timestamp.as_ptr() as usize).wrapping_sub(record.raw.as_ptr() as usize);
            let ts_start = if offset <= record.raw.len() {
                base + offset
            } else {
                base
            };
            (ts_start, (ts_start + record.timestamp.len()).min(buf.len()))
        } else {
            // Not a record: the time stamp's bytes before the first stored record, outside
            // every span.
            buf.extend_from_slice(record.timestamp);
            (base, buf.len())
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        Pending {
            seq,
            node: (node != 0)
                .then(|| {
                    self.node_names
                        .get(node as usize - 1)
                        .map(|(_, n)| n.clone())
                })
                .flatten(),
            time: record.time,
            serial: record.serial,
            timestamp: (ts_start as u32, ts_end as u32),
            buf,
            spans,
            has_avc: record.class.is_avc(),
            stored_avc: store && record.class.is_avc(),
            truncated: false,
            logical_len: record.raw.len(),
        }
    }

    fn complete(&mut self, p: Pending, completion: Completion, out: &mut Output) {
        if self.config.retention != Retention::All && !p.has_avc {
            self.stats.events_discarded += 1;
            self.recycle(p.buf, p.spans);
            return;
        }
        self.stats.events_emitted += 1;
        let (ts_start, ts_end) = (p.timestamp.0 as usize, p.timestamp.1 as usize);
        let timestamp = p
            .buf
            .get(ts_start..ts_end)
            .map(|t| match std::str::from_utf8(t) {
                Ok(t) => t.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            })
            .unwrap_or_default();
        // The event gets exact-size copies; the working buffers go back to the pool, so a
        // steady stream of events costs two small allocations each, not two growing ones.
        let buf = p.buf.as_slice().to_vec();
        let spans = p.spans.as_slice().to_vec();
        out.events.push(AuditEvent {
            id: EventId {
                node: p.node.map(|n| n.to_string()),
                timestamp,
                time: p.time,
                serial: p.serial,
            },
            completion,
            truncated: p.truncated,
            buf,
            spans,
            has_avc: p.stored_avc,
        });
        self.recycle(p.buf, p.spans);
    }

    fn recycle(&mut self, mut buf: Vec<u8>, mut spans: Vec<Span>) {
        if self.pool.len() < POOL_SIZE && buf.capacity() <= POOL_MAX_BYTES {
            buf.clear();
            spans.clear();
            self.pool.push((buf, spans));
        }
    }
}

/// Appends `record`'s bytes to `buf` and its span (with its parsed parts) to `spans`.
fn push_record(buf: &mut Vec<u8>, spans: &mut Vec<Span>, record: &Record<'_>) {
    let base = buf.len();
    let raw = record.raw;
    buf.extend_from_slice(raw);
    // Offsets fit u32: an event never exceeds max_event_bytes plus one line, and lines are
    // bounded by the reader; saturate rather than wrap if a caller feeds a 4 GiB line.
    let to32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    // Where `part` (a slice of `raw`) lies in `buf`; an empty part anywhere will do.
    let at = |part: &[u8]| {
        let offset = (part.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
        if part.is_empty() {
            Some((to32(base), to32(base)))
        } else if offset <= raw.len() && part.len() <= raw.len() - offset {
            Some((to32(base + offset), to32(base + offset + part.len())))
        } else {
            None
        }
    };
    // Known type names are static strings, not slices of the line: `raw` starts with
    // `type=NAME`.
    let name = record.record_type.as_bytes();
    let record_type = (raw.starts_with(b"type=") && raw.get(5..5 + name.len()) == Some(name))
        .then(|| (to32(base + 5), to32(base + 5 + name.len())));
    let (timestamp, body) = (at(record.timestamp), at(record.body));
    let enrichment = record.enrichment.map(at);
    let located = record_type.is_some()
        && timestamp.is_some()
        && body.is_some()
        && enrichment.is_none_or(|e| e.is_some());
    let none = (to32(base), to32(base));
    let span = Span {
        raw: (to32(base), to32(buf.len())),
        record_type: record_type.unwrap_or(none),
        timestamp: timestamp.unwrap_or(none),
        body: body.unwrap_or(none),
        enrichment: enrichment.map(|e| e.unwrap_or(none)),
        format: record.format,
        class: record.class,
        located,
    };
    spans.push(span);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(2);

    fn push_all(asm: &mut EventAssembler, lines: &[&[u8]], now: Duration) -> Output {
        let mut out = Output::default();
        for line in lines {
            asm.push_line_into(line, now, &mut out);
        }
        out
    }

    fn types(ev: &AuditEvent) -> Vec<String> {
        ev.records().map(|r| r.record_type.to_owned()).collect()
    }

    #[test]
    fn eoe_completes_and_is_not_stored() {
        let mut asm = EventAssembler::new(T);
        let out = push_all(
            &mut asm,
            &[
                b"type=AVC msg=audit(1700000000.123:10): avc:  denied  { write } for  pid=1 comm=\"go\"\n",
                b"type=SYSCALL msg=audit(1700000000.123:10): arch=c000003e syscall=257 success=no exit=-13 pid=1\n",
                b"type=CWD msg=audit(1700000000.123:10): cwd=\"/home/a\"\n",
            ],
            Duration::ZERO,
        );
        assert!(out.events.is_empty());
        assert_eq!(asm.pending_len(), 1);
        let out = asm.push_line(b"type=EOE msg=audit(1700000000.123:10): \n", Duration::ZERO);
        assert_eq!(out.events.len(), 1);
        let ev = &out.events[0];
        assert_eq!(ev.completion, Completion::Eoe);
        assert_eq!(ev.id.timestamp, "1700000000.123");
        assert_eq!(ev.id.serial, 10);
        assert_eq!(ev.id.node, None);
        assert_eq!(ev.id.to_string(), "audit(1700000000.123:10)");
        assert_eq!(types(ev), ["AVC", "SYSCALL", "CWD"]);
        assert!(ev.has_avc());
        assert_eq!(asm.pending_len(), 0);
    }

    #[test]
    fn interleaved_events_and_node_keys() {
        let mut asm = EventAssembler::new(T);
        let out = push_all(
            &mut asm,
            &[
                b"node=a type=SYSCALL msg=audit(1.000:5): pid=1",
                b"node=b type=SYSCALL msg=audit(1.000:5): pid=2",
                b"type=SYSCALL msg=audit(1.000:5): pid=3",
                b"node=a type=PROCTITLE msg=audit(1.000:5): proctitle=\"x\"",
                b"node=b type=EOE msg=audit(1.000:5): ",
            ],
            Duration::ZERO,
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].id.node.as_deref(), Some("b"));
        let rest = asm.flush_all();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].id.node.as_deref(), Some("a"));
        assert_eq!(types(&rest[0]), ["SYSCALL", "PROCTITLE"]);
        assert_eq!(rest[0].records().next().unwrap().node, Some(&b"a"[..]));
        assert_eq!(rest[1].id.node, None);
        assert!(rest.iter().all(|e| e.completion == Completion::Flushed));
    }

    #[test]
    fn log_clock_and_wall_clock_timeouts() {
        let mut asm = EventAssembler::new(T);
        let out = asm.push_line(b"type=SYSCALL msg=audit(100.000:1): pid=1", Duration::ZERO);
        assert!(out.events.is_empty());
        // 2 s later on the log clock is not yet "more than" the timeout.
        let out = asm.push_line(b"type=SYSCALL msg=audit(102.000:2): pid=1", Duration::ZERO);
        assert!(out.events.is_empty());
        let out = asm.push_line(b"type=SYSCALL msg=audit(102.001:3): pid=1", Duration::ZERO);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].id.serial, 1);
        assert_eq!(out.events[0].completion, Completion::LogClock);
        // Wall clock: nothing before the timeout, both remaining after it.
        assert!(asm.flush_expired(Duration::from_millis(1999)).is_empty());
        let done = asm.flush_expired(Duration::from_secs(2));
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|e| e.completion == Completion::Timeout));
    }

    #[test]
    fn log_clock_copes_with_time_going_backwards() {
        // An older event behind a newer one in arrival order still expires on time.
        let mut asm = EventAssembler::new(T);
        let out = push_all(
            &mut asm,
            &[
                b"type=SYSCALL msg=audit(200.000:1): pid=1",
                b"type=SYSCALL msg=audit(100.000:2): pid=1",
                b"type=SYSCALL msg=audit(150.000:3): pid=1",
            ],
            Duration::ZERO,
        );
        let serials: Vec<u64> = out.events.iter().map(|e| e.id.serial).collect();
        assert_eq!(serials, [2]);
        assert_eq!(asm.pending_len(), 2);
    }

    #[test]
    fn standalone_user_records_complete_at_once() {
        let mut asm = EventAssembler::new(T);
        let out = asm.push_line(
            b"type=USER_AVC msg=audit(1.000:7): pid=854 uid=81 msg='avc:  denied  { send_msg } for scontext=a tcontext=b tclass=dbus permissive=0'",
            Duration::ZERO,
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].completion, Completion::Standalone);
        assert_eq!(asm.pending_len(), 0);
    }

    #[test]
    fn avc_retention_keeps_only_avc_events_and_their_material() {
        let mut config = AssemblerConfig::new(T);
        config.retention = Retention::AvcEvents;
        let mut asm = EventAssembler::with_config(config);
        let out = push_all(
            &mut asm,
            &[
                b"type=SYSCALL msg=audit(1.000:1): pid=1",
                b"type=EXECVE msg=audit(1.000:1): argc=1 a0=\"ls\"",
                b"type=EOE msg=audit(1.000:1): ",
                b"type=USER_LOGIN msg=audit(1.000:2): pid=1 msg='op=login'",
                b"type=AVC msg=audit(1.000:3): avc:  denied  { read } for  pid=1",
                b"type=EXECVE msg=audit(1.000:3): argc=1 a0=\"ls\"",
                b"type=SYSCALL msg=audit(1.000:3): pid=1",
                b"type=EOE msg=audit(1.000:3): ",
            ],
            Duration::ZERO,
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(types(&out.events[0]), ["AVC", "SYSCALL"]);
        assert_eq!(asm.stats().events_discarded, 2);
    }

    #[test]
    fn avc_material_retention_counts_and_orders_as_all() {
        // An AVC event opened by a record that is not kept (EXECVE), an event without an
        // AVC, a standalone user record, interleaving, and an event that outgrows the size
        // limit: the AVC events handed out and every count are those of `All`.
        let lines: &[&[u8]] = &[
            b"type=EXECVE msg=audit(1.000:1): argc=1 a0=\"ls\"",
            b"type=SYSCALL msg=audit(1.000:2): pid=2",
            b"type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=1 comm=\"go\" name=\"x\" scontext=a tcontext=b tclass=file",
            b"type=SYSCALL msg=audit(1.000:1): pid=1 comm=\"go\"",
            b"type=USER_LOGIN msg=audit(1.000:3): pid=1 msg='op=login'",
            b"type=EOE msg=audit(1.000:2): ",
            b"type=PATH msg=audit(1.000:4): name=\"/a\"",
            b"type=AVC msg=audit(1.000:4): avc:  denied  { write } for  pid=4 scontext=a tcontext=b tclass=dir",
            b"type=EXECVE msg=audit(1.000:4): argc=1 a0=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            b"type=CWD msg=audit(1.000:4): cwd=\"/\"",
            b"type=EOE msg=audit(1.000:1): ",
            b"type=AVC msg=audit(9.000:5): avc:  denied  { open } for  pid=5 scontext=a tcontext=b tclass=file",
        ];
        let run = |retention| {
            let mut config = AssemblerConfig::new(T);
            config.retention = retention;
            config.max_event_bytes = 250;
            let mut asm = EventAssembler::with_config(config);
            let mut out = push_all(&mut asm, lines, Duration::ZERO);
            out.events.extend(asm.flush_all());
            (out.events, asm.stats())
        };
        let (all, all_stats) = run(Retention::All);
        let (lean, lean_stats) = run(Retention::AvcMaterial);
        let with_avc: Vec<&AuditEvent> = all.iter().filter(|e| e.has_avc()).collect();
        assert_eq!(lean.len(), with_avc.len());
        for (l, a) in lean.iter().zip(&with_avc) {
            assert_eq!(l.id, a.id);
            assert_eq!((l.completion, l.truncated), (a.completion, a.truncated));
            assert_eq!(l.avcs(), a.avcs());
        }
        assert_eq!(lean[0].id.timestamp, "1.000");
        assert_eq!(types(&lean[0]), ["AVC", "SYSCALL"]);
        assert!(all.iter().any(|e| e.truncated));
        let records: usize = all.iter().map(AuditEvent::len).sum();
        assert_eq!(all_stats.event_records, records as u64);
        assert_eq!(lean_stats.event_records, records as u64);
        assert_eq!(lean_stats.records_dropped, all_stats.records_dropped);
        assert_eq!(
            lean_stats.events_emitted + lean_stats.events_discarded,
            all.len() as u64
        );
    }

    #[test]
    fn stored_records_keep_their_parsed_parts() {
        // Raw, node, enriched, `ausearch -i`, two records on one line, an unknown type.
        let log: &[u8] = b"node=h type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=1 comm=\"go\"\x1dUID=\"root\"\n\
type=SYSCALL msg=audit(1.000:2): pid=2 type=PATH msg=audit(1.000:2): name=\"/x\"\n\
type=AVC msg=audit(08/13/2025 15:10:41.085:3) : avc:  denied  { read } for pid=1 comm=go\n\
type=UNKNOWN[1334] msg=audit(1.000:4): x=1\n";
        let (events, errors) = crate::parse_log(log);
        assert!(errors.is_empty(), "{errors:?}");
        let spans: Vec<&Span> = events.iter().flat_map(|e| e.spans.iter()).collect();
        assert_eq!(spans.len(), 5);
        assert!(spans.iter().all(|s| s.located), "{spans:?}");
        for e in &events {
            for r in e.records() {
                assert_eq!(Some(r), reparse(r.raw, r.node));
            }
        }
    }

    #[test]
    fn bounded_pending_and_event_size() {
        let mut config = AssemblerConfig::new(T);
        config.max_pending = 2;
        config.max_event_bytes = 100;
        let mut asm = EventAssembler::with_config(config);
        let mut out = Output::default();
        for serial in 1..=3 {
            let line = format!("type=SYSCALL msg=audit(1.000:{serial}): pid=1");
            asm.push_line_into(line.as_bytes(), Duration::ZERO, &mut out);
        }
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].id.serial, 1);
        assert_eq!(out.events[0].completion, Completion::Evicted);
        assert_eq!(asm.pending_len(), 2);
        let big = format!("type=PATH msg=audit(1.000:3): name=\"{}\"", "x".repeat(80));
        asm.push_line_into(big.as_bytes(), Duration::ZERO, &mut out);
        let rest = asm.flush_all();
        let three = rest.iter().find(|e| e.id.serial == 3).unwrap();
        assert!(three.truncated);
        assert_eq!(three.len(), 1);
        assert_eq!(asm.stats().records_dropped, 1);
    }

    #[test]
    fn has_avc_counts_stored_records_only() {
        let mut config = AssemblerConfig::new(T);
        config.max_event_bytes = 60;
        let mut asm = EventAssembler::with_config(config);
        let mut out = Output::default();
        asm.push_line_into(
            b"type=SYSCALL msg=audit(1.000:1): pid=1",
            Duration::ZERO,
            &mut out,
        );
        // Too big to be kept: the event is truncated and holds no AVC record.
        asm.push_line_into(
            b"type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=1 comm=\"go\"",
            Duration::ZERO,
            &mut out,
        );
        asm.push_line_into(
            b"type=AVC msg=audit(1.000:2): avc:  denied  { read } for  pid=1",
            Duration::ZERO,
            &mut out,
        );
        let evs = asm.flush_all();
        assert!(evs[0].truncated && !evs[0].has_avc() && evs[0].avcs().is_empty());
        assert_eq!(
            evs[0].has_avc(),
            evs[0].records().any(|r| r.record_type == "AVC")
        );
        assert!(evs[1].has_avc());
        assert_eq!(evs[1].avcs().len(), 1);
    }

    #[test]
    fn errors_are_returned_and_decoration_skipped() {
        let mut asm = EventAssembler::new(T);
        let out = push_all(
            &mut asm,
            &[
                b"----",
                b"",
                b"time->Tue Nov  6 03:38:51 2018",
                b"garbage",
                b"type=AVC",
            ],
            Duration::ZERO,
        );
        assert_eq!(out.errors.len(), 2);
        assert_eq!(out.errors[0].bytes, b"garbage");
        let s = asm.stats();
        assert_eq!((s.lines, s.ignored_lines, s.errors), (5, 3, 2));
    }

    #[test]
    fn reused_key_after_completion_starts_a_new_event() {
        let mut asm = EventAssembler::new(T);
        let out = push_all(
            &mut asm,
            &[
                b"type=SYSCALL msg=audit(1.000:9): pid=1 comm=\"a\"",
                b"type=EOE msg=audit(1.000:9): ",
                b"type=SYSCALL msg=audit(1.000:9): pid=1 comm=\"b\"",
            ],
            Duration::ZERO,
        );
        assert_eq!(out.events.len(), 1);
        let rest = asm.flush_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, out.events[0].id);
    }
}
