//! [`LogWatch`]: wakes the daemon within milliseconds of a change to the log, so it can call
//! [`Follower::poll`](crate::Follower::poll) at once instead of on its next timer tick.
//!
//! One inotify instance with one watch on the log's *parent directory* (a watch on the file
//! itself would stay on the old file after a rotation), reporting changes to any name that
//! starts with the log's name (`audit.log`, `audit.log.1`, ...), plus a fallback interval
//! that fires even when inotify says nothing (or could not be set up, e.g. because the
//! directory does not exist yet: it is retried on every tick).
//!
//! It must never leak watches: the instance is owned here, re-arming drops the old instance
//! (closing its fd frees its watch) before making a new one, and dropping the `LogWatch` frees
//! everything. It only wakes the caller; it reads no file and never decides what changed.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use inotify::{EventMask, EventStream, Inotify, WatchMask};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Events taken from the queue at once after a wake-up, so a burst of writes wakes the
/// caller once rather than once per write.
const MAX_DRAIN: usize = 1024;

/// Bytes of the inotify read buffer (each event is 16 bytes plus its name).
const EVENT_BUFFER: usize = 4096;

/// Why [`LogWatch::changed`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// inotify reported a change to the log or its rotation (or lost events, or the watch
    /// went away): poll now.
    Changed,
    /// The fallback interval elapsed: poll in case something was missed.
    Tick,
}

/// Wake-ups for one log path. Needs a tokio runtime with IO and time enabled.
#[derive(Debug)]
pub struct LogWatch {
    /// The directory watched, since rotation happens by names in it.
    dir: PathBuf,
    /// Events for names not starting with this are ignored.
    name: OsString,
    /// The inotify instance (owning its single watch); `None` while running on the timer.
    stream: Option<EventStream<Vec<u8>>>,
    /// Fires when nothing else did for this long.
    fallback: Interval,
    /// Why the last attempt to set up the watch failed, for the daemon to log.
    last_error: Option<io::Error>,
}

impl LogWatch {
    /// Watches the parent directory of `path`, with a `fallback` tick (at least 1 ms).
    ///
    /// Never fails: if the watch cannot be set up, [`changed`](Self::changed) runs on the
    /// fallback interval alone and retries the watch on every tick.
    ///
    /// # Panics
    /// Outside a tokio runtime with IO and time enabled.
    pub fn new(path: impl AsRef<Path>, fallback: Duration) -> LogWatch {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let period = fallback.max(Duration::from_millis(1));
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watch = LogWatch {
            dir,
            name,
            stream: None,
            fallback: interval,
            last_error: None,
        };
        watch.arm();
        watch
    }

    /// True while inotify is watching; false while running on the fallback timer alone.
    pub fn is_watching(&self) -> bool {
        self.stream.is_some()
    }

    /// Why the watch could not be set up the last time it was tried, if it could not.
    pub fn last_error(&self) -> Option<&io::Error> {
        self.last_error.as_ref()
    }

    /// Waits until the log may have changed, or the fallback interval elapsed.
    ///
    /// Cancel-safe: dropping the future loses no more than the wake-up itself, and the
    /// fallback tick covers that.
    pub async fn changed(&mut self) -> Wake {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.fallback.tick().await;
                self.arm();
                return Wake::Tick;
            };
            tokio::select! {
                event = stream.next() => {
                    match self.classify(event) {
                        Seen::Relevant => {}
                        Seen::Irrelevant => continue,
                        Seen::WatchGone => {
                            self.disarm();
                            return Wake::Changed;
                        }
                    }
                    self.drain();
                    self.fallback.reset();
                    return Wake::Changed;
                }
                _ = self.fallback.tick() => return Wake::Tick,
            }
        }
    }

    /// Takes the events already queued, without waiting.
    fn drain(&mut self) {
        for _ in 0..MAX_DRAIN {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.next().now_or_never() {
                None => return,
                Some(event) => {
                    if self.classify(event) == Seen::WatchGone {
                        self.disarm();
                        return;
                    }
                }
            }
        }
    }

    fn classify(&mut self, event: Option<io::Result<inotify::EventOwned>>) -> Seen {
        let event = match event {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                self.last_error = Some(e);
                return Seen::WatchGone;
            }
            None => return Seen::WatchGone,
        };
        if event
            .mask
            .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
        {
            // The directory is gone or moved: this watch will tell us nothing more.
            return Seen::WatchGone;
        }
        match &event.name {
            Some(name) if !name.as_bytes().starts_with(self.name.as_bytes()) => Seen::Irrelevant,
            // Our log or a rotation of it, or a nameless event such as a queue overflow.
            _ => Seen::Relevant,
        }
    }

    /// Replaces any inotify instance with a fresh one watching the directory; on failure,
    /// stays on the timer.
    fn arm(&mut self) {
        self.disarm();
        match watch_dir(&self.dir) {
            Ok(stream) => {
                self.stream = Some(stream);
                self.last_error = None;
            }
            Err(e) => self.last_error = Some(e),
        }
    }

    /// Drops the inotify instance, which frees its watch.
    fn disarm(&mut self) {
        self.stream = None;
    }
}

/// What one inotify event means for the caller.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Relevant,
    Irrelevant,
    WatchGone,
}

fn watch_dir(dir: &Path) -> io::Result<EventStream<Vec<u8>>> {
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::MODIFY
            | WatchMask::CLOSE_WRITE
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR
            | WatchMask::EXCL_UNLINK,
    )?;
    // If this fails, `inotify` is dropped here and its watch with it.
    inotify.into_event_stream(vec![0; EVENT_BUFFER])
}
