//! GOCACHE trimming by Go's own rules, with an optional size cap.
//!
//! - [`plan`] (pure): listing + `trim.txt` + now → [`TrimPlan`].
//! - [`execute`]: read `trim.txt`, [`list`] through fds (2–4 directories at a time; only the
//!   `-a` records the plan needs), [`plan`], [`apply`] (remove: every `-a` first, then the
//!   `-d` files, directories in parallel), write `trim.txt` → [`TrimReport`]. [`list`] and
//!   [`apply`] are public so a caller can show a plan (dry run) and carry out exactly that
//!   plan.
//!
//! # Is it safe to delete an entry a concurrent build is using?
//! Yes for the cache, with one narrow window for the build; this is what Go's own source
//! says (Go 1.19.8, `src/cmd/go/internal/cache/cache.go` unless noted):
//! - A missing `-a` is a miss: `get` (l.153–213) returns `entryNotFoundError` when the open
//!   fails, and every caller (`work/buildid.go` l.537 `c.GetFile(actionHash)`,
//!   `work/exec.go` l.936 and l.1209, `test/test.go` l.1594) then rebuilds and `Put`s again.
//! - A missing `-d` is a miss too: `GetFile` (l.217–231) stats the output file and returns
//!   `entryNotFoundError` when it is missing or of the wrong size; `GetBytes` (l.236–246)
//!   ignores the read error and fails the SHA-256 check ("bad checksum"); `GetMmap`
//!   (l.251–264) returns the mmap error, and its caller (`modindex/read.go` l.188/222)
//!   recomputes. `Put` rewrites a missing or short `-d` (`copyFile`, l.473–545, called from `put`, l.443) before it
//!   writes the `-a` (`putIndexEntry`, l.375–426), so the next build repairs the entry.
//! - The window: once `GetFile` has returned a `-d`'s *path* (the build records it as the
//!   package's export data or built file, `work/buildid.go` l.537–545), a later step (the
//!   compiler reading import data, the linker, the copy to the target) opens it by name.
//!   Removing it between those moments makes that step fail with "no such file or
//!   directory"; rerunning the build rebuilds the entry. A file already open (or mmapped)
//!   is unaffected by an unlink. Go itself accepts this window: every build ends with
//!   `defer c.Trim()` (`work/exec.go` l.71), which removes files under other concurrent
//!   builds with no lock (`trimSubdir`, l.347–371).
//! - How we keep the window shut in practice: `used` (l.300–306) refreshes the mtime of an
//!   entry that is older than an hour *before* `GetFile`/`OutputFile` return its path, so
//!   an entry old enough for the age rule that a build is about to use has a fresh mtime;
//!   the executor re-checks inode and mtime right before each `unlinkat` and keeps a
//!   touched entry. The size cap evicts only whole entries whose `-a` and `-d` are both
//!   older than the in-use grace (two hours by default: `mtimeInterval`, during which a hit
//!   does not refresh the mtime, plus an hour of margin for the build to open what it
//!   looked up); the rule and why it suffices are in [`plan`]'s module docs. The remaining
//!   race (use between our re-check and the unlink) is the one Go's own trim has.

mod execute;
mod parallel;
mod plan;

pub use execute::{
    Listing, RemovalOutcome, RemovalRow, SkippedDir, TrimReport, apply, apply_until, execute,
    execute_in, execute_until, list,
};
pub use plan::{
    CacheEntry, CapOutcome, DEFAULT_IN_USE_GRACE, MIN_IN_USE_GRACE, Removal, RemovalReason,
    TrimPlan, TrimPolicy, plan,
};
