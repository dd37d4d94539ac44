//! SELinux labels: expected-label lookups through libselinux's file_contexts backend
//! ([`FileContexts`]), security-context syntax checks, and restorecon's decision of what to
//! set ([`relabel_decision`]), as a pure function.
//!
//! The kernel stores any string in `security.selinux` when SELinux is off (and libselinux's
//! validation needs a loaded policy), so contexts are checked here: `user:role:type[:range]`
//! with identifier characters only.
//!
//! This module must never write a label (that is [`crate::Entry::set_label`]), and a
//! [`FileContexts`] must stay on the thread that opened it (libselinux handles are not
//! thread-safe; the type is `!Send`).

use std::ffi::{CStr, CString, c_void};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use selinux::label::{Labeler, back_end};
use selinux_sys::{SELABEL_OPT_BASEONLY, SELABEL_OPT_PATH};

/// A file_contexts file could not be loaded, or a lookup failed for another reason than
/// "no rule".
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// `selabel_open` failed.
    #[error("load file_contexts {path}: {source}")]
    Open {
        /// The file_contexts path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: selinux::errors::Error,
    },
    /// The file_contexts path has an interior NUL byte.
    #[error("file_contexts path {path:?} contains a NUL byte")]
    BadPath {
        /// The rejected path.
        path: PathBuf,
    },
    /// `selabel_lookup` failed (not ENOENT).
    #[error("look up {path}: {source}")]
    Lookup {
        /// The looked-up path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Expected labels from one file_contexts file (plus its `.local`/`.homedirs` companions
/// unless base-only), via `selabel_open(SELABEL_CTX_FILE)` with `SELABEL_OPT_PATH`.
pub struct FileContexts {
    labeler: Labeler<back_end::File>,
    /// The policy's customizable types (`contexts/customizable_types` beside
    /// `contexts/files/file_contexts`): restorecon leaves files of these types alone
    /// without `-F` (RHEL lists `container_file_t`, which `podman -v …:z` sets).
    customizable: Vec<String>,
    /// Reused lookup key buffer (path + NUL), so lookups do not allocate.
    key: std::cell::RefCell<Vec<u8>>,
}

// SAFETY: a selabel handle has no thread affinity: libselinux keeps no thread-local state
// for it, so it may move to another thread. It is not `Sync` (the key buffer is a RefCell and
// lookups are not synchronized here), so only one thread uses it at a time.
unsafe impl Send for FileContexts {}

impl std::fmt::Debug for FileContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContexts").finish_non_exhaustive()
    }
}

impl FileContexts {
    /// Loads `file_contexts` only (`SELABEL_OPT_BASEONLY`: no `.local`, no `.homedirs`).
    pub fn open(file_contexts: &Path) -> Result<FileContexts, LabelError> {
        Self::open_with(file_contexts, true)
    }

    /// Loads `file_contexts` with its `.homedirs` and `.local` companions, as
    /// `restorecon` and `matchpathcon` do. Home directories' expected labels (a
    /// user's `~/.cache` as `xdg_cache_t` or `cache_home_t`) live in
    /// `file_contexts.homedirs` only: base-only lookups give them `default_t`.
    /// A missing companion is not an error.
    pub fn open_full(file_contexts: &Path) -> Result<FileContexts, LabelError> {
        Self::open_with(file_contexts, false)
    }

    /// Loads `file_contexts`; with `base_only == false` libselinux also reads the
    /// `.homedirs` and `.local` files beside it, as the system policy does.
    pub fn open_with(file_contexts: &Path, base_only: bool) -> Result<FileContexts, LabelError> {
        let err = |source| LabelError::Open {
            path: file_contexts.to_path_buf(),
            source,
        };
        let c_path = CString::new(file_contexts.as_os_str().as_bytes()).map_err(|_| {
            LabelError::BadPath {
                path: file_contexts.to_path_buf(),
            }
        })?;
        let mut opts: Vec<(i32, *const c_void)> = vec![(SELABEL_OPT_PATH, c_path.as_ptr().cast())];
        if base_only {
            opts.push((SELABEL_OPT_BASEONLY, std::ptr::dangling::<c_void>()));
        }
        // selabel_open copies the path; `c_path` only has to live through this call.
        let labeler = Labeler::<back_end::File>::new(&opts, true).map_err(err)?;
        Ok(FileContexts {
            labeler,
            customizable: customizable_types(file_contexts),
            key: std::cell::RefCell::new(Vec::with_capacity(256)),
        })
    }

    /// The policy's customizable types, as read beside the file_contexts at open (empty
    /// when there is no `customizable_types` file there).
    pub fn customizable_types(&self) -> &[String] {
        &self.customizable
    }

    /// Whether `context`'s type is one of the policy's customizable types.
    pub fn is_customizable(&self, context: &str) -> bool {
        parse_context(context).is_some_and(|c| self.customizable.iter().any(|t| t == c.type_))
    }

    /// The expected context of `abs_path` with file type `st_mode` (`S_IF*` bits; permission
    /// bits are ignored; 0 = any type). `None` when no rule matches or the rule is
    /// `<<none>>`, and on lookup errors (use [`FileContexts::try_lookup`] to see them).
    pub fn lookup(&self, abs_path: &Path, st_mode: u32) -> Option<String> {
        self.try_lookup(abs_path, st_mode).ok().flatten()
    }

    /// Like [`FileContexts::lookup`], with errors other than "no rule" reported.
    pub fn try_lookup(&self, abs_path: &Path, st_mode: u32) -> Result<Option<String>, LabelError> {
        let mut key = self.key.borrow_mut();
        key.clear();
        key.extend_from_slice(abs_path.as_os_str().as_bytes());
        key.push(0);
        let Ok(c) = CStr::from_bytes_with_nul(&key) else {
            return Ok(None); // an interior NUL cannot name a file
        };
        self.lookup_cstr(c, st_mode)
            .map_err(|source| LabelError::Lookup {
                path: abs_path.to_path_buf(),
                source,
            })
    }

    /// Lookup with a ready NUL-terminated key, for walks that build paths in a buffer.
    pub fn lookup_cstr(&self, abs_path: &CStr, st_mode: u32) -> io::Result<Option<String>> {
        let mode = (st_mode & libc::S_IFMT) as i32;
        match self.labeler.look_up(abs_path, mode) {
            Ok(ctx) => Ok(Some(decode_xattr(ctx.as_bytes()))),
            Err(e) => {
                let io = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<io::Error>())
                    .map(|e| io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)))
                    .unwrap_or_else(|| io::Error::other(e.to_string()));
                if io.raw_os_error() == Some(libc::ENOENT) {
                    Ok(None)
                } else {
                    Err(io)
                }
            }
        }
    }
}

/// The policy's customizable types (`contexts/customizable_types`, two directories up
/// from `contexts/files/file_contexts`), one per line, `#` comments skipped; empty when the
/// file is missing or unreadable. Read with a size bound: it is a short list.
pub fn customizable_types(file_contexts: &Path) -> Vec<String> {
    use std::io::Read;
    let Some(path) = file_contexts
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("customizable_types"))
    else {
        return Vec::new();
    };
    let mut text = String::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(1 << 20).read_to_string(&mut text));
    if read.is_err() {
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The parts of a security context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// SELinux user, e.g. `system_u`.
    pub user: &'a str,
    /// Role, e.g. `object_r`.
    pub role: &'a str,
    /// Type, e.g. `cache_home_t`.
    pub type_: &'a str,
    /// MLS/MCS range, e.g. `s0:c1,c2` (may contain `:`).
    pub range: Option<&'a str>,
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Parses `user:role:type[:range]`; `None` if it is not a syntactically valid context.
pub fn parse_context(s: &str) -> Option<Context<'_>> {
    if s.len() > 4096 {
        return None;
    }
    let mut it = s.splitn(4, ':');
    let (user, role, type_) = (it.next()?, it.next()?, it.next()?);
    let range = it.next();
    if !is_ident(user) || !is_ident(role) || !is_ident(type_) {
        return None;
    }
    if let Some(r) = range {
        // s0, s0-s15:c0.c1023, s0:c1,c2
        let ok = !r.is_empty()
            && r.split([':', '-', ',', '.']).all(|p| !p.is_empty())
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:-,.".contains(&b));
        if !ok {
            return None;
        }
    }
    Some(Context {
        user,
        role,
        type_,
        range,
    })
}

/// The value of a `security.selinux` xattr as text (without the trailing NUL).
pub fn decode_xattr(v: &[u8]) -> String {
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    String::from_utf8_lossy(v).into_owned()
}

/// restorecon's decision: the context to set, or `None` to leave the file alone.
///
/// - equal contexts: nothing to do;
/// - no current label, or `force` (`-F`): the whole expected context;
/// - a current type listed in `customizable_types`: left alone unless `force`;
/// - otherwise only the type changes: user, role and range stay the current ones.
///
/// An unparsable `expected` yields `None`; an unparsable `current` is replaced whole.
pub fn relabel_decision(
    current: Option<&str>,
    expected: &str,
    force: bool,
    customizable_types: &[&str],
) -> Option<String> {
    let exp = parse_context(expected)?;
    let Some(cur_text) = current else {
        return Some(expected.to_owned());
    };
    if cur_text == expected {
        return None;
    }
    let Some(cur) = parse_context(cur_text) else {
        return Some(expected.to_owned());
    };
    if force {
        return Some(expected.to_owned());
    }
    if customizable_types.contains(&cur.type_) {
        return None;
    }
    if cur.type_ == exp.type_ {
        return None;
    }
    let mut out = String::with_capacity(cur_text.len() + exp.type_.len());
    out.push_str(cur.user);
    out.push(':');
    out.push_str(cur.role);
    out.push(':');
    out.push_str(exp.type_);
    if let Some(r) = cur.range {
        out.push(':');
        out.push_str(r);
    }
    Some(out)
}

/// The installed policy's file_contexts: `/etc/selinux/TYPE/contexts/files/file_contexts`
/// for `SELINUXTYPE=` in `/etc/selinux/config`, when that file exists. Reads only those two
/// paths.
pub fn installed_file_contexts() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/etc/selinux/config").ok()?;
    let kind = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("SELINUXTYPE="))?
        .trim()
        .to_owned();
    let p = std::path::PathBuf::from(format!("/etc/selinux/{kind}/contexts/files/file_contexts"));
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_syntax() {
        assert!(parse_context("system_u:object_r:cache_home_t:s0").is_some());
        let c = parse_context("system_u:object_r:container_file_t:s0:c1,c2").unwrap();
        assert_eq!(c.range, Some("s0:c1,c2"));
        assert!(parse_context("u:r:t").is_some());
        assert!(parse_context("u:r:t:s0-s15:c0.c1023").is_some());
        assert!(parse_context("this is not a context").is_none());
        assert!(parse_context("u:r").is_none());
        assert!(parse_context("u::t").is_none());
        assert!(parse_context("u:r:t:").is_none());
        assert!(parse_context("u:r:t:s0\n").is_none());
    }

    #[test]
    fn customizable_types_are_read_beside_the_file_contexts() {
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("contexts/files");
        std::fs::create_dir_all(&files).unwrap();
        let fc_path = files.join("file_contexts");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/file_contexts.test"),
            &fc_path,
        )
        .unwrap();
        let fc = FileContexts::open(&fc_path).unwrap();
        assert!(fc.customizable_types().is_empty(), "no file: none");
        std::fs::write(
            tmp.path().join("contexts/customizable_types"),
            "# comment\ncontainer_file_t\n\n  svirt_home_t \n",
        )
        .unwrap();
        let fc = FileContexts::open(&fc_path).unwrap();
        assert_eq!(
            fc.customizable_types(),
            ["container_file_t", "svirt_home_t"]
        );
        assert!(fc.is_customizable("system_u:object_r:container_file_t:s0:c1,c2"));
        assert!(!fc.is_customizable("unconfined_u:object_r:cache_home_t:s0"));
        assert!(!fc.is_customizable("not a context"));
    }

    #[test]
    fn decisions() {
        let exp = "system_u:object_r:cache_home_t:s0";
        assert_eq!(relabel_decision(Some(exp), exp, false, &[]), None);
        assert_eq!(relabel_decision(None, exp, false, &[]), Some(exp.into()));
        assert_eq!(
            relabel_decision(
                Some("unconfined_u:object_r:user_tmp_t:s0:c5"),
                exp,
                false,
                &[]
            ),
            Some("unconfined_u:object_r:cache_home_t:s0:c5".into())
        );
        assert_eq!(
            relabel_decision(Some("unconfined_u:object_r:user_tmp_t:s0"), exp, true, &[]),
            Some(exp.into())
        );
        // Same type, other user: restorecon leaves it without -F.
        assert_eq!(
            relabel_decision(
                Some("unconfined_u:object_r:cache_home_t:s0"),
                exp,
                false,
                &[]
            ),
            None
        );
        let cust = ["container_file_t"];
        let c = "system_u:object_r:container_file_t:s0";
        assert_eq!(relabel_decision(Some(c), exp, false, &cust), None);
        assert_eq!(
            relabel_decision(Some(c), exp, true, &cust),
            Some(exp.into())
        );
        assert_eq!(
            relabel_decision(Some("garbage"), exp, false, &[]),
            Some(exp.into())
        );
        assert_eq!(relabel_decision(None, "garbage", false, &[]), None);
    }
}
