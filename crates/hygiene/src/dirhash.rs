//! The `h1:` hash of `golang.org/x/mod/sumdb/dirhash` (vendored in Go 1.19.8 at
//! `src/cmd/vendor/golang.org/x/mod/sumdb/dirhash/hash.go`), over readers the caller opens.
//!
//! `Hash1(files, open)`: the names are sorted (`sort.Strings`: byte order); for each, the
//! line `"%x  %s\n"` of the SHA-256 of its content and its name goes into an outer SHA-256;
//! the result is `"h1:" + base64.StdEncoding(outer)`. Names with `\n` are refused.
//! - `HashDir(dir, prefix)`: names are the regular files beneath `dir` with `dir` replaced
//!   by `prefix` (`go mod verify` passes `module@version`); directories are not listed.
//! - `HashZip(zipfile)`: names are the zip's entry names as stored (for a module zip they
//!   already start with `module@version/`); content is each entry's decompressed data.
//!   Names that occur twice are hashed twice with the content of the last such entry
//!   (Go's `zfiles` map keeps the last).
//! - go.sum's `/go.mod` lines: `Hash1([]string{"go.mod"}, the .mod file's bytes)`
//!   (`modfetch.goModSum`, fetch.go l.585).
//!
//! Everything streams: content is read in chunks, never loaded whole, and callers that hash
//! what users wrote cap the total with a [`Budget`] (a zip bomb or a file that grows while
//! it is hashed stops at the cap with [`io::ErrorKind::FileTooLarge`]). This module must never
//! open a file itself: callers hand it readers (an opener closure, or a zip reader).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read, Seek};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What can go wrong while hashing.
#[derive(Debug, thiserror::Error)]
pub enum DirhashError {
    /// A file name contains a newline (Go: "dirhash: filenames with newlines are not
    /// supported").
    #[error("dirhash: filenames with newlines are not supported: {0:?}")]
    NewlineInName(String),
    /// Reading a file (or a zip entry) failed; CRC errors of zip entries land here.
    #[error("{name}: {source}")]
    Read {
        /// The file's name as hashed.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The zip's central directory could not be read.
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// The per-file SHA-256 sums behind an `h1:` hash, sorted by name, so two trees can be
/// compared file by file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// `(name, sha256 of content)`, sorted by name bytes (duplicates kept, as Go keeps them).
    pub files: Vec<(Vec<u8>, [u8; 32])>,
}

impl Summary {
    /// The `h1:` hash of this summary (Hash1's outer hash).
    pub fn h1(&self) -> String {
        let mut outer = Sha256::new();
        for (name, sum) in &self.files {
            outer.update(hex(sum).as_bytes());
            outer.update(b"  ");
            outer.update(name);
            outer.update(b"\n");
        }
        format!(
            "h1:{}",
            base64::engine::general_purpose::STANDARD.encode(outer.finalize())
        )
    }

    /// Names present in `self` but not in `other`, and names present in both whose content
    /// differs (each as lossy UTF-8).
    pub fn diff(&self, other: &Summary) -> SummaryDiff {
        let theirs: HashMap<&[u8], &[u8; 32]> =
            other.files.iter().map(|(n, s)| (n.as_slice(), s)).collect();
        let ours: HashMap<&[u8], &[u8; 32]> =
            self.files.iter().map(|(n, s)| (n.as_slice(), s)).collect();
        let text = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
        let mut d = SummaryDiff::default();
        for (n, s) in &self.files {
            match theirs.get(n.as_slice()) {
                None => d.only_in_self.push(text(n)),
                Some(t) if *t != s => d.changed.push(text(n)),
                _ => {}
            }
        }
        for (n, _) in &other.files {
            if !ours.contains_key(n.as_slice()) {
                d.only_in_other.push(text(n));
            }
        }
        d
    }
}

/// File-level differences between two [`Summary`]s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SummaryDiff {
    /// Names only in the first.
    pub only_in_self: Vec<String>,
    /// Names only in the second.
    pub only_in_other: Vec<String>,
    /// Names in both with different content.
    pub changed: Vec<String>,
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// SHA-256 of everything `r` yields, streamed in 64 KiB chunks.
pub fn sha256_reader(mut r: impl Read) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(h.finalize().into())
}

/// `Hash1` with the per-file sums kept: sorts `names`, opens each with `open`, hashes it.
pub fn summarize<R, F>(names: Vec<Vec<u8>>, mut open: F) -> Result<Summary, DirhashError>
where
    R: Read,
    F: FnMut(&[u8]) -> io::Result<R>,
{
    summarize_with(names, |name| sha256_reader(open(name)?))
}

/// The core of `Hash1`: sorts `names` and asks `sum_of` for each one's content SHA-256.
pub fn summarize_with<F>(mut names: Vec<Vec<u8>>, mut sum_of: F) -> Result<Summary, DirhashError>
where
    F: FnMut(&[u8]) -> io::Result<[u8; 32]>,
{
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        if name.contains(&b'\n') {
            return Err(DirhashError::NewlineInName(
                String::from_utf8_lossy(&name).into_owned(),
            ));
        }
        let sum = sum_of(&name).map_err(|source| DirhashError::Read {
            name: String::from_utf8_lossy(&name).into_owned(),
            source,
        })?;
        files.push((name, sum));
    }
    Ok(Summary { files })
}

/// `Hash1(names, open)`: the `h1:` hash.
pub fn hash1<R, F>(names: Vec<Vec<u8>>, open: F) -> Result<String, DirhashError>
where
    R: Read,
    F: FnMut(&[u8]) -> io::Result<R>,
{
    Ok(summarize(names, open)?.h1())
}

/// The go.sum `/go.mod` hash of a go.mod file's bytes (`modfetch.goModSum`).
pub fn hash_go_mod(data: &[u8]) -> String {
    let sum: [u8; 32] = Sha256::digest(data).into();
    Summary {
        files: vec![(b"go.mod".to_vec(), sum)],
    }
    .h1()
}

/// `HashZip` over a zip read from `reader`, with the per-file sums. Entries are read one at
/// a time and decompressed as a stream.
pub fn summarize_zip<R: Read + Seek>(reader: R) -> Result<Summary, DirhashError> {
    let mut z = zip::ZipArchive::new(reader)?;
    let mut names = Vec::with_capacity(z.len());
    let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
    for i in 0..z.len() {
        // Raw stored bytes, as Go's archive/zip keeps them (no CP437 decoding).
        let name = z.by_index_raw(i)?.name_raw().to_vec();
        last.insert(name.clone(), i);
        names.push(name);
    }
    summarize_with(names, |name| {
        let entry = z.by_index(last[name]).map_err(io::Error::other)?;
        sha256_reader(entry)
    })
}

/// Bytes that may still be read while hashing one part (shared by its files).
#[derive(Debug)]
pub struct Budget {
    left: Cell<u64>,
    limit: u64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Budget {
        Budget {
            left: Cell::new(limit),
            limit,
        }
    }

    /// The limit it was made with.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes read so far.
    pub fn used(&self) -> u64 {
        self.limit - self.left.get()
    }

    /// `r`, failing with [`io::ErrorKind::FileTooLarge`] once more than the budget's bytes
    /// have been read through all the readers it capped.
    pub fn cap<R: Read>(&self, r: R) -> Capped<'_, R> {
        Capped {
            inner: r,
            budget: self,
        }
    }
}

/// A reader whose bytes count against a [`Budget`].
#[derive(Debug)]
pub struct Capped<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.left.get();
        // One byte past the budget is enough to know it is exceeded.
        let want = buf
            .len()
            .min(usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > left {
            self.budget.left.set(0);
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("more than {} bytes", self.budget.limit),
            ));
        }
        self.budget.left.set(left - n as u64);
        Ok(n)
    }
}

/// [`summarize_zip`] with every entry's decompressed bytes counted against `budget` (Go's
/// module zips hold at most `MaxZipFile` uncompressed bytes; a zip bomb stops there).
pub fn summarize_zip_capped<R: Read + Seek>(
    reader: R,
    budget: &Budget,
) -> Result<Summary, DirhashError> {
    let mut z = zip::ZipArchive::new(reader)?;
    let mut names = Vec::with_capacity(z.len());
    let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
    for i in 0..z.len() {
        let name = z.by_index_raw(i)?.name_raw().to_vec();
        last.insert(name.clone(), i);
        names.push(name);
    }
    summarize_with(names, |name| {
        let entry = z.by_index(last[name]).map_err(io::Error::other)?;
        sha256_reader(budget.cap(entry))
    })
}

/// Whether hashing failed because a [`Budget`] was exceeded; the file's name when it was.
pub fn exceeded(e: &DirhashError) -> Option<&str> {
    match e {
        DirhashError::Read { name, source } if source.kind() == io::ErrorKind::FileTooLarge => {
            Some(name)
        }
        _ => None,
    }
}

/// `HashZip`: the `h1:` hash of a zip's entries.
pub fn hash_zip<R: Read + Seek>(reader: R) -> Result<String, DirhashError> {
    Ok(summarize_zip(reader)?.h1())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_stops_reading_at_its_limit() {
        let budget = Budget::new(10);
        assert!(sha256_reader(budget.cap(&[1u8; 6][..])).is_ok());
        assert_eq!(budget.used(), 6);
        // The second file takes the total over the limit: an error, not a hash.
        let e = sha256_reader(budget.cap(io::repeat(0))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(budget.used(), 10);
        let e = summarize_with(vec![b"m@v/x".to_vec()], |_| {
            sha256_reader(Budget::new(3).cap(&b"abcd"[..]))
        })
        .unwrap_err();
        assert_eq!(exceeded(&e), Some("m@v/x"));
    }
}
