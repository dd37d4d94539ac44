//! Cache roots: what goguard guards, what it expects there, and which root a path
//! belongs to when roots overlap.
//!
//! Overlap rules ([`RootSet::build`]):
//! - a path belongs to the **innermost** root containing it (a walker of the outer root
//!   skips [`RootSet::nested_in`]);
//! - a **declared** root beats a discovered per-user root at the same path or around it:
//!   the per-user root is dropped (the admin said how that tree is shared);
//! - two users whose caches resolve to the **same path** without a declaration: both
//!   per-user roots are dropped and reported, because giving entries "back" to each user in
//!   turn would be a chown war; the fix is a `[[root]]`;
//! - two declared roots with the same path: the first wins, the second is reported.

use std::path::{Path, PathBuf};

use crate::accounts::Accounts;
use crate::acl::{AclRequirement, AclRuleError};
use crate::config::{HealAction, LabelOverride, ModePolicy, Principal, RootDecl, RootKind};
use crate::drift::DriftKind;

/// Where a root came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootOrigin {
    /// Discovered from a user's Go environment.
    User {
        /// Login name.
        name: String,
        /// Its uid.
        uid: u32,
        /// The directory the root was admitted under: the user's home, or a prefix an admin
        /// listed in `[discovery] user_root_prefixes`. goguardd reaches the root from this
        /// directory's fd, one component at a time, never through a symlink, and only through
        /// directories the user or root owns and others cannot write (docs/SECURITY.md).
        anchor: PathBuf,
        /// `anchor` is the user's home (checked like the directories below it), not an
        /// admin's prefix (the admin's own directory, e.g. a sticky `/scratch`).
        anchor_is_home: bool,
    },
    /// The n-th `[[root]]` of the config.
    Declared {
        /// Index in the config's `root` list.
        index: usize,
    },
}

/// What every entry of a root should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedState {
    /// Owner uid of every entry; `None`: many owners are normal (shared root).
    pub owner: Option<u32>,
    /// Group of every entry; `None`: not checked.
    pub group: Option<u32>,
    /// Group given back with an owner repair when `group` is unchecked (a per-user root's
    /// primary group: what `sudo chown -R user:user` gives).
    pub repair_gid: Option<u32>,
    /// Mode rules.
    pub mode: ModePolicy,
    /// Required ACL entries; `None` = ACLs not checked.
    pub acl: Option<Vec<AclRequirement>>,
    /// Label override; `None` = file_contexts' answer.
    pub label: Option<LabelOverride>,
}

/// What to do, per class of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HealPolicy {
    /// [`DriftKind::ForeignOwner`], [`DriftKind::WrongGroup`].
    pub owner: HealAction,
    /// [`DriftKind::BadMode`].
    pub mode: HealAction,
    /// [`DriftKind::WorldWritable`].
    pub world_writable: HealAction,
    /// ACL drift.
    pub acl: HealAction,
    /// [`DriftKind::WrongLabel`].
    pub label: HealAction,
    /// [`DriftKind::SymlinkEscapesRoot`] (never auto).
    pub symlink: HealAction,
    /// [`DriftKind::MixedOwners`] (never auto).
    pub mixed_owners: HealAction,
    /// [`DriftKind::UnexpectedFileType`] (never auto).
    pub file_type: HealAction,
}

impl HealPolicy {
    /// Defaults for a discovered per-user root (admitted by [`crate::discovery::admit`]):
    /// owner and label `auto`, mode `alert` (Go's modes are umask-dependent), ACL `off` (not
    /// declared), world-writable `alert`.
    pub fn for_user() -> HealPolicy {
        HealPolicy {
            owner: HealAction::Auto,
            mode: HealAction::Alert,
            world_writable: HealAction::Alert,
            acl: HealAction::Off,
            label: HealAction::Auto,
            symlink: HealAction::Alert,
            mixed_owners: HealAction::Alert,
            file_type: HealAction::Alert,
        }
    }

    /// Defaults for a declared root, overridden by what `heal` says: owner `auto` when owner
    /// or group is declared, else `alert`; mode `auto` when `mode` is declared, else `alert`;
    /// ACL `auto` when `acl` is declared, else `off`; label `auto`; world-writable `alert`.
    pub fn for_declared(decl: &RootDecl) -> HealPolicy {
        let pick = |set: Option<HealAction>, declared: bool, otherwise| {
            set.unwrap_or(if declared {
                HealAction::Auto
            } else {
                otherwise
            })
        };
        let h = decl.heal;
        HealPolicy {
            owner: pick(
                h.owner,
                decl.owner.is_some() || decl.group.is_some(),
                HealAction::Alert,
            ),
            mode: pick(h.mode, decl.mode_declared, HealAction::Alert),
            world_writable: h.world_writable.unwrap_or(HealAction::Alert),
            acl: pick(h.acl, decl.acl.is_some(), HealAction::Off),
            label: h.label.unwrap_or(HealAction::Auto),
            symlink: h.symlink.map_or(HealAction::Alert, |a| a.0),
            mixed_owners: h.mixed_owners.map_or(HealAction::Alert, |a| a.0),
            file_type: h.file_type.map_or(HealAction::Alert, |a| a.0),
        }
    }

    /// The action for a kind of drift.
    pub fn action(&self, kind: DriftKind) -> HealAction {
        use DriftKind as K;
        match kind {
            K::ForeignOwner | K::WrongGroup => self.owner,
            K::BadMode => self.mode,
            K::WorldWritable => self.world_writable,
            K::MissingAclEntry | K::WrongAclPerms | K::ExtraAclEntry | K::AclMaskTooNarrow => {
                self.acl
            }
            K::WrongLabel => self.label,
            K::SymlinkEscapesRoot => self.symlink,
            K::MixedOwners => self.mixed_owners,
            K::UnexpectedFileType => self.file_type,
        }
    }
}

/// A directory goguard guards, with what it expects there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRoot {
    /// Absolute, normalized.
    pub path: PathBuf,
    /// What it holds.
    pub kind: RootKind,
    /// Where it came from.
    pub origin: RootOrigin,
    /// The rules.
    pub expected: ExpectedState,
    /// What to do about drift.
    pub heal: HealPolicy,
    /// GOCACHE size cap in bytes, when declared (trims evict beyond it).
    pub max_size: Option<u64>,
}

/// A `[[root]]` that names an unknown user, group or ACL qualifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    /// Owner not in passwd.
    #[error("root {path}: unknown owner {name:?}")]
    UnknownOwner {
        /// Root path.
        path: String,
        /// The name.
        name: String,
    },
    /// Group not in group.
    #[error("root {path}: unknown group {name:?}")]
    UnknownGroup {
        /// Root path.
        path: String,
        /// The name.
        name: String,
    },
    /// ACL rule problem.
    #[error("root {path}: {source}")]
    Acl {
        /// Root path.
        path: String,
        /// Cause.
        source: AclRuleError,
    },
}

impl CacheRoot {
    /// Builds a declared root, resolving names with `accounts`.
    pub fn from_decl(
        index: usize,
        decl: &RootDecl,
        accounts: &Accounts,
    ) -> Result<CacheRoot, RootError> {
        let path = decl.path.display().to_string();
        let owner =
            match &decl.owner {
                None => None,
                Some(Principal::Id(id)) => Some(*id),
                Some(Principal::Name(n)) => {
                    Some(accounts.user(n).map(|u| u.uid).ok_or_else(|| {
                        RootError::UnknownOwner {
                            path: path.clone(),
                            name: n.clone(),
                        }
                    })?)
                }
            };
        let group = match &decl.group {
            None => None,
            Some(Principal::Id(id)) => Some(*id),
            Some(Principal::Name(n)) => Some(accounts.group(n).map(|g| g.gid).ok_or_else(
                || RootError::UnknownGroup {
                    path: path.clone(),
                    name: n.clone(),
                },
            )?),
        };
        let acl = match &decl.acl {
            None => None,
            Some(rules) => Some(
                rules
                    .iter()
                    .map(|r| r.resolve(accounts))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| RootError::Acl {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        Ok(CacheRoot {
            path: decl.path.clone(),
            kind: decl.kind,
            origin: RootOrigin::Declared { index },
            expected: ExpectedState {
                owner,
                group,
                repair_gid: None,
                mode: decl.mode,
                acl,
                label: decl.label.clone(),
            },
            heal: HealPolicy::for_declared(decl),
            max_size: decl.max_size,
        })
    }

    /// A discovered per-user root inside `home` (admitted by [`crate::discovery::admit`],
    /// which also re-anchors a root under an admin's prefix): every entry owned by the user;
    /// group, mode bits and ACLs left to the user.
    pub fn for_user(
        path: PathBuf,
        kind: RootKind,
        name: &str,
        uid: u32,
        gid: u32,
        home: &Path,
    ) -> CacheRoot {
        CacheRoot {
            path,
            kind,
            origin: RootOrigin::User {
                name: name.to_owned(),
                uid,
                anchor: home.to_path_buf(),
                anchor_is_home: true,
            },
            expected: ExpectedState {
                owner: Some(uid),
                group: None,
                repair_gid: Some(gid),
                mode: ModePolicy::Go,
                acl: None,
                label: None,
            },
            heal: HealPolicy::for_user(),
            max_size: None,
        }
    }

    /// True for a root whose entries may have many owners.
    pub fn is_shared(&self) -> bool {
        self.expected.owner.is_none()
    }
}

/// Why a root was dropped or a declaration ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootConflict {
    /// A per-user root equal to or inside a declared root.
    CoveredByDeclared {
        /// The dropped per-user root.
        path: PathBuf,
        /// Its user.
        user: String,
        /// The declared root covering it.
        declared: PathBuf,
    },
    /// Several users' caches resolve to one path that no `[[root]]` declares.
    SharedUndeclared {
        /// The path.
        path: PathBuf,
        /// The users.
        users: Vec<String>,
    },
    /// A second `[[root]]` with the same path.
    DuplicateDeclared {
        /// The path.
        path: PathBuf,
        /// Index of the ignored declaration.
        index: usize,
    },
}

/// All roots, with the overlap rules applied.
#[derive(Debug, Clone, Default)]
pub struct RootSet {
    roots: Vec<CacheRoot>,
}

impl RootSet {
    /// Applies the module's overlap rules to declared and discovered roots.
    pub fn build(
        declared: Vec<CacheRoot>,
        discovered: Vec<CacheRoot>,
    ) -> (RootSet, Vec<RootConflict>) {
        let mut conflicts = Vec::new();
        let mut roots: Vec<CacheRoot> = Vec::new();
        for r in declared {
            if roots.iter().any(|k| k.path == r.path) {
                let index = match r.origin {
                    RootOrigin::Declared { index } => index,
                    RootOrigin::User { .. } => usize::MAX,
                };
                conflicts.push(RootConflict::DuplicateDeclared {
                    path: r.path,
                    index,
                });
            } else {
                roots.push(r);
            }
        }
        let user_of = |r: &CacheRoot| match &r.origin {
            RootOrigin::User { name, .. } => name.clone(),
            RootOrigin::Declared { .. } => String::new(),
        };
        let mut kept: Vec<CacheRoot> = Vec::new();
        let mut shared: Vec<(PathBuf, Vec<String>)> = Vec::new();
        for r in discovered {
            if let Some(d) = roots.iter().find(|d| r.path.starts_with(&d.path)) {
                conflicts.push(RootConflict::CoveredByDeclared {
                    user: user_of(&r),
                    path: r.path.clone(),
                    declared: d.path.clone(),
                });
                continue;
            }
            if let Some(pos) = kept.iter().position(|k| k.path == r.path) {
                let same_user = user_of(&kept[pos]) == user_of(&r);
                if same_user {
                    continue; // e.g. GOCACHE == GOMODCACHE of one user: keep the first
                }
                let first = kept.remove(pos);
                shared.push((r.path.clone(), vec![user_of(&first), user_of(&r)]));
                continue;
            }
            if let Some(s) = shared.iter_mut().find(|(p, _)| *p == r.path) {
                s.1.push(user_of(&r));
                continue;
            }
            kept.push(r);
        }
        conflicts.extend(
            shared
                .into_iter()
                .map(|(path, users)| RootConflict::SharedUndeclared { path, users }),
        );
        roots.extend(kept);
        (RootSet { roots }, conflicts)
    }

    /// Every root.
    pub fn roots(&self) -> &[CacheRoot] {
        &self.roots
    }

    /// The innermost root containing `path` (absolute), with the path relative to it.
    pub fn root_for(&self, path: &Path) -> Option<(&CacheRoot, PathBuf)> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(&r.path))
            .max_by_key(|r| r.path.components().count())
            .map(|r| {
                (
                    r,
                    path.strip_prefix(&r.path)
                        .unwrap_or(Path::new(""))
                        .to_path_buf(),
                )
            })
    }

    /// Roots strictly inside `root` (a walk of `root` skips them: they have their own rules).
    pub fn nested_in(&self, root: &Path) -> Vec<&Path> {
        self.roots
            .iter()
            .filter(|r| r.path != root && r.path.starts_with(root))
            .map(|r| r.path.as_path())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_root(path: &str, name: &str, uid: u32) -> CacheRoot {
        CacheRoot::for_user(
            path.into(),
            RootKind::GoCache,
            name,
            uid,
            uid,
            Path::new("/home").join(name).as_path(),
        )
    }

    fn declared(path: &str, index: usize) -> CacheRoot {
        let decl: RootDecl = toml_decl(path);
        CacheRoot::from_decl(index, &decl, &Accounts::default()).unwrap()
    }

    fn toml_decl(path: &str) -> RootDecl {
        #[derive(serde::Deserialize)]
        struct W {
            root: RootDecl,
        }
        let w: W = toml::from_str(&format!(
            "[root]\npath = {path:?}\nkind = \"gomodcache\"\ngroup = 2000\n"
        ))
        .unwrap();
        w.root
    }

    #[test]
    fn innermost_wins_and_declared_beats_user() {
        let (set, conflicts) = RootSet::build(
            vec![declared("/opt/go", 0), declared("/opt/go", 1)],
            vec![
                user_root("/home/a/.cache/go-build", "a", 1000),
                user_root("/home/a/.cache/go-build/inner", "a", 1000),
                user_root("/opt/go/pkg/mod", "b", 1001),
                user_root("/srv/shared", "a", 1000),
                user_root("/srv/shared", "b", 1001),
                user_root("/srv/shared", "c", 1002),
            ],
        );
        assert_eq!(set.roots().len(), 3);
        assert_eq!(conflicts.len(), 3, "{conflicts:?}");
        assert!(conflicts.contains(&RootConflict::SharedUndeclared {
            path: "/srv/shared".into(),
            users: vec!["a".into(), "b".into(), "c".into()]
        }));
        let (r, rel) = set
            .root_for(Path::new("/home/a/.cache/go-build/inner/x"))
            .unwrap();
        assert_eq!(
            (r.path.as_path(), rel.as_path()),
            (Path::new("/home/a/.cache/go-build/inner"), Path::new("x"))
        );
        assert_eq!(set.nested_in(Path::new("/home/a/.cache/go-build")).len(), 1);
        assert!(
            set.root_for(Path::new("/home/a/.cache/go-buildx"))
                .is_none()
        );
        let (r, _) = set.root_for(Path::new("/opt/go/pkg/mod/x")).unwrap();
        assert!(r.is_shared());
    }

    #[test]
    fn heal_defaults() {
        let d = declared("/opt/go", 0);
        assert_eq!(d.heal.owner, HealAction::Auto);
        assert_eq!(d.heal.mode, HealAction::Alert);
        assert_eq!(d.heal.acl, HealAction::Off);
        let u = user_root("/home/a/.cache/go-build", "a", 1000);
        assert_eq!(
            (u.heal.owner, u.heal.label, u.heal.world_writable),
            (HealAction::Auto, HealAction::Auto, HealAction::Alert)
        );
        // A root outside the home is never built: discovery::admit refuses it.
    }
}
