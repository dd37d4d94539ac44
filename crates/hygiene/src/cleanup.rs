//! Making a workspace or a module cache removable, and removing it whole (issue 16, guide
//! 4.3). Go makes every module directory read-only (0555), so `rm -rf` of a CI workspace, a
//! cache restore that untars over the module cache ("Cannot open: File exists") and a
//! runner's cleanup fail with "Permission denied". [`unlock`] gives the owner back read,
//! write and search permission on every directory (what `chmod -R u+w` is meant to do);
//! [`remove_contents`] does that on the way down and removes everything bottom-up.
//!
//! Everything is fd-based: each directory is opened beneath its parent's fd
//! (`RESOLVE_BENEATH|NO_SYMLINKS|NO_XDEV`, `O_NOFOLLOW`); a symlink is removed, never
//! followed; a filesystem mounted inside is left in place and reported, as
//! `rm --one-file-system` does. A directory's mode is changed only when it belongs to the
//! caller (`uid`; root's walk changes any, as root's `chmod` would).
//!
//! Must never follow a symlink, leave the tree it is given, cross a mount, or change the
//! mode of a directory another user owns (for a caller other than root).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::beneath;

/// The deepest directory level handled (a module cache is a few dozen levels deep); deeper
/// directories are left and reported.
const MAX_DEPTH: usize = 512;
/// How many examples of entries left behind a report keeps.
const MAX_EXAMPLES: usize = 10;

/// What an unlock or a removal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Directories seen (the top one included).
    pub directories: u64,
    /// Other entries seen (files, symlinks, ...).
    pub others: u64,
    /// Directories whose mode was given `u+rwx`.
    pub unlocked: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries that could not be unlocked or removed.
    pub left: u64,
    /// Up to [`MAX_EXAMPLES`] of them, with why (relative to the top).
    pub examples: Vec<String>,
}

impl CleanupReport {
    fn leave(&mut self, rel: &str, why: impl std::fmt::Display) {
        self.left += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(format!("{rel}: {why}"));
        }
    }
}

/// Gives `u+rwx` to every directory beneath and including `top` that `uid` owns (any, for
/// root). `progress` is called with the number of entries seen, every 4096.
pub fn unlock(top: BorrowedFd<'_>, uid: u32, progress: &mut dyn FnMut(u64)) -> CleanupReport {
    walk(top, uid, false, progress)
}

/// Unlocks and removes everything beneath `top` (not `top` itself: the caller removes it
/// from its parent's fd). `progress` as in [`unlock`].
pub fn remove_contents(
    top: BorrowedFd<'_>,
    uid: u32,
    progress: &mut dyn FnMut(u64),
) -> CleanupReport {
    walk(top, uid, true, progress)
}

fn walk(
    top: BorrowedFd<'_>,
    uid: u32,
    remove: bool,
    progress: &mut dyn FnMut(u64),
) -> CleanupReport {
    let mut report = CleanupReport::default();
    let mut walk = Walk {
        uid,
        remove,
        progress,
        report: &mut report,
    };
    walk.unlock_dir(top, "");
    walk.dir(top, "", 0);
    report
}

/// Removes the directory `name` in `parent` after its contents (see [`remove_contents`]),
/// checking first that it is still the inode `expected` (dev, ino) that the caller opened.
pub fn remove_top(
    parent: BorrowedFd<'_>,
    name: &CStr,
    expected: (u64, u64),
    report: &mut CleanupReport,
) -> io::Result<()> {
    let st = beneath::stat_at(parent, name)?;
    if (st.dev, st.ino) != expected || st.kind != FileType::Directory {
        return Err(io::Error::other(
            "it was replaced while it was being emptied; left in place",
        ));
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    report.removed += 1;
    Ok(())
}

struct Walk<'a> {
    uid: u32,
    remove: bool,
    progress: &'a mut dyn FnMut(u64),
    report: &'a mut CleanupReport,
}

impl Walk<'_> {
    fn seen(&mut self) {
        let n = self.report.directories + self.report.others;
        if n % 4096 == 0 {
            (self.progress)(n);
        }
    }

    /// `u+rwx` on the open directory `fd` when the caller may and it lacks any of them.
    fn unlock_dir(&mut self, fd: BorrowedFd<'_>, rel: &str) {
        self.report.directories += 1;
        self.seen();
        let st = match rustix::fs::fstat(fd) {
            Ok(st) => st,
            Err(e) => return self.report.leave(rel_or_top(rel), io::Error::from(e)),
        };
        let mode = st.st_mode & 0o7777;
        if mode & 0o700 == 0o700 || (self.uid != 0 && st.st_uid != self.uid) {
            return;
        }
        match chmod_fd(fd, mode | 0o700) {
            Ok(()) => self.report.unlocked += 1,
            Err(e) => self.report.leave(rel_or_top(rel), e),
        }
    }

    /// Handles the entries of the open directory `fd` (at `rel`), depth-first.
    fn dir(&mut self, fd: BorrowedFd<'_>, rel: &str, depth: usize) {
        let names = match beneath::list_names(fd) {
            Ok(n) => n,
            Err(e) => return self.report.leave(rel_or_top(rel), e),
        };
        for name in names {
            let child_rel = join(rel, &name);
            let st = match beneath::stat_at(fd, name.as_c_str()) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.report.leave(&child_rel, e);
                    continue;
                }
            };
            if st.kind == FileType::Directory {
                if depth + 1 > MAX_DEPTH {
                    self.report
                        .leave(&child_rel, format!("deeper than {MAX_DEPTH} levels"));
                    continue;
                }
                let child = match open_subdir(fd, &name, self.uid) {
                    Ok(c) => c,
                    Err(e) if e.raw_os_error() == Some(Errno::XDEV.raw_os_error()) => {
                        self.report.leave(
                            &child_rel,
                            "another filesystem is mounted here: left in place (unmount it first)",
                        );
                        continue;
                    }
                    Err(e) => {
                        self.report.leave(&child_rel, e);
                        continue;
                    }
                };
                self.unlock_dir(child.as_fd(), &child_rel);
                self.dir(child.as_fd(), &child_rel, depth + 1);
                if self.remove {
                    drop(child);
                    match rustix::fs::unlinkat(fd, name.as_c_str(), AtFlags::REMOVEDIR) {
                        Ok(()) => self.report.removed += 1,
                        Err(Errno::NOTEMPTY) => {} // what is left in it is reported
                        Err(e) => self.report.leave(&child_rel, io::Error::from(e)),
                    }
                }
            } else {
                self.report.others += 1;
                self.seen();
                if self.remove {
                    match rustix::fs::unlinkat(fd, name.as_c_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => self.report.removed += 1,
                        Err(e) => self.report.leave(&child_rel, io::Error::from(e)),
                    }
                }
            }
        }
    }
}

/// Opens the subdirectory `name` of `parent` for listing; one the owner cannot read or
/// search is first given `u+rwx` through an `O_PATH` fd when it belongs to `uid` (any, for
/// root, which can open it anyway).
fn open_subdir(parent: BorrowedFd<'_>, name: &CString, uid: u32) -> io::Result<OwnedFd> {
    let rel = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    match beneath::open_dir(parent, rel) {
        Err(e) if e.raw_os_error() == Some(Errno::ACCESS.raw_os_error()) => {
            let path_fd = beneath::openat2_beneath(
                parent,
                rel,
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
            let st = rustix::fs::fstat(&path_fd)?;
            if st.st_uid != uid {
                return Err(e);
            }
            // chmod of /proc/self/fd/N: the inode the O_PATH fd holds, no name looked up.
            let proc = format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&path_fd)
            );
            rustix::fs::chmodat(
                rustix::fs::CWD,
                proc.as_str(),
                Mode::from_raw_mode((st.st_mode & 0o7777) | 0o700),
                AtFlags::empty(),
            )?;
            beneath::open_dir(parent, rel)
        }
        other => other,
    }
}

fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(io::Error::from)
}

fn join(rel: &str, name: &CStr) -> String {
    let name = String::from_utf8_lossy(name.to_bytes());
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn rel_or_top(rel: &str) -> &str {
    if rel.is_empty() { "." } else { rel }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn module_tree(top: &Path) {
        // What `go mod download` leaves: 0555 directories, 0444 files, and a symlink out.
        let m = top.join("example.com/a@v1.0.0/sub");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("a.go"), b"package a").unwrap();
        std::fs::write(top.join("example.com/a@v1.0.0/go.mod"), b"module a").unwrap();
        std::os::unix::fs::symlink("/etc", top.join("example.com/out")).unwrap();
        for d in [
            m.as_path(),
            &top.join("example.com/a@v1.0.0"),
            &top.join("example.com"),
        ] {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() && !p.is_symlink() {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
                }
            }
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
    }

    fn open(p: &Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn unlock_gives_the_owner_write_on_every_directory_and_follows_no_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("mod");
        module_tree(&top);
        let etc_mode = std::fs::metadata("/etc").unwrap().permissions().mode();
        let uid = rustix::process::geteuid().as_raw();
        let r = unlock(open(&top).as_fd(), uid, &mut |_| {});
        assert_eq!(r.left, 0, "{r:?}");
        assert_eq!(r.unlocked, 3, "{r:?}");
        for d in [
            "example.com",
            "example.com/a@v1.0.0",
            "example.com/a@v1.0.0/sub",
        ] {
            let mode = std::fs::metadata(top.join(d)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{d}");
        }
        let file = std::fs::metadata(top.join("example.com/a@v1.0.0/go.mod")).unwrap();
        assert_eq!(
            file.permissions().mode() & 0o777,
            0o444,
            "files are left as they are"
        );
        assert_eq!(
            std::fs::metadata("/etc").unwrap().permissions().mode(),
            etc_mode
        );
    }

    #[test]
    fn remove_contents_empties_a_read_only_tree_and_leaves_the_symlinks_target() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("mod");
        module_tree(&top);
        let uid = rustix::process::geteuid().as_raw();
        let fd = open(&top);
        let r = remove_contents(fd.as_fd(), uid, &mut |_| {});
        assert_eq!(r.left, 0, "{r:?}");
        assert_eq!(r.removed, 6, "{r:?}");
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 0);
        assert!(Path::new("/etc/passwd").exists());
        let st = rustix::fs::fstat(&fd).unwrap();
        let parent = open(tmp.path());
        let mut report = r.clone();
        remove_top(parent.as_fd(), c"mod", (st.st_dev, st.st_ino), &mut report).unwrap();
        assert!(!top.exists());
    }
}
