//! Reading a bundle by member name: a directory (members opened beneath it, never through a
//! symlink) or an uncompressed tar (its headers read once into an index of regular members;
//! a member is then read at its offset with `pread`, nothing is extracted). Member names are
//! only ever looked up, never used to create paths.
//!
//! Every read is bounded by the caller's limit: a member larger than it is an
//! [`io::ErrorKind::FileTooLarge`] error, and a member that grows while it is read stops there.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::beneath;

/// Most members a tar bundle may have.
const MAX_MEMBERS: usize = 1_000_000;

/// An opened bundle.
#[derive(Debug)]
pub struct BundleSource {
    /// As given, for messages.
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A directory, opened `O_RDONLY|O_DIRECTORY`.
    Dir(OwnedFd),
    /// A tar file and its regular members: name → (data offset, size).
    Tar {
        file: File,
        members: HashMap<String, (u64, u64)>,
    },
}

impl BundleSource {
    /// Opens a bundle directory, or a tar file (read its headers).
    pub fn open(path: &Path) -> io::Result<BundleSource> {
        let meta = std::fs::metadata(path)?;
        let kind = if meta.is_dir() {
            Kind::Dir(File::open(path)?.into())
        } else {
            let file = File::open(path)?;
            let members = index_tar(&file)?;
            Kind::Tar { file, members }
        };
        Ok(BundleSource {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// The bundle's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A member's size; `NotFound` when it is absent.
    pub fn size(&self, name: &str) -> io::Result<u64> {
        match &self.kind {
            Kind::Dir(fd) => Ok(beneath::open_file(fd.as_fd(), Path::new(name))?
                .metadata()?
                .len()),
            Kind::Tar { members, .. } => members
                .get(name)
                .map(|&(_, size)| size)
                .ok_or_else(|| not_found(name)),
        }
    }

    /// A member's bytes as a stream, capped at `limit` (`FileTooLarge` past it).
    pub fn reader(&self, name: &str, limit: u64) -> io::Result<MemberReader<'_>> {
        let inner = match &self.kind {
            Kind::Dir(fd) => Inner::File(beneath::open_file(fd.as_fd(), Path::new(name))?),
            Kind::Tar { file, members } => {
                let &(start, size) = members.get(name).ok_or_else(|| not_found(name))?;
                Inner::Section {
                    file,
                    pos: start,
                    end: start + size,
                }
            }
        };
        Ok(MemberReader {
            inner,
            left: limit,
            limit,
        })
    }

    /// A member's whole content, when it holds at most `limit` bytes.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Vec<u8>> {
        let size = self.size(name)?;
        if size > limit {
            return Err(too_large(limit));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.reader(name, limit)?.read_to_end(&mut buf)?;
        Ok(buf)
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{name}: not in the bundle"),
    )
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than {limit} bytes: not read"),
    )
}

/// The regular members of a tar: name → (offset of the data, size). A name present twice is
/// an error (which one would be meant?).
fn index_tar(file: &File) -> io::Result<HashMap<String, (u64, u64)>> {
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            continue; // directories, links: never used
        }
        let Ok(name) = String::from_utf8(entry.path_bytes().into_owned()) else {
            continue; // no member we look up has such a name
        };
        let name = name.trim_start_matches("./").to_owned();
        if members.len() >= MAX_MEMBERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {MAX_MEMBERS} members: not a goguard bundle"),
            ));
        }
        let at = (entry.raw_file_position(), entry.size());
        if members.insert(name.clone(), at).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: twice in the tar"),
            ));
        }
    }
    Ok(members)
}

enum Inner<'a> {
    File(File),
    Section { file: &'a File, pos: u64, end: u64 },
}

/// One member's bytes, capped.
pub struct MemberReader<'a> {
    inner: Inner<'a>,
    left: u64,
    limit: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the limit tells us it is exceeded.
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = match &mut self.inner {
            Inner::File(f) => f.read(&mut buf[..want])?,
            Inner::Section { file, pos, end } => {
                let want = want.min(usize::try_from(*end - *pos).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                let n = file.read_at(&mut buf[..want], *pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar ends inside a member",
                    ));
                }
                *pos += n as u64;
                n
            }
        };
        if n as u64 > self.left {
            return Err(too_large(self.limit));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_and_directory_members_read_alike_and_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        std::fs::write(dir.join("cache/x"), b"hello world").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let tar_path = tmp.path().join("b.tar");
        let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(11);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "cache/x", &b"hello world"[..])
            .unwrap();
        b.into_inner().unwrap();
        for path in [&dir, &tar_path] {
            let s = BundleSource::open(path).unwrap();
            assert_eq!(s.size("cache/x").unwrap(), 11);
            assert_eq!(s.read("cache/x", 11).unwrap(), b"hello world");
            assert_eq!(
                s.read("cache/x", 10).unwrap_err().kind(),
                io::ErrorKind::FileTooLarge
            );
            let mut r = s.reader("cache/x", 5).unwrap();
            let mut out = Vec::new();
            assert_eq!(
                r.read_to_end(&mut out).unwrap_err().kind(),
                io::ErrorKind::FileTooLarge
            );
            assert!(s.read("missing", 10).is_err());
            // A symlink member is never followed.
            assert!(s.read("link", 1 << 20).is_err());
        }
    }
}
