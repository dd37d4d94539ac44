//! Cuts a stream of bytes read from one file into lines, with their offsets. Pure: no I/O.
//!
//! Invariants: a line is delivered only once its `\n` has been seen (or, through
//! [`LineAssembler::finish_unterminated`], when its file can never grow again); the bytes kept
//! between reads never exceed the line limit, so a log without newlines cannot make the
//! follower hold it in memory; an over-long line is reported once and skipped through its `\n`.

use crate::batch::{Batch, Event};
use crate::cursor::FileId;

/// Line-splitting state for the file being read.
#[derive(Debug)]
pub(crate) struct LineAssembler {
    /// Bytes of the current line read so far (empty while skipping an over-long line).
    pending: Vec<u8>,
    /// File offset of the current line's first byte: the resume point.
    line_start: u64,
    /// The current line was found too long; drop bytes until its `\n`.
    skipping: bool,
    /// Longest line delivered, in bytes, without its `\n`.
    max_line_len: usize,
}

impl LineAssembler {
    pub(crate) fn new(max_line_len: usize) -> LineAssembler {
        LineAssembler {
            pending: Vec::new(),
            line_start: 0,
            skipping: false,
            max_line_len,
        }
    }

    /// Forgets any partial line and expects the next line to start at `offset`.
    pub(crate) fn reset(&mut self, offset: u64) {
        self.pending.clear();
        self.line_start = offset;
        self.skipping = false;
    }

    /// Starts at `offset` in the middle of a line too long to deliver (the follower began in
    /// it and could not find where it starts): bytes are dropped up to the next `\n`.
    pub(crate) fn reset_skipping(&mut self, offset: u64) {
        self.reset(offset);
        self.skipping = true;
    }

    /// Offset of the first byte not delivered: where a cursor must point.
    pub(crate) fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Number of bytes kept for the unfinished current line.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Consumes `chunk`, which was read from `file` at `offset` (the byte after everything fed
    /// before), appending complete lines and [`Event::LineTooLong`] to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], offset: u64, file: FileId, out: &mut Batch) {
        let mut rest = chunk;
        let mut at = offset;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let body = &rest[..i];
                    let end = at + i as u64 + 1;
                    if self.skipping {
                        self.skipping = false;
                    } else if self.pending.len() + body.len() > self.max_line_len {
                        out.push_event(Event::LineTooLong {
                            file,
                            start: self.line_start,
                        });
                    } else {
                        out.push_line(&self.pending, body, self.line_start, end, file, true);
                    }
                    self.pending.clear();
                    self.line_start = end;
                    rest = &rest[i + 1..];
                    at = end;
                }
                None => {
                    if self.skipping {
                        // Still inside the over-long line.
                    } else if self.pending.len() + rest.len() > self.max_line_len {
                        out.push_event(Event::LineTooLong {
                            file,
                            start: self.line_start,
                        });
                        self.pending.clear();
                        self.skipping = true;
                    } else {
                        self.pending.extend_from_slice(rest);
                    }
                    break;
                }
            }
        }
    }

    /// The file will never grow again: delivers the partial line kept so far, if any, as
    /// unterminated, and resets for the next file.
    pub(crate) fn finish_unterminated(&mut self, file: FileId, out: &mut Batch) {
        if !self.skipping && !self.pending.is_empty() {
            let end = self.line_start + self.pending.len() as u64;
            out.push_line(&self.pending, &[], self.line_start, end, file, false);
        }
        self.reset(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileId = FileId { dev: 1, ino: 2 };

    fn lines(b: &Batch) -> Vec<(Vec<u8>, u64, u64, bool)> {
        b.lines()
            .map(|l| (l.bytes.to_vec(), l.start, l.end, l.terminated))
            .collect()
    }

    #[test]
    fn splits_and_keeps_partial_line_until_newline() {
        let mut a = LineAssembler::new(100);
        let mut b = Batch::new();
        a.feed(b"one\ntw", 0, F, &mut b);
        assert_eq!(lines(&b), vec![(b"one".to_vec(), 0, 4, true)]);
        assert_eq!(a.line_start(), 4);
        assert_eq!(a.pending_len(), 2);
        a.feed(b"o\r\n\nthree", 6, F, &mut b);
        assert_eq!(
            lines(&b),
            vec![
                (b"one".to_vec(), 0, 4, true),
                (b"two\r".to_vec(), 4, 9, true),
                (b"".to_vec(), 9, 10, true),
            ]
        );
        assert_eq!(a.line_start(), 10);
        a.finish_unterminated(F, &mut b);
        assert_eq!(b.lines().last().unwrap().bytes, b"three");
        assert!(!b.lines().last().unwrap().terminated);
        assert_eq!(b.lines().last().unwrap().end, 15);
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let mut a = LineAssembler::new(100);
        a.reset(7);
        let mut b = Batch::new();
        a.feed(b"\xff\xfe msg=\x00x\n", 7, F, &mut b);
        let l = b.lines().next().unwrap();
        assert_eq!(l.bytes, b"\xff\xfe msg=\x00x");
        assert_eq!((l.start, l.end), (7, 17));
    }

    #[test]
    fn line_of_exactly_the_limit_is_delivered() {
        let mut a = LineAssembler::new(4);
        let mut b = Batch::new();
        a.feed(b"ab", 0, F, &mut b);
        a.feed(b"cd\nabcde\nok\n", 2, F, &mut b);
        let got: Vec<_> = b.lines().map(|l| l.bytes.to_vec()).collect();
        assert_eq!(got, vec![b"abcd".to_vec(), b"ok".to_vec()]);
        assert_eq!(b.events(), &[Event::LineTooLong { file: F, start: 5 }]);
    }

    #[test]
    fn over_long_line_is_dropped_across_chunks_and_reported_once() {
        let mut a = LineAssembler::new(4);
        let mut b = Batch::new();
        a.feed(b"x\nabc", 0, F, &mut b);
        a.feed(b"defg", 5, F, &mut b);
        assert_eq!(a.pending_len(), 0, "nothing of the long line is kept");
        assert_eq!(a.line_start(), 2, "cursor stays before the skipped line");
        a.feed(b"hij", 9, F, &mut b);
        a.feed(b"k\ny\n", 12, F, &mut b);
        let got: Vec<_> = b.lines().map(|l| (l.bytes.to_vec(), l.start)).collect();
        assert_eq!(got, vec![(b"x".to_vec(), 0), (b"y".to_vec(), 14)]);
        assert_eq!(b.events(), &[Event::LineTooLong { file: F, start: 2 }]);
        assert_eq!(a.line_start(), 16);
    }

    #[test]
    fn skipped_tail_is_not_delivered_at_rotation() {
        let mut a = LineAssembler::new(2);
        let mut b = Batch::new();
        a.feed(b"abcdef", 0, F, &mut b);
        a.finish_unterminated(F, &mut b);
        assert_eq!(b.lines().len(), 0);
        assert_eq!(b.events().len(), 1);
    }

    #[test]
    fn starting_inside_a_long_line_skips_to_the_next_newline() {
        let mut a = LineAssembler::new(100);
        a.reset_skipping(50);
        let mut b = Batch::new();
        a.feed(b"tail of something\nnext\n", 50, F, &mut b);
        let got: Vec<_> = b.lines().map(|l| l.bytes.to_vec()).collect();
        assert_eq!(got, vec![b"next".to_vec()]);
        assert!(b.events().is_empty());
    }
}
