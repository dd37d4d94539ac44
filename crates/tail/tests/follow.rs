//! The follower against real files in temporary directories: appends, partial lines, rename
//! rotation (also several at once, and while the daemon was down), copytruncate, deletion,
//! cursors, over-long lines, and a writer thread rotating under a polling reader.
//!
//! These tests only create, write, rename and delete files inside their own temp dirs.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use goguard_tail::{Batch, Cursor, Event, FileId, Follower, Options, Start};

/// A temp dir with `audit.log` in it (not created).
struct Dir {
    _tmp: tempfile::TempDir,
    log: PathBuf,
}

fn dir() -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    Dir { _tmp: tmp, log }
}

fn sibling(log: &Path, suffix: &str) -> PathBuf {
    let mut name = log.file_name().unwrap().to_owned();
    name.push(suffix);
    log.with_file_name(name)
}

fn append(path: &Path, bytes: &[u8]) -> File {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn id(path: &Path) -> FileId {
    FileId::of(&fs::metadata(path).unwrap())
}

/// One delivered line, owned, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    text: String,
    start: u64,
    end: u64,
    file: FileId,
    terminated: bool,
}

/// Everything several polls delivered.
#[derive(Debug, Default)]
struct Seen {
    lines: Vec<Got>,
    events: Vec<Event>,
    cursor: Option<Cursor>,
}

impl Seen {
    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }

    fn take(&mut self, batch: &Batch) {
        self.lines.extend(batch.lines().map(|l| Got {
            text: String::from_utf8_lossy(l.bytes).into_owned(),
            start: l.start,
            end: l.end,
            file: l.file,
            terminated: l.terminated,
        }));
        self.events.extend(batch.events().iter().cloned());
        self.cursor = batch.cursor();
    }
}

/// Polls until a poll brings nothing new.
fn drain(f: &mut Follower, max_bytes: usize) -> Seen {
    let mut seen = Seen::default();
    for _ in 0..10_000 {
        let batch = f.poll(max_bytes).unwrap();
        let empty = batch.is_empty();
        seen.take(&batch);
        if empty {
            return seen;
        }
    }
    panic!("the follower never went quiet");
}

#[test]
fn appended_lines_are_read_with_their_positions() {
    let d = dir();
    append(&d.log, b"alpha\nbeta\r\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let s = drain(&mut f, 1 << 20);
    let file = id(&d.log);
    assert_eq!(
        s.lines,
        vec![
            Got {
                text: "alpha".into(),
                start: 0,
                end: 6,
                file,
                terminated: true
            },
            Got {
                text: "beta\r".into(),
                start: 6,
                end: 12,
                file,
                terminated: true
            },
        ]
    );
    assert!(s.events.is_empty());
    assert_eq!(s.cursor, Some(Cursor::at(file, 12)));

    append(&d.log, b"gamma\n");
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["gamma"]);
    assert_eq!(s.cursor, Some(Cursor::at(file, 18)));
    assert_eq!(f.cursor(), s.cursor);
}

#[test]
fn non_utf8_lines_are_delivered_as_bytes() {
    let d = dir();
    append(&d.log, b"msg=\xff\xfe\x00end\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let batch = f.poll(1 << 20).unwrap();
    assert_eq!(batch.lines().next().unwrap().bytes, b"msg=\xff\xfe\x00end");
}

#[test]
fn partial_line_waits_for_its_newline() {
    let d = dir();
    append(&d.log, b"one\npar");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["one"]);
    assert_eq!(
        s.cursor.unwrap().offset,
        4,
        "the cursor stays before the partial line"
    );

    append(&d.log, b"t");
    assert!(drain(&mut f, 1 << 20).lines.is_empty());

    append(&d.log, b"ial\ntwo\n");
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["partial", "two"]);
    assert_eq!((s.lines[0].start, s.lines[0].end), (4, 12));
}

#[test]
fn max_bytes_bounds_a_batch_and_nothing_is_lost() {
    let d = dir();
    let mut content = String::new();
    for i in 0..200 {
        content.push_str(&format!("line {i}\n"));
    }
    append(&d.log, content.as_bytes());
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let first = f.poll(30).unwrap();
    assert!(
        first.lines().len() <= 4,
        "30 bytes hold at most 4 lines of 7+ bytes"
    );
    let mut seen = Seen::default();
    seen.take(&first);
    loop {
        let b = f.poll(30).unwrap();
        if b.is_empty() {
            break;
        }
        seen.take(&b);
    }
    let want: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    assert_eq!(seen.texts(), want);
}

#[test]
fn start_end_skips_what_is_there_but_not_the_partial_line() {
    let d = dir();
    append(&d.log, b"old\nolder\npart");
    let mut f = Follower::open(&d.log, Start::End).unwrap();
    assert!(drain(&mut f, 1 << 20).lines.is_empty());
    append(&d.log, b"ial\nnew\n");
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["partial", "new"]);

    let d = dir();
    append(&d.log, b"old\n");
    let mut f = Follower::open(&d.log, Start::End).unwrap();
    append(&d.log, b"new\n");
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["new"]);
}

#[test]
fn rename_rotation_finishes_the_old_file_first() {
    let d = dir();
    let mut writer = append(&d.log, b"1\n2\n");
    let old = id(&d.log);
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["1", "2"]);

    // Rotate, then keep writing to the renamed file, ending with a line that never ends.
    fs::rename(&d.log, sibling(&d.log, ".1")).unwrap();
    writer.write_all(b"3\n4-unterminated").unwrap();
    append(&d.log, b"5\n6\n");
    let new = id(&d.log);

    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["3", "4-unterminated", "5", "6"]);
    assert_eq!(s.lines[0].file, old);
    assert!(s.lines[0].terminated);
    assert_eq!(s.lines[1].file, old);
    assert!(!s.lines[1].terminated);
    assert_eq!((s.lines[1].start, s.lines[1].end), (6, 20));
    assert_eq!(s.lines[2].file, new);
    assert_eq!(s.lines[2].start, 0);
    assert_eq!(s.events, [Event::Rotated { from: old, to: new }]);
    assert_eq!(s.cursor, Some(Cursor::at(new, 4)));
}

#[test]
fn rotation_waits_while_the_new_file_is_empty() {
    let d = dir();
    let mut writer = append(&d.log, b"a\n");
    let old = id(&d.log);
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    drain(&mut f, 1 << 20);

    fs::rename(&d.log, sibling(&d.log, ".1")).unwrap();
    File::create(&d.log).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert!(s.lines.is_empty() && s.events.is_empty());
    assert_eq!(s.cursor, Some(Cursor::at(old, 2)), "still on the old file");

    // The writer has not reopened yet: its late line must still be read.
    writer.write_all(b"late\n").unwrap();
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["late"]);

    append(&d.log, b"b\n");
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["b"]);
    assert_eq!(
        s.events,
        [Event::Rotated {
            from: old,
            to: id(&d.log)
        }]
    );
}

/// auditd's rotation: `.N` → `.N+1` for every N, then the log → `.1`, then a new log.
fn rotate_numbered(log: &Path) {
    let mut max = 0;
    while sibling(log, &format!(".{}", max + 1)).exists() {
        max += 1;
    }
    for n in (1..=max).rev() {
        fs::rename(
            sibling(log, &format!(".{n}")),
            sibling(log, &format!(".{}", n + 1)),
        )
        .unwrap();
    }
    fs::rename(log, sibling(log, ".1")).unwrap();
}

#[test]
fn several_rotations_between_polls_are_read_file_by_file() {
    let d = dir();
    append(&d.log, b"a1\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["a1"]);

    append(&d.log, b"a2\n");
    let a = id(&d.log);
    rotate_numbered(&d.log);
    append(&d.log, b"b1\nb2\n");
    let b = id(&d.log);
    rotate_numbered(&d.log);
    File::create(&d.log).unwrap(); // empty, rotated at once: complete, nothing to read
    let c = id(&d.log);
    rotate_numbered(&d.log);
    append(&d.log, b"d1\n");
    let dd = id(&d.log);

    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["a2", "b1", "b2", "d1"]);
    assert_eq!(
        s.events,
        [
            Event::Rotated { from: a, to: b },
            Event::Rotated { from: b, to: c },
            Event::Rotated { from: c, to: dd },
        ]
    );
}

#[test]
fn copytruncate_starts_again_at_zero() {
    let d = dir();
    append(&d.log, b"first line\nsecond line\n");
    let file = id(&d.log);
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    assert_eq!(
        drain(&mut f, 1 << 20).texts(),
        ["first line", "second line"]
    );

    fs::copy(&d.log, sibling(&d.log, ".1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&d.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&d.log, b"third\n");

    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["third"]);
    assert_eq!(s.lines[0].start, 0);
    assert_eq!(s.events, [Event::Truncated { file, at: 23 }]);
    assert_eq!(id(&d.log), file);
}

#[test]
fn missing_at_start_waits_then_reads_from_the_beginning() {
    let d = dir();
    for start in [Start::Beginning, Start::End] {
        let _ = fs::remove_file(&d.log);
        let mut f = Follower::open(&d.log, start).unwrap();
        let s = drain(&mut f, 1 << 20);
        assert_eq!(s.events, [Event::Missing], "reported once");
        assert_eq!(s.cursor, None);
        assert!(drain(&mut f, 1 << 20).events.is_empty());

        append(&d.log, b"x\ny\n");
        let s = drain(&mut f, 1 << 20);
        assert_eq!(s.texts(), ["x", "y"]);
        assert_eq!(s.events, [Event::Reappeared { file: id(&d.log) }]);
    }
}

#[test]
fn deleted_file_is_read_to_its_end_then_the_new_one_from_zero() {
    let d = dir();
    let mut writer = append(&d.log, b"a\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["a"]);

    fs::remove_file(&d.log).unwrap();
    writer.write_all(b"b\n").unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["b"]);
    assert_eq!(s.events, [Event::Missing]);

    writer.write_all(b"c\n").unwrap();
    assert_eq!(
        drain(&mut f, 1 << 20).texts(),
        ["c"],
        "the open fd is still read"
    );

    append(&d.log, b"d\n");
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["d"]);
    assert_eq!(s.events, [Event::Reappeared { file: id(&d.log) }]);
}

#[test]
fn rotation_to_another_name_goes_on_with_the_new_file() {
    let d = dir();
    let mut writer = append(&d.log, b"a\n");
    let old = id(&d.log);
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    drain(&mut f, 1 << 20);
    fs::rename(&d.log, sibling(&d.log, "-20250101")).unwrap();
    writer.write_all(b"b\n").unwrap();
    append(&d.log, b"c\n");
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["b", "c"]);
    assert_eq!(
        s.events,
        [Event::Rotated {
            from: old,
            to: id(&d.log)
        }]
    );
}

#[test]
fn file_moved_out_of_sight_is_waited_for_a_few_polls_then_left() {
    let d = dir();
    append(&d.log, b"a\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    drain(&mut f, 1 << 20);
    // Still linked, but not under a name the follower looks at.
    fs::rename(&d.log, d.log.with_file_name("elsewhere")).unwrap();
    append(&d.log, b"b\n");
    let mut seen = Seen::default();
    for _ in 0..10 {
        seen.take(&f.poll(1 << 20).unwrap());
    }
    assert_eq!(seen.texts(), ["b"]);
    assert_eq!(seen.events.len(), 1);
}

#[test]
fn resume_in_the_same_file() {
    let d = dir();
    append(&d.log, b"a\nb\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let cursor = drain(&mut f, 1 << 20).cursor.unwrap();
    drop(f);

    append(&d.log, b"c\n");
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["c"]);
    assert!(s.events.is_empty());
}

#[test]
fn resume_in_a_file_that_shrank_starts_at_zero() {
    let d = dir();
    append(&d.log, b"aaaa\nbbbb\n");
    let file = id(&d.log);
    let cursor = Cursor::at(file, 10);
    OpenOptions::new()
        .write(true)
        .open(&d.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&d.log, b"c\n");
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["c"]);
    assert_eq!(s.events, [Event::Truncated { file, at: 10 }]);
}

#[test]
fn resume_after_rotations_while_down_reads_the_tail_then_the_newer_files() {
    let d = dir();
    append(&d.log, b"a\nb\n");
    let mut f = Follower::open(&d.log, Start::Beginning).unwrap();
    let cursor = drain(&mut f, 1 << 20).cursor.unwrap();
    drop(f);

    // While down: the tail of the cursor's file, and two rotations.
    append(&d.log, b"c\n");
    rotate_numbered(&d.log);
    append(&d.log, b"d\n");
    rotate_numbered(&d.log);
    append(&d.log, b"e\n");

    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["c", "d", "e"]);
    assert_eq!(
        s.events[0],
        Event::ResumedFromRotated {
            path: sibling(&d.log, ".2"),
            cursor
        }
    );
    assert_eq!(s.events.len(), 3, "{:?}", s.events);
    assert_eq!(s.cursor, Some(Cursor::at(id(&d.log), 2)));
}

#[test]
fn resume_from_a_dateext_sibling() {
    let d = dir();
    append(&d.log, b"a\n");
    let cursor = Cursor::at(id(&d.log), 2);
    append(&d.log, b"b\n");
    fs::rename(&d.log, sibling(&d.log, "-20250101")).unwrap();
    append(&d.log, b"c\n");
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["b", "c"]);
}

#[test]
fn cursor_into_a_vanished_file_is_reported_lost() {
    let d = dir();
    append(&d.log, b"a\n");
    let old = id(&d.log);
    // Moved out of sight (not deleted, so that its inode number is not reused at once).
    fs::rename(&d.log, d.log.with_file_name("moved-away")).unwrap();
    append(&d.log, b"x\ny\n");
    let cursor = Cursor::at(old, 2);
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["x", "y"]);
    assert_eq!(s.events, [Event::CursorLost { cursor }]);

    // And with no log at all: lost, then missing, then read from the start when it comes.
    let d = dir();
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.events, [Event::CursorLost { cursor }, Event::Missing]);
    append(&d.log, b"z\n");
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["z"]);
}

#[test]
fn over_long_lines_are_skipped_and_reported() {
    let d = dir();
    let long = "x".repeat(100);
    append(&d.log, format!("short\n{long}\nok\n").as_bytes());
    let opts = Options::default().max_line_len(16);
    let mut f = Follower::open_with(&d.log, Start::Beginning, opts).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["short", "ok"]);
    assert_eq!(
        s.events,
        [Event::LineTooLong {
            file: id(&d.log),
            start: 6
        }]
    );

    // A long line still growing is not held in memory, and the cursor stays before it.
    append(&d.log, "y".repeat(1000).as_bytes());
    let s = drain(&mut f, 1 << 20);
    assert!(s.lines.is_empty());
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.cursor.unwrap().offset, 110);
    append(&d.log, b"y\nafter\n");
    assert_eq!(drain(&mut f, 1 << 20).texts(), ["after"]);
}

#[test]
fn a_directory_at_the_path_is_an_error() {
    let d = dir();
    fs::create_dir(&d.log).unwrap();
    let err = Follower::open(&d.log, Start::Beginning).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("audit.log"), "{err}");
}

#[test]
fn symlinked_sibling_is_not_followed() {
    let d = dir();
    append(&d.log, b"a\n");
    let cursor = Cursor::at(id(&d.log), 2);
    let elsewhere = d.log.with_file_name("elsewhere");
    append(&elsewhere, b"a\nsecret\n");
    let target = id(&elsewhere);
    fs::remove_file(&d.log).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sibling(&d.log, ".1")).unwrap();
    append(&d.log, b"x\n");
    let cursor = Cursor::at(target, cursor.offset);
    let mut f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
    let s = drain(&mut f, 1 << 20);
    assert_eq!(s.texts(), ["x"]);
    assert_eq!(s.events, [Event::CursorLost { cursor }]);
}

/// A writer thread appends numbered lines and rotates auditd-style every `ROTATE_EVERY`
/// lines, sometimes writing to the renamed file before opening the new one and sometimes
/// splitting a line over two writes; the reader polls with a small budget and now and then
/// restarts from its cursor. Every number must come exactly once, in order.
#[test]
fn stress_rotating_writer_every_line_exactly_once() {
    stress(1500, None);
}

/// The same with a reader that sleeps between polls, so that several rotations happen
/// between two polls while the writer goes on.
#[test]
fn stress_slow_reader_follows_several_rotations_per_poll() {
    stress(64 * 1024, Some(std::time::Duration::from_millis(3)));
}

fn stress(budget: usize, pause: Option<std::time::Duration>) {
    const TOTAL: u64 = 50_000;
    const ROTATE_EVERY: u64 = 700;
    let d = dir();
    let log = d.log.clone();
    File::create(&log).unwrap();
    let mut f = Follower::open(&log, Start::Beginning).unwrap();

    let writer = std::thread::spawn(move || {
        let mut out = append(&log, b"");
        let mut i = 0;
        while i < TOTAL {
            if i > 0 && i % ROTATE_EVERY == 0 {
                rotate_numbered(&log);
                if (i / ROTATE_EVERY) % 2 == 0 {
                    // Late write to the renamed file, before the new one exists.
                    out.write_all(format!("{i}\n").as_bytes()).unwrap();
                    i += 1;
                }
                out = append(&log, b"");
            }
            if i % 7 == 0 {
                out.write_all(format!("{i}").as_bytes()).unwrap();
                out.write_all(b"\n").unwrap();
            } else {
                out.write_all(format!("{i}\n").as_bytes()).unwrap();
            }
            i += 1;
        }
    });

    let mut got: Vec<u64> = Vec::with_capacity(TOTAL as usize);
    let mut batch = Batch::new();
    let mut polls = 0u64;
    let mut quiet_after_writer = 0;
    let (mut rotations, mut restarts) = (0, 0);
    loop {
        f.poll_into(&mut batch, budget).unwrap();
        polls += 1;
        for line in batch.lines() {
            assert!(line.terminated, "no line is cut: {line:?}");
            let n: u64 = std::str::from_utf8(line.bytes).unwrap().parse().unwrap();
            got.push(n);
        }
        for event in batch.events() {
            assert!(
                matches!(
                    event,
                    Event::Rotated { .. }
                        | Event::ResumedFromRotated { .. }
                        // Between the rename and the writer's create, there is no log.
                        | Event::Missing
                        | Event::Reappeared { .. }
                ),
                "unexpected {event:?}"
            );
        }
        rotations += batch
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Rotated { .. } | Event::Reappeared { .. }))
            .count();
        if polls % 29 == 7 {
            let cursor = batch.cursor().unwrap();
            f = Follower::open(&d.log, Start::Resume(cursor)).unwrap();
            restarts += 1;
        }
        if batch.is_empty() {
            if writer.is_finished() {
                quiet_after_writer += 1;
                if quiet_after_writer > 2 {
                    break;
                }
            } else {
                std::thread::yield_now();
            }
        }
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    }
    writer.join().unwrap();
    let first_bad = got.iter().enumerate().find(|(i, n)| *i as u64 != **n);
    assert_eq!(first_bad, None, "lines out of order, lost or repeated");
    assert_eq!(got.len() as u64, TOTAL);
    eprintln!("{polls} polls, {rotations} rotations followed live, {restarts} restarts");
}

#[test]
fn file_ids_are_st_dev_and_st_ino() {
    let d = dir();
    append(&d.log, b"");
    let m = fs::metadata(&d.log).unwrap();
    assert_eq!(
        id(&d.log),
        FileId {
            dev: m.dev(),
            ino: m.ino()
        }
    );
}
