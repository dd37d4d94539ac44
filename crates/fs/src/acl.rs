//! POSIX ACLs without I/O: the `system.posix_acl_{access,default}` xattr codec, the [`Acl`]
//! model, setfacl-style specs (`u:NAME|UID:rwX`, `d:g::r-x`, `m::rw`, `o::r`) and setfacl's
//! editing semantics (`-m`, `-x`, `-b`, `-k`), plus getfacl's text form.
//!
//! The semantics follow acl-2.3's `tools/do_set.c` line by line, because `setfacl`/`getfacl`
//! are the oracle the tests compare against:
//! - `X` grants execute on directories, or when some entry of the ACL being edited already
//!   has execute (for a file without an extended ACL: some execute bit of its mode);
//! - a file without an extended access ACL starts from its mode bits;
//! - after an edit the mask becomes the union of the group class (owning group, named users,
//!   named groups) unless this edit gave the mask explicitly;
//! - a new default ACL takes its missing `user::`, `group::`, `other::` entries from the access
//!   ACL;
//! - the group mode bits show the mask: [`Acl::mode_bits`] is what the kernel puts in the
//!   file's mode when the access ACL is written.
//!
//! This module must never touch the filesystem, resolve names itself (a resolver closure
//! does), or accept a malformed ACL (`Acl::from_xattr` and [`AclPlan`] validate it).

use std::fmt::{self, Write as _};

/// `system.posix_acl_access`.
pub const XATTR_ACCESS: &str = "system.posix_acl_access";
/// `system.posix_acl_default`.
pub const XATTR_DEFAULT: &str = "system.posix_acl_default";

const XATTR_VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

/// Read bit of an ACL entry.
pub const READ: u8 = 4;
/// Write bit of an ACL entry.
pub const WRITE: u8 = 2;
/// Execute bit of an ACL entry.
pub const EXECUTE: u8 = 1;

/// What went wrong with an ACL, a spec or an edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The xattr bytes are not a valid version-2 POSIX ACL.
    #[error("malformed ACL xattr: {0}")]
    Xattr(&'static str),
    /// The entries do not form a valid ACL (missing base entry, duplicate, missing mask).
    #[error("invalid ACL: {0}")]
    Invalid(&'static str),
    /// A setfacl-style spec could not be parsed.
    #[error("bad ACL spec {spec:?}: {reason}")]
    Spec {
        /// The offending spec.
        spec: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A user or group name the resolver did not know.
    #[error("unknown {kind} {name:?} in ACL spec")]
    UnknownName {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
    },
}

/// Which of a file's two ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclKind {
    /// `system.posix_acl_access`: who may access the file.
    Access,
    /// `system.posix_acl_default`: what new entries of a directory inherit.
    Default,
}

impl AclKind {
    /// The xattr name holding this ACL.
    pub fn xattr_name(self) -> &'static str {
        match self {
            AclKind::Access => XATTR_ACCESS,
            AclKind::Default => XATTR_DEFAULT,
        }
    }
}

/// The tag of an ACL entry, with its on-disk value; the derived order is the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    /// `user::` — the owner.
    UserObj,
    /// `user:ID:` — a named user.
    User(u32),
    /// `group::` — the owning group.
    GroupObj,
    /// `group:ID:` — a named group.
    Group(u32),
    /// `mask::` — upper bound of the group class.
    Mask,
    /// `other::`.
    Other,
}

impl Tag {
    fn code(self) -> u16 {
        match self {
            Tag::UserObj => 0x01,
            Tag::User(_) => 0x02,
            Tag::GroupObj => 0x04,
            Tag::Group(_) => 0x08,
            Tag::Mask => 0x10,
            Tag::Other => 0x20,
        }
    }

    fn id(self) -> u32 {
        match self {
            Tag::User(id) | Tag::Group(id) => id,
            _ => UNDEFINED_ID,
        }
    }

    fn from_raw(code: u16, id: u32) -> Option<Tag> {
        Some(match code {
            0x01 => Tag::UserObj,
            0x02 => Tag::User(id),
            0x04 => Tag::GroupObj,
            0x08 => Tag::Group(id),
            0x10 => Tag::Mask,
            0x20 => Tag::Other,
            _ => return None,
        })
    }

    /// True for the entries the mask limits (named users, owning group, named groups).
    pub fn in_group_class(self) -> bool {
        matches!(self, Tag::User(_) | Tag::GroupObj | Tag::Group(_))
    }
}

/// One ACL entry: a tag and `rwx` bits ([`READ`] | [`WRITE`] | [`EXECUTE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// Whom the entry is about.
    pub tag: Tag,
    /// `rwx` as 3 bits.
    pub perm: u8,
}

/// A POSIX ACL: entries kept sorted by (tag, id), at most one per tag and id.
///
/// An empty `Acl` is "no ACL" (only meaningful for a default ACL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Acl {
    entries: Vec<AclEntry>,
}

impl Acl {
    /// The empty ACL (no default ACL).
    pub fn empty() -> Acl {
        Acl::default()
    }

    /// The minimal ACL equivalent to `mode`'s permission bits (`acl_from_mode`).
    pub fn from_mode(mode: u32) -> Acl {
        Acl {
            entries: vec![
                AclEntry {
                    tag: Tag::UserObj,
                    perm: ((mode >> 6) & 7) as u8,
                },
                AclEntry {
                    tag: Tag::GroupObj,
                    perm: ((mode >> 3) & 7) as u8,
                },
                AclEntry {
                    tag: Tag::Other,
                    perm: (mode & 7) as u8,
                },
            ],
        }
    }

    /// Builds an ACL from entries in any order; later duplicates replace earlier ones.
    /// Does not validate: see [`Acl::validate`].
    pub fn from_entries(entries: impl IntoIterator<Item = AclEntry>) -> Acl {
        let mut acl = Acl::empty();
        for e in entries {
            acl.set(e.tag, e.perm);
        }
        acl
    }

    /// The entries, sorted by (tag, id).
    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// True when there are no entries (no default ACL).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The permissions of `tag`, if the ACL has that entry.
    pub fn get(&self, tag: Tag) -> Option<u8> {
        self.find(tag).ok().map(|i| self.entries[i].perm)
    }

    /// Sets (adds or replaces) the entry for `tag`.
    pub fn set(&mut self, tag: Tag, perm: u8) {
        let perm = perm & 7;
        match self.find(tag) {
            Ok(i) => self.entries[i].perm = perm,
            Err(i) => self.entries.insert(i, AclEntry { tag, perm }),
        }
    }

    /// Removes the entry for `tag`; returns whether it was there.
    pub fn remove(&mut self, tag: Tag) -> bool {
        match self.find(tag) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn find(&self, tag: Tag) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.tag.cmp(&tag))
    }

    /// `acl_equiv_mode() == 0`: only the three base entries, no mask, no named entries.
    pub fn is_minimal(&self) -> bool {
        self.entries
            .iter()
            .all(|e| matches!(e.tag, Tag::UserObj | Tag::GroupObj | Tag::Other))
    }

    /// True when some entry grants execute (setfacl's `has_execute_perms`).
    pub fn has_execute(&self) -> bool {
        self.entries.iter().any(|e| e.perm & EXECUTE != 0)
    }

    /// Sets the mask to the union of the group class (`acl_calc_mask`).
    pub fn recalc_mask(&mut self) {
        let union = self
            .entries
            .iter()
            .filter(|e| e.tag.in_group_class())
            .fold(0, |acc, e| acc | e.perm);
        self.set(Tag::Mask, union);
    }

    /// The `rwxrwxrwx` bits the kernel derives from this (access) ACL: owner from `user::`,
    /// group from `mask::` if present else `group::`, other from `other::`.
    pub fn mode_bits(&self) -> u32 {
        let u = self.get(Tag::UserObj).unwrap_or(0) as u32;
        let g = self.get(Tag::Mask).or(self.get(Tag::GroupObj)).unwrap_or(0) as u32;
        let o = self.get(Tag::Other).unwrap_or(0) as u32;
        (u << 6) | (g << 3) | o
    }

    /// Checks the POSIX rules (`acl_check`): exactly one `user::`, `group::`, `other::`; a
    /// mask when there are named entries. The empty ACL is valid (no ACL).
    pub fn validate(&self) -> Result<(), AclError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let has = |t| self.get(t).is_some();
        if !has(Tag::UserObj) {
            return Err(AclError::Invalid("missing user:: entry"));
        }
        if !has(Tag::GroupObj) {
            return Err(AclError::Invalid("missing group:: entry"));
        }
        if !has(Tag::Other) {
            return Err(AclError::Invalid("missing other:: entry"));
        }
        let named = self
            .entries
            .iter()
            .any(|e| matches!(e.tag, Tag::User(_) | Tag::Group(_)));
        if named && !has(Tag::Mask) {
            return Err(AclError::Invalid("named entries without a mask"));
        }
        Ok(())
    }

    /// Decodes a `system.posix_acl_*` xattr value (version 2, little-endian entries sorted by
    /// (tag, id), no duplicates, valid per [`Acl::validate`]).
    pub fn from_xattr(bytes: &[u8]) -> Result<Acl, AclError> {
        if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
            return Err(AclError::Xattr("length is not 4 + 8*n"));
        }
        let version = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        if version != XATTR_VERSION {
            return Err(AclError::Xattr("version is not 2"));
        }
        let mut entries: Vec<AclEntry> = Vec::with_capacity((bytes.len() - 4) / 8);
        for chunk in bytes[4..].chunks_exact(8) {
            let code = u16::from_le_bytes([chunk[0], chunk[1]]);
            let perm = u16::from_le_bytes([chunk[2], chunk[3]]);
            let id = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let tag = Tag::from_raw(code, id).ok_or(AclError::Xattr("unknown tag"))?;
            if perm > 7 {
                return Err(AclError::Xattr("permission bits beyond rwx"));
            }
            if let Some(prev) = entries.last()
                && prev.tag >= tag
            {
                return Err(AclError::Xattr("entries not sorted or duplicated"));
            }
            entries.push(AclEntry {
                tag,
                perm: perm as u8,
            });
        }
        let acl = Acl { entries };
        if acl.is_empty() {
            return Err(AclError::Xattr("no entries"));
        }
        acl.validate()?;
        Ok(acl)
    }

    /// Encodes the ACL as a `system.posix_acl_*` xattr value.
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.entries.len());
        out.extend_from_slice(&XATTR_VERSION.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.tag.code().to_le_bytes());
            out.extend_from_slice(&(e.perm as u16).to_le_bytes());
            out.extend_from_slice(&e.tag.id().to_le_bytes());
        }
        out
    }

    /// getfacl's entry lines for this ACL (`--numeric`, default effective comments), each
    /// line prefixed with `prefix` (`""` or `"default:"`) and ended by `\n`.
    pub fn write_getfacl_lines(&self, prefix: &str, out: &mut String) {
        let mask = self.get(Tag::Mask);
        for e in &self.entries {
            out.push_str(prefix);
            match e.tag {
                Tag::UserObj => out.push_str("user::"),
                Tag::User(id) => {
                    let _ = write!(out, "user:{id}:");
                }
                Tag::GroupObj => out.push_str("group::"),
                Tag::Group(id) => {
                    let _ = write!(out, "group:{id}:");
                }
                Tag::Mask => out.push_str("mask::"),
                Tag::Other => out.push_str("other::"),
            }
            out.push_str(perm_str(e.perm));
            if let Some(mask) = mask
                && e.tag.in_group_class()
                && e.perm & mask != e.perm
            {
                out.push_str("\t#effective:");
                out.push_str(perm_str(e.perm & mask));
            }
            out.push('\n');
        }
    }
}

impl fmt::Display for Acl {
    /// The short text form `u::rw-,u:1000:rwx,g::r--,m::rwx,o::r--`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match e.tag {
                Tag::UserObj => f.write_str("u::")?,
                Tag::User(id) => write!(f, "u:{id}:")?,
                Tag::GroupObj => f.write_str("g::")?,
                Tag::Group(id) => write!(f, "g:{id}:")?,
                Tag::Mask => f.write_str("m::")?,
                Tag::Other => f.write_str("o::")?,
            }
            f.write_str(perm_str(e.perm))?;
        }
        Ok(())
    }
}

/// `rwx` text of 3 permission bits.
pub fn perm_str(perm: u8) -> &'static str {
    const S: [&str; 8] = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
    S[(perm & 7) as usize]
}

/// The whole ACL state of one file, as getfacl shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclState {
    /// The access ACL; minimal (3 entries, from the mode) when the file has no extended ACL.
    pub access: Acl,
    /// The default ACL; empty when there is none.
    pub default: Acl,
    /// The file's full mode (`st_mode & 0o7777`).
    pub mode: u32,
}

impl AclState {
    /// The state of a file whose xattrs were read: `access`/`default` are the decoded xattrs
    /// (`None` = absent).
    pub fn new(access: Option<Acl>, default: Option<Acl>, mode: u32) -> AclState {
        AclState {
            access: access.unwrap_or_else(|| Acl::from_mode(mode)),
            default: default.unwrap_or_default(),
            mode: mode & 0o7777,
        }
    }

    /// `getfacl --numeric --absolute-names` output for one file named `name`, owned by
    /// `uid:gid`, including the trailing blank line; byte-comparable with getfacl's.
    pub fn getfacl_text(&self, name: &str, uid: u32, gid: u32) -> String {
        let mut out = String::with_capacity(256);
        let _ = writeln!(out, "# file: {name}\n# owner: {uid}\n# group: {gid}");
        if self.mode & 0o7000 != 0 {
            let _ = writeln!(
                out,
                "# flags: {}{}{}",
                if self.mode & 0o4000 != 0 { 's' } else { '-' },
                if self.mode & 0o2000 != 0 { 's' } else { '-' },
                if self.mode & 0o1000 != 0 { 't' } else { '-' },
            );
        }
        self.write_omit_header(&mut out);
        out.push('\n');
        out
    }

    /// `getfacl --omit-header --numeric` output for one file, with the trailing blank line.
    pub fn getfacl_omit_header(&self) -> String {
        let mut out = String::with_capacity(160);
        self.write_omit_header(&mut out);
        out.push('\n');
        out
    }

    fn write_omit_header(&self, out: &mut String) {
        // A file whose access ACL is minimal shows its mode bits.
        if self.access.is_minimal() {
            Acl::from_mode(self.mode).write_getfacl_lines("", out);
        } else {
            self.access.write_getfacl_lines("", out);
        }
        self.default.write_getfacl_lines("default:", out);
    }
}

/// The subject of a spec, before ids are known to exist in an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclSpec {
    /// `d:` prefix: the default ACL.
    pub default: bool,
    /// The entry the spec names.
    pub tag: Tag,
    /// Permissions; `None` in a removal spec (`setfacl -x`).
    pub perm: Option<SpecPerm>,
}

/// Permissions of a spec: `rwx` bits plus setfacl's conditional `X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpecPerm {
    /// `r`, `w`, `x` as bits.
    pub bits: u8,
    /// `X`: execute only for directories or where some execute permission exists.
    pub cond_exec: bool,
}

/// One edit, in setfacl's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AclOp {
    /// `setfacl -m SPEC`: add or replace an entry.
    Modify(AclSpec),
    /// `setfacl -x SPEC`: remove an entry (perm ignored).
    Remove(AclSpec),
    /// `setfacl -b`: remove all extended access entries and the default ACL.
    RemoveAll,
    /// `setfacl -k`: remove the default ACL.
    RemoveDefault,
}

/// Whether a name is a user or a group, for the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A user name (`/etc/passwd`).
    User,
    /// A group name (`/etc/group`).
    Group,
}

/// Parses a comma-separated list of setfacl specs (as `setfacl -m` takes them) into
/// [`AclOp::Modify`] (or [`AclOp::Remove`] when `remove`), resolving names with `resolve`.
pub fn parse_ops(
    specs: &str,
    remove: bool,
    resolve: &dyn Fn(NameKind, &str) -> Option<u32>,
) -> Result<Vec<AclOp>, AclError> {
    specs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let spec = parse_spec(s, !remove, resolve)?;
            Ok(if remove {
                AclOp::Remove(spec)
            } else {
                AclOp::Modify(spec)
            })
        })
        .collect()
}

/// Parses one setfacl spec: `[d[efault]:]u[ser]:[NAME|UID][:PERMS]`, `g[roup]:...`,
/// `m[ask][:][:PERMS]`, `o[ther][:][:PERMS]`. PERMS are `rwxX-` letters or one octal digit.
/// With `want_perm` the permissions are required (`-m`), else they are optional and ignored
/// (`-x`).
pub fn parse_spec(
    spec: &str,
    want_perm: bool,
    resolve: &dyn Fn(NameKind, &str) -> Option<u32>,
) -> Result<AclSpec, AclError> {
    let bad = |reason| AclError::Spec {
        spec: spec.to_owned(),
        reason,
    };
    let mut rest = spec;
    let mut default = false;
    for p in ["default:", "d:"] {
        if let Some(r) = rest.strip_prefix(p) {
            default = true;
            rest = r;
            break;
        }
    }
    let (kind, rest) = rest.split_once(':').ok_or_else(|| bad("missing ':'"))?;
    let (qual, perm_text) = match kind {
        "u" | "user" | "g" | "group" => match rest.split_once(':') {
            Some((q, p)) => (q, Some(p)),
            None => (rest, None),
        },
        // mask and other: "m::rw", "m:rw" and "m:" are all accepted by setfacl.
        "m" | "mask" | "o" | "other" => match rest.split_once(':') {
            Some(("", p)) => ("", Some(p)),
            Some(_) => return Err(bad("mask and other take no qualifier")),
            None if rest.is_empty() => ("", None),
            None => ("", Some(rest)),
        },
        _ => return Err(bad("type must be u, g, m or o")),
    };
    let tag = match kind {
        "u" | "user" if qual.is_empty() => Tag::UserObj,
        "u" | "user" => Tag::User(resolve_id(qual, NameKind::User, resolve)?),
        "g" | "group" if qual.is_empty() => Tag::GroupObj,
        "g" | "group" => Tag::Group(resolve_id(qual, NameKind::Group, resolve)?),
        "m" | "mask" => Tag::Mask,
        _ => Tag::Other,
    };
    let perm = match perm_text {
        Some(p) if !p.is_empty() => Some(parse_perm(p).ok_or_else(|| bad("bad permissions"))?),
        _ if want_perm => return Err(bad("missing permissions")),
        _ => None,
    };
    Ok(AclSpec {
        default,
        tag,
        perm: if want_perm { perm } else { None },
    })
}

fn resolve_id(
    qual: &str,
    kind: NameKind,
    resolve: &dyn Fn(NameKind, &str) -> Option<u32>,
) -> Result<u32, AclError> {
    // setfacl tries the name first, then a number.
    if let Some(id) = resolve(kind, qual) {
        return Ok(id);
    }
    match qual.parse::<u32>() {
        Ok(id) if id != UNDEFINED_ID => Ok(id),
        _ => Err(AclError::UnknownName {
            kind: match kind {
                NameKind::User => "user",
                NameKind::Group => "group",
            },
            name: qual.to_owned(),
        }),
    }
}

fn parse_perm(p: &str) -> Option<SpecPerm> {
    let mut out = SpecPerm::default();
    if p.len() == 1
        && let Some(d) = p.chars().next().and_then(|c| c.to_digit(8))
    {
        out.bits = d as u8;
        return Some(out);
    }
    for c in p.chars() {
        match c {
            'r' => out.bits |= READ,
            'w' => out.bits |= WRITE,
            'x' => out.bits |= EXECUTE,
            'X' => out.cond_exec = true,
            '-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// The result of applying edits to an [`AclState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclPlan {
    /// The state after the edits (what getfacl will show).
    pub after: AclState,
    /// The access ACL changed: write it (the kernel then sets the mode's rwx bits from it,
    /// and drops the xattr if it is minimal).
    pub access_changed: bool,
    /// The default ACL changed: write it, or remove it when `after.default` is empty.
    pub default_changed: bool,
}

impl AclPlan {
    /// True when nothing needs writing.
    pub fn is_noop(&self) -> bool {
        !self.access_changed && !self.default_changed
    }
}

/// Applies `ops` to `before` for a file that is a directory or not, with `setfacl -R`
/// semantics (default-ACL edits on non-directories are ignored).
pub fn plan(before: &AclState, is_dir: bool, ops: &[AclOp]) -> Result<AclPlan, AclError> {
    let mut access = before.access.clone();
    let mut default = if is_dir {
        before.default.clone()
    } else {
        Acl::empty()
    };
    let (mut access_modified, mut default_modified) = (false, false);
    let (mut access_mask_given, mut default_mask_given) = (false, false);

    for op in ops {
        match op {
            AclOp::Modify(spec) | AclOp::Remove(spec) => {
                let (acl, modified, mask_given) = if spec.default {
                    (&mut default, &mut default_modified, &mut default_mask_given)
                } else {
                    (&mut access, &mut access_modified, &mut access_mask_given)
                };
                *modified = true;
                if spec.tag == Tag::Mask {
                    *mask_given = true;
                }
                if let AclOp::Modify(spec) = op {
                    let p = spec.perm.unwrap_or_default();
                    let mut bits = p.bits;
                    if p.cond_exec && (is_dir || acl.has_execute()) {
                        bits |= EXECUTE;
                    }
                    acl.set(spec.tag, bits);
                } else {
                    acl.remove(spec.tag);
                }
            }
            AclOp::RemoveAll => {
                access_modified = true;
                // Keep the owning group's effective rights: drop what the mask denied.
                if let (Some(mask), Some(g)) = (access.get(Tag::Mask), access.get(Tag::GroupObj)) {
                    access.set(Tag::GroupObj, g & mask);
                }
                access
                    .entries
                    .retain(|e| !matches!(e.tag, Tag::User(_) | Tag::Group(_) | Tag::Mask));
                default_modified = true;
                default = Acl::empty();
            }
            AclOp::RemoveDefault => {
                default_modified = true;
                default = Acl::empty();
            }
        }
    }

    // A new default ACL takes its missing base entries from the access ACL.
    if !default.is_empty() {
        for tag in [Tag::UserObj, Tag::GroupObj, Tag::Other] {
            if default.get(tag).is_none()
                && let Some(p) = access.get(tag)
            {
                default.set(tag, p);
            }
        }
    }
    if access_modified {
        fix_mask(&mut access, access_mask_given);
        access.validate()?;
    }
    if !is_dir {
        default = Acl::empty();
    }
    if default_modified && !default.is_empty() {
        fix_mask(&mut default, default_mask_given);
        default.validate()?;
    }

    let mode = (before.mode & !0o777) | access.mode_bits();
    let access_changed = access != before.access;
    let default_changed = default != before.default;
    Ok(AclPlan {
        after: AclState {
            access,
            default,
            mode,
        },
        access_changed,
        default_changed,
    })
}

fn fix_mask(acl: &mut Acl, mask_given: bool) {
    if !acl.is_minimal() {
        if !mask_given && acl.get(Tag::Mask).is_none() {
            let g = acl.get(Tag::GroupObj).unwrap_or(0);
            acl.set(Tag::Mask, g);
        }
        if !mask_given {
            acl.recalc_mask();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_names(_: NameKind, name: &str) -> Option<u32> {
        match name {
            "gobuild" => Some(4242),
            "alice" => Some(1000),
            _ => None,
        }
    }

    fn ops(s: &str) -> Vec<AclOp> {
        parse_ops(s, false, &no_names).unwrap()
    }

    #[test]
    fn xattr_round_trip_and_order() {
        let acl = Acl::from_entries([
            AclEntry {
                tag: Tag::Other,
                perm: 4,
            },
            AclEntry {
                tag: Tag::Group(7),
                perm: 6,
            },
            AclEntry {
                tag: Tag::UserObj,
                perm: 6,
            },
            AclEntry {
                tag: Tag::Mask,
                perm: 6,
            },
            AclEntry {
                tag: Tag::GroupObj,
                perm: 4,
            },
            AclEntry {
                tag: Tag::User(3),
                perm: 7,
            },
        ]);
        let bytes = acl.to_xattr();
        assert_eq!(&bytes[0..4], &[2, 0, 0, 0]);
        assert_eq!(&bytes[4..12], &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&bytes[12..20], &[2, 0, 7, 0, 3, 0, 0, 0]);
        assert_eq!(Acl::from_xattr(&bytes).unwrap(), acl);
        assert_eq!(
            acl.to_string(),
            "u::rw-,u:3:rwx,g::r--,g:7:rw-,m::rw-,o::r--"
        );
    }

    #[test]
    fn xattr_rejects_garbage() {
        assert!(Acl::from_xattr(&[]).is_err());
        assert!(Acl::from_xattr(&[1, 0, 0, 0]).is_err());
        let mut b = Acl::from_mode(0o644).to_xattr();
        b.swap(4, 12); // unsorted
        assert!(Acl::from_xattr(&b).is_err());
        let mut named = Acl::from_mode(0o644);
        named.set(Tag::User(1), 7);
        assert_eq!(
            Acl::from_xattr(&named.to_xattr()),
            Err(AclError::Invalid("named entries without a mask"))
        );
    }

    #[test]
    fn spec_forms() {
        let s = parse_spec("d:g:gobuild:rwX", true, &no_names).unwrap();
        assert_eq!(
            s,
            AclSpec {
                default: true,
                tag: Tag::Group(4242),
                perm: Some(SpecPerm {
                    bits: 6,
                    cond_exec: true
                })
            }
        );
        assert_eq!(
            parse_spec("u:1000:7", true, &no_names).unwrap().tag,
            Tag::User(1000)
        );
        assert_eq!(
            parse_spec("user::r", true, &no_names).unwrap().tag,
            Tag::UserObj
        );
        assert_eq!(parse_spec("m::rw", true, &no_names).unwrap().tag, Tag::Mask);
        assert_eq!(parse_spec("m:rw", true, &no_names).unwrap().tag, Tag::Mask);
        assert_eq!(parse_spec("o::r", true, &no_names).unwrap().tag, Tag::Other);
        assert!(
            parse_spec("default:other::r", true, &no_names)
                .unwrap()
                .default
        );
        assert!(parse_spec("u:nobodyhere:r", true, &no_names).is_err());
        assert!(parse_spec("u:1000", true, &no_names).is_err());
        assert_eq!(parse_spec("u:1000", false, &no_names).unwrap().perm, None);
        assert!(parse_spec("q:1:r", true, &no_names).is_err());
        assert!(parse_spec("u:1:rwq", true, &no_names).is_err());
    }

    #[test]
    fn modify_from_mode_recomputes_mask_and_group_bits() {
        // A read-only module file: the mask shows as group bits (0444 -> 0464).
        let st = AclState::new(None, None, 0o444);
        let p = plan(&st, false, &ops("g:gobuild:rwX,d:g:gobuild:rwX")).unwrap();
        assert_eq!(
            p.after.access.to_string(),
            "u::r--,g::r--,g:4242:rw-,m::rw-,o::r--"
        );
        assert_eq!(p.after.mode, 0o464);
        assert!(p.after.default.is_empty());
        assert!(p.access_changed && !p.default_changed);
        // Idempotent.
        let again = plan(&p.after, false, &ops("g:gobuild:rwX")).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn cond_exec_rules() {
        let exe = AclState::new(None, None, 0o700);
        let p = plan(&exe, false, &ops("g:gobuild:rX")).unwrap();
        assert_eq!(p.after.access.get(Tag::Group(4242)), Some(5));
        let dir = AclState::new(None, None, 0o700);
        let p = plan(&dir, true, &ops("d:g:gobuild:rwX")).unwrap();
        assert_eq!(
            p.after.default.to_string(),
            "u::rwx,g::---,g:4242:rwx,m::rwx,o::---"
        );
        assert!(!p.access_changed && p.default_changed);
    }

    #[test]
    fn remove_keeps_mask_and_remove_all_restores_group() {
        let st = AclState::new(None, None, 0o640);
        let p = plan(&st, false, &ops("u:alice:rwx")).unwrap();
        assert_eq!(p.after.mode, 0o670);
        let x = plan(
            &p.after,
            false,
            &parse_ops("u:alice", true, &no_names).unwrap(),
        )
        .unwrap();
        assert_eq!(x.after.access.to_string(), "u::rw-,g::r--,m::r--,o::---");
        assert_eq!(x.after.mode, 0o640);
        let b = plan(&p.after, false, &[AclOp::RemoveAll]).unwrap();
        assert!(b.after.access.is_minimal());
        assert_eq!(b.after.mode, 0o640);
    }

    #[test]
    fn explicit_mask_is_kept() {
        let st = AclState::new(None, None, 0o640);
        let p = plan(&st, false, &ops("u:alice:rwx,m::r")).unwrap();
        assert_eq!(p.after.access.get(Tag::Mask), Some(4));
        assert_eq!(p.after.mode, 0o640);
        assert!(
            p.after
                .getfacl_omit_header()
                .contains("user:1000:rwx\t#effective:r--\n")
        );
    }

    #[test]
    fn invalid_result_is_an_error() {
        let st = AclState::new(None, None, 0o640);
        let e = plan(&st, false, &parse_ops("g::", true, &no_names).unwrap());
        assert_eq!(e, Err(AclError::Invalid("missing group:: entry")));
    }

    #[test]
    fn getfacl_text_matches_format() {
        let mut st = AclState::new(None, None, 0o2755);
        st = plan(&st, true, &ops("d:u:1000:rwx")).unwrap().after;
        assert_eq!(
            st.getfacl_text("d", 0, 0),
            "# file: d\n# owner: 0\n# group: 0\n# flags: -s-\nuser::rwx\ngroup::r-x\n\
             other::r-x\ndefault:user::rwx\ndefault:user:1000:rwx\ndefault:group::r-x\n\
             default:mask::rwx\ndefault:other::r-x\n\n"
        );
    }
}
