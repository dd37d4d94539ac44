//! goguard-tail: follows one append-only log file (auditd's `/var/log/audit/audit.log`)
//! through rotation, truncation, deletion and daemon restarts, and delivers its complete lines
//! (raw bytes, with their byte positions) exactly once each, in order.
//!
//! It knows nothing about audit syntax: a line is bytes up to `\n`. It reads the configured
//! log and its rotated siblings and nothing else; it never writes, never follows a symlink
//! among the siblings, and never holds more than a bounded amount of the log in memory.
//!
//! # Use
//!
//! ```no_run
//! use goguard_tail::{Follower, Start};
//!
//! # fn main() -> std::io::Result<()> {
//! // `saved` comes from the daemon's store; `Start::End` on first run.
//! # let saved = None;
//! let start = saved.map(Start::Resume).unwrap_or(Start::End);
//! let mut follower = Follower::open("/var/log/audit/audit.log", start)?;
//! loop {
//!     let batch = follower.poll(1 << 20)?;
//!     for line in batch.lines() {
//!         // parse line.bytes; remember (line.file, line.end) if needed
//!     }
//!     for event in batch.events() {
//!         // log and count: Rotated, Truncated, Missing, Reappeared, CursorLost, ...
//!     }
//!     if let Some(cursor) = batch.cursor() {
//!         // store the cursor once the lines above are durably handled
//!     }
//!     # break;
//!     // then wait: `LogWatch::changed().await`, or sleep
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How it follows the log
//!
//! - The open file is identified by `(dev, ino)`. At its end, if the path names another file,
//!   the log was rotated: the old file is read to its end first, then the next file from
//!   byte 0. With auditd's names (`audit.log.N`), several rotations between two polls are
//!   followed file by file (`.2`, `.1`, then the path), so none is skipped. The switch to the
//!   file at the path waits until that file has data, so a writer still appending to the old
//!   file after the rename loses nothing.
//! - A partial last line is held until its `\n` arrives; if its file is rotated away it is
//!   delivered as is, with `terminated: false`.
//! - A file shorter than the position read (copytruncate) is read again from 0.
//! - A deleted file is read to its end; then the follower waits for the path to reappear.
//! - [`Start::Resume`] finds the cursor's file at the path or among the rotated siblings
//!   (like `ausearch --checkpoint`), reads its tail, then goes on through the newer files. If
//!   the file is gone, it starts at byte 0 of the current log and reports
//!   [`Event::CursorLost`].
//!
//! Not detected: a copytruncate after which the file grew back past the position read before
//! the next poll (the follower then reads from the middle of the new content); lines written
//! between the last poll and a copytruncate; rotated files deleted before they were read.
//!
//! # Layout
//!
//! - `cursor`: [`FileId`], [`Cursor`] and [`Start`], plain values.
//! - `batch`: [`Batch`], [`Line`] and [`Event`], what one poll returns.
//! - `lines`: cuts bytes into lines with offsets and enforces the line limit; no I/O.
//! - `rotation`: the configured path and its siblings; which file comes next.
//! - `follower`: [`Follower`], the synchronous core tying them together.
//! - `watch` (feature `watch`, on by default): [`LogWatch`], async wake-ups from inotify on
//!   the log's directory plus a fallback interval. The only part that needs tokio.
//! - `error`: path context for I/O errors.

mod batch;
mod cursor;
mod error;
mod follower;
mod lines;
mod rotation;
#[cfg(feature = "watch")]
mod watch;

pub use batch::{Batch, Event, Line};
pub use cursor::{Cursor, FileId, Start};
pub use follower::{Follower, Options};
#[cfg(feature = "watch")]
pub use watch::{LogWatch, Wake};
