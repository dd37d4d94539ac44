//! goguard-hygiene: Go cache hygiene. GOCACHE trimming by the `go` command's own rules
//! (plus an optional size cap that evicts least-recently-used entries, never leaving half an
//! entry), and module-cache verification as `go mod verify` does it (plus `go.sum` checks for
//! offline hosts).
//!
//! Planners, parsers and hashers take values and return values; only [`trim::execute`] and
//! [`modverify::verify_cache`] touch the filesystem, and they do it through fds beneath the
//! root (`openat2` with `RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV`, see
//! [`beneath`]). Nothing here follows a symlink, leaves a root, or crosses a mount; only
//! [`bundle::import::place`] adds to a module cache (verification is read-only).
//!
//! # Layout
//! - [`gocache`]: Go's GOCACHE format and constants (entry names, `-a` records, `trim.txt`);
//!   pure.
//! - [`trim`]: [`trim::plan`] (pure: entries + `trim.txt` + now → [`trim::TrimPlan`]) and
//!   [`trim::execute`] (lists, removes by fd, writes `trim.txt` as Go does).
//! - [`dirhash`]: the `h1:` hash of `golang.org/x/mod/sumdb/dirhash` over readers, zips and
//!   single `go.mod` files; pure (callers hand it readers).
//! - [`modpath`]: module path and version escaping (`!` + lower case); pure.
//! - [`gosum`]: `go.sum` parsing; pure.
//! - [`modverify`]: per-module verdicts (pure) and [`modverify::verify_cache`], the walk of
//!   `GOMODCACHE/cache/download` that feeds them.
//! - [`bundle`]: offline module-cache prefill: export a bundle of module versions from a
//!   module cache, verify it against go.sum and import it into another (the one writer of a
//!   module cache here, and only into a cache its caller owns).
//! - [`beneath`]: the few fd operations goguard-fs does not offer (read a file, unlink, write
//!   `trim.txt` under Go's lock), with the same confinement.
//! - [`error`]: the crate error, [`HygieneError`].

pub mod beneath;
pub mod bundle;
pub mod cleanup;
pub mod dirhash;
pub mod error;
pub mod gocache;
pub mod gosum;
pub mod modpath;
pub mod modverify;
pub mod trim;

pub use error::{HygieneError, Result};
