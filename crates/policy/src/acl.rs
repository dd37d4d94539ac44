//! POSIX ACLs as policy sees them: observed entries (a plain list), declared rules written
//! as setfacl specs (`g:gobuild:rwX`, `d:g:gobuild:rwX`, `u:1001:r-x`, `o::r-x`), and the
//! setfacl spec strings a repair plan hands to the executor.
//!
//! Rules keep names until [`AclRule::resolve`] turns them into ids with the account
//! databases. `X` follows setfacl: execute for directories, or for files that already have
//! some execute bit. Plans always carry concrete numeric specs (`g:2000:r-x`), so applying a
//! plan twice gives the same ACL.

use std::fmt;

use crate::accounts::Accounts;

/// `r`.
pub const READ: u8 = 4;
/// `w`.
pub const WRITE: u8 = 2;
/// `x`.
pub const EXECUTE: u8 = 1;

/// Whom an observed (or resolved) ACL entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclTag {
    /// `user::` (the owner).
    UserObj,
    /// `user:UID:`.
    User(u32),
    /// `group::` (the owning group).
    GroupObj,
    /// `group:GID:`.
    Group(u32),
    /// `mask::`.
    Mask,
    /// `other::`.
    Other,
}

impl AclTag {
    /// Entries the mask limits.
    pub fn in_group_class(self) -> bool {
        matches!(self, AclTag::User(_) | AclTag::GroupObj | AclTag::Group(_))
    }

    /// Named entries (the ones an ACL adds to the mode).
    pub fn is_named(self) -> bool {
        matches!(self, AclTag::User(_) | AclTag::Group(_))
    }

    /// The setfacl qualifier part: `u:1000`, `g::`-style without the perms.
    pub fn spec(self) -> String {
        match self {
            AclTag::UserObj => "u:".into(),
            AclTag::User(id) => format!("u:{id}"),
            AclTag::GroupObj => "g:".into(),
            AclTag::Group(id) => format!("g:{id}"),
            AclTag::Mask => "m:".into(),
            AclTag::Other => "o:".into(),
        }
    }
}

/// One observed ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// Whom.
    pub tag: AclTag,
    /// `rwx` bits.
    pub perms: u8,
}

/// `rwx` text for 3 bits.
pub fn perm_str(p: u8) -> String {
    let mut s = String::with_capacity(3);
    s.push(if p & READ != 0 { 'r' } else { '-' });
    s.push(if p & WRITE != 0 { 'w' } else { '-' });
    s.push(if p & EXECUTE != 0 { 'x' } else { '-' });
    s
}

/// A setfacl spec to apply: `[d:]TAG:PERMS`, numeric ids.
pub fn spec(default: bool, tag: AclTag, perms: Option<u8>) -> String {
    let d = if default { "d:" } else { "" };
    match perms {
        Some(p) => format!("{d}{}:{}", tag.spec(), perm_str(p)),
        None => format!("{d}{}", tag.spec()),
    }
}

/// The subject of a declared rule, names unresolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleSubject {
    /// `u::`.
    UserObj,
    /// `u:NAME|UID:`.
    User(String),
    /// `g::`.
    GroupObj,
    /// `g:NAME|GID:`.
    Group(String),
    /// `m::`.
    Mask,
    /// `o::`.
    Other,
}

/// A declared ACL rule (one setfacl `-m` spec).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// `d:`: a default-ACL entry (directories only).
    pub default: bool,
    /// Whom.
    pub subject: RuleSubject,
    /// `rwx` bits.
    pub bits: u8,
    /// `X`.
    pub cond_exec: bool,
    /// The text it came from, for messages.
    pub text: String,
}

/// A bad rule or an unknown name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclRuleError {
    /// Unparsable spec.
    #[error("bad ACL entry {spec:?}: {reason}")]
    Syntax {
        /// The spec.
        spec: String,
        /// Why.
        reason: &'static str,
    },
    /// A name missing from passwd/group.
    #[error("ACL entry {spec:?}: unknown {kind} {name:?}")]
    UnknownName {
        /// The spec.
        spec: String,
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
    },
}

impl AclRule {
    /// Parses `[d[efault]:]u[ser]:[NAME]:PERMS`, `g[roup]:…`, `m[ask]::PERMS`, `o[ther]::PERMS`;
    /// PERMS are `rwxX-` letters (at least one) or one octal digit.
    pub fn parse(text: &str) -> Result<AclRule, AclRuleError> {
        let bad = |reason| AclRuleError::Syntax {
            spec: text.to_owned(),
            reason,
        };
        let (default, rest) = match text.strip_prefix("default:").or(text.strip_prefix("d:")) {
            Some(r) => (true, r),
            None => (false, text),
        };
        let mut parts = rest.splitn(3, ':');
        let kind = parts.next().unwrap_or("");
        let (qual, perms) = match (parts.next(), parts.next()) {
            (Some(q), Some(p)) => (q, p),
            (Some(p), None) if matches!(kind, "m" | "mask" | "o" | "other") => ("", p),
            _ => return Err(bad("expected TYPE:QUALIFIER:PERMS")),
        };
        let subject = match (kind, qual) {
            ("u" | "user", "") => RuleSubject::UserObj,
            ("u" | "user", q) => RuleSubject::User(q.to_owned()),
            ("g" | "group", "") => RuleSubject::GroupObj,
            ("g" | "group", q) => RuleSubject::Group(q.to_owned()),
            ("m" | "mask", "") => RuleSubject::Mask,
            ("o" | "other", "") => RuleSubject::Other,
            ("m" | "mask" | "o" | "other", _) => {
                return Err(bad("mask and other take no qualifier"));
            }
            _ => return Err(bad("type must be u, g, m or o")),
        };
        let (mut bits, mut cond_exec) = (0u8, false);
        if perms.len() == 1
            && let Some(d) = perms.chars().next().and_then(|c| c.to_digit(8))
        {
            bits = d as u8;
        } else {
            if perms.is_empty() {
                return Err(bad("missing permissions"));
            }
            for c in perms.chars() {
                match c {
                    'r' => bits |= READ,
                    'w' => bits |= WRITE,
                    'x' => bits |= EXECUTE,
                    'X' => cond_exec = true,
                    '-' => {}
                    _ => return Err(bad("permissions are r, w, x, X, - or one octal digit")),
                }
            }
        }
        Ok(AclRule {
            default,
            subject,
            bits,
            cond_exec,
            text: text.to_owned(),
        })
    }

    /// Resolves names to ids.
    pub fn resolve(&self, accounts: &Accounts) -> Result<AclRequirement, AclRuleError> {
        let unknown = |kind, name: &str| AclRuleError::UnknownName {
            spec: self.text.clone(),
            kind,
            name: name.to_owned(),
        };
        let tag = match &self.subject {
            RuleSubject::UserObj => AclTag::UserObj,
            RuleSubject::User(n) => {
                AclTag::User(accounts.resolve_user(n).ok_or_else(|| unknown("user", n))?)
            }
            RuleSubject::GroupObj => AclTag::GroupObj,
            RuleSubject::Group(n) => AclTag::Group(
                accounts
                    .resolve_group(n)
                    .ok_or_else(|| unknown("group", n))?,
            ),
            RuleSubject::Mask => AclTag::Mask,
            RuleSubject::Other => AclTag::Other,
        };
        Ok(AclRequirement {
            default: self.default,
            tag,
            bits: self.bits,
            cond_exec: self.cond_exec,
        })
    }
}

impl fmt::Display for AclRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A declared rule with ids: what an entry's ACL must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclRequirement {
    /// Default ACL (directories only).
    pub default: bool,
    /// Whom.
    pub tag: AclTag,
    /// `rwx` bits.
    pub bits: u8,
    /// `X`: execute for directories or already-executable files.
    pub cond_exec: bool,
}

impl AclRequirement {
    /// The concrete permissions on an entry: `X` resolved (`is_dir`, or some execute bit in
    /// `mode`); for a default ACL the directory itself decides, so `X` means `x`.
    pub fn perms_for(&self, is_dir: bool, mode: u32) -> u8 {
        let exec = self.cond_exec && (is_dir || self.default || mode & 0o111 != 0);
        self.bits | if exec { EXECUTE } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_setfacl_specs() {
        let r = AclRule::parse("d:g:gobuild:rwX").unwrap();
        assert!(r.default && r.cond_exec);
        assert_eq!(r.subject, RuleSubject::Group("gobuild".into()));
        assert_eq!(r.bits, READ | WRITE);
        assert_eq!(AclRule::parse("u::7").unwrap().bits, 7);
        assert_eq!(
            AclRule::parse("other::r-x").unwrap().subject,
            RuleSubject::Other
        );
        assert_eq!(AclRule::parse("m:rw").unwrap().subject, RuleSubject::Mask);
        assert_eq!(
            AclRule::parse("default:user:bob:r").unwrap().subject,
            RuleSubject::User("bob".into())
        );
        for bad in ["g:gobuild", "q:x:rw", "g:x:rwz", "m:x:rw", "g:x:", ""] {
            assert!(AclRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_and_applies_x() {
        let acc = Accounts::parse("", "gobuild:x:2000:\n");
        let req = AclRule::parse("g:gobuild:rwX")
            .unwrap()
            .resolve(&acc)
            .unwrap();
        assert_eq!(req.tag, AclTag::Group(2000));
        assert_eq!(req.perms_for(true, 0o755), 7);
        assert_eq!(req.perms_for(false, 0o644), 6);
        assert_eq!(req.perms_for(false, 0o744), 7);
        assert!(AclRule::parse("g:nope:r").unwrap().resolve(&acc).is_err());
        assert_eq!(spec(true, AclTag::Group(2000), Some(5)), "d:g:2000:r-x");
        assert_eq!(spec(false, AclTag::User(7), None), "u:7");
        assert_eq!(spec(false, AclTag::Mask, Some(5)), "m::r-x");
    }
}
