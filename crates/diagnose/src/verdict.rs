//! [`PolicyVerdict`]: what the binary policy says about one access, in audit2why's terms
//! (libselinux `audit2why.c`: ALLOW, DONTAUDIT, TERULE, BOOLEAN, CONSTRAINT, RBAC, BOUNDS,
//! and the BADSCON/BADTCON/BADTCLASS/BADPERM/BADCOMPUTE errors).
//!
//! Plain data, shared by [`crate::sepol`] (which computes verdicts through libsepol), the
//! drafter (which prints audit2allow's `#!!!!` notes from them) and [`crate::diagnosis`].
//! Nothing here touches a policy.

use std::fmt;

/// The policy's answer for one (scontext, tcontext, tclass, permissions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyVerdict {
    /// The policy allows it (audit2why ALLOW): the denial came from another policy or
    /// another boolean state than the one analysed.
    Allowed,
    /// No TE allow rule and no boolean would help, and a `dontaudit` rule covers it
    /// (audit2why DONTAUDIT).
    DontAudit,
    /// No TE allow rule grants it and no boolean would (audit2why TERULE).
    MissingAllow,
    /// Setting one of these booleans would allow it (audit2why BOOLEAN), in policy order.
    Boolean(Vec<BooleanFix>),
    /// A constraint (`constrain`/`mlsconstrain`, `validatetrans` excluded) denies it; the
    /// text is libsepol's explanation of the failing expression (may be empty).
    Constraint(String),
    /// The role of the source may not reach the target's role (audit2why RBAC).
    Rbac,
    /// A `typebounds` restriction denies it (audit2why BOUNDS).
    Bounds,
    /// The question could not be asked of this policy.
    Unknown(UnknownReason),
}

/// One boolean and the value it needs to allow the access.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BooleanFix {
    pub name: String,
    /// The value that allows the access (the opposite of its current value).
    pub value: bool,
}

impl BooleanFix {
    /// `setsebool -P NAME 1` (or `0`).
    pub fn command(&self) -> String {
        format!("setsebool -P {} {}", self.name, u8::from(self.value))
    }
}

/// Why a verdict could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnknownReason {
    /// The source context is not valid in this policy (unknown user, role or type, or a
    /// combination the policy does not authorize).
    SourceContext,
    /// The target context is not valid in this policy.
    TargetContext,
    /// The class is not defined in this policy.
    Class,
    /// The permission is not defined for the class.
    Permission(String),
    /// libsepol failed to compute the decision.
    Computation,
}

impl PolicyVerdict {
    /// audit2why's numeric result code (`selinux.audit2why.ALLOW`...), for callers that
    /// mirror its API.
    pub fn audit2why_code(&self) -> i32 {
        match self {
            PolicyVerdict::Allowed => 0,
            PolicyVerdict::DontAudit => 1,
            PolicyVerdict::MissingAllow => 2,
            PolicyVerdict::Boolean(_) => 3,
            PolicyVerdict::Constraint(_) => 4,
            PolicyVerdict::Rbac => 5,
            PolicyVerdict::Bounds => 6,
            PolicyVerdict::Unknown(UnknownReason::SourceContext) => -2,
            PolicyVerdict::Unknown(UnknownReason::TargetContext) => -3,
            PolicyVerdict::Unknown(UnknownReason::Class) => -4,
            PolicyVerdict::Unknown(UnknownReason::Permission(_)) => -5,
            PolicyVerdict::Unknown(UnknownReason::Computation) => -6,
        }
    }
}

impl fmt::Display for PolicyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyVerdict::Allowed => f.write_str("allowed by the policy"),
            PolicyVerdict::DontAudit => f.write_str("denied and dontaudit'ed by the policy"),
            PolicyVerdict::MissingAllow => f.write_str("missing type enforcement allow rule"),
            PolicyVerdict::Boolean(b) => {
                let names: Vec<String> = b
                    .iter()
                    .map(|b| format!("{}={}", b.name, u8::from(b.value)))
                    .collect();
                write!(f, "allowed with boolean {}", names.join(" or "))
            }
            PolicyVerdict::Constraint(c) if c.is_empty() => f.write_str("constraint violation"),
            PolicyVerdict::Constraint(c) => write!(f, "constraint violation: {}", c.trim()),
            PolicyVerdict::Rbac => f.write_str("missing role allow rule"),
            PolicyVerdict::Bounds => f.write_str("typebounds violation"),
            PolicyVerdict::Unknown(r) => match r {
                UnknownReason::SourceContext => f.write_str("source context invalid in policy"),
                UnknownReason::TargetContext => f.write_str("target context invalid in policy"),
                UnknownReason::Class => f.write_str("class unknown to policy"),
                UnknownReason::Permission(p) => write!(f, "permission {p} unknown to policy"),
                UnknownReason::Computation => f.write_str("access computation failed"),
            },
        }
    }
}
