//! The audit follower: reads the audit log as auditd writes it, assembles
//! events, keeps the go-related SELinux denials in the store and announces
//! them on the event stream. A thin adapter: the follower (goguard-tail), the
//! parser (goguard-audit) and the store (goguard-store) do the work; this file
//! wires them, keeps the resume point and reports metrics.
//!
//! Never loses or double-counts an event: each batch's denials and the cursor
//! (with its replay keys, see `audit_resume`) are committed in one store
//! transaction. A bad line is counted and logged (rate-limited), never fatal.
//! The follower only reads the configured log and its rotated siblings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goguard_audit::{AssemblerConfig, AuditEvent, Avc, EventAssembler, GoTools, Retention};
use goguard_store::{AuditCursor, DenialKey, DenialObservation, DenialRow, Store};
use goguard_tail::{Batch, Cursor, Follower, LogWatch, Start};
use tokio::sync::{broadcast, watch};

use crate::audit_resume::{Completed, ResumePoint, event_key};
use crate::daemon_state::{AUDIT, ComponentState, DaemonState};
use crate::diagnosis::DiagnosedDenial;
use crate::events::{DaemonEvent, Happened};
use crate::metrics::{DenialLabels, KindLabels};

/// What the follower needs from the configuration.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    pub log: PathBuf,
    pub go_tools: Vec<String>,
    pub event_timeout: Duration,
}

/// Bytes read per poll: large enough for throughput, small enough to commit
/// often while catching up.
const BATCH_BYTES: usize = 4 << 20;
/// How often pending events are checked for their timeout when the log is quiet.
const TICK: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true. Returns an error only when it cannot go on
/// (the store is unusable); the supervisor then stops the daemon.
pub async fn run(
    settings: AuditSettings,
    store: Arc<Mutex<Store>>,
    state: Arc<DaemonState>,
    events: broadcast::Sender<DaemonEvent>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let log_key = settings.log.display().to_string();
    let saved = {
        let (store, key) = (store.clone(), log_key.clone());
        tokio::task::spawn_blocking(move || store.lock().expect("store lock").load_cursor(&key))
            .await??
    };
    let (start, resume) = match &saved {
        Some(c) => (
            Start::Resume(Cursor {
                dev: c.dev,
                ino: c.ino,
                offset: c.offset,
            }),
            ResumePoint::resume(c.offset, c.replay_keys.clone()),
        ),
        // First run: read the whole current log, so denials from before
        // goguard was installed are known too.
        None => (Start::Beginning, ResumePoint::resume(0, [])),
    };
    let follower = Follower::open(&settings.log, start)?;
    let mut watch = LogWatch::new(&settings.log, Duration::from_secs(1));
    let pass = Pass {
        log_key,
        follower,
        // Every event is handed out (Retention::All), even those without an
        // AVC: the resume point must see each event complete, or the cursor
        // would stay at its first line.
        assembler: EventAssembler::with_config(AssemblerConfig {
            retention: Retention::All,
            ..AssemblerConfig::new(settings.event_timeout)
        }),
        resume,
        tools: GoTools::new(settings.go_tools.clone()),
        current_file: saved.as_ref().map(|c| (c.dev, c.ino)),
        last_event_id: saved.and_then(|c| c.last_event_id),
        started: Instant::now(),
        errors_logged: RateLimit::new(10, Duration::from_secs(60)),
        store,
        state: state.clone(),
        events,
        denied_targets: Vec::new(),
        resolver: crate::resolve::InodeResolver::default(),
        announcements: Vec::new(),
    };
    state.components.set(
        AUDIT,
        ComponentState::Running,
        format!("following {}", settings.log.display()),
    );
    let mut batch = Batch::new();
    let mut pass = Some(pass);
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        // Reading, parsing and the SQLite commit block: they run on a blocking thread,
        // never on an async worker (the pass and its batch go there and come back).
        let (moved, stepped, result) = {
            let mut p = pass.take().expect("the pass is back after each step");
            tokio::task::spawn_blocking(move || {
                let r = p.step(&mut batch);
                (p, batch, r)
            })
            .await
            .map_err(|e| anyhow::anyhow!("the audit pass panicked: {e}"))?
        };
        pass = Some(moved);
        batch = stepped;
        let pass = pass.as_mut().expect("just put back");
        let full = match result {
            Ok(full) => {
                // Announced before healing, so the diagnosis shows the
                // target as the process found it.
                let seen = std::mem::take(&mut pass.announcements);
                announce(&state, &pass.events, seen).await;
                let denied = std::mem::take(&mut pass.denied_targets);
                crate::healing::heal_denied_targets(&state, denied).await;
                full
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "audit: a pass failed; retrying");
                state
                    .components
                    .set(AUDIT, ComponentState::Failed, format!("{e:#} (retrying)"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        };
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One follower's working state.
struct Pass {
    log_key: String,
    follower: Follower,
    assembler: EventAssembler,
    resume: ResumePoint,
    tools: GoTools,
    current_file: Option<(u64, u64)>,
    last_event_id: Option<String>,
    started: Instant,
    errors_logged: RateLimit,
    store: Arc<Mutex<Store>>,
    state: Arc<DaemonState>,
    events: broadcast::Sender<DaemonEvent>,
    /// Stored denials with a full target path, for the healer.
    denied_targets: Vec<(i64, PathBuf)>,
    /// Finds the path of targets named only by inode (`name=`, `ino=`).
    resolver: crate::resolve::InodeResolver,
    /// Stored denials to announce on the event stream: (seen at, row, first time).
    announcements: Vec<(f64, DenialRow, bool)>,
}

impl Pass {
    /// Reads what is there, stores what completed, commits the cursor.
    /// Returns true when the batch was full (more is waiting).
    fn step(&mut self, batch: &mut Batch) -> anyhow::Result<bool> {
        self.follower.poll_into(batch, BATCH_BYTES)?;
        let state = self.state.clone();
        let m = &state.metrics.audit;
        for happening in batch.events() {
            let kind = log_event_kind(happening);
            m.log_events
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .inc();
            match happening {
                goguard_tail::Event::Missing | goguard_tail::Event::Reappeared { .. } => {
                    tracing::debug!(?happening, "audit log")
                }
                goguard_tail::Event::CursorLost { .. } => tracing::warn!(
                    ?happening,
                    "audit: the file read before the restart is gone; events written to it since may be missing"
                ),
                _ => tracing::info!(?happening, "audit log"),
            }
        }
        let now = self.started.elapsed();
        let mut observations = Vec::new();
        let mut bytes = 0u64;
        let mut lines = 0u64;
        for line in batch.lines() {
            let file = (line.file.dev, line.file.ino);
            if self.current_file != Some(file) {
                // A new file: every event of the old one is complete.
                let flushed = self.assembler.flush_all();
                self.observe(flushed, &mut observations);
                self.resume.new_file(line.start);
                self.current_file = Some(file);
            }
            lines += 1;
            bytes += line.end - line.start;
            let mut any = false;
            for record in goguard_audit::parse_line(line.bytes).flatten() {
                let node = record.node.map(String::from_utf8_lossy);
                let key = event_key(node.as_deref(), record.timestamp_str(), record.serial);
                self.resume.saw_record(&key, line.start, line.end);
                any = true;
            }
            if !any {
                self.resume.saw_line(line.end);
            }
            let out = self.assembler.push_line(line.bytes, now);
            for e in &out.errors {
                if !e.kind.is_ignorable() {
                    m.parse_errors
                        .get_or_create(&KindLabels {
                            kind: e.kind.as_str().to_owned(),
                        })
                        .inc();
                    if self.errors_logged.allow() {
                        tracing::warn!(offset = line.start, error = e.kind.as_str(), line = %escaped_line(&e.bytes), "audit: skipped a malformed line");
                    }
                }
            }
            self.observe(out.events, &mut observations);
        }
        let expired = self.assembler.flush_expired(now);
        self.observe(expired, &mut observations);
        let full = bytes as usize >= BATCH_BYTES / 2;
        m.lines.inc_by(lines);
        m.bytes.inc_by(bytes);
        self.commit(batch.cursor(), observations)?;
        m.pending_events.set(self.resume.pending_len() as i64);
        if let Some(c) = self.follower.cursor() {
            let size = std::fs::metadata(&self.log_key)
                .map(|md| md.len())
                .unwrap_or(c.offset);
            m.lag_bytes.set(size.saturating_sub(c.offset) as i64);
        }
        Ok(full)
    }

    /// Settles completed events in the resume bookkeeping, at once and in
    /// reading order, and turns the fresh ones into denial observations.
    fn observe(&mut self, completed: Vec<AuditEvent>, out: &mut Vec<(DenialObservation, Avc)>) {
        let state = self.state.clone();
        let m = &state.metrics.audit;
        for event in completed {
            let key = event_key(
                event.id.node.as_deref(),
                &event.id.timestamp,
                event.id.serial,
            );
            if self.resume.completed(&key) == Completed::Replayed {
                continue;
            }
            m.events.inc();
            m.last_event_time.set(event.id.secs_f64());
            self.last_event_id = Some(key.clone());
            if !event.has_avc() {
                continue;
            }
            let raw: Vec<String> = event
                .records()
                .map(|r| String::from_utf8_lossy(r.raw).into_owned())
                .collect();
            for mut avc in event.avcs() {
                m.avc_records.inc();
                if !avc.is_denied() {
                    continue;
                }
                let roots = self.root_paths();
                // Before relevance and dedup: a target found inside a root
                // makes the denial go-related and is stored by its path. The
                // walk is blocking (bounded, cached): the runtime moves its
                // other tasks off this worker meanwhile.
                let found = if crate::resolve::unresolved(&avc).is_some() && !roots.is_empty() {
                    let resolver = &mut self.resolver;
                    let by_command = self.tools.is_go_related(&avc, &[] as &[PathBuf]);
                    tokio::task::block_in_place(|| resolver.resolve(&avc, &roots, by_command))
                } else {
                    None
                };
                if let Some(path) = found {
                    avc.path = Some(path);
                }
                if !self.tools.is_go_related(&avc, &roots) {
                    continue;
                }
                let comm_label = self.comm_label(avc.comm.as_deref());
                for p in &avc.permissions {
                    m.denials
                        .get_or_create(&DenialLabels {
                            tclass: avc.tclass.clone().unwrap_or_default(),
                            permission: p.clone(),
                            comm: comm_label.clone(),
                        })
                        .inc();
                }
                let k = avc.dedup_key();
                let obs = DenialObservation {
                    key: DenialKey::new(
                        k.scontext,
                        k.tcontext,
                        k.tclass,
                        k.permissions,
                        k.target,
                        k.comm,
                    ),
                    seen_at: event.id.secs_f64(),
                    event_id: key.clone(),
                    raw: raw.join("\n"),
                    exe: avc.exe.as_ref().map(|p| p.display().to_string()),
                    go_related: true,
                };
                out.push((obs, avc));
            }
        }
    }

    /// The cache roots known now: a denial on a path inside one is
    /// go-related whatever the command.
    fn root_paths(&self) -> Vec<PathBuf> {
        let caches = self.state.caches.read().expect("caches lock");
        caches.roots.iter().map(|r| r.root.path.clone()).collect()
    }

    /// A bounded label for a command: the tool pattern it matched, or `other`.
    fn comm_label(&self, comm: Option<&str>) -> String {
        let Some(comm) = comm else {
            return "other".into();
        };
        if self.tools.is_tool_name(comm) {
            if self.tools.patterns().any(|p| p == comm) {
                return comm.to_owned();
            }
            if let Some(p) = self
                .tools
                .patterns()
                .find(|p| p.starts_with('*') && comm.ends_with(&p[1..]))
            {
                return p.to_owned();
            }
        }
        "other".into()
    }

    /// Stores the observations and the cursor in one transaction, then
    /// announces what was stored.
    fn commit(
        &mut self,
        position: Option<Cursor>,
        observations: Vec<(DenialObservation, Avc)>,
    ) -> anyhow::Result<()> {
        let Some((dev, ino)) = self.current_file.or(position.map(|c| (c.dev, c.ino))) else {
            return Ok(()); // nothing read yet (the log does not exist)
        };
        let (offset, replay_keys) = self.resume.checkpoint();
        let cursor = AuditCursor {
            log_path: self.log_key.clone(),
            dev,
            ino,
            offset,
            last_event_id: self.last_event_id.clone(),
            replay_keys,
        };
        let obs: Vec<DenialObservation> = observations.iter().map(|(o, _)| o.clone()).collect();
        let mut store = self.store.lock().expect("store lock");
        let recorded = match store.record_batch(&obs, &cursor) {
            Ok(r) => r,
            Err(e) => {
                self.state.metrics.audit.store_errors.inc();
                return Err(anyhow::Error::new(e).context("storing denials"));
            }
        };
        for (r, (_, avc)) in recorded.iter().zip(&observations) {
            if let Some(path) = avc.path.as_ref().filter(|p| p.is_absolute()) {
                self.denied_targets.push((r.id, path.clone()));
            }
        }
        if self.events.receiver_count() == 0 {
            return Ok(());
        }
        for (r, (o, _avc)) in recorded.iter().zip(&observations) {
            if let Some(row) = store.get_denial(r.id).ok().flatten() {
                self.announcements.push((o.seen_at, row, r.is_new));
            }
        }
        Ok(())
    }
}

/// Sends stored denials on the event stream, each with its diagnosis.
async fn announce(
    state: &Arc<DaemonState>,
    events: &broadcast::Sender<DaemonEvent>,
    seen: Vec<(f64, DenialRow, bool)>,
) {
    if seen.is_empty() {
        return;
    }
    let (meta, rows): (Vec<(f64, bool)>, Vec<DenialRow>) = seen
        .into_iter()
        .map(|(at, row, new)| ((at, new), row))
        .unzip();
    let denials = match state.diagnosed(rows.clone()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "audit: diagnosing denials failed; announced without");
            rows.into_iter()
                .map(|row| DiagnosedDenial {
                    row,
                    diagnosis: None,
                })
                .collect()
        }
    };
    for ((at_unix, first_time), denial) in meta.into_iter().zip(denials) {
        let _ = events.send(DaemonEvent {
            at_unix,
            what: Happened::Denial {
                denial: Box::new(denial),
                first_time,
            },
        });
    }
}

fn log_event_kind(e: &goguard_tail::Event) -> &'static str {
    match e {
        goguard_tail::Event::Rotated { .. } => "rotated",
        goguard_tail::Event::Truncated { .. } => "truncated",
        goguard_tail::Event::Missing => "missing",
        goguard_tail::Event::Reappeared { .. } => "reappeared",
        goguard_tail::Event::CursorLost { .. } => "cursor_lost",
        goguard_tail::Event::ResumedFromRotated { .. } => "resumed_from_rotated",
        goguard_tail::Event::LineTooLong { .. } => "line_too_long",
    }
}

/// At most `burst` log lines per `window`; the rest are counted, not logged.
struct RateLimit {
    burst: u32,
    window: Duration,
    window_start: Instant,
    used: u32,
    suppressed: u64,
}

/// Bytes of a malformed line shown in the log, at most.
const LOGGED_LINE_BYTES: usize = 200;

/// A malformed line as a log shows it: anything outside printable ASCII (control
/// characters, escape sequences, binary, UTF-8 alike) as `\xNN`, `\n`, `\t`,
/// bounded to [`LOGGED_LINE_BYTES`], so whoever can write the audit log cannot
/// write into goguardd's log or a terminal reading it.
fn escaped_line(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(LOGGED_LINE_BYTES)];
    let mut out = shown.escape_ascii().to_string();
    if shown.len() < bytes.len() {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

impl RateLimit {
    fn new(burst: u32, window: Duration) -> RateLimit {
        RateLimit {
            burst,
            window,
            window_start: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> bool {
        if self.window_start.elapsed() >= self.window {
            if self.suppressed > 0 {
                tracing::warn!(
                    count = self.suppressed,
                    "audit: more malformed lines were skipped without a log line"
                );
            }
            self.window_start = Instant::now();
            self.used = 0;
            self.suppressed = 0;
        }
        if self.used < self.burst {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_logged_escaped_and_bounded() {
        let line = b"type=AVC msg=\x1b[2J\x00\x07\xff\xfe\n\"x\"";
        let shown = escaped_line(line);
        assert_eq!(shown, r#"type=AVC msg=\x1b[2J\x00\x07\xff\xfe\n\"x\""#);
        assert!(shown.bytes().all(|b| (0x20..0x7f).contains(&b)), "{shown}");
        let long = vec![b'a'; 5000];
        let shown = escaped_line(&long);
        assert!(shown.ends_with("... (5000 bytes)"), "{shown}");
        assert_eq!(shown.len(), LOGGED_LINE_BYTES + "... (5000 bytes)".len());
    }
}
