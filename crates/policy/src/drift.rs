//! Drift rules: an observed entry of a root against what the root expects, as findings.
//!
//! Rules, in the order [`evaluate`] applies them:
//! - **symlink**: only its target is judged; one leaving the root (absolute outside it, or
//!   `..` past it) is [`DriftKind::SymlinkEscapesRoot`]. Symlinks are never changed.
//! - **fifo, socket, device**: [`DriftKind::UnexpectedFileType`]; Go creates none.
//! - **owner**: with an expected owner, any other uid (root after `sudo go build`, another
//!   user, an unmapped container uid) is [`DriftKind::ForeignOwner`]. Shared roots (no owner)
//!   are judged in aggregate by [`mixed_owners`].
//! - **group**: with an expected group, [`DriftKind::WrongGroup`].
//! - **mode** ([`DriftKind::BadMode`]): Go creates with `0777`/`0666` and the umask
//!   (`cache.go`, `modfetch/fetch.go`), so by default only what Go needs is required: the
//!   owner can read+write (+search) where Go writes; read (+search) in read-only module trees;
//!   files are not setuid/setgid. A declared mode adds its bits. Group bits are not judged on
//!   entries with an extended ACL: they show the ACL mask.
//! - **read-only modules**: in a module cache, `<escaped path>@<version>/` and below is made
//!   read-only by Go on purpose (`makeDirsReadOnly`: dirs `&^ 0222`, files `0444`); there a
//!   missing write bit is never drift and no write bit is ever required, neither by mode nor
//!   by ACL. `cache/` (download, lock, vcs) and the module path directories stay writable.
//! - **world-writable** ([`DriftKind::WorldWritable`]): any directory or file with `o+w`;
//!   sticky directories too (anyone could still plant entries: cache poisoning), one
//!   severity lower.
//! - **ACL** (only when the root declares `acl`): each declared access entry must be there
//!   with *effective* permissions (entry ∧ mask) equal to the declared ones (`X` resolved per
//!   entry; `w` ignored in read-only module trees, so a shared module cache never turns 0444
//!   files group-writable, DOMAIN.md); declared `d:` entries must be in a directory's default
//!   ACL exactly; named entries not declared are extra. An entry whose own bits suffice but
//!   the mask cuts is [`DriftKind::AclMaskTooNarrow`]. A default `other` entry with `w`
//!   (`d:o::rwx`: every new entry world-writable) is [`DriftKind::WorldWritable`] unless
//!   declared.
//! - **label**: the SELinux *type* must equal the root's override or file_contexts' answer;
//!   user, role and range are left alone, like `restorecon` without `-F`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::acl::{self, AclEntry, AclTag, WRITE};
use crate::config::{ModeBits, ModePolicy, RootKind};
use crate::goenv::clean;
use crate::roots::CacheRoot;

/// The type of an observed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Directory.
    Dir,
    /// Regular file.
    Regular,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
}

impl FileType {
    /// The type of `st_mode`'s `S_IFMT` bits. A type the kernel did not name counts as a
    /// block device: the strictest judgement (never changed, reported as an error).
    pub fn from_mode(st_mode: u32) -> FileType {
        match st_mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR => FileType::CharDevice,
            _ => FileType::BlockDevice,
        }
    }
}

/// One entry as the walker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Path relative to the root (`""` for the root itself).
    pub rel_path: PathBuf,
    /// Type.
    pub file_type: FileType,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (`0o7777`), as `st_mode & 0o7777`.
    pub mode: u32,
    /// Access ACL entries; empty when the file has no extended ACL.
    pub acl_access: Vec<AclEntry>,
    /// Default ACL entries (directories); empty when none.
    pub acl_default: Vec<AclEntry>,
    /// Current SELinux context, if any.
    pub label: Option<String>,
    /// What file_contexts expects for the path (`selabel_lookup`), if known.
    pub expected_label: Option<String>,
    /// The current label's type is one of the policy's customizable types
    /// (`contexts/customizable_types`: RHEL lists `container_file_t`, which
    /// `podman -v …:z` sets). As restorecon without `-F`, file_contexts' expectation does
    /// not override it; a label the root declares does.
    pub label_customizable: bool,
    /// A symlink's target, as `readlink` gives it.
    pub link_target: Option<String>,
    /// Hard link count. A regular file with more than one name is never changed: the
    /// change would reach its other names, which may lie outside the root.
    pub nlink: u64,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// Owned by someone other than the root's owner.
    ForeignOwner,
    /// Group differs from the declared one.
    WrongGroup,
    /// Mode lacks required or has forbidden bits.
    BadMode,
    /// `o+w`.
    WorldWritable,
    /// A declared ACL entry is absent.
    MissingAclEntry,
    /// A declared ACL entry has other permissions.
    WrongAclPerms,
    /// An ACL entry that is not declared.
    ExtraAclEntry,
    /// The mask cuts a declared entry's permissions.
    AclMaskTooNarrow,
    /// SELinux type differs from the expected one.
    WrongLabel,
    /// A shared root whose entries have several owners (aggregate).
    MixedOwners,
    /// A symlink pointing out of the root.
    SymlinkEscapesRoot,
    /// A fifo, socket or device in a cache.
    UnexpectedFileType,
}

impl DriftKind {
    /// Every kind, for parsing names.
    pub const ALL: [DriftKind; 12] = [
        DriftKind::ForeignOwner,
        DriftKind::WrongGroup,
        DriftKind::BadMode,
        DriftKind::WorldWritable,
        DriftKind::MissingAclEntry,
        DriftKind::WrongAclPerms,
        DriftKind::ExtraAclEntry,
        DriftKind::AclMaskTooNarrow,
        DriftKind::WrongLabel,
        DriftKind::MixedOwners,
        DriftKind::SymlinkEscapesRoot,
        DriftKind::UnexpectedFileType,
    ];

    /// Stable snake_case name (API, metrics, journal).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::ForeignOwner => "foreign_owner",
            DriftKind::WrongGroup => "wrong_group",
            DriftKind::BadMode => "bad_mode",
            DriftKind::WorldWritable => "world_writable",
            DriftKind::MissingAclEntry => "missing_acl_entry",
            DriftKind::WrongAclPerms => "wrong_acl_perms",
            DriftKind::ExtraAclEntry => "extra_acl_entry",
            DriftKind::AclMaskTooNarrow => "acl_mask_too_narrow",
            DriftKind::WrongLabel => "wrong_label",
            DriftKind::MixedOwners => "mixed_owners",
            DriftKind::SymlinkEscapesRoot => "symlink_escapes_root",
            DriftKind::UnexpectedFileType => "unexpected_file_type",
        }
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Something will eventually break or is untidy.
    Warning,
    /// Go fails, or a security property is lost.
    Error,
    /// Exploitable now (e.g. a world-writable cache: poisoning).
    Critical,
}

/// What would fix a finding, computed by the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// `chown` (None = leave).
    Chown {
        /// New owner.
        uid: Option<u32>,
        /// New group.
        gid: Option<u32>,
    },
    /// Set and clear permission bits. The executor applies them to the mode the entry has
    /// when the change is made (after a chown, which may have cleared setuid/setgid), never
    /// to `from`.
    ModeBits {
        /// The observed mode (for display and prediction only).
        from: u32,
        /// Bits to set.
        set: u32,
        /// Bits to clear.
        clear: u32,
        /// The entry is a directory (setuid/setgid on a directory grant nothing on exec).
        dir: bool,
    },
    /// `setfacl -m SPEC`.
    SetAcl(String),
    /// `setfacl -x SPEC`.
    RemoveAclEntry(String),
    /// Set this SELinux context.
    Relabel(String),
}

/// One piece of drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Relative to the root (`""` = the root itself, or the whole root for aggregates).
    pub rel_path: PathBuf,
    /// What.
    pub kind: DriftKind,
    /// What is there.
    pub observed: String,
    /// What should be.
    pub expected: String,
    /// How bad.
    pub severity: Severity,
    /// How to fix, when goguard can.
    pub remedy: Option<Remedy>,
}

/// Part of a root with its own write rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Go writes here.
    Writable,
    /// Inside an extracted module (`<path>@<version>/`): read-only on purpose.
    ReadOnlyModule,
}

/// The region of `rel` (an entry that is a directory or not) in a root of `kind`.
pub fn region(kind: RootKind, rel: &Path, is_dir: bool) -> Region {
    let comps: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    let modcache: &[&str] = match kind {
        RootKind::GoModCache => &comps,
        RootKind::GoPath if comps.len() >= 2 && comps[0] == "pkg" && comps[1] == "mod" => {
            &comps[2..]
        }
        _ => return Region::Writable,
    };
    if modcache.first() == Some(&"cache") {
        return Region::Writable;
    }
    for (i, c) in modcache.iter().enumerate() {
        if let Some((path, version)) = c.split_once('@') {
            let is_last = i + 1 == modcache.len();
            let partial = version.ends_with(".partial") || version.contains(".tmp-");
            if path.is_empty() || version.is_empty() || partial || (is_last && !is_dir) {
                return Region::Writable;
            }
            return Region::ReadOnlyModule;
        }
    }
    Region::Writable
}

fn mode_str(m: u32) -> String {
    format!("{m:04o}")
}

/// The SELinux type of a context `user:role:type[:range]`.
pub fn context_type(ctx: &str) -> Option<&str> {
    ctx.split(':').nth(2).filter(|t| !t.is_empty())
}

fn with_type(ctx: &str, new_type: &str) -> Option<String> {
    let mut parts: Vec<&str> = ctx.splitn(4, ':').collect();
    if parts.len() < 3 {
        return None;
    }
    parts[2] = new_type;
    Some(parts.join(":"))
}

/// Judges one entry (see the module doc for the rules).
pub fn evaluate(root: &CacheRoot, obs: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let finding = |kind, observed: String, expected: String, severity, remedy| Finding {
        rel_path: obs.rel_path.clone(),
        kind,
        observed,
        expected,
        severity,
        remedy,
    };
    let is_dir = obs.file_type == FileType::Dir;
    match obs.file_type {
        FileType::Symlink => {
            if let Some(target) = &obs.link_target
                && symlink_escapes(&root.path, &obs.rel_path, target)
            {
                out.push(finding(
                    DriftKind::SymlinkEscapesRoot,
                    format!("-> {target}"),
                    format!("a target inside {}", root.path.display()),
                    Severity::Error,
                    None,
                ));
            }
            return out;
        }
        FileType::Dir | FileType::Regular => {}
        other => {
            let sev = if matches!(other, FileType::CharDevice | FileType::BlockDevice) {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(finding(
                DriftKind::UnexpectedFileType,
                format!("{other:?}").to_lowercase(),
                "a directory or regular file".into(),
                sev,
                None,
            ));
            return out;
        }
    }
    let exp = &root.expected;
    let region = region(root.kind, &obs.rel_path, is_dir);

    // Owner and group.
    if let Some(owner) = exp.owner
        && obs.uid != owner
    {
        let gid = exp.group.or(exp.repair_gid).filter(|&g| g != obs.gid);
        out.push(finding(
            DriftKind::ForeignOwner,
            format!("uid {}", obs.uid),
            format!("uid {owner}"),
            Severity::Error,
            Some(Remedy::Chown {
                uid: Some(owner),
                gid,
            }),
        ));
    }
    if let Some(group) = exp.group
        && obs.gid != group
    {
        out.push(finding(
            DriftKind::WrongGroup,
            format!("gid {}", obs.gid),
            format!("gid {group}"),
            Severity::Warning,
            Some(Remedy::Chown {
                uid: None,
                gid: Some(group),
            }),
        ));
    }

    // Mode.
    let has_mask = obs.acl_access.iter().any(|e| e.tag == AclTag::Mask);
    let bits = mode_bits(&exp.mode, is_dir, region);
    let mut judged = 0o7775; // o+w is WorldWritable's
    if has_mask {
        judged &= !0o070;
    }
    let missing = bits.require & !obs.mode & judged;
    let extra = bits.forbid & obs.mode & judged;
    if missing != 0 || extra != 0 {
        let owner_cannot_use = missing & 0o700 != 0;
        let mut want = Vec::new();
        if missing != 0 {
            want.push(format!("+{}", mode_str(missing)));
        }
        if extra != 0 {
            want.push(format!("-{}", mode_str(extra)));
        }
        out.push(finding(
            DriftKind::BadMode,
            mode_str(obs.mode),
            want.join(" "),
            if owner_cannot_use {
                Severity::Error
            } else {
                Severity::Warning
            },
            Some(Remedy::ModeBits {
                from: obs.mode,
                set: missing,
                clear: extra,
                dir: is_dir,
            }),
        ));
    }
    if obs.mode & 0o002 != 0 {
        let sticky = is_dir && obs.mode & 0o1000 != 0;
        out.push(finding(
            DriftKind::WorldWritable,
            mode_str(obs.mode),
            "no write permission for others".into(),
            if sticky {
                Severity::Error
            } else {
                Severity::Critical
            },
            Some(Remedy::ModeBits {
                from: obs.mode,
                set: 0,
                clear: 0o002,
                dir: is_dir,
            }),
        ));
    }

    // ACLs.
    if let Some(reqs) = &exp.acl {
        acl_findings(obs, is_dir, region, reqs, &mut out);
    }

    // Label.
    let expected_ctx = obs.expected_label.as_deref();
    let expected_type = match &exp.label {
        Some(o) => Some(o.type_.as_str()),
        None if obs.label_customizable => None,
        None => expected_ctx.and_then(context_type),
    };
    if let Some(want) = expected_type {
        let current = obs.label.as_deref();
        let current_type = current.and_then(context_type);
        if current_type != Some(want) {
            let remedy = match current {
                Some(c) if current_type.is_some() => with_type(c, want),
                _ => exp
                    .label
                    .as_ref()
                    .and_then(|o| o.context.clone())
                    .or_else(|| expected_ctx.and_then(|e| with_type(e, want))),
            };
            out.push(finding(
                DriftKind::WrongLabel,
                current.unwrap_or("<none>").to_owned(),
                want.to_owned(),
                Severity::Warning,
                remedy.map(Remedy::Relabel),
            ));
        }
    }
    if obs.file_type == FileType::Regular && obs.nlink > 1 {
        // Hard-linked: report, never change (the other names may lie outside the root).
        for f in &mut out {
            if f.remedy.take().is_some() {
                f.observed = format!(
                    "{} (hard-linked, {} names: not changed)",
                    f.observed, obs.nlink
                );
            }
        }
    }
    out
}

/// The mode bits an entry must have / must not have.
pub fn mode_bits(policy: &ModePolicy, is_dir: bool, region: Region) -> ModeBits {
    let ro = region == Region::ReadOnlyModule;
    let mut b = match (policy, is_dir) {
        (ModePolicy::Go, true) => ModeBits {
            require: if ro { 0o500 } else { 0o700 },
            forbid: 0,
        },
        (ModePolicy::Go, false) => ModeBits {
            require: if ro { 0o400 } else { 0o600 },
            forbid: 0o6000,
        },
        (ModePolicy::Declared { dir, .. }, true) => *dir,
        (ModePolicy::Declared { file, .. }, false) => *file,
    };
    if ro {
        b.require &= !0o222;
    }
    b
}

fn acl_findings(
    obs: &Observed,
    is_dir: bool,
    region: Region,
    reqs: &[crate::acl::AclRequirement],
    out: &mut Vec<Finding>,
) {
    let ro = region == Region::ReadOnlyModule;
    let mk = |kind, observed: String, expected: String, remedy| Finding {
        rel_path: obs.rel_path.clone(),
        kind,
        observed,
        expected,
        severity: Severity::Warning,
        remedy: Some(remedy),
    };
    // The access ACL, with base entries from the mode when there is no extended ACL.
    let mut access: BTreeMap<AclTag, u8> =
        obs.acl_access.iter().map(|e| (e.tag, e.perms)).collect();
    access
        .entry(AclTag::UserObj)
        .or_insert(((obs.mode >> 6) & 7) as u8);
    access.entry(AclTag::Other).or_insert((obs.mode & 7) as u8);
    if !access.contains_key(&AclTag::Mask) {
        access
            .entry(AclTag::GroupObj)
            .or_insert(((obs.mode >> 3) & 7) as u8);
    }
    let mask = access.get(&AclTag::Mask).copied();
    let default: BTreeMap<AclTag, u8> = obs.acl_default.iter().map(|e| (e.tag, e.perms)).collect();
    let ignore = if ro { WRITE } else { 0 };

    for req in reqs.iter().filter(|r| !r.default) {
        let want = req.perms_for(is_dir, obs.mode) & !ignore;
        let show = |p: u8| acl::spec(false, req.tag, Some(p));
        match access.get(&req.tag) {
            None => out.push(mk(
                DriftKind::MissingAclEntry,
                "absent".into(),
                show(want),
                Remedy::SetAcl(show(want)),
            )),
            Some(&raw) => {
                let effective = match mask {
                    Some(m) if req.tag.in_group_class() => raw & m,
                    _ => raw,
                };
                if effective & !ignore == want {
                    continue;
                }
                if raw & want == want && raw & !ignore & !want == effective & !ignore & !want {
                    // The entry itself is right; the mask cuts it.
                    let m = mask.unwrap_or(0) | want;
                    out.push(mk(
                        DriftKind::AclMaskTooNarrow,
                        format!("{} masked to {}", show(raw), acl::perm_str(effective)),
                        show(want),
                        Remedy::SetAcl(acl::spec(false, AclTag::Mask, Some(m))),
                    ));
                } else {
                    out.push(mk(
                        DriftKind::WrongAclPerms,
                        show(effective),
                        show(want),
                        Remedy::SetAcl(show(want)),
                    ));
                }
            }
        }
    }
    let declared_named =
        |default: bool, tag: AclTag| reqs.iter().any(|r| r.default == default && r.tag == tag);
    for (&tag, &perms) in &access {
        if tag.is_named() && !declared_named(false, tag) {
            out.push(mk(
                DriftKind::ExtraAclEntry,
                acl::spec(false, tag, Some(perms)),
                "not declared".into(),
                Remedy::RemoveAclEntry(acl::spec(false, tag, None)),
            ));
        }
    }
    if !is_dir {
        return;
    }
    for req in reqs.iter().filter(|r| r.default) {
        let want = req.perms_for(true, obs.mode);
        let show = |p: u8| acl::spec(true, req.tag, Some(p));
        match default.get(&req.tag) {
            Some(&p) if p == want => {}
            Some(&p) => out.push(mk(
                DriftKind::WrongAclPerms,
                show(p),
                show(want),
                Remedy::SetAcl(show(want)),
            )),
            None => out.push(mk(
                DriftKind::MissingAclEntry,
                "absent".into(),
                show(want),
                Remedy::SetAcl(show(want)),
            )),
        }
    }
    for (&tag, &perms) in &default {
        if tag.is_named() && !declared_named(true, tag) {
            out.push(mk(
                DriftKind::ExtraAclEntry,
                acl::spec(true, tag, Some(perms)),
                "not declared".into(),
                Remedy::RemoveAclEntry(acl::spec(true, tag, None)),
            ));
        }
    }
    // `d:o::` with `w`: every entry created in the directory from now on is world-writable
    // (the mask never limits `other`). Judged like `o+w` itself, unless the root declares
    // the default `other` entry (then the loop above holds it to the declaration).
    let declared_other = reqs.iter().any(|r| r.default && r.tag == AclTag::Other);
    if let Some(&perms) = default.get(&AclTag::Other)
        && perms & WRITE != 0
        && !declared_other
    {
        out.push(Finding {
            rel_path: obs.rel_path.clone(),
            kind: DriftKind::WorldWritable,
            observed: acl::spec(true, AclTag::Other, Some(perms)),
            expected: "no write permission for others in the default ACL (new entries would \
                       be world-writable)"
                .into(),
            severity: Severity::Critical,
            remedy: Some(Remedy::SetAcl(acl::spec(
                true,
                AclTag::Other,
                Some(perms & !WRITE),
            ))),
        });
    }
}

/// True when a symlink at `rel` (inside `root`) with `target` points outside the root,
/// judged lexically (the executor never follows links anyway).
pub fn symlink_escapes(root: &Path, rel: &Path, target: &str) -> bool {
    if target.starts_with('/') {
        return !Path::new(&clean(target)).starts_with(root);
    }
    let parent = rel
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let joined = clean(format!("{parent}/{target}").trim_start_matches('/'));
    joined == ".." || joined.starts_with("../")
}

/// Owners seen in a root, counted by uid, for [`mixed_owners`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerTally {
    /// uid → number of entries.
    pub counts: BTreeMap<u32, u64>,
}

impl OwnerTally {
    /// Counts one entry.
    pub fn add(&mut self, obs: &Observed) {
        *self.counts.entry(obs.uid).or_default() += 1;
    }
}

/// The aggregate finding for a shared root (no declared owner) whose entries have several
/// owners: `Info` when a group or ACL lets them cooperate, `Warning` when nothing does (one
/// user's entries are then read-only to the others: DOMAIN.md failure 3). Single-owner roots
/// get per-entry [`DriftKind::ForeignOwner`] findings instead.
pub fn mixed_owners(root: &CacheRoot, tally: &OwnerTally) -> Option<Finding> {
    if !root.is_shared() || tally.counts.len() < 2 {
        return None;
    }
    let cooperative = root.expected.group.is_some() || root.expected.acl.is_some();
    let observed = tally
        .counts
        .iter()
        .map(|(u, n)| format!("uid {u}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding {
        rel_path: PathBuf::new(),
        kind: DriftKind::MixedOwners,
        observed,
        expected: if cooperative {
            "several owners, sharing through the declared group/ACL".into()
        } else {
            "one owner, or a declared group/ACL so owners can share".into()
        },
        severity: if cooperative {
            Severity::Info
        } else {
            Severity::Warning
        },
        remedy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AclRequirement, READ};
    use crate::config::LabelOverride;

    #[test]
    fn hard_linked_files_are_reported_but_never_changed() {
        let root = user_root(RootKind::GoCache);
        let mut o = obs("00/x-d", FileType::Regular, 0, 0o644);
        let linked = {
            o.nlink = 2;
            evaluate(&root, &o)
        };
        assert!(linked.iter().any(|f| f.kind == DriftKind::ForeignOwner));
        assert!(linked.iter().all(|f| f.remedy.is_none()), "{linked:?}");
        assert!(linked[0].observed.contains("hard-linked, 2 names"));
        o.nlink = 1;
        assert!(evaluate(&root, &o).iter().any(|f| f.remedy.is_some()));
        // Directories' link counts are their subdirectories: not a hard link.
        let mut d = obs("00", FileType::Dir, 0, 0o755);
        d.nlink = 5;
        assert!(evaluate(&root, &d).iter().any(|f| f.remedy.is_some()));
    }

    pub(crate) fn obs(rel: &str, ft: FileType, uid: u32, mode: u32) -> Observed {
        Observed {
            rel_path: rel.into(),
            file_type: ft,
            uid,
            gid: uid,
            mode,
            acl_access: vec![],
            acl_default: vec![],
            label: None,
            expected_label: None,
            label_customizable: false,
            link_target: None,
            nlink: 1,
        }
    }

    fn user_root(kind: RootKind) -> CacheRoot {
        CacheRoot::for_user(
            "/home/a/c".into(),
            kind,
            "a",
            1000,
            1000,
            Path::new("/home/a"),
        )
    }

    fn kinds(f: &[Finding]) -> Vec<DriftKind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn regions() {
        let m = RootKind::GoModCache;
        assert_eq!(
            region(m, Path::new("cache/download/x/@v/v1.zip"), false),
            Region::Writable
        );
        assert_eq!(
            region(m, Path::new("github.com/!burnt!sushi"), true),
            Region::Writable
        );
        assert_eq!(
            region(m, Path::new("github.com/!burnt!sushi/toml@v1.2.0"), true),
            Region::ReadOnlyModule
        );
        assert_eq!(
            region(m, Path::new("github.com/x/y@v1.2.0/sub/f.go"), false),
            Region::ReadOnlyModule
        );
        assert_eq!(
            region(m, Path::new("github.com/x/y@v1.2.0.partial"), false),
            Region::Writable
        );
        assert_eq!(
            region(m, Path::new("github.com/x/y@v1.2.0.tmp-123"), true),
            Region::Writable
        );
        assert_eq!(
            region(RootKind::GoPath, Path::new("pkg/mod/a/b@v1/c"), false),
            Region::ReadOnlyModule
        );
        assert_eq!(
            region(RootKind::GoPath, Path::new("src/a/b@v1/c"), false),
            Region::Writable
        );
        assert_eq!(
            region(RootKind::GoCache, Path::new("a@b/c"), false),
            Region::Writable
        );
    }

    #[test]
    fn compliant_gocache_entries_have_no_findings() {
        let r = user_root(RootKind::GoCache);
        assert!(evaluate(&r, &obs("", FileType::Dir, 1000, 0o755)).is_empty());
        assert!(evaluate(&r, &obs("00/abc-d", FileType::Regular, 1000, 0o644)).is_empty());
        assert!(evaluate(&r, &obs("00/abc-d", FileType::Regular, 1000, 0o600)).is_empty());
    }

    #[test]
    fn root_owned_entry_after_sudo() {
        let r = user_root(RootKind::GoCache);
        let mut o = obs("3f/x-d", FileType::Regular, 0, 0o644);
        o.gid = 0;
        let f = evaluate(&r, &o);
        assert_eq!(kinds(&f), vec![DriftKind::ForeignOwner]);
        assert_eq!(
            f[0].remedy,
            Some(Remedy::Chown {
                uid: Some(1000),
                gid: Some(1000)
            })
        );
        assert_eq!(f[0].severity, Severity::Error);
    }

    #[test]
    fn modes() {
        let r = user_root(RootKind::GoCache);
        let f = evaluate(&r, &obs("00", FileType::Dir, 1000, 0o555));
        assert_eq!(kinds(&f), vec![DriftKind::BadMode]);
        assert_eq!(f[0].severity, Severity::Error);
        let f = evaluate(&r, &obs("x", FileType::Regular, 1000, 0o4644));
        assert_eq!(kinds(&f), vec![DriftKind::BadMode]);
        let f = evaluate(&r, &obs("00", FileType::Dir, 1000, 0o777));
        assert_eq!(
            (kinds(&f), f[0].severity),
            (vec![DriftKind::WorldWritable], Severity::Critical)
        );
        let f = evaluate(&r, &obs("00", FileType::Dir, 1000, 0o1777));
        assert_eq!(f[0].severity, Severity::Error);
    }

    #[test]
    fn read_only_modules_are_not_drift() {
        let r = user_root(RootKind::GoModCache);
        assert!(
            evaluate(
                &r,
                &obs("golang.org/x/mod@v0.1.0", FileType::Dir, 1000, 0o555)
            )
            .is_empty()
        );
        assert!(
            evaluate(
                &r,
                &obs(
                    "golang.org/x/mod@v0.1.0/go.mod",
                    FileType::Regular,
                    1000,
                    0o444
                )
            )
            .is_empty()
        );
        // But the download cache must stay writable.
        let f = evaluate(
            &r,
            &obs(
                "cache/download/golang.org/x/mod/@v",
                FileType::Dir,
                1000,
                0o555,
            ),
        );
        assert_eq!(kinds(&f), vec![DriftKind::BadMode]);
        // And the owner still needs to read modules.
        let f = evaluate(
            &r,
            &obs(
                "golang.org/x/mod@v0.1.0/go.mod",
                FileType::Regular,
                1000,
                0o044,
            ),
        );
        assert_eq!(kinds(&f), vec![DriftKind::BadMode]);
    }

    pub(crate) fn shared_modcache() -> CacheRoot {
        let mut r = user_root(RootKind::GoModCache);
        r.expected.owner = None;
        r.expected.repair_gid = None;
        r.expected.group = Some(2000);
        r.expected.acl = Some(vec![
            AclRequirement {
                default: false,
                tag: AclTag::Group(2000),
                bits: READ | WRITE,
                cond_exec: true,
            },
            AclRequirement {
                default: true,
                tag: AclTag::Group(2000),
                bits: READ | WRITE,
                cond_exec: true,
            },
        ]);
        r
    }

    #[test]
    fn acl_rules_on_a_shared_module_cache() {
        let r = shared_modcache();
        let mut o = obs("github.com/x/y@v1.0.0/f.go", FileType::Regular, 1001, 0o444);
        o.gid = 2000;
        let f = evaluate(&r, &o);
        assert_eq!(kinds(&f), vec![DriftKind::MissingAclEntry]);
        // Never w on read-only module files (no 0464).
        assert_eq!(f[0].remedy, Some(Remedy::SetAcl("g:2000:r--".into())));
        // Inherited rwx masked to r-- is fine there.
        o.acl_access = vec![
            AclEntry {
                tag: AclTag::UserObj,
                perms: 4,
            },
            AclEntry {
                tag: AclTag::GroupObj,
                perms: 5,
            },
            AclEntry {
                tag: AclTag::Group(2000),
                perms: 7,
            },
            AclEntry {
                tag: AclTag::Mask,
                perms: 4,
            },
            AclEntry {
                tag: AclTag::Other,
                perms: 4,
            },
        ];
        assert!(evaluate(&r, &o).is_empty(), "{:?}", evaluate(&r, &o));
        // A download dir: access and default entries, rwx.
        let mut d = obs("cache/download/x/@v", FileType::Dir, 1001, 0o2775);
        d.gid = 2000;
        let f = evaluate(&r, &d);
        assert_eq!(
            kinds(&f),
            vec![DriftKind::MissingAclEntry, DriftKind::MissingAclEntry]
        );
        d.acl_access = vec![
            AclEntry {
                tag: AclTag::UserObj,
                perms: 7,
            },
            AclEntry {
                tag: AclTag::GroupObj,
                perms: 7,
            },
            AclEntry {
                tag: AclTag::Group(2000),
                perms: 7,
            },
            AclEntry {
                tag: AclTag::User(1005),
                perms: 7,
            },
            AclEntry {
                tag: AclTag::Mask,
                perms: 5,
            },
            AclEntry {
                tag: AclTag::Other,
                perms: 5,
            },
        ];
        d.acl_default = vec![AclEntry {
            tag: AclTag::Group(2000),
            perms: 7,
        }];
        let f = evaluate(&r, &d);
        assert_eq!(
            kinds(&f),
            vec![DriftKind::AclMaskTooNarrow, DriftKind::ExtraAclEntry]
        );
        assert_eq!(f[0].remedy, Some(Remedy::SetAcl("m::rwx".into())));
        assert_eq!(f[1].remedy, Some(Remedy::RemoveAclEntry("u:1005".into())));
    }

    #[test]
    fn a_world_writable_default_acl_is_a_finding_in_acl_roots() {
        let r = shared_modcache();
        let mut d = obs("cache/download/x/@v", FileType::Dir, 1001, 0o2775);
        d.gid = 2000;
        d.acl_access = vec![AclEntry {
            tag: AclTag::Group(2000),
            perms: 7,
        }];
        d.acl_default = [
            (AclTag::UserObj, 7),
            (AclTag::GroupObj, 7),
            (AclTag::Group(2000), 7),
            (AclTag::Mask, 7),
            (AclTag::Other, 7),
        ]
        .into_iter()
        .map(|(tag, perms)| AclEntry { tag, perms })
        .collect();
        let f = evaluate(&r, &d);
        assert_eq!(kinds(&f), vec![DriftKind::WorldWritable], "{f:?}");
        assert_eq!(f[0].observed, "d:o::rwx");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].remedy, Some(Remedy::SetAcl("d:o::r-x".into())));
        // r-x for others is Go's usual 0755 inheritance: fine.
        d.acl_default[4].perms = 5;
        assert!(evaluate(&r, &d).is_empty(), "{:?}", evaluate(&r, &d));
        // Declared by the admin: held to the declaration instead.
        let mut declared = r.clone();
        declared
            .expected
            .acl
            .as_mut()
            .unwrap()
            .push(AclRequirement {
                default: true,
                tag: AclTag::Other,
                bits: READ | WRITE,
                cond_exec: true,
            });
        d.acl_default[4].perms = 7;
        assert!(evaluate(&declared, &d).is_empty());
    }

    #[test]
    fn labels() {
        let mut r = user_root(RootKind::GoCache);
        let mut o = obs("x", FileType::Regular, 1000, 0o644);
        o.label = Some("unconfined_u:object_r:user_tmp_t:s0".into());
        o.expected_label = Some("system_u:object_r:cache_home_t:s0".into());
        let f = evaluate(&r, &o);
        assert_eq!(
            f[0].remedy,
            Some(Remedy::Relabel(
                "unconfined_u:object_r:cache_home_t:s0".into()
            ))
        );
        o.label = Some("unconfined_u:object_r:cache_home_t:s0".into());
        assert!(evaluate(&r, &o).is_empty(), "only the type counts");
        r.expected.label = Some(LabelOverride {
            type_: "container_file_t".into(),
            context: None,
        });
        assert_eq!(evaluate(&r, &o)[0].kind, DriftKind::WrongLabel);
        o.label = None;
        let f = evaluate(&r, &o);
        assert_eq!(
            f[0].remedy,
            Some(Remedy::Relabel(
                "system_u:object_r:container_file_t:s0".into()
            ))
        );
    }

    #[test]
    fn file_types_come_from_the_mode_bits() {
        assert_eq!(
            FileType::from_mode(libc::S_IFREG | 0o644),
            FileType::Regular
        );
        assert_eq!(FileType::from_mode(libc::S_IFDIR | 0o755), FileType::Dir);
        assert_eq!(
            FileType::from_mode(libc::S_IFLNK | 0o777),
            FileType::Symlink
        );
        assert_eq!(FileType::from_mode(libc::S_IFIFO), FileType::Fifo);
        assert_eq!(FileType::from_mode(libc::S_IFSOCK), FileType::Socket);
        assert_eq!(FileType::from_mode(libc::S_IFCHR), FileType::CharDevice);
        assert_eq!(FileType::from_mode(libc::S_IFBLK), FileType::BlockDevice);
        assert_eq!(
            FileType::from_mode(0o644),
            FileType::BlockDevice,
            "no type bits"
        );
    }

    #[test]
    fn a_customizable_type_is_left_alone_unless_the_root_declares_a_label() {
        // podman -v ~/.cache/go-build:/c:z relabels the cache container_file_t, a type RHEL
        // lists as customizable: restorecon leaves it, and so does the file_contexts rule.
        let mut r = user_root(RootKind::GoCache);
        let mut o = obs("x", FileType::Regular, 1000, 0o644);
        o.label = Some("system_u:object_r:container_file_t:s0:c1,c2".into());
        o.expected_label = Some("system_u:object_r:cache_home_t:s0".into());
        assert_eq!(evaluate(&r, &o)[0].kind, DriftKind::WrongLabel);
        o.label_customizable = true;
        assert!(evaluate(&r, &o).is_empty());
        // Other drift is still judged.
        o.uid = 0;
        assert_eq!(evaluate(&r, &o)[0].kind, DriftKind::ForeignOwner);
        o.uid = 1000;
        // A declared label is the admin's word: it applies to customizable types too.
        r.expected.label = Some(LabelOverride {
            type_: "cache_home_t".into(),
            context: None,
        });
        let f = evaluate(&r, &o);
        assert_eq!(f[0].kind, DriftKind::WrongLabel);
        assert_eq!(
            f[0].remedy,
            Some(Remedy::Relabel(
                "system_u:object_r:cache_home_t:s0:c1,c2".into()
            ))
        );
    }

    #[test]
    fn symlinks_and_special_files() {
        let root = Path::new("/home/a/c");
        assert!(!symlink_escapes(root, Path::new("a/l"), "../b"));
        assert!(symlink_escapes(root, Path::new("a/l"), "../../b"));
        assert!(symlink_escapes(root, Path::new("l"), "/etc/passwd"));
        assert!(!symlink_escapes(root, Path::new("l"), "/home/a/c/x"));
        assert!(symlink_escapes(root, Path::new("l"), "/home/a/cx"));
        let r = user_root(RootKind::GoCache);
        let mut l = obs("l", FileType::Symlink, 0, 0o777);
        l.link_target = Some("/etc/shadow".into());
        assert_eq!(
            kinds(&evaluate(&r, &l)),
            vec![DriftKind::SymlinkEscapesRoot]
        );
        assert_eq!(
            kinds(&evaluate(&r, &obs("p", FileType::Fifo, 1000, 0o644))),
            vec![DriftKind::UnexpectedFileType]
        );
    }

    #[test]
    fn mixed_owner_aggregate() {
        let r = shared_modcache();
        let mut t = OwnerTally::default();
        t.add(&obs("a", FileType::Dir, 1000, 0o755));
        assert!(mixed_owners(&r, &t).is_none());
        t.add(&obs("b", FileType::Dir, 1001, 0o755));
        let f = mixed_owners(&r, &t).unwrap();
        assert_eq!(
            (f.kind, f.severity),
            (DriftKind::MixedOwners, Severity::Info)
        );
        let mut bare = r.clone();
        bare.expected.group = None;
        bare.expected.acl = None;
        assert_eq!(mixed_owners(&bare, &t).unwrap().severity, Severity::Warning);
        assert!(mixed_owners(&user_root(RootKind::GoCache), &t).is_none());
    }
}
