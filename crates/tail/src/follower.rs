//! [`Follower`]: the synchronous core. Reads the log at one path through renames, truncation,
//! deletion and restarts, and hands out complete lines with their positions.
//!
//! Guarantees: every byte of every file in the rotation chain is delivered once, in order, as
//! part of exactly one line (or skipped as part of one over-long line, which is reported);
//! a line is delivered only when complete, except the unterminated tail of a file that can no
//! longer grow; memory is bounded by the read chunk, the line limit and `max_bytes`.
//! It never writes, and it opens nothing but the configured path and its rotated siblings.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::batch::{Batch, Event};
use crate::cursor::{Cursor, FileId, Start};
use crate::error::with_path;
use crate::lines::LineAssembler;
use crate::rotation::{self, LogPath, Next, Opened};

/// Size of one `pread`, and of the buffer reused for it.
const READ_CHUNK: usize = 64 * 1024;

/// Polls during which a renamed file that cannot be found among the siblings is waited for
/// before the follower goes on with the file at the path (it was moved out of sight).
const UNPLACED_POLLS: u32 = 3;

/// Files the follower may move through in one poll before returning, so that a directory
/// whose names keep changing cannot keep `poll` busy forever.
const MAX_SWITCHES_PER_POLL: usize = 64;

/// Tunables of a [`Follower`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest line delivered, in bytes, without its `\n`. Longer lines are skipped and
    /// reported as [`Event::LineTooLong`]. Default 1 MiB.
    max_line_len: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_line_len: 1024 * 1024,
        }
    }
}

impl Options {
    /// Sets the longest line delivered (at least 1 byte).
    pub fn max_line_len(mut self, bytes: usize) -> Options {
        self.max_line_len = bytes.max(1);
        self
    }
}

/// The file being read.
#[derive(Debug)]
struct Reading {
    /// Kept open across renames and unlinks, so its end can still be read.
    file: std::fs::File,
    id: FileId,
    /// Offset of the next byte to read (past any partial line held by the assembler).
    pos: u64,
}

/// Follows one append-only log file. See the crate documentation.
#[derive(Debug)]
pub struct Follower {
    log: LogPath,
    /// `None` until a file has been found at the path.
    current: Option<Reading>,
    assembler: LineAssembler,
    /// Reused `pread` buffer.
    chunk: Vec<u8>,
    /// `Event::Missing` was reported and `Event::Reappeared` not yet.
    missing_reported: bool,
    /// Events decided while opening, handed out by the first poll.
    deferred: Vec<Event>,
    /// Consecutive polls that ended with the current file renamed to a place not found.
    unplaced_polls: u32,
}

impl Follower {
    /// Starts following `path` with default [`Options`].
    ///
    /// A missing file is not an error: the follower waits for it and reads it from byte 0.
    /// Errors are I/O failures other than "not found" (permissions, not a regular file).
    pub fn open(path: impl Into<PathBuf>, start: Start) -> io::Result<Follower> {
        Follower::open_with(path, start, Options::default())
    }

    /// Starts following `path` with the given options.
    pub fn open_with(
        path: impl Into<PathBuf>,
        start: Start,
        options: Options,
    ) -> io::Result<Follower> {
        let mut follower = Follower {
            log: LogPath::new(path.into())?,
            current: None,
            assembler: LineAssembler::new(options.max_line_len),
            chunk: vec![0; READ_CHUNK],
            missing_reported: false,
            deferred: Vec::new(),
            unplaced_polls: 0,
        };
        match start {
            Start::Beginning => {
                if let Some(opened) = follower.log.open_path()? {
                    follower.read_from(opened, 0);
                }
            }
            Start::End => {
                if let Some(opened) = follower.log.open_path()? {
                    follower.start_at_end(opened, options.max_line_len)?;
                }
            }
            Start::Resume(cursor) => follower.resume(cursor)?,
        }
        Ok(follower)
    }

    /// The configured log path.
    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// Where to resume after every line delivered so far; `None` until a file was found.
    pub fn cursor(&self) -> Option<Cursor> {
        self.current
            .as_ref()
            .map(|r| Cursor::at(r.id, self.assembler.line_start()))
    }

    /// Reads what is available now, at most about `max_bytes` bytes, and returns the complete
    /// lines, the events and the cursor after them. Never blocks waiting for data.
    ///
    /// An error leaves the follower where it was: if lines or events were already collected,
    /// they are returned and the error shows again on the next call.
    pub fn poll(&mut self, max_bytes: usize) -> io::Result<Batch> {
        let mut batch = Batch::new();
        self.poll_into(&mut batch, max_bytes)?;
        Ok(batch)
    }

    /// Like [`poll`](Self::poll), reusing `batch`'s buffers (it is cleared first).
    pub fn poll_into(&mut self, batch: &mut Batch, max_bytes: usize) -> io::Result<()> {
        batch.clear();
        for event in self.deferred.drain(..) {
            batch.push_event(event);
        }
        let result = self.fill(batch, max_bytes.max(1));
        batch.set_cursor(self.cursor());
        match result {
            Err(e) if batch.is_empty() => Err(e),
            _ => Ok(()),
        }
    }

    fn fill(&mut self, out: &mut Batch, max_bytes: usize) -> io::Result<()> {
        let mut budget = max_bytes;
        let mut switches = 0;
        while budget > 0 && switches <= MAX_SWITCHES_PER_POLL {
            let Some(reading) = self.current.as_mut() else {
                match self.log.open_path()? {
                    Some(opened) => {
                        self.switch_to(opened, None, out);
                        switches += 1;
                        continue;
                    }
                    None => {
                        self.note_missing(out);
                        return Ok(());
                    }
                }
            };
            let n = read_at(
                reading,
                &mut self.chunk[..budget.min(READ_CHUNK)],
                self.log.path(),
            )?;
            if n > 0 {
                self.assembler
                    .feed(&self.chunk[..n], reading.pos, reading.id, out);
                reading.pos += n as u64;
                budget -= n;
                continue;
            }

            // At the end of the file. Did it shrink under us?
            let meta = reading
                .file
                .metadata()
                .map_err(|e| with_path("checking", self.log.path(), e))?;
            if meta.len() < reading.pos {
                out.push_event(Event::Truncated {
                    file: reading.id,
                    at: reading.pos,
                });
                reading.pos = 0;
                self.assembler.reset(0);
                continue;
            }

            // Is there a newer file to go on with?
            let from = reading.id;
            let give_up = self.unplaced_polls >= UNPLACED_POLLS;
            match rotation::next_after(&self.log, from, meta.nlink() > 0, give_up)? {
                Next::Same => {
                    self.unplaced_polls = 0;
                    if self.missing_reported {
                        // Renamed away and back.
                        self.missing_reported = false;
                        out.push_event(Event::Reappeared { file: from });
                    }
                    return Ok(());
                }
                Next::Missing => {
                    self.note_missing(out);
                    return Ok(());
                }
                Next::Unplaced => {
                    self.unplaced_polls += 1;
                    return Ok(());
                }
                Next::File { opened, at_path } => {
                    if at_path && opened.len == 0 {
                        // The writer has not written to the new file yet, so it may still
                        // append to this one: stay until the new file has data.
                        return Ok(());
                    }
                    // The newer file exists and, if it is the live one, has data: whatever was
                    // written here before that is visible now. Read it before moving on.
                    let n = read_at(
                        reading,
                        &mut self.chunk[..budget.min(READ_CHUNK)],
                        self.log.path(),
                    )?;
                    if n > 0 {
                        self.assembler
                            .feed(&self.chunk[..n], reading.pos, reading.id, out);
                        reading.pos += n as u64;
                        budget -= n;
                        continue;
                    }
                    self.assembler.finish_unterminated(from, out);
                    self.switch_to(opened, Some(from), out);
                    switches += 1;
                }
            }
        }
        Ok(())
    }

    /// Reads `opened` from byte 0 from now on.
    fn switch_to(&mut self, opened: Opened, from: Option<FileId>, out: &mut Batch) {
        if self.missing_reported {
            self.missing_reported = false;
            out.push_event(Event::Reappeared { file: opened.id });
        } else if let Some(from) = from {
            out.push_event(Event::Rotated {
                from,
                to: opened.id,
            });
        }
        self.read_from(opened, 0);
    }

    fn note_missing(&mut self, out: &mut Batch) {
        if !self.missing_reported {
            self.missing_reported = true;
            out.push_event(Event::Missing);
        }
    }

    /// Makes `opened` the current file, reading on from `offset` (a line start).
    fn read_from(&mut self, opened: Opened, offset: u64) {
        self.assembler.reset(offset);
        self.unplaced_polls = 0;
        self.current = Some(Reading {
            file: opened.file,
            id: opened.id,
            pos: offset,
        });
    }

    /// Resumes at `offset` in `opened`, or at 0 if the file is now shorter than that.
    fn read_from_cursor(&mut self, opened: Opened, offset: u64) {
        if opened.len < offset {
            self.deferred.push(Event::Truncated {
                file: opened.id,
                at: offset,
            });
            self.read_from(opened, 0);
        } else {
            self.read_from(opened, offset);
        }
    }

    /// Positions at the start of the last incomplete line of `opened` (its end, if it ends
    /// with `\n`), looking back at most one maximal line.
    fn start_at_end(&mut self, opened: Opened, max_line_len: usize) -> io::Result<()> {
        let window = opened.len.min(max_line_len as u64 + 1);
        let from = opened.len - window;
        let mut tail = vec![0; window as usize];
        opened
            .file
            .read_exact_at(&mut tail, from)
            .map_err(|e| with_path("reading", self.log.path(), e))?;
        match memchr::memrchr(b'\n', &tail) {
            Some(i) => self.read_from(opened, from + i as u64 + 1),
            None if from == 0 => self.read_from(opened, 0),
            None => {
                // Inside a line already too long to deliver: skip its rest.
                let len = opened.len;
                self.read_from(opened, len);
                self.assembler.reset_skipping(len);
            }
        }
        Ok(())
    }

    /// `Start::Resume`: the cursor's file at the path, else among the rotated siblings, else
    /// the current file from 0 with `CursorLost`.
    fn resume(&mut self, cursor: Cursor) -> io::Result<()> {
        let at_path = self.log.open_path()?;
        if let Some(opened) = at_path {
            if opened.id == cursor.file() {
                self.read_from_cursor(opened, cursor.offset);
                return Ok(());
            }
            if let Some(rotated) = self.open_rotated(cursor)? {
                self.read_from_cursor(rotated, cursor.offset);
                return Ok(());
            }
            self.deferred.push(Event::CursorLost { cursor });
            self.read_from(opened, 0);
        } else if let Some(rotated) = self.open_rotated(cursor)? {
            self.read_from_cursor(rotated, cursor.offset);
        } else {
            self.deferred.push(Event::CursorLost { cursor });
        }
        Ok(())
    }

    /// Finds and opens the rotated sibling that holds the cursor's file.
    fn open_rotated(&mut self, cursor: Cursor) -> io::Result<Option<Opened>> {
        let Some(found) = rotation::find(&self.log, cursor.file())? else {
            return Ok(None);
        };
        match rotation::open_sibling(&found.path)? {
            Some(opened) if opened.id == cursor.file() => {
                self.deferred.push(Event::ResumedFromRotated {
                    path: found.path,
                    cursor,
                });
                Ok(Some(opened))
            }
            _ => Ok(None),
        }
    }
}

/// `pread` at the reading position, retrying on `EINTR`.
fn read_at(reading: &Reading, buf: &mut [u8], path: &Path) -> io::Result<usize> {
    loop {
        match reading.file.read_at(buf, reading.pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map_err(|e| with_path("reading", path, e)),
        }
    }
}
