//! Who is calling, and what they may ask.
//!
//! Every gRPC call carries the caller's `SO_PEERCRED` (uid, gid, pid), read
//! from the Unix socket when the connection was accepted. The interceptor
//! `connections::Authenticate` turns it into a [`Caller`] with a [`Role`] and
//! puts it in the request's extensions; a call without peer credentials is
//! refused. uid 0, the daemon's own user and members of `daemon.admin_group`
//! are admins; anyone else is an ordinary user. Calls that need more than "any
//! local user" check the role themselves.
//!
//! Group membership is looked up per call (NSS, like `id`), so adding a user
//! to the group takes effect without a restart.

use nix::unistd::{Gid, Group, Uid, User};
use tonic::{Request, Status};

/// What the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

/// The credentials of the process on the other end of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub role: Role,
}

/// Decides roles. Rebuilt on reload when `admin_group` changes.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// The daemon's own euid: in user mode its owner administers it.
    owner_uid: u32,
    admin_group: String,
    /// The group's gid, when the group exists on this host.
    admin_gid: Option<Gid>,
}

impl Authorizer {
    pub fn new(admin_group: &str) -> Authorizer {
        let admin_gid = Group::from_name(admin_group).ok().flatten().map(|g| g.gid);
        Authorizer {
            owner_uid: nix::unistd::geteuid().as_raw(),
            admin_group: admin_group.to_owned(),
            admin_gid,
        }
    }

    /// The gid of `group`, when it exists.
    pub fn gid_of(group: &str) -> Option<Gid> {
        Group::from_name(group).ok().flatten().map(|g| g.gid)
    }

    pub fn admin_group(&self) -> &str {
        &self.admin_group
    }

    /// Whether the admin group exists (if not, only root is an admin).
    pub fn admin_group_exists(&self) -> bool {
        self.admin_gid.is_some()
    }

    /// The role of a caller: admin for uid 0, the daemon's own user (a
    /// per-user daemon belongs to its user) and members of the admin group.
    pub fn role(&self, uid: u32, gid: u32) -> Role {
        if uid == 0 || uid == self.owner_uid {
            return Role::Admin;
        }
        let Some(admin) = self.admin_gid else {
            return Role::User;
        };
        if gid == admin.as_raw() {
            return Role::Admin;
        }
        // Supplementary groups, as the system database lists them.
        let user = match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(user)) => user,
            _ => return Role::User,
        };
        if user.gid == admin {
            return Role::Admin;
        }
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return Role::User;
        };
        match nix::unistd::getgrouplist(&name, user.gid) {
            Ok(groups) if groups.contains(&admin) => Role::Admin,
            _ => Role::User,
        }
    }
}

/// Refuses callers who are not admins, saying who may ask.
pub fn require_admin(caller: &Caller, what: &str) -> Result<(), Status> {
    match caller.role {
        Role::Admin => Ok(()),
        Role::User => Err(Status::permission_denied(format!(
            "{what} is for admins (uid 0 or members of the daemon's admin group); uid {} is not one",
            caller.uid
        ))),
    }
}

/// The caller the interceptor attached; absent only if the service was built
/// without it, which is a programming error reported as INTERNAL.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .copied()
        .ok_or_else(|| Status::internal("request reached a handler without authentication"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_always_admin() {
        let a = Authorizer::new("no-such-group-goguard-test");
        assert!(!a.admin_group_exists());
        assert_eq!(a.role(0, 0), Role::Admin);
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(a.role(me, 4242), Role::Admin, "the daemon's own user");
        let other = if me == 4243 { 4244 } else { 4243 };
        assert_eq!(a.role(other, 4243), Role::User);
    }

    #[test]
    fn primary_group_of_the_admin_group_is_admin() {
        // "root" exists everywhere with gid 0: a caller whose gid is 0 counts.
        let a = Authorizer::new("root");
        assert!(a.admin_group_exists());
        let other = if nix::unistd::geteuid().as_raw() == 4242 {
            4245
        } else {
            4242
        };
        assert_eq!(a.role(other, 0), Role::Admin);
        assert_eq!(a.role(other, 4242), Role::User);
    }
}
