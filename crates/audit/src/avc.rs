//! The SELinux access decision of one `AVC` or `USER_AVC` record, with what the rest of its
//! event tells about it (the process from `SYSCALL`, the object's path from `PATH` + `CWD`
//! or `AVC_PATH`, the command line from `PROCTITLE`), and the key the store deduplicates
//! denials by.
//!
//! Which records are AVCs: those whose text (for `USER_AVC`, the `msg='...'` inside) starts
//! `avc:  denied` or `avc:  granted`. `AVC`-typed records that are not SELinux decisions
//! (AppArmor's `apparmor="DENIED"`, `avc:  received policyload notice`) are not `Avc`s; they
//! stay in the event's records.
//!
//! How the object path is chosen, first match wins:
//! 1. the AVC's own `path=` (the kernel's `d_path`, absolute);
//! 2. an `AVC_PATH` record (2.6.18-era kernels) whose last component is the AVC's `name=`,
//!    else the event's only `AVC_PATH`;
//! 3. a `PATH` record whose `inode=` is the AVC's `ino=`, else whose last component is the
//!    AVC's `name=`, else (AVC with neither) the event's only `PATH`. A relative `PATH` name
//!    is joined to the `CWD` record, and `.`/`..` are removed lexically (the kernel's cwd
//!    is canonical; a `..` after a symlink may be resolved wrongly, which only matters for
//!    display and cache-root matching).
//!
//! Nothing here does I/O or panics; values that do not parse are `None`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use memchr::memchr;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ParseError};
use crate::event::{AuditEvent, EventId, is_avc_type};
use crate::record::{Fields, Format, Record, Value, decode_in, parse_u64, proctitle_display};

/// Which record an [`Avc`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AvcKind {
    /// `type=AVC`: the kernel's security server.
    #[serde(rename = "AVC")]
    Kernel,
    /// `type=USER_AVC`: a user-space object manager (dbus, systemd).
    #[serde(rename = "USER_AVC")]
    User,
}

impl AvcKind {
    /// The record type: `AVC` or `USER_AVC`.
    pub fn as_str(self) -> &'static str {
        match self {
            AvcKind::Kernel => "AVC",
            AvcKind::User => "USER_AVC",
        }
    }
}

/// `avc:  denied` or `avc:  granted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Denied,
    Granted,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Denied => "denied",
            Decision::Granted => "granted",
        }
    }
}

/// Where [`Avc::path`] came from (see the module doc for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathSource {
    AvcField,
    AvcPathRecord,
    PathRecord,
}

/// One SELinux access decision, with its event's context joined in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avc {
    /// The event the record belongs to.
    pub id: EventId,
    pub kind: AvcKind,
    /// Raw, or read from `ausearch -i` output (then values were never hex decoded, and
    /// numeric SYSCALL fields such as `uid=root` come out as `None`).
    pub format: Format,
    pub decision: Decision,
    /// As written, in order (`{ read write }` gives `["read", "write"]`).
    pub permissions: Vec<String>,
    /// The AVC's `pid=` (for `USER_AVC`: inside `msg=`, else the sender's), else the
    /// `SYSCALL`'s.
    pub pid: Option<u32>,
    /// The AVC's `comm=`, else the `SYSCALL`'s; hex decoded.
    pub comm: Option<String>,
    /// The AVC's `exe=` (`USER_AVC`), else the `SYSCALL`'s; hex decoded.
    pub exe: Option<PathBuf>,
    /// The AVC's `name=`: the last component of the object; hex decoded.
    pub name: Option<String>,
    /// The object's path, see the module doc; hex decoded.
    pub path: Option<PathBuf>,
    pub path_source: Option<PathSource>,
    /// `dev=` as written (`"dm-0"`, `fd:00`...).
    pub dev: Option<String>,
    /// `ino=` as written (old kernels print negative numbers).
    pub ino: Option<String>,
    pub scontext: Option<String>,
    pub tcontext: Option<String>,
    pub tclass: Option<String>,
    /// `permissive=1`/`0`; `None` on kernels that did not print it.
    pub permissive: Option<bool>,
    /// From the event's `SYSCALL` record: the number (raw) or name (`ausearch -i`).
    pub syscall: Option<String>,
    pub success: Option<bool>,
    pub exit: Option<i64>,
    pub uid: Option<u32>,
    pub auid: Option<u32>,
    /// From the `CWD` record.
    pub cwd: Option<PathBuf>,
    /// From the `PROCTITLE` record, NUL separators shown as spaces.
    pub proctitle: Option<String>,
}

/// The key the store deduplicates denials by: same contexts, class, permission set, target
/// and command mean "the same denial again".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DenialKey {
    pub scontext: String,
    pub tcontext: String,
    pub tclass: String,
    /// Sorted, without duplicates.
    pub permissions: Vec<String>,
    /// The path, else the name, else "".
    pub target: String,
    pub comm: String,
}

impl Avc {
    /// The SELinux decision in one record, without its event's context. `Ok(None)` when the
    /// record is not an `AVC`/`USER_AVC` SELinux decision (other types, AppArmor, policy
    /// load notices); `Err` when it starts like one but its permission set is broken.
    pub fn from_record(record: &Record<'_>, id: EventId) -> Result<Option<Avc>, ParseError> {
        let kind = match record.record_type {
            "AVC" => AvcKind::Kernel,
            "USER_AVC" => AvcKind::User,
            _ => return Ok(None),
        };
        let (text, outer) = match kind {
            AvcKind::Kernel => (record.body, None),
            AvcKind::User => match record.get("msg") {
                Some(msg) => (msg.raw, Some(record.body)),
                None => return Ok(None),
            },
        };
        let parsed = match parse_avc_text(text) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(()) => return Err(ParseError::new(ErrorKind::MalformedAvc, record.raw)),
        };
        let format = record.format;
        let mut avc = Avc {
            id,
            kind,
            format,
            decision: parsed.decision,
            permissions: parsed.permissions,
            pid: None,
            comm: None,
            exe: None,
            name: None,
            path: None,
            path_source: None,
            dev: None,
            ino: None,
            scontext: None,
            tcontext: None,
            tclass: None,
            permissive: None,
            syscall: None,
            success: None,
            exit: None,
            uid: None,
            auid: None,
            cwd: None,
            proctitle: None,
        };
        let text = |v: Value<'_>| Some(lossy(v.raw));
        let decoded = |v| decode_in(format, v);
        for (key, value) in Fields::new(parsed.fields) {
            match key {
                b"pid" if avc.pid.is_none() => avc.pid = parse_u32(value.raw),
                b"comm" if avc.comm.is_none() => avc.comm = Some(string_of(decoded(value))),
                b"exe" if avc.exe.is_none() => avc.exe = Some(path_buf_of(decoded(value))),
                b"name" if avc.name.is_none() => avc.name = Some(string_of(decoded(value))),
                b"path" if avc.path.is_none() => {
                    avc.path = Some(path_buf_of(decoded(value)));
                    avc.path_source = Some(PathSource::AvcField);
                }
                b"dev" if avc.dev.is_none() => avc.dev = text(value),
                b"ino" if avc.ino.is_none() => avc.ino = text(value),
                b"scontext" if avc.scontext.is_none() => avc.scontext = text(value),
                b"tcontext" if avc.tcontext.is_none() => avc.tcontext = text(value),
                b"tclass" if avc.tclass.is_none() => avc.tclass = text(value),
                b"permissive" if avc.permissive.is_none() => {
                    avc.permissive = match value.raw {
                        b"1" => Some(true),
                        b"0" => Some(false),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        if let Some(outer) = outer {
            for (key, value) in Fields::new(outer) {
                match key {
                    b"pid" if avc.pid.is_none() => avc.pid = parse_u32(value.raw),
                    b"uid" if avc.uid.is_none() => avc.uid = parse_u32(value.raw),
                    b"auid" if avc.auid.is_none() => avc.auid = parse_u32(value.raw),
                    b"comm" if avc.comm.is_none() => avc.comm = Some(string_of(decoded(value))),
                    b"exe" if avc.exe.is_none() => avc.exe = Some(path_buf_of(decoded(value))),
                    _ => {}
                }
            }
        }
        Ok(Some(avc))
    }

    /// True for `avc:  denied`.
    pub fn is_denied(&self) -> bool {
        self.decision == Decision::Denied
    }

    /// The key the store deduplicates denials by.
    pub fn dedup_key(&self) -> DenialKey {
        let mut permissions = self.permissions.clone();
        permissions.sort();
        permissions.dedup();
        let target = match (&self.path, &self.name) {
            (Some(path), _) => path.to_string_lossy().into_owned(),
            (None, Some(name)) => name.clone(),
            (None, None) => String::new(),
        };
        DenialKey {
            scontext: self.scontext.clone().unwrap_or_default(),
            tcontext: self.tcontext.clone().unwrap_or_default(),
            tclass: self.tclass.clone().unwrap_or_default(),
            permissions,
            target,
            comm: self.comm.clone().unwrap_or_default(),
        }
    }
}

struct AvcText<'a> {
    decision: Decision,
    permissions: Vec<String>,
    /// The text after `}`: `for  pid=... comm=...`.
    fields: &'a [u8],
}

/// `avc:  denied  { read write } for ...` → decision, permissions, the rest.
fn parse_avc_text(text: &[u8]) -> Result<Option<AvcText<'_>>, ()> {
    let t = trim_start(text);
    let Some(rest) = t.strip_prefix(b"avc:") else {
        return Ok(None);
    };
    let rest = trim_start(rest);
    let (decision, rest) = if let Some(r) = rest.strip_prefix(b"denied") {
        (Decision::Denied, r)
    } else if let Some(r) = rest.strip_prefix(b"granted") {
        (Decision::Granted, r)
    } else {
        return Ok(None);
    };
    let rest = trim_start(rest);
    let Some(rest) = rest.strip_prefix(b"{") else {
        return Err(());
    };
    let close = memchr(b'}', rest).ok_or(())?;
    let permissions: Vec<String> = rest[..close]
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty())
        .map(lossy)
        .collect();
    if permissions.is_empty() {
        return Err(());
    }
    Ok(Some(AvcText {
        decision,
        permissions,
        fields: &rest[close + 1..],
    }))
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

/// The bytes as text, invalid UTF-8 replaced (one allocation, no copy through a `Cow`).
fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// [`lossy`] of a decoded value, reusing the buffer of an owned (hex-decoded) one.
fn string_of(bytes: Cow<'_, [u8]>) -> String {
    match bytes {
        Cow::Borrowed(b) => lossy(b),
        Cow::Owned(v) => String::from_utf8(v)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// [`path_of`] of a decoded value, reusing the buffer of an owned one.
fn path_buf_of(bytes: Cow<'_, [u8]>) -> PathBuf {
    match bytes {
        Cow::Borrowed(b) => path_of(b),
        Cow::Owned(v) => PathBuf::from(OsString::from_vec(v)),
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|n| u32::try_from(n).ok())
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', digits)) => parse_u64(digits)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n),
        _ => parse_u64(s).and_then(|n| i64::try_from(n).ok()),
    }
}

/// What the non-AVC records of an event say.
#[derive(Default)]
struct EventContext<'a> {
    syscalls: Vec<Syscall<'a>>,
    cwd: Option<PathBuf>,
    paths: Vec<PathItem<'a>>,
    avc_paths: Vec<Cow<'a, [u8]>>,
    proctitle: Option<String>,
}

/// Borrowed from the record (decoded values owned); copied into each `Avc` it joins.
struct Syscall<'a> {
    pid: Option<u32>,
    comm: Option<Cow<'a, [u8]>>,
    exe: Option<Cow<'a, [u8]>>,
    syscall: Option<&'a [u8]>,
    success: Option<bool>,
    exit: Option<i64>,
    uid: Option<u32>,
    auid: Option<u32>,
}

struct PathItem<'a> {
    name: Cow<'a, [u8]>,
    inode: Option<&'a [u8]>,
}

impl<'a> EventContext<'a> {
    fn new(records: &[Record<'a>]) -> EventContext<'a> {
        let mut ctx = EventContext::default();
        for r in records {
            match r.record_type {
                "SYSCALL" => ctx.syscalls.push(syscall_of(r)),
                "CWD" if ctx.cwd.is_none() => {
                    ctx.cwd = r.get_decoded("cwd").map(path_buf_of);
                }
                "PATH" => {
                    if let Some(name) = r.get_decoded("name")
                        && *name != *b"(null)"
                        && !name.is_empty()
                    {
                        ctx.paths.push(PathItem {
                            name,
                            inode: r.get("inode").map(|v| v.raw),
                        });
                    }
                }
                "AVC_PATH" => {
                    if let Some(path) = r.get_decoded("path") {
                        ctx.avc_paths.push(path);
                    }
                }
                "PROCTITLE" if ctx.proctitle.is_none() => {
                    ctx.proctitle = match r.format {
                        // `ausearch -i` prints the decoded command line with its spaces.
                        Format::Interpreted => {
                            r.body.strip_prefix(b"proctitle=").map(proctitle_display)
                        }
                        Format::Raw => r.get_decoded("proctitle").map(|t| proctitle_display(&t)),
                    };
                }
                _ => {}
            }
        }
        ctx
    }

    fn join(&self, avc: &mut Avc) {
        let matching: Vec<&Syscall> = self
            .syscalls
            .iter()
            .filter(|s| avc.pid.is_some() && s.pid == avc.pid)
            .collect();
        let syscall = match matching.as_slice() {
            [] => self.syscalls.first(),
            [one] => Some(*one),
            many => many
                .iter()
                .find(|s| {
                    s.comm.as_deref().is_some_and(|c| {
                        avc.comm.as_deref() == Some(String::from_utf8_lossy(c).as_ref())
                    })
                })
                .or(many.first())
                .copied(),
        };
        if let Some(s) = syscall {
            avc.pid = avc.pid.or(s.pid);
            if avc.comm.is_none() {
                avc.comm = s.comm.as_deref().map(lossy);
            }
            if avc.exe.is_none() {
                avc.exe = s.exe.as_deref().map(path_of);
            }
            avc.syscall = s.syscall.map(lossy);
            avc.success = s.success;
            avc.exit = s.exit;
            avc.uid = avc.uid.or(s.uid);
            avc.auid = avc.auid.or(s.auid);
        }
        avc.cwd.clone_from(&self.cwd);
        avc.proctitle.clone_from(&self.proctitle);
        if avc.path.is_none() {
            self.join_path(avc);
        }
    }

    fn join_path(&self, avc: &mut Avc) {
        let name = avc.name.as_deref().map(str::as_bytes);
        let by_name = |p: &[u8]| name.is_some_and(|n| last_component(p) == n);
        let avc_path =
            self.avc_paths
                .iter()
                .find(|p| by_name(p))
                .or(match self.avc_paths.as_slice() {
                    [only] => Some(only),
                    _ => None,
                });
        if let Some(p) = avc_path {
            avc.path = Some(path_of(p));
            avc.path_source = Some(PathSource::AvcPathRecord);
            return;
        }
        let ino = avc.ino.as_deref().map(str::as_bytes);
        let item = self
            .paths
            .iter()
            .find(|p| ino.is_some() && p.inode == ino)
            .or_else(|| self.paths.iter().find(|p| by_name(&p.name)))
            .or(match self.paths.as_slice() {
                [only] if ino.is_none() && name.is_none() => Some(only),
                _ => None,
            });
        if let Some(item) = item {
            avc.path = Some(resolve(&item.name, self.cwd.as_deref()));
            avc.path_source = Some(PathSource::PathRecord);
        }
    }
}

fn syscall_of<'a>(r: &Record<'a>) -> Syscall<'a> {
    let mut s = Syscall {
        pid: None,
        comm: None,
        exe: None,
        syscall: None,
        success: None,
        exit: None,
        uid: None,
        auid: None,
    };
    for (key, value) in r.fields() {
        match key {
            b"pid" if s.pid.is_none() => s.pid = parse_u32(value.raw),
            b"comm" if s.comm.is_none() => s.comm = Some(decode_in(r.format, value)),
            b"exe" if s.exe.is_none() => s.exe = Some(decode_in(r.format, value)),
            b"syscall" if s.syscall.is_none() => s.syscall = Some(value.raw),
            b"success" if s.success.is_none() => {
                s.success = match value.raw {
                    b"yes" => Some(true),
                    b"no" => Some(false),
                    _ => None,
                }
            }
            b"exit" if s.exit.is_none() => s.exit = parse_i64(value.raw),
            b"uid" if s.uid.is_none() => s.uid = parse_u32(value.raw),
            b"auid" if s.auid.is_none() => s.auid = parse_u32(value.raw),
            _ => {}
        }
    }
    s
}

fn last_component(path: &[u8]) -> &[u8] {
    let trimmed = match path {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => path,
    };
    match memchr::memrchr(b'/', trimmed) {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// `name` joined to `cwd` when relative, with `.` and `..` removed lexically.
fn resolve(name: &[u8], cwd: Option<&Path>) -> PathBuf {
    if is_plain_absolute(name) {
        // Nothing to join or remove: the common case, without walking components.
        return path_of(name);
    }
    let name = Path::new(OsStr::from_bytes(name));
    let joined = match cwd {
        Some(cwd) if name.is_relative() => cwd.join(name),
        _ => name.to_path_buf(),
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                // A relative path climbing above its start keeps its `..`.
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    out
}

/// `/a/b/c`: absolute, and no empty, `.` or `..` component (so no `//`, no trailing `/`);
/// [`resolve`] would return it unchanged.
fn is_plain_absolute(path: &[u8]) -> bool {
    match path {
        [b'/', rest @ ..] if !rest.is_empty() => rest
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b".."),
        _ => false,
    }
}

impl AuditEvent {
    /// One [`Avc`] per `AVC`/`USER_AVC` record that is an SELinux decision, with the event's
    /// `SYSCALL`, `PATH`/`CWD`/`AVC_PATH` and `PROCTITLE` joined in. Malformed AVC records
    /// are skipped; [`try_avcs`](Self::try_avcs) reports them.
    pub fn avcs(&self) -> Vec<Avc> {
        self.try_avcs().into_iter().filter_map(Result::ok).collect()
    }

    /// [`avcs`](Self::avcs), with an error for each AVC record whose permission set is
    /// broken.
    pub fn try_avcs(&self) -> Vec<Result<Avc, ParseError>> {
        if !self.has_avc() {
            return Vec::new();
        }
        let mut records: Vec<Record<'_>> = Vec::with_capacity(self.len());
        records.extend(self.records());
        let ctx = EventContext::new(&records);
        let mut out = Vec::new();
        for r in records.iter().filter(|r| is_avc_type(r.record_type)) {
            match Avc::from_record(r, self.id.clone()) {
                Ok(Some(mut avc)) => {
                    ctx.join(&mut avc);
                    out.push(Ok(avc));
                }
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventAssembler, Retention};
    use std::time::Duration;

    fn events(lines: &[&[u8]]) -> Vec<AuditEvent> {
        let mut asm = EventAssembler::new(Duration::from_secs(2));
        let mut evs = Vec::new();
        for l in lines {
            let out = asm.push_line(l, Duration::ZERO);
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            evs.extend(out.events);
        }
        evs.extend(asm.flush_all());
        evs
    }

    fn one_avc(lines: &[&[u8]]) -> Avc {
        let evs = events(lines);
        let avcs: Vec<Avc> = evs.iter().flat_map(AuditEvent::avcs).collect();
        assert_eq!(avcs.len(), 1, "{avcs:#?}");
        avcs.into_iter().next().unwrap()
    }

    #[test]
    fn full_event_with_relative_path_joined_to_cwd() {
        let avc = one_avc(&[
            b"type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1234 comm=\"go\" name=\"00\" dev=\"dm-0\" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0",
            b"type=SYSCALL msg=audit(1700000000.123:4567): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c items=2 ppid=1 pid=1234 auid=1000 uid=1000 gid=1000 comm=\"go\" exe=\"/usr/lib/golang/bin/go\" key=(null)",
            b"type=CWD msg=audit(1700000000.123:4567): cwd=\"/home/a/proj\"",
            b"type=PATH msg=audit(1700000000.123:4567): item=0 name=\"../.cache/go-build/\" inode=130 nametype=PARENT",
            b"type=PATH msg=audit(1700000000.123:4567): item=1 name=\"../.cache/go-build/./00\" inode=131 nametype=NORMAL",
            b"type=PROCTITLE msg=audit(1700000000.123:4567): proctitle=676F006275696C64",
            b"type=EOE msg=audit(1700000000.123:4567): ",
        ]);
        assert_eq!(avc.kind, AvcKind::Kernel);
        assert_eq!(avc.decision, Decision::Denied);
        assert_eq!(avc.permissions, ["write"]);
        assert_eq!(avc.pid, Some(1234));
        assert_eq!(avc.comm.as_deref(), Some("go"));
        assert_eq!(
            avc.exe.as_deref(),
            Some(Path::new("/usr/lib/golang/bin/go"))
        );
        assert_eq!(avc.name.as_deref(), Some("00"));
        assert_eq!(
            avc.path.as_deref(),
            Some(Path::new("/home/a/.cache/go-build/00"))
        );
        assert_eq!(avc.path_source, Some(PathSource::PathRecord));
        assert_eq!(avc.dev.as_deref(), Some("dm-0"));
        assert_eq!(avc.ino.as_deref(), Some("131"));
        assert_eq!(avc.tclass.as_deref(), Some("dir"));
        assert_eq!(avc.permissive, Some(false));
        assert_eq!(avc.syscall.as_deref(), Some("257"));
        assert_eq!(avc.success, Some(false));
        assert_eq!(avc.exit, Some(-13));
        assert_eq!((avc.uid, avc.auid), (Some(1000), Some(1000)));
        assert_eq!(avc.proctitle.as_deref(), Some("go build"));
        assert_eq!(avc.id.timestamp, "1700000000.123");
    }

    #[test]
    fn own_path_field_wins_and_hex_is_decoded() {
        let avc = one_avc(&[
            b"type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=7 comm=57656220436F6E74656E74 path=2F686F6D652F622F4D7920446F63732F782E706466 dev=\"dm-2\" ino=3 scontext=a tcontext=b tclass=file permissive=1",
            b"type=PATH msg=audit(1.000:1): item=0 name=\"/elsewhere\" inode=3",
        ]);
        assert_eq!(avc.comm.as_deref(), Some("Web Content"));
        assert_eq!(
            avc.path.as_deref(),
            Some(Path::new("/home/b/My Docs/x.pdf"))
        );
        assert_eq!(avc.path_source, Some(PathSource::AvcField));
        assert_eq!(avc.permissive, Some(true));
    }

    #[test]
    fn avc_path_record_of_old_kernels() {
        let avc = one_avc(&[
            b"type=AVC msg=audit(1162850335.022:982): avc:  denied  { lock } for  pid=6336 comm=\"clock-applet\" name=\"bonobo-activation-register.lock\" dev=dm-0 ino=5434689 scontext=staff_u:staff_r:staff_t:s0 tcontext=staff_u:object_r:tmp_t:s0 tclass=file",
            b"type=SYSCALL msg=audit(1162850335.022:982): arch=40000003 syscall=221 success=yes exit=0 pid=6336 comm=\"clock-applet\" exe=\"/usr/libexec/clock-applet\"",
            b"type=AVC_PATH msg=audit(1162850335.022:982):  path=\"/tmp/orbit-kmacmill/bonobo-activation-register.lock\"",
        ]);
        assert_eq!(
            avc.path.as_deref(),
            Some(Path::new(
                "/tmp/orbit-kmacmill/bonobo-activation-register.lock"
            ))
        );
        assert_eq!(avc.path_source, Some(PathSource::AvcPathRecord));
        assert_eq!(avc.permissive, None);
        assert_eq!(avc.success, Some(true));
    }

    #[test]
    fn user_avc_inner_message() {
        let avc = one_avc(&[
            b"type=USER_AVC msg=audit(1717200005.142:100300): pid=812 uid=81 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { send_msg } for msgtype=method_return dest=:1.4625 spid=1 tpid=3679367 scontext=system_u:system_r:init_t:s0 tcontext=system_u:system_r:unconfined_service_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-broker\" sauid=81 hostname=? addr=? terminal=?'\x1dUID=\"dbus\" AUID=\"unset\" SAUID=\"dbus\"",
        ]);
        assert_eq!(avc.kind, AvcKind::User);
        assert_eq!(avc.permissions, ["send_msg"]);
        assert_eq!(avc.pid, Some(812));
        assert_eq!(avc.uid, Some(81));
        assert_eq!(avc.exe.as_deref(), Some(Path::new("/usr/bin/dbus-broker")));
        assert_eq!(avc.tclass.as_deref(), Some("dbus"));
        assert_eq!(avc.scontext.as_deref(), Some("system_u:system_r:init_t:s0"));
    }

    #[test]
    fn not_selinux_decisions_are_not_avcs() {
        let evs = events(&[
            b"type=AVC msg=audit(1524662933.080:61207): apparmor=\"DENIED\" operation=\"ptrace\" profile=\"docker-default\" pid=5571 comm=\"metricbeat\"",
            b"type=USER_AVC msg=audit(1725140575.109:3128): pid=854 uid=81 msg='avc:  received policyload notice (seqno=2)  exe=\"/usr/bin/dbus-daemon\"'",
            b"type=USER_AVC msg=audit(1725140575.109:3129): pid=854 uid=81",
        ]);
        assert_eq!(evs.len(), 3);
        assert!(evs.iter().all(|e| e.has_avc() && e.try_avcs().is_empty()));
    }

    #[test]
    fn malformed_permission_sets_are_errors() {
        for line in [
            &b"type=AVC msg=audit(1.000:1): avc:  denied  { write for pid=1"[..],
            b"type=AVC msg=audit(1.000:1): avc:  denied  write } for pid=1",
            b"type=AVC msg=audit(1.000:1): avc:  denied  {  } for pid=1",
        ] {
            let evs = events(&[line]);
            let r = evs[0].try_avcs();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].as_ref().unwrap_err().kind, ErrorKind::MalformedAvc);
            assert!(evs[0].avcs().is_empty());
        }
    }

    #[test]
    fn granted_and_multiple_permissions_and_dedup_key() {
        let evs = events(&[
            b"type=AVC msg=audit(1.000:1): avc:  granted  { write read write } for  pid=1 comm=\"tuned\" name=\"f\" scontext=s tcontext=t tclass=file",
        ]);
        let avc = &evs[0].avcs()[0];
        assert_eq!(avc.decision, Decision::Granted);
        assert!(!avc.is_denied());
        assert_eq!(avc.permissions, ["write", "read", "write"]);
        let key = avc.dedup_key();
        assert_eq!(key.permissions, ["read", "write"]);
        assert_eq!(key.target, "f");
        assert_eq!(key.comm, "tuned");
        assert_eq!(key.scontext, "s");
    }

    #[test]
    fn syscall_chosen_by_pid_then_comm_when_a_key_is_reused() {
        // setroubleshoot's hand-assembled logs reuse one key for two events.
        let evs = events(&[
            b"node=tom type=SYSCALL msg=audit(1165963069.244:852): syscall=102 success=no exit=-13 pid=21134 comm=\"smbd\" exe=\"/usr/sbin/smbd\"",
            b"node=tom type=AVC msg=audit(1165963069.244:852): avc:  denied  { name_connect } for  pid=21134 comm=\"smbd\" src=81 scontext=a tcontext=b tclass=tcp_socket",
            b"node=tom type=SYSCALL msg=audit(1165963069.244:852): syscall=102 success=no exit=-13 pid=21134 comm=\"httpd\" exe=\"/usr/sbin/httpd\"",
            b"node=tom type=AVC msg=audit(1165963069.244:852): avc:  denied  { name_connect } for  pid=21134 comm=\"httpd\" src=81 scontext=a tcontext=b tclass=tcp_socket",
        ]);
        assert_eq!(evs.len(), 1);
        let avcs = evs[0].avcs();
        let exes: Vec<_> = avcs.iter().map(|a| a.exe.clone().unwrap()).collect();
        assert_eq!(
            exes,
            [
                PathBuf::from("/usr/sbin/smbd"),
                PathBuf::from("/usr/sbin/httpd")
            ]
        );
    }

    #[test]
    fn interpreted_event() {
        let avc = one_avc(&[
            b"type=PATH msg=audit(08/13/2025 15:10:41.085:463474) : item=0 name=/etc/shadow inode=8388860 dev=fd:00 mode=file,600 ouid=root ",
            b"type=CWD msg=audit(08/13/2025 15:10:41.085:463474) : cwd=/U2/PROD ",
            b"type=PROCTITLE msg=audit(08/13/2025 15:10:41.085:463474) : proctitle=/usr/sbin/unix_chkpwd zabbix chkexpiry ",
            b"type=SYSCALL msg=audit(08/13/2025 15:10:41.085:463474) : arch=x86_64 syscall=openat success=yes exit=3 a0=AT_FDCWD items=1 ppid=1240772 pid=1240781 auid=unset uid=root comm=unix_chkpwd exe=/usr/sbin/unix_chkpwd key=(null) ",
            b"type=AVC msg=audit(08/13/2025 15:10:41.085:463474) : avc:  denied  { read } for  pid=1240781 comm=unix_chkpwd name=shadow dev=\"dm-0\" ino=8388860 scontext=system_u:system_r:zabbix_agent_t:s0 tcontext=system_u:object_r:shadow_t:s0 tclass=file permissive=1 ",
        ]);
        assert_eq!(avc.format, Format::Interpreted);
        assert_eq!(avc.path.as_deref(), Some(Path::new("/etc/shadow")));
        assert_eq!(avc.syscall.as_deref(), Some("openat"));
        assert_eq!(avc.exit, Some(3));
        assert_eq!(avc.uid, None);
        assert_eq!(
            avc.proctitle.as_deref(),
            Some("/usr/sbin/unix_chkpwd zabbix chkexpiry")
        );
        assert_eq!(avc.id.timestamp, "08/13/2025 15:10:41.085");
    }

    #[test]
    fn avc_retention_still_joins() {
        let mut config = crate::event::AssemblerConfig::new(Duration::from_secs(2));
        config.retention = Retention::AvcEvents;
        let mut asm = EventAssembler::with_config(config);
        asm.push_line(b"type=SYSCALL msg=audit(5.000:1): pid=9 comm=\"link\" exe=\"/usr/lib/go-1.19/pkg/tool/linux_amd64/link\"", Duration::ZERO);
        asm.push_line(b"type=AVC msg=audit(5.000:1): avc:  denied  { write } for  pid=9 name=\"x\" scontext=a tcontext=b tclass=file", Duration::ZERO);
        let evs = asm.flush_all();
        let avc = &evs[0].avcs()[0];
        assert_eq!(avc.comm.as_deref(), Some("link"));
    }

    #[test]
    fn resolve_lexically() {
        assert_eq!(
            resolve(b"a/../b/./c", Some(Path::new("/x/y"))),
            Path::new("/x/y/b/c")
        );
        assert_eq!(resolve(b"/../../etc", None), Path::new("/etc"));
        assert_eq!(resolve(b"rel", None), Path::new("rel"));
        // The plain-absolute fast path returns what the component walk would.
        for p in [&b"/a/b"[..], b"/a/b.c/..d/.e"] {
            assert!(is_plain_absolute(p));
            let walked: PathBuf = Path::new(OsStr::from_bytes(p)).components().collect();
            assert_eq!(resolve(p, Some(Path::new("/cwd"))), walked);
        }
        for p in [
            &b"/a//b"[..],
            b"/a/b/",
            b"/a/./b",
            b"/a/../b",
            b"/",
            b"/..",
            b"a/b",
        ] {
            assert!(!is_plain_absolute(p));
        }
        assert_eq!(resolve(b"/a//b/", None), Path::new("/a/b"));
        assert_eq!(last_component(b"/a/b/"), b"b");
        assert_eq!(last_component(b"b"), b"b");
    }
}
