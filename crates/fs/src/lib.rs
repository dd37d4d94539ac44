//! goguard-fs: safe, fd-based filesystem operations beneath a cache root. It executes
//! changes; it never decides what to change (that is goguard-policy's job).
//!
//! Every entry is reached from a [`RootDir`] opened once, with `openat2` and
//! `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV`; every change
//! goes through the entry's `O_PATH` fd. Nothing here follows a symlink, leaves a root, or
//! crosses a mount.
//!
//! # Layout
//! - [`root`]: [`RootDir`], opening the root and entries beneath it.
//! - [`entry`]: [`Entry`] and its changes (owner, mode, label, ACLs) with [`Outcome`]s.
//! - [`walk`]: depth-first tree walk through directory fds, with bounded open fds.
//! - [`acl`]: POSIX ACL xattr codec, setfacl specs and semantics, getfacl text (pure).
//! - [`label`]: file_contexts lookups (libselinux) and restorecon's decision (pure).
//! - [`error`]: [`FsError`], with the operation and the path relative to the root.

pub mod acl;
pub mod entry;
pub mod error;
pub mod label;
pub mod root;
mod sys;
pub mod walk;

pub use acl::{Acl, AclKind, AclOp, AclState};
pub use entry::{Entry, FileKind, Meta, Outcome, Owner};
pub use error::{FsError, Op, Result};
pub use label::{FileContexts, customizable_types, installed_file_contexts, relabel_decision};
pub use root::RootDir;
pub use walk::{Control, Visitor, WalkEntry, WalkOptions, WalkStats, walk, walk_parallel};
