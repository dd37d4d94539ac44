//! goguard-watch: recursive inotify watching of Go cache roots (`GOCACHE`, `GOMODCACHE`,
//! shared caches), delivered as a bounded stream of "something changed at this path"
//! [`Notice`]s.
//!
//! It decides nothing about drift: the daemon re-examines each path it is told about, and
//! rescans everything on [`Notice::Overflow`] and a root periodically after
//! [`Notice::WatchLimit`]. Delivery is at least once: a path may be reported twice (an event
//! and the scan of a new directory can both see it), never silently skipped.
//!
//! What it must never do: follow a symlink or cross a mount beneath a root, report or watch
//! anything outside a root, or hold unbounded memory or watches (`WatchConfig::max_watches`,
//! `max_pending`, a fixed read buffer).
//!
//! # Use
//!
//! ```no_run
//! use goguard_watch::{Notice, WatchConfig, Watcher};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut watcher = Watcher::new(WatchConfig::default())?;
//! let report = watcher.add_root(1, "/home/alice/.cache/go-build".as_ref())?;
//! if report.limit_hit { /* rescan this root periodically */ }
//! loop {
//!     match watcher.next().await? {
//!         Notice::Changed { root_id, rel_path, .. } => { /* examine root/rel_path */ }
//!         Notice::Overflow => { /* rescan every root */ }
//!         _ => {}
//!     }
//! }
//! # }
//! ```
//!
//! # Layout
//! - `watcher`: [`Watcher`], the adapter: applies inotify events to the watch map, walks new
//!   directories, follows roots that appear and disappear.
//! - `tree`: the wd → (root, directory) map, pure bookkeeping.
//! - `queue`: the bounded notice queue and per-batch coalescing.
//! - `sys`: the system calls (inotify, `openat2` beneath a root, reading events).
//! - `notice`: the public values: notices, config, reports, stats, errors.

mod notice;
mod queue;
mod sys;
mod tree;
mod watcher;

pub use notice::{
    AddReport, Change, MAX_REPORTED_MOUNTS, Notice, WatchConfig, WatchError, WatchStats,
};
pub use watcher::Watcher;
