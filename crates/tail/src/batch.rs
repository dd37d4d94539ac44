//! What one [`Follower::poll`](crate::Follower::poll) hands back: the complete [`Line`]s read,
//! the [`Event`]s noticed on the way, and the [`Cursor`] after them.
//!
//! A batch stores every line's bytes in one buffer that is reused from poll to poll (see
//! [`Follower::poll_into`](crate::Follower::poll_into)), so following a busy log allocates
//! nothing per line. A batch never holds a line that was not delivered in full, apart from the
//! one kind the follower flags itself: the unterminated tail of a file that rotated away.

use std::ops::Range;
use std::path::PathBuf;

use crate::cursor::{Cursor, FileId};

/// One line of the log, borrowed from its [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's bytes without the trailing `\n`. A `\r` before it is kept, and nothing is
    /// assumed about the encoding.
    pub bytes: &'a [u8],
    /// Offset of the line's first byte in `file`.
    pub start: u64,
    /// Offset just past the line's `\n` in `file` (past its last byte if `!terminated`).
    pub end: u64,
    /// The file the line was read from.
    pub file: FileId,
    /// `false` only for the last bytes of a file that was rotated away or replaced without a
    /// final `\n`: they will never be completed, so they are delivered as they are.
    pub terminated: bool,
}

/// Something the follower noticed that the daemon may want to log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `from` was read to its end and the follower went on to `to`, which was created after
    /// it (auditd's rename rotation; `to` may be a rotated sibling when several rotations
    /// happened between two polls).
    Rotated {
        /// The file just finished.
        from: FileId,
        /// The file now being read, from byte 0.
        to: FileId,
    },
    /// `file` became shorter than the position read so far (copytruncate, or a manual
    /// `> audit.log`): reading starts again at byte 0 of it. Lines written after the last
    /// poll and before the truncation can be lost.
    Truncated {
        /// The file that shrank.
        file: FileId,
        /// The position the follower had reached in it.
        at: u64,
    },
    /// The log's path does not exist (reported once until it comes back). Any file still open
    /// has been read to its end. Can be seen for an instant during a rotation, between the
    /// writer's rename and its create.
    Missing,
    /// The path exists again and the follower is reading `file` from byte 0 (this takes the
    /// place of `Rotated` for the switch that ends a `Missing`).
    Reappeared {
        /// The file now at the path.
        file: FileId,
    },
    /// The cursor given to [`Start::Resume`](crate::Start::Resume) points into a file that is
    /// neither at the path nor among its rotated siblings: lines logged between that cursor
    /// and the current file may be missing. Reading went on from byte 0 of the current file.
    CursorLost {
        /// The cursor that could not be followed.
        cursor: Cursor,
    },
    /// The log had been rotated while the follower was not running: the cursor's file was
    /// found at `path` and its unread tail is read first.
    ResumedFromRotated {
        /// Where the cursor's file was found.
        path: PathBuf,
        /// The cursor being resumed.
        cursor: Cursor,
    },
    /// The line starting at `start` in `file` is longer than the limit; its bytes are skipped
    /// up to and including its `\n` and it is not delivered.
    LineTooLong {
        /// The file holding the line.
        file: FileId,
        /// Offset of the line's first byte.
        start: u64,
    },
}

/// Where one line's bytes are in the batch's buffer, and where they came from.
#[derive(Debug, Clone)]
struct LineSpan {
    /// Range of the line's bytes in `Batch::data`.
    data: Range<usize>,
    start: u64,
    end: u64,
    file: FileId,
    terminated: bool,
}

/// The result of one poll: lines, events and the cursor after them.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The bytes of every line, back to back; reused across polls.
    data: Vec<u8>,
    /// One entry per line, in file order.
    spans: Vec<LineSpan>,
    /// Events in the order they happened relative to each other.
    events: Vec<Event>,
    /// Position after the last delivered line; `None` while no file has been opened yet.
    cursor: Option<Cursor>,
}

impl Batch {
    /// An empty batch, to be filled by [`Follower::poll_into`](crate::Follower::poll_into).
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The lines read, in log order (`lines().len()` counts them).
    pub fn lines(&self) -> impl ExactSizeIterator<Item = Line<'_>> + '_ {
        self.spans.iter().map(|s| Line {
            bytes: &self.data[s.data.clone()],
            start: s.start,
            end: s.end,
            file: s.file,
            terminated: s.terminated,
        })
    }

    /// True when the batch holds neither lines nor events.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.events.is_empty()
    }

    /// What happened while reading this batch.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Where to resume once every line of this batch has been handled: the file being read
    /// and the offset of the first line not delivered yet. `None` only while the log has
    /// never existed since the follower was opened without a cursor.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
        self.events.clear();
        self.cursor = None;
    }

    /// Appends a line made of `head` followed by `tail` (the part kept from earlier reads and
    /// the part just read).
    pub(crate) fn push_line(
        &mut self,
        head: &[u8],
        tail: &[u8],
        start: u64,
        end: u64,
        file: FileId,
        terminated: bool,
    ) {
        let from = self.data.len();
        self.data.extend_from_slice(head);
        self.data.extend_from_slice(tail);
        self.spans.push(LineSpan {
            data: from..self.data.len(),
            start,
            end,
            file,
            terminated,
        });
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        self.events.push(event);
    }

    pub(crate) fn set_cursor(&mut self, cursor: Option<Cursor>) {
        self.cursor = cursor;
    }
}
