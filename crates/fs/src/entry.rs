//! [`Entry`]: one file beneath a root, held by an `O_PATH|O_NOFOLLOW` fd, and the changes
//! that can be made through that fd: owner, mode, `security.selinux`, POSIX ACLs. Each change
//! reports an [`Outcome`] and is idempotent (the second identical call is
//! [`Outcome::AlreadyCompliant`]).
//!
//! How each change reaches the inode (all through the fd, never through a path that could be
//! swapped):
//! - owner: `fchownat(fd, "", AT_EMPTY_PATH)` (on a symlink this changes the link only, like
//!   `chown -h`);
//! - mode and xattrs of regular files and directories: `fchmod`/`f{get,set,remove}xattr` on
//!   an `O_RDONLY|O_NONBLOCK` fd of the same inode (the walk opens entries so; an `O_PATH`
//!   entry is re-opened once through `/proc/self/fd/N` and checked to be the same inode);
//! - otherwise `fchmodat`/`{get,set,remove}xattr` on `/proc/self/fd/N`: the magic link
//!   resolves to the opened inode itself, never to a symlink's target.
//!
//! This module must never write a mode, label or ACL on a symlink (refused with
//! [`FsError::Refused`]), never re-resolve the entry by path, and never decide what the
//! expected state is (callers pass it in).

use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, StatxFlags, Uid, XattrFlags};
use rustix::io::Errno;

use crate::acl::{Acl, AclKind, AclOp, AclState};
use crate::error::{FsError, Op, Result};
use crate::label;
use crate::root::statx_fd;

pub(crate) const STATX_MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::MNT_ID);

/// The kind of a file, from its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed).
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Anything else.
    Unknown,
}

impl FileKind {
    /// The kind encoded in `st_mode`.
    pub fn from_mode(mode: u32) -> FileKind {
        match FileType::from_raw_mode(mode) {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }

    /// The `S_IF*` bits of this kind (what file_contexts' `--`, `-d`, `-l` match).
    pub fn type_bits(self) -> u32 {
        match self {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
            FileKind::Unknown => 0,
        }
    }

    /// A word for messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::File => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Unknown => "file of unknown type",
        }
    }
}

/// The metadata of one entry (from `statx` without following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    /// File type.
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device of the filesystem holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Mount id (`STATX_MNT_ID`; 0 if the kernel did not report it).
    pub mnt_id: u64,
}

impl Meta {
    pub(crate) fn from_statx(st: &rustix::fs::Statx) -> Meta {
        Meta {
            kind: FileKind::from_mode(st.stx_mode as u32),
            mode: st.stx_mode as u32 & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            nlink: st.stx_nlink as u64,
            size: st.stx_size,
            mtime_sec: st.stx_mtime.tv_sec,
            mtime_nsec: st.stx_mtime.tv_nsec,
            mnt_id: if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
                st.stx_mnt_id
            } else {
                0
            },
        }
    }

    pub(crate) fn of_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<Meta> {
        statx_fd(fd).map(|st| Meta::from_statx(&st))
    }

    /// `st_mode` with the type bits, as file_contexts lookups want it.
    pub fn st_mode(&self) -> u32 {
        self.kind.type_bits() | self.mode
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// True for a symlink.
    pub fn is_symlink(&self) -> bool {
        self.kind == FileKind::Symlink
    }

    /// True when both describe the same inode.
    pub fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// What a change did. `before`/`after` are what the entry had and now has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Nothing to do: the entry already had the wanted state.
    AlreadyCompliant,
    /// The entry was changed.
    Changed {
        /// State before the change.
        before: T,
        /// State after the change.
        after: T,
    },
}

impl<T> Outcome<T> {
    /// True for [`Outcome::Changed`].
    pub fn changed(&self) -> bool {
        matches!(self, Outcome::Changed { .. })
    }
}

/// Owner and group of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// One file beneath a root, held open with `O_PATH|O_NOFOLLOW` (or, when opened by a walk as
/// a regular file or directory, `O_RDONLY|O_NONBLOCK|O_NOFOLLOW`).
#[derive(Debug)]
pub struct Entry {
    /// The fd: identity of the inode every change goes to.
    fd: OwnedFd,
    /// Path relative to the root, for errors and reports.
    rel: PathBuf,
    /// Metadata, refreshed after each change.
    meta: Meta,
    /// `meta` was read since the last operation, so the next one need not re-read it.
    fresh: bool,
    /// For regular files and directories: the same inode re-opened `O_RDONLY|O_NONBLOCK`
    /// through `/proc/self/fd/N` (once, lazily), so xattrs and mode change with `f*` calls.
    /// `None` until needed, or when re-opening is not possible (other kinds, EACCES).
    io: Option<OwnedFd>,
    /// Re-opening was tried and failed; use `/proc/self/fd/N` paths.
    io_failed: bool,
    /// `fd` itself is an `O_RDONLY` fd of a regular file or directory (opened so by a walk),
    /// usable for `f*` calls.
    fd_is_io: bool,
}

const XATTR_SELINUX: &str = "security.selinux";

impl Entry {
    /// An entry whose `fd` was opened `O_RDONLY` (a regular file or directory).
    pub(crate) fn from_io_fd(fd: OwnedFd, rel: PathBuf) -> Result<Entry> {
        let mut e = Entry::from_fd(fd, rel)?;
        e.fd_is_io = true;
        Ok(e)
    }

    pub(crate) fn from_fd(fd: OwnedFd, rel: PathBuf) -> Result<Entry> {
        let meta = Meta::of_fd(fd.as_fd()).map_err(|e| FsError::io(Op::Stat, &rel, e))?;
        Ok(Entry {
            fd,
            rel,
            meta,
            fresh: true,
            io: None,
            io_failed: false,
            fd_is_io: false,
        })
    }

    /// Path relative to the root.
    pub fn rel_path(&self) -> &Path {
        &self.rel
    }

    /// Metadata as of the last refresh or change.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The entry's fd (`O_PATH`, or `O_RDONLY` for files and directories opened by a walk).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Re-reads the metadata through the fd.
    pub fn refresh(&mut self) -> Result<&Meta> {
        self.meta = Meta::of_fd(self.fd.as_fd()).map_err(|e| self.err(Op::Stat, e))?;
        self.fresh = true;
        Ok(&self.meta)
    }

    /// Re-reads the metadata unless it was just read (at open or by `refresh`); every change
    /// starts here so its decision is made on current metadata.
    fn begin(&mut self) -> Result<()> {
        if !self.fresh {
            self.refresh()?;
        }
        self.fresh = false;
        Ok(())
    }

    fn err(&self, op: Op, e: Errno) -> FsError {
        FsError::io(op, &self.rel, e)
    }

    fn refuse_symlink(&self, op: Op) -> Result<()> {
        if self.meta.is_symlink() {
            return Err(FsError::Refused {
                op,
                path: self.rel.clone(),
                kind: "symlink",
            });
        }
        Ok(())
    }

    fn proc_path(&self) -> String {
        let mut s = String::with_capacity(24);
        let _ = write!(s, "/proc/self/fd/{}", self.fd.as_raw_fd());
        s
    }

    /// The I/O fd for files and directories (see the `io` field), opened on first use.
    /// Opening `/proc/self/fd/N` of an `O_PATH` fd reaches exactly that inode, and only
    /// regular files and directories are re-opened, so no device or FIFO is ever opened.
    fn io_fd(&mut self) -> Option<BorrowedFd<'_>> {
        if self.fd_is_io {
            return Some(self.fd.as_fd());
        }
        if self.io.is_none() && !self.io_failed {
            let kind = self.meta.kind;
            if matches!(kind, FileKind::File | FileKind::Dir) {
                let mut flags =
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                if kind == FileKind::Dir {
                    flags |= OFlags::DIRECTORY;
                }
                match rustix::fs::open(self.proc_path(), flags, Mode::empty()) {
                    Ok(fd) => match Meta::of_fd(fd.as_fd()) {
                        Ok(m) if m.same_inode(&self.meta) => self.io = Some(fd),
                        _ => self.io_failed = true,
                    },
                    Err(_) => self.io_failed = true,
                }
            } else {
                self.io_failed = true;
            }
        }
        self.io.as_ref().map(|fd| fd.as_fd())
    }

    fn xattr_get(&mut self, name: &str, buf: &mut Vec<u8>) -> rustix::io::Result<usize> {
        match self.io_fd() {
            Some(fd) => rustix::fs::fgetxattr(fd, name, rustix::buffer::spare_capacity(buf)),
            None => {
                rustix::fs::getxattr(self.proc_path(), name, rustix::buffer::spare_capacity(buf))
            }
        }
    }

    fn xattr_set(&mut self, name: &str, value: &[u8]) -> rustix::io::Result<()> {
        match self.io_fd() {
            Some(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()),
            None => rustix::fs::setxattr(self.proc_path(), name, value, XattrFlags::empty()),
        }
    }

    fn xattr_remove(&mut self, name: &str) -> rustix::io::Result<()> {
        match self.io_fd() {
            Some(fd) => rustix::fs::fremovexattr(fd, name),
            None => rustix::fs::removexattr(self.proc_path(), name),
        }
    }

    /// Sets owner and/or group (`None` keeps it). Symlinks: changes the link itself.
    pub fn chown(&mut self, uid: Option<u32>, gid: Option<u32>) -> Result<Outcome<Owner>> {
        self.begin()?;
        let before = Owner {
            uid: self.meta.uid,
            gid: self.meta.gid,
        };
        let after = Owner {
            uid: uid.unwrap_or(before.uid),
            gid: gid.unwrap_or(before.gid),
        };
        if before == after {
            return Ok(Outcome::AlreadyCompliant);
        }
        rustix::fs::chownat(
            self.fd.as_fd(),
            c"",
            Some(Uid::from_raw(after.uid)),
            Some(Gid::from_raw(after.gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(|e| self.err(Op::Chown, e))?;
        // chown may also clear setuid/setgid: the next operation re-reads the metadata.
        (self.meta.uid, self.meta.gid) = (after.uid, after.gid);
        self.drop_setid_after_chown()?;
        Ok(Outcome::Changed { before, after })
    }

    /// After a change of owner or group of anything but a directory or symlink: no
    /// setuid/setgid bit survives. The kernel clears setuid always, but keeps setgid
    /// without group-exec (a later `g+x` would arm it), so whatever is left is cleared
    /// here: a file handed to root or to a group never carries a bit its previous owner
    /// chose (docs/SECURITY.md).
    fn drop_setid_after_chown(&mut self) -> Result<()> {
        if self.meta.is_dir() || self.meta.is_symlink() {
            return Ok(());
        }
        self.refresh()?;
        self.fresh = false;
        let mode = self.meta.mode;
        if mode & 0o6000 == 0 {
            return Ok(());
        }
        self.set_mode(mode & !0o6000)
            .map_err(|e| self.err(Op::Chmod, e))?;
        self.refresh()?;
        self.fresh = false;
        Ok(())
    }

    /// `fchmod` through the I/O fd, else `chmod` of `/proc/self/fd/N`.
    fn set_mode(&mut self, mode: u32) -> rustix::io::Result<()> {
        match self.io_fd() {
            Some(fd) => rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)),
            None => rustix::fs::chmodat(
                rustix::fs::CWD,
                self.proc_path(),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            ),
        }
    }

    /// Sets `set` and clears `clear` on the mode the entry has now (re-read from its fd,
    /// so after a chown of the same plan), i.e. `chmod` to `(now & !clear) | set`.
    pub fn change_mode(&mut self, set: u32, clear: u32) -> Result<Outcome<u32>> {
        self.refresh()?;
        let mode = (self.meta.mode & !clear) | (set & !clear);
        self.chmod(mode)
    }

    /// Sets the permission bits (`mode & 0o7777`). Refused on symlinks.
    pub fn chmod(&mut self, mode: u32) -> Result<Outcome<u32>> {
        self.begin()?;
        self.refuse_symlink(Op::Chmod)?;
        let mode = mode & 0o7777;
        let before = self.meta.mode;
        if before == mode {
            return Ok(Outcome::AlreadyCompliant);
        }
        self.set_mode(mode).map_err(|e| self.err(Op::Chmod, e))?;
        self.refresh()?;
        self.fresh = false;
        Ok(Outcome::Changed {
            before,
            after: self.meta.mode,
        })
    }

    fn get_xattr(&mut self, name: &str, op: Op) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::with_capacity(256);
        loop {
            match self.xattr_get(name, &mut buf) {
                Ok(_) => return Ok(Some(buf)),
                Err(Errno::NODATA) => return Ok(None),
                Err(Errno::RANGE) => buf.reserve(buf.capacity() * 2),
                Err(e) => return Err(self.err(op, e)),
            }
        }
    }

    /// The `security.selinux` label, without its trailing NUL; `None` when unlabeled.
    pub fn label(&mut self) -> Result<Option<String>> {
        Ok(self
            .get_xattr(XATTR_SELINUX, Op::GetLabel)?
            .map(|v| label::decode_xattr(&v)))
    }

    /// Sets `security.selinux` to `context` (validated as `user:role:type[:range]`).
    /// Refused on symlinks.
    pub fn set_label(&mut self, context: &str) -> Result<Outcome<Option<String>>> {
        self.begin()?;
        self.refuse_symlink(Op::SetLabel)?;
        if label::parse_context(context).is_none() {
            return Err(FsError::BadContext {
                op: Op::SetLabel,
                path: self.rel.clone(),
                context: context.to_owned(),
            });
        }
        let before = self.label()?;
        if before.as_deref() == Some(context) {
            return Ok(Outcome::AlreadyCompliant);
        }
        let mut value = Vec::with_capacity(context.len() + 1);
        value.extend_from_slice(context.as_bytes());
        value.push(0);
        self.xattr_set(XATTR_SELINUX, &value)
            .map_err(|e| self.err(Op::SetLabel, e))?;
        Ok(Outcome::Changed {
            before,
            after: Some(context.to_owned()),
        })
    }

    /// The ACL of `kind`, decoded; `None` when the file has none (symlinks never do).
    pub fn acl(&mut self, kind: AclKind) -> Result<Option<Acl>> {
        if self.meta.is_symlink() || (kind == AclKind::Default && !self.meta.is_dir()) {
            return Ok(None);
        }
        match self.get_xattr(kind.xattr_name(), Op::GetAcl) {
            Ok(Some(bytes)) => Acl::from_xattr(&bytes)
                .map(Some)
                .map_err(|source| FsError::Acl {
                    op: Op::GetAcl,
                    path: self.rel.clone(),
                    source,
                }),
            Ok(None) => Ok(None),
            Err(FsError::Io { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The file's whole ACL state (access ACL from the mode when it has none).
    pub fn acl_state(&mut self) -> Result<AclState> {
        let access = self.acl(AclKind::Access)?;
        let default = self.acl(AclKind::Default)?;
        Ok(AclState::new(access, default, self.meta.mode))
    }

    /// Applies setfacl-style edits (`-m`, `-x`, `-b`, `-k` with `-R` semantics: default-ACL
    /// edits on non-directories are ignored). The kernel updates the mode's group bits to the
    /// mask, as with setfacl. Refused on symlinks.
    pub fn apply_acl(&mut self, ops: &[AclOp]) -> Result<Outcome<AclState>> {
        self.begin()?;
        self.refuse_symlink(Op::SetAcl)?;
        let before = self.acl_state()?;
        let plan =
            crate::acl::plan(&before, self.meta.is_dir(), ops).map_err(|source| FsError::Acl {
                op: Op::SetAcl,
                path: self.rel.clone(),
                source,
            })?;
        if plan.is_noop() {
            return Ok(Outcome::AlreadyCompliant);
        }
        if plan.access_changed {
            // A minimal ACL is turned into mode bits by the kernel (and the xattr dropped).
            self.xattr_set(AclKind::Access.xattr_name(), &plan.after.access.to_xattr())
                .map_err(|e| self.err(Op::SetAcl, e))?;
        }
        if plan.default_changed {
            self.write_default(&plan.after.default)?;
        }
        // The kernel set the rwx bits from the access ACL; the next operation re-reads.
        self.meta.mode = plan.after.mode;
        Ok(Outcome::Changed {
            before,
            after: plan.after,
        })
    }

    fn write_default(&mut self, acl: &Acl) -> Result<()> {
        let name = AclKind::Default.xattr_name();
        if acl.is_empty() {
            match self.xattr_remove(name) {
                Ok(()) | Err(Errno::NODATA) => Ok(()),
                Err(e) => Err(self.err(Op::RemoveAcl, e)),
            }
        } else {
            self.xattr_set(name, &acl.to_xattr())
                .map_err(|e| self.err(Op::SetAcl, e))
        }
    }

    /// Replaces the ACL of `kind` with `acl` exactly (validated). Writing an access ACL sets
    /// the mode's rwx bits from it. Refused on symlinks; a default ACL only on directories.
    pub fn set_acl(&mut self, kind: AclKind, acl: &Acl) -> Result<Outcome<Option<Acl>>> {
        self.begin()?;
        self.refuse_symlink(Op::SetAcl)?;
        let acl_err = |source| FsError::Acl {
            op: Op::SetAcl,
            path: self.rel.clone(),
            source,
        };
        acl.validate().map_err(acl_err)?;
        if acl.is_empty() {
            return self.remove_acl(kind);
        }
        if kind == AclKind::Default && !self.meta.is_dir() {
            return Err(FsError::Refused {
                op: Op::SetAcl,
                path: self.rel.clone(),
                kind: self.meta.kind.name(),
            });
        }
        let before = self.acl(kind)?;
        let compliant = match kind {
            AclKind::Access if acl.is_minimal() => {
                before.is_none() && self.meta.mode & 0o777 == acl.mode_bits()
            }
            _ => before.as_ref() == Some(acl),
        };
        if compliant {
            return Ok(Outcome::AlreadyCompliant);
        }
        self.xattr_set(kind.xattr_name(), &acl.to_xattr())
            .map_err(|e| self.err(Op::SetAcl, e))?;
        self.refresh()?;
        self.fresh = false;
        Ok(Outcome::Changed {
            before,
            after: self.acl(kind)?,
        })
    }

    /// Removes the ACL of `kind`. For the access ACL this is `setfacl -b` on the access part:
    /// the owning group keeps only what the mask allowed, and the mode shows it.
    pub fn remove_acl(&mut self, kind: AclKind) -> Result<Outcome<Option<Acl>>> {
        self.begin()?;
        self.refuse_symlink(Op::RemoveAcl)?;
        let before = self.acl(kind)?;
        let Some(current) = before.clone() else {
            return Ok(Outcome::AlreadyCompliant);
        };
        match kind {
            AclKind::Access => {
                let state = AclState::new(Some(current), None, self.meta.mode);
                let plan =
                    crate::acl::plan(&state, false, &[AclOp::RemoveAll]).map_err(|source| {
                        FsError::Acl {
                            op: Op::RemoveAcl,
                            path: self.rel.clone(),
                            source,
                        }
                    })?;
                self.xattr_set(kind.xattr_name(), &plan.after.access.to_xattr())
                    .map_err(|e| self.err(Op::RemoveAcl, e))?;
            }
            AclKind::Default => self.write_default(&Acl::empty())?,
        }
        self.refresh()?;
        self.fresh = false;
        Ok(Outcome::Changed {
            before,
            after: self.acl(kind)?,
        })
    }
}
