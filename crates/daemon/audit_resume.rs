//! Where the audit follower may safely resume after a crash, and which events
//! it must then not count again. Pure bookkeeping over line offsets and event
//! keys; no I/O.
//!
//! Events are assembled from several lines, and events can interleave, so the
//! end of the last line read is not a safe resume point while an event is
//! still incomplete: its first lines would be skipped and the event lost. The
//! resume offset is therefore the first line of the oldest incomplete event
//! (or the end of what was read, when none is pending). Events that completed
//! and were stored but begin at or after that offset will be read again on
//! resume; their keys travel with the cursor ("replay keys") so they are
//! recognised and not counted twice. Both are committed in the same
//! transaction as the denials, so after a kill -9 at any moment no event is
//! lost or counted twice.

use std::collections::HashMap;

/// An event's identity as text: `node:timestamp:serial` (node empty when the
/// log has none). It is also the `event_id` stored with each denial.
pub fn event_key(node: Option<&str>, timestamp: &str, serial: u64) -> String {
    format!("{}:{timestamp}:{serial}", node.unwrap_or(""))
}

/// The bookkeeping for one log file.
#[derive(Debug, Default)]
pub struct ResumePoint {
    /// Incomplete events: key → offset of their first line.
    pending: HashMap<String, u64>,
    /// Completed events (stored or deliberately skipped) whose first line is
    /// at or after the oldest pending first line: key → first offset.
    completed_since: HashMap<String, u64>,
    /// Events stored before a restart that will be read again: skip them.
    replay: HashMap<String, ()>,
    /// End of the last line read.
    end: u64,
}

/// What a completed event is, for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Completed {
    /// New: process and store it.
    Fresh,
    /// Already stored before the restart: skip it.
    Replayed,
}

impl ResumePoint {
    /// Starts at `offset` with the replay keys saved with the cursor.
    pub fn resume(offset: u64, replay_keys: impl IntoIterator<Item = String>) -> ResumePoint {
        ResumePoint {
            replay: replay_keys.into_iter().map(|k| (k, ())).collect(),
            end: offset,
            ..ResumePoint::default()
        }
    }

    /// A record of event `key` was read from the line at `start..end`.
    pub fn saw_record(&mut self, key: &str, start: u64, end: u64) {
        if !self.completed_since.contains_key(key) && !self.pending.contains_key(key) {
            self.pending.insert(key.to_owned(), start);
        }
        self.end = self.end.max(end);
    }

    /// A line without records (blank, malformed) ended at `end`.
    pub fn saw_line(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Event `key` is complete. Returns whether to process it.
    pub fn completed(&mut self, key: &str) -> Completed {
        let first = self.pending.remove(key).unwrap_or(self.end);
        self.completed_since.insert(key.to_owned(), first);
        if self.replay.remove(key).is_some() {
            Completed::Replayed
        } else {
            Completed::Fresh
        }
    }

    /// The file changed (rotation, truncation): offsets restart. The caller
    /// has flushed every pending event first.
    pub fn new_file(&mut self, offset: u64) {
        self.pending.clear();
        self.completed_since.clear();
        self.replay.clear();
        self.end = offset;
    }

    /// The offset to resume from and the keys to skip on replay, for the
    /// cursor committed now. Forgets completed events before that offset.
    pub fn checkpoint(&mut self) -> (u64, Vec<String>) {
        let offset = self.pending.values().copied().min().unwrap_or(self.end);
        self.completed_since.retain(|_, first| *first >= offset);
        let mut keys: Vec<String> = self.completed_since.keys().cloned().collect();
        keys.sort();
        (offset, keys)
    }

    /// Incomplete events right now.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nothing_pending_the_end_is_safe() {
        let mut r = ResumePoint::resume(0, []);
        r.saw_record("a", 0, 10);
        r.saw_record("a", 10, 20);
        assert_eq!(r.completed("a"), Completed::Fresh);
        assert_eq!(r.checkpoint(), (20, vec![]));
    }

    #[test]
    fn an_incomplete_event_holds_the_offset_and_later_ones_are_replay_keys() {
        let mut r = ResumePoint::resume(0, []);
        r.saw_record("slow", 0, 10); // begins, then waits
        r.saw_record("fast", 10, 20);
        assert_eq!(r.completed("fast"), Completed::Fresh);
        assert_eq!(r.checkpoint(), (0, vec!["fast".to_owned()]));
        // After a crash here: resume at 0, skipping "fast".
        let mut again = ResumePoint::resume(0, vec!["fast".to_owned()]);
        again.saw_record("slow", 0, 10);
        again.saw_record("fast", 10, 20);
        assert_eq!(again.completed("fast"), Completed::Replayed);
        again.saw_record("slow", 20, 30);
        assert_eq!(again.completed("slow"), Completed::Fresh);
        assert_eq!(again.checkpoint(), (30, vec![]));
    }

    #[test]
    fn replay_keys_survive_a_checkpoint_until_the_offset_passes_them() {
        let mut r = ResumePoint::resume(0, vec!["b".to_owned()]);
        r.saw_record("a", 0, 10);
        r.saw_record("b", 10, 20);
        assert_eq!(r.completed("b"), Completed::Replayed);
        // "a" is still pending: "b" must stay a replay key.
        assert_eq!(r.checkpoint(), (0, vec!["b".to_owned()]));
        r.saw_record("a", 20, 30);
        assert_eq!(r.completed("a"), Completed::Fresh);
        assert_eq!(r.checkpoint(), (30, vec![]));
    }

    #[test]
    fn keys_carry_the_node() {
        assert_eq!(
            event_key(Some("h1"), "1700000000.123", 7),
            "h1:1700000000.123:7"
        );
        assert_eq!(event_key(None, "1700000000.123", 7), ":1700000000.123:7");
    }
}
