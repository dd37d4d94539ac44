//! `/etc/passwd` and `/etc/group`, parsed from text (`passwd(5)`, `group(5)`), and the
//! name ↔ id look-ups the rest of the crate needs (owners, groups, ACL qualifiers).
//!
//! Lines that are blank, comments (`#`), NIS compat entries (`+`/`-`), or malformed (wrong
//! field count, non-numeric ids) are skipped and reported as [`SkippedLine`]s, never fatal:
//! one bad line must not hide every other user. The first entry for a name or id wins, as
//! `getpwnam`/`getpwuid` on the files backend do.

use std::path::{Path, PathBuf};

/// One `/etc/passwd` account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory, as written (may be empty or relative in a broken file).
    pub home: PathBuf,
    /// Login shell (may be empty: then `/bin/sh`).
    pub shell: String,
}

impl PasswdEntry {
    /// True for `nologin`/`false` shells: the account cannot log in interactively (it may
    /// still run `go` through services, cron or `sudo -u`).
    pub fn has_nologin_shell(&self) -> bool {
        let base = self.shell.rsplit('/').next().unwrap_or("");
        matches!(base, "nologin" | "false")
    }
}

/// One `/etc/group` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Supplementary members (user names).
    pub members: Vec<String>,
}

/// A line that was not understood, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: usize,
    /// Reason.
    pub reason: &'static str,
}

/// Parses `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> (Vec<PasswdEntry>, Vec<SkippedLine>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('+') || line.starts_with('-') {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "NIS compat entry",
            });
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "expected 7 fields",
            });
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "uid or gid not a number",
            });
            continue;
        };
        if f[0].is_empty() {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "empty name",
            });
            continue;
        }
        out.push(PasswdEntry {
            name: f[0].to_owned(),
            uid,
            gid,
            home: PathBuf::from(f[5]),
            shell: f[6].to_owned(),
        });
    }
    (out, skipped)
}

/// Parses `/etc/group` text.
pub fn parse_group(text: &str) -> (Vec<GroupEntry>, Vec<SkippedLine>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('+') || line.starts_with('-') {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "NIS compat entry",
            });
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 || f[0].is_empty() {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "expected 4 fields",
            });
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            skipped.push(SkippedLine {
                line: line_no,
                reason: "gid not a number",
            });
            continue;
        };
        let members = f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        out.push(GroupEntry {
            name: f[0].to_owned(),
            gid,
            members,
        });
    }
    (out, skipped)
}

/// The account databases, for name ↔ id look-ups.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// Users in file order.
    pub users: Vec<PasswdEntry>,
    /// Groups in file order.
    pub groups: Vec<GroupEntry>,
}

impl Accounts {
    /// Builds from the two files' text.
    pub fn parse(passwd: &str, group: &str) -> Accounts {
        Accounts {
            users: parse_passwd(passwd).0,
            groups: parse_group(group).0,
        }
    }

    /// Loader: reads the two files (`/etc/passwd`, `/etc/group` in production).
    pub fn load(passwd: &Path, group: &Path) -> std::io::Result<Accounts> {
        Ok(Accounts::parse(
            &std::fs::read_to_string(passwd)?,
            &std::fs::read_to_string(group)?,
        ))
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user with id `uid`.
    pub fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A user's uid from a name, or a number (names first, as setfacl and chown do).
    pub fn resolve_user(&self, name_or_id: &str) -> Option<u32> {
        self.user(name_or_id)
            .map(|u| u.uid)
            .or_else(|| name_or_id.parse().ok())
    }

    /// A group's gid from a name, or a number.
    pub fn resolve_group(&self, name_or_id: &str) -> Option<u32> {
        self.group(name_or_id)
            .map(|g| g.gid)
            .or_else(|| name_or_id.parse().ok())
    }

    /// A display name for a uid (`uid 1234` when unknown).
    pub fn user_name(&self, uid: u32) -> String {
        self.user_by_uid(uid)
            .map_or_else(|| format!("uid {uid}"), |u| u.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_parsing() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\n\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n+nis\nbroken:x:1\nbad:x:a:1:::\nsvc:x:1001:1001::/srv/svc:/usr/sbin/nologin\n";
        let (users, skipped) = parse_passwd(text);
        assert_eq!(users.len(), 3);
        assert_eq!(users[1].home, PathBuf::from("/home/alice"));
        assert!(users[2].has_nologin_shell() && !users[1].has_nologin_shell());
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
    }

    #[test]
    fn group_parsing_and_resolution() {
        let acc = Accounts::parse(
            "root:x:0:0::/root:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\n",
            "root:x:0:\ngobuild:x:2000:alice,bob\nbad:x:z:\n",
        );
        assert_eq!(acc.groups[1].members, vec!["alice", "bob"]);
        assert_eq!(acc.resolve_group("gobuild"), Some(2000));
        assert_eq!(acc.resolve_group("3000"), Some(3000));
        assert_eq!(acc.resolve_user("bob"), Some(1002));
        assert_eq!(acc.resolve_user("nobody-here"), None);
        assert_eq!(acc.user_name(7), "uid 7");
    }
}
