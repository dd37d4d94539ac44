//! The repair journal's writer thread. Self-healing hands it the outcome of a
//! burst (the rows of the changes made, and the ids of the intents they settle,
//! see `ledger`) and goes on healing; rows are written in the order they were
//! handed over, whatever is waiting in one transaction. `flush` returns once
//! everything handed over before it is in the store (a denial is linked to
//! the repair that fixed it only then). It also checkpoints the store's WAL, at
//! most once a second, through its own connection: the store's commits never
//! checkpoint (`checkpoint_on_commit: false`), so no healing worker waits for
//! the fsync a checkpoint costs. Never changes a file.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use goguard_store::{JournalEntry, Store};

enum Message {
    Settle(Vec<i64>, Vec<JournalEntry>),
    Flush(mpsc::SyncSender<()>),
}

/// Hands journal rows to the writer thread. Dropping it ends the thread once
/// the rows already handed over are written.
pub struct JournalWriter {
    tx: mpsc::Sender<Message>,
}

impl JournalWriter {
    pub fn start(
        store: Arc<Mutex<Store>>,
        checkpointer: Option<goguard_store::Checkpointer>,
    ) -> std::io::Result<JournalWriter> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("goguard-journal".into())
            .spawn(move || write_loop(&store, checkpointer.as_ref(), &rx))?;
        Ok(JournalWriter { tx })
    }

    /// Queues the outcome of intents `ids` (the rows of the changes made) for the
    /// journal; returns at once. Should the process die before it is written, the intents
    /// stay pending and the next start settles them.
    pub fn settle(&self, ids: Vec<i64>, rows: Vec<JournalEntry>) {
        if ids.is_empty() && rows.is_empty() {
            return;
        }
        if self.tx.send(Message::Settle(ids, rows)).is_err() {
            tracing::warn!(
                "the journal writer has stopped: the next start records these changes from the files"
            );
        }
    }

    /// Blocks until every row queued before this call is written (or failed
    /// and logged). Call from a blocking thread.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }
}

/// How often the WAL is checkpointed, at most.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn write_loop(
    store: &Mutex<Store>,
    checkpointer: Option<&goguard_store::Checkpointer>,
    rx: &mpsc::Receiver<Message>,
) {
    let mut last_checkpoint = std::time::Instant::now();
    let mut checkpoint = || {
        if let Some(c) = checkpointer
            && last_checkpoint.elapsed() >= CHECKPOINT_EVERY
        {
            last_checkpoint = std::time::Instant::now();
            if let Err(e) = c.checkpoint() {
                tracing::debug!(error = %e, "WAL checkpoint");
            }
        }
    };
    loop {
        let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                checkpoint();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        let mut flushes = Vec::new();
        let mut take = |m: Message| match m {
            Message::Settle(i, r) => {
                ids.extend(i);
                rows.extend(r);
            }
            Message::Flush(done) => flushes.push(done),
        };
        take(first);
        // Whatever else is waiting goes into the same transaction.
        while let Ok(m) = rx.try_recv() {
            take(m);
        }
        if !ids.is_empty() || !rows.is_empty() {
            settle_now(store, &ids, &rows);
        }
        for done in flushes {
            let _ = done.send(());
        }
        checkpoint();
    }
}

/// Settles intents in the store; when that fails they stay pending and the next start
/// settles them from the files.
pub fn settle_now(store: &Mutex<Store>, ids: &[i64], rows: &[JournalEntry]) {
    if let Err(e) = store.lock().expect("store lock").settle_intents(ids, rows) {
        tracing::warn!(error = %e, intents = ids.len(),
            "could not record the outcome of changes; the next start records them from the files");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str) -> JournalEntry {
        JournalEntry {
            at: 1.0,
            path: path.into(),
            root: "/r".into(),
            kind: "chown".into(),
            before: "0:0".into(),
            after: "1000:1000".into(),
            cause: "self-heal: owner".into(),
            requester_uid: None,
            dry_run: false,
        }
    }

    #[test]
    fn rows_are_written_in_order_before_flush_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(dir.path().join("s.db")).unwrap()));
        let checkpointer = store.lock().unwrap().checkpointer().unwrap();
        let writer = JournalWriter::start(store.clone(), Some(checkpointer)).unwrap();
        for i in 0..50 {
            writer.settle(
                Vec::new(),
                vec![row(&format!("/r/a{i}")), row(&format!("/r/b{i}"))],
            );
        }
        writer.settle(Vec::new(), Vec::new());
        writer.flush();
        let listed = store.lock().unwrap().list_journal(1000).unwrap();
        assert_eq!(listed.len(), 100);
        // Newest first: the last row handed over has the highest id.
        assert_eq!(listed[0].entry.path, "/r/b49");
        assert_eq!(listed[99].entry.path, "/r/a0");
        assert!(listed.windows(2).all(|w| w[0].id > w[1].id));
    }
}
