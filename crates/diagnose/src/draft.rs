//! [`PolicyDraft`]: the allow rules that would permit a set of denials, merged, ordered and
//! printed exactly as `audit2allow` (policycoreutils 3.4 / sepolgen 3.4) prints them, plus
//! [`LabelAdvice`] where a relabel is the better answer.
//!
//! What is reproduced from sepolgen (`audit.py`, `access.py`, `policygen.py`,
//! `refpolicy.py`, `output.py`):
//! - only denials count (`avc:  granted` is skipped, `to_access(only_denials=True)`);
//!   `permissive=1`, `USER_AVC` and dontaudit'ed denials count like any other;
//! - an AVC needs `scontext`, `tcontext` (each `user:role:type[:level]`), `tclass` and a
//!   permission set, else sepolgen drops it as invalid;
//! - access is merged per (source type, target type, class, audit2why result): the
//!   permissions are unioned; a target equal to the source is written `self`;
//! - rules are sorted by (source, target, class) (a stable sort, so rules that differ only
//!   in audit2why result keep their first-seen order), grouped under
//!   `#============= source ==============` headers with a blank line between groups;
//!   permissions are sorted, braced when more than one;
//! - `SELINUX_ERR` `security_compute_sid: invalid context` records give
//!   `role R types T;` lines under `#============= ROLES ==============`, each followed by
//!   an empty line, roles sorted;
//! - with a module name (`audit2allow -m NAME`): `module NAME 1.0;` and a `require` block
//!   (types, then classes with all their permissions in first-use order, then roles);
//! - with verdicts from a policy (`audit2allow -p`): the `#!!!!` notes for allowed,
//!   dontaudit, boolean and constraint results, and AVCs whose contexts, or permissions,
//!   the policy rejects are dropped (sepolgen raises on them).
//!
//! Where sepolgen's output depends on Python's randomized set order (the type lines of a
//! `require` block, the types of one role), this prints them sorted (types in `require`) or
//! in first-seen order (role types).
//!
//! Never does I/O, never consults a policy itself (verdicts come in), never panics.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use goguard_audit::{AuditEvent, Avc, Decision};

use crate::context::SecurityContext;
use crate::verdict::{PolicyVerdict, UnknownReason};

/// A module name audit2allow accepts: a letter, then letters, digits, `-`, `_` or `.`
/// (sepolgen `module.is_valid_name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleName(String);

/// A module name that audit2allow (and checkmodule) would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid module name {0:?}: must begin with a letter, optionally followed by letters, numbers, \"-\", \"_\", \".\""
)]
pub struct InvalidModuleName(pub String);

impl ModuleName {
    pub fn new(name: &str) -> Result<ModuleName, InvalidModuleName> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(ModuleName(name.to_owned()))
        } else {
            Err(InvalidModuleName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Go cache root as the drafter needs to know it, computed by the caller from the
/// configuration and file_contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRootLabel {
    /// The root's absolute path (`/home/a/.cache/go-build`, `/srv/gomodcache`).
    pub path: PathBuf,
    /// The type file_contexts (with local `semanage fcontext` rules) gives entries under the
    /// root today (`selabel_lookup`), if known.
    pub file_contexts_type: Option<String>,
    /// The type the root is declared to carry (`[[root]] selinux_type`), when it differs
    /// from what file_contexts says a `semanage fcontext` rule is needed.
    pub declared_type: Option<String>,
}

impl CacheRootLabel {
    /// The type entries under the root should carry: the declared one, else file_contexts'.
    pub fn wanted_type(&self) -> Option<&str> {
        self.declared_type
            .as_deref()
            .or(self.file_contexts_type.as_deref())
    }

    fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.path)
    }
}

/// Why a label change is advised instead of (or before) an allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelReason {
    /// The target, inside a cache root, carries `found` where `wanted` is expected.
    Mislabeled { found: String, wanted: String },
    /// A container build (`container_t`) uses a cache labeled for a home directory.
    ContainerOnHomeCache { found: String },
}

/// A label change: an optional `semanage fcontext` rule, then a `restorecon` of the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelAdvice {
    pub reason: LabelReason,
    /// The root to relabel.
    pub root: PathBuf,
    /// `semanage fcontext -a -t TYPE 'REGEX'`, when file_contexts lacks the rule.
    pub fcontext: Option<FcontextRule>,
}

/// A local file_contexts rule to add.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FcontextRule {
    pub type_: String,
    /// The path regex, anchored by semanage: `ROOT(/.*)?` with ROOT's metacharacters escaped.
    pub regex: String,
}

impl LabelAdvice {
    /// The shell commands, in order.
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(rule) = &self.fcontext {
            out.push(format!(
                "semanage fcontext -a -t {} {}",
                rule.type_,
                shell_quote_always(&rule.regex)
            ));
        }
        out.push(format!(
            "restorecon -Rv {}",
            shell_quote(&self.root.to_string_lossy())
        ));
        out
    }

    /// One sentence saying why.
    pub fn summary(&self) -> String {
        match &self.reason {
            LabelReason::Mislabeled { found, wanted } => format!(
                "{} is labeled {found} where {wanted} is expected: relabel instead of allowing",
                self.root.display()
            ),
            LabelReason::ContainerOnHomeCache { found } => format!(
                "a container build uses {} labeled {found}: label it container_file_t (or mount it with :Z) instead of allowing",
                self.root.display()
            ),
        }
    }
}

/// The semanage regex for everything at or below `root`.
pub fn root_regex(root: &Path) -> String {
    let mut s = String::new();
    for c in root.to_string_lossy().chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s.push_str("(/.*)?");
    s
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        shell_quote_always(s)
    }
}

fn shell_quote_always(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One merged allow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub source: String,
    /// The target type, or `self` when it equals the source.
    pub target: String,
    pub class: String,
    pub permissions: BTreeSet<String>,
    /// The first verdict merged into the rule (rules with different verdicts are separate,
    /// as in audit2allow); `None` without a policy.
    pub verdict: Option<PolicyVerdict>,
    /// Contexts of the first AVC merged in (for the constraint note's "possible cause").
    first_contexts: Option<(SecurityContext, SecurityContext)>,
    /// Label changes advised for the AVCs behind this rule, first-seen order, no duplicates.
    pub label_advice: Vec<LabelAdvice>,
}

impl AllowRule {
    /// `allow SOURCE TARGET:CLASS PERMS;`
    pub fn statement(&self) -> String {
        format!(
            "allow {} {}:{} {};",
            self.source,
            self.target,
            self.class,
            space_list(&self.permissions)
        )
    }

    /// audit2allow's `#!!!!` comment lines for this rule (each starting `#`), then the
    /// label advice as comments.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.verdict {
            Some(PolicyVerdict::Allowed) => {
                out.push("#!!!! This avc is allowed in the current policy".to_owned())
            }
            Some(PolicyVerdict::DontAudit) => {
                out.push("#!!!! This avc has a dontaudit rule in the current policy".to_owned())
            }
            Some(PolicyVerdict::Boolean(b)) if b.len() > 1 => {
                out.push(
                    "#!!!! This avc can be allowed using one of the these booleans:".to_owned(),
                );
                let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
                out.push(format!("#     {}", names.join(", ")));
            }
            Some(PolicyVerdict::Boolean(b)) if !b.is_empty() => out.push(format!(
                "#!!!! This avc can be allowed using the boolean '{}'",
                b[0].name
            )),
            Some(PolicyVerdict::Constraint(text)) => {
                out.push("#!!!! This avc is a constraint violation.  You would need to modify the attributes of either the source or target types to allow this access.".to_owned());
                out.push("#Constraint rule: ".to_owned());
                // The reason text may span lines; sepolgen writes it after one "#\t".
                let mut lines = format!("#\t{text}")
                    .split('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                out.append(&mut lines);
                if let Some((s, t)) = &self.first_contexts {
                    for (what, a, b) in constraint_causes(s, t) {
                        out.push(format!(
                            "#\tPossible cause is the source {what} ({a}) and target {what} ({b}) are different."
                        ));
                    }
                }
            }
            _ => {}
        }
        for advice in &self.label_advice {
            out.push(format!("#!!!! {}:", advice.summary()));
            for c in advice.commands() {
                out.push(format!("#     {c}"));
            }
        }
        out
    }
}

/// sepolgen's "possible cause" list for a constraint: which of user, role (unless the
/// target's is `object_r`) and level differ.
pub fn constraint_causes(
    s: &SecurityContext,
    t: &SecurityContext,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    if s.user != t.user {
        out.push(("user", s.user.clone(), t.user.clone()));
    }
    if s.role != t.role && t.role != "object_r" {
        out.push(("role", s.role.clone(), t.role.clone()));
    }
    if s.level != t.level {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "None".to_owned());
        out.push(("level", show(&s.level), show(&t.level)));
    }
    out
}

fn space_list(set: &BTreeSet<String>) -> String {
    let items: Vec<&str> = set.iter().map(String::as_str).collect();
    if items.len() == 1 {
        items[0].to_owned()
    } else {
        format!("{{ {} }}", items.join(" "))
    }
}

/// What [`PolicyDraft::add_avc`] did with an AVC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Merged into a rule (new or existing).
    Rule,
    /// A granted decision: nothing to allow.
    Granted,
    /// Missing or malformed scontext/tcontext/tclass/permissions (sepolgen drops these).
    Invalid,
    /// The policy rejected its contexts or permissions (audit2allow -p drops these).
    UnknownToPolicy,
}

/// Key of a merged rule: source, target, class, verdict kind.
type RuleKey = (String, String, String, Option<i32>);

/// A draft policy module: merged allow rules, role types and label advice.
#[derive(Debug, Clone, Default)]
pub struct PolicyDraft {
    roots: Vec<CacheRootLabel>,
    /// Rules in sepolgen's AccessVectorSet iteration order once sorted by `order`.
    rules: Vec<AllowRule>,
    /// (source first-seen rank, target first-seen rank within the source, insertion) per
    /// rule: the order of sepolgen's nested dicts, used for the `require` classes.
    order: Vec<(usize, usize, usize)>,
    index: HashMap<RuleKey, usize>,
    sources: HashMap<String, usize>,
    targets: HashMap<(String, String), usize>,
    /// Roles, first-seen order, each with its types in first-seen order.
    role_types: Vec<(String, Vec<String>)>,
}

impl PolicyDraft {
    /// An empty draft without cache roots (no label advice).
    pub fn new() -> PolicyDraft {
        PolicyDraft::default()
    }

    /// An empty draft that advises label changes for targets inside `roots`.
    pub fn with_roots(roots: Vec<CacheRootLabel>) -> PolicyDraft {
        PolicyDraft {
            roots,
            ..PolicyDraft::default()
        }
    }

    /// The draft for these AVCs, without a policy (what `audit2allow -i` prints when no
    /// policy is loaded).
    pub fn from_avcs<'a>(avcs: impl IntoIterator<Item = &'a Avc>) -> PolicyDraft {
        let mut d = PolicyDraft::new();
        for avc in avcs {
            d.add_avc(avc, None);
        }
        d
    }

    /// Every AVC and `SELINUX_ERR` role/type request of `events`, in order, without a
    /// policy.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> PolicyDraft {
        let mut d = PolicyDraft::new();
        for e in events {
            d.add_event(e);
        }
        d
    }

    /// Adds an event's AVCs (without verdicts) and its `SELINUX_ERR` role requests.
    pub fn add_event(&mut self, event: &AuditEvent) {
        for avc in event.avcs() {
            self.add_avc(&avc, None);
        }
        for (role, type_) in role_types_of(event) {
            self.add_role_type(&role, &type_);
        }
    }

    /// Merges one AVC. `verdict` is what the policy said about it (from
    /// [`crate::sepol::Policy::verdict`]), `None` without a policy.
    pub fn add_avc(&mut self, avc: &Avc, verdict: Option<&PolicyVerdict>) -> Added {
        if avc.decision == Decision::Granted {
            return Added::Granted;
        }
        let (Some(s), Some(t), Some(class)) = (
            avc.scontext.as_deref().and_then(SecurityContext::parse),
            avc.tcontext.as_deref().and_then(SecurityContext::parse),
            avc.tclass.as_deref(),
        ) else {
            return Added::Invalid;
        };
        if avc.permissions.is_empty() || class.is_empty() {
            return Added::Invalid;
        }
        // sepolgen raises (and drops the AVC) for these, except BADTCLASS, which it forgets
        // to check and keeps as a rule of its own kind.
        if let Some(PolicyVerdict::Unknown(r)) = verdict
            && *r != UnknownReason::Class
        {
            return Added::UnknownToPolicy;
        }
        let target = if s.type_ == t.type_ {
            "self".to_owned()
        } else {
            t.type_.clone()
        };
        let key: RuleKey = (
            s.type_.clone(),
            t.type_.clone(),
            class.to_owned(),
            verdict.map(PolicyVerdict::audit2why_code),
        );
        let advice = self.label_advice_for(avc, &s, &t);
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let n = self.sources.len();
                let src_rank = *self.sources.entry(s.type_.clone()).or_insert(n);
                let n = self.targets.len();
                let tgt_rank = *self
                    .targets
                    .entry((s.type_.clone(), t.type_.clone()))
                    .or_insert(n);
                let i = self.rules.len();
                self.rules.push(AllowRule {
                    source: s.type_.clone(),
                    target,
                    class: class.to_owned(),
                    permissions: BTreeSet::new(),
                    verdict: verdict.cloned(),
                    first_contexts: Some((s.clone(), t.clone())),
                    label_advice: Vec::new(),
                });
                self.order.push((src_rank, tgt_rank, i));
                self.index.insert(key, i);
                i
            }
        };
        let rule = &mut self.rules[i];
        rule.permissions.extend(avc.permissions.iter().cloned());
        if let Some(a) = advice
            && !rule.label_advice.contains(&a)
        {
            rule.label_advice.push(a);
        }
        Added::Rule
    }

    /// Adds a `role ROLE types TYPE;` request (from a `security_compute_sid: invalid
    /// context` error).
    pub fn add_role_type(&mut self, role: &str, type_: &str) {
        match self.role_types.iter_mut().find(|(r, _)| r == role) {
            Some((_, types)) => {
                if !types.iter().any(|t| t == type_) {
                    types.push(type_.to_owned());
                }
            }
            None => self
                .role_types
                .push((role.to_owned(), vec![type_.to_owned()])),
        }
    }

    fn label_advice_for(
        &self,
        avc: &Avc,
        s: &SecurityContext,
        t: &SecurityContext,
    ) -> Option<LabelAdvice> {
        let path = avc.path.as_deref()?;
        let root = self.roots.iter().find(|r| r.contains(path))?;
        let fcontext_for = |type_: &str| {
            (root.file_contexts_type.as_deref() != Some(type_)).then(|| FcontextRule {
                type_: type_.to_owned(),
                regex: root_regex(&root.path),
            })
        };
        if s.type_ == "container_t" && is_home_type(&t.type_) {
            let wanted = root
                .declared_type
                .as_deref()
                .filter(|w| !is_home_type(w))
                .unwrap_or("container_file_t");
            return Some(LabelAdvice {
                reason: LabelReason::ContainerOnHomeCache {
                    found: t.type_.clone(),
                },
                root: root.path.clone(),
                fcontext: fcontext_for(wanted),
            });
        }
        let wanted = root.wanted_type()?;
        (wanted != t.type_).then(|| LabelAdvice {
            reason: LabelReason::Mislabeled {
                found: t.type_.clone(),
                wanted: wanted.to_owned(),
            },
            root: root.path.clone(),
            fcontext: root.declared_type.as_deref().and_then(fcontext_for),
        })
    }

    /// The rules in output order.
    pub fn rules(&self) -> Vec<&AllowRule> {
        let mut v: Vec<&AllowRule> = self.in_set_order().collect();
        // A stable sort by (source, target, class), as output.sort_filter does.
        v.sort_by(|a, b| (&a.source, &a.target, &a.class).cmp(&(&b.source, &b.target, &b.class)));
        v
    }

    fn in_set_order(&self) -> impl Iterator<Item = &AllowRule> {
        let mut order = self.order.clone();
        order.sort();
        order.into_iter().map(|(_, _, i)| &self.rules[i])
    }

    /// Roles (sorted) with their requested types (first-seen order).
    pub fn role_types(&self) -> Vec<(&str, &[String])> {
        let mut v: Vec<(&str, &[String])> = self
            .role_types
            .iter()
            .map(|(r, t)| (r.as_str(), t.as_slice()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Every label change advised, first-seen order, no duplicates.
    pub fn label_advice(&self) -> Vec<&LabelAdvice> {
        let mut out: Vec<&LabelAdvice> = Vec::new();
        for r in self.rules() {
            for a in &r.label_advice {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// True when there is nothing to allow.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.role_types.is_empty()
    }

    /// What `audit2allow -i LOG` prints: the rules without module header or `require`.
    ///
    /// An empty draft renders as audit2allow does for input that held SELinux messages but
    /// nothing to allow (`"\n\n"`); for input without any SELinux message audit2allow prints
    /// nothing ("Nothing to do" on stderr): callers check [`is_empty`](Self::is_empty).
    pub fn render_rules(&self) -> String {
        self.render(None)
    }

    /// What `audit2allow -m NAME -i LOG` prints: a complete module (`.te` text) for
    /// `checkmodule -M -m`.
    pub fn render_module(&self, name: &ModuleName) -> String {
        self.render(Some(name))
    }

    /// The `require { ... }` block (empty string when there is nothing to require).
    pub fn require_block(&self) -> String {
        let mut types = BTreeSet::new();
        let mut classes: Vec<(&str, BTreeSet<&str>)> = Vec::new();
        for r in self.in_set_order() {
            types.insert(r.source.as_str());
            types.insert(r.target.as_str());
            match classes.iter_mut().find(|(c, _)| *c == r.class) {
                Some((_, p)) => p.extend(r.permissions.iter().map(String::as_str)),
                None => classes.push((
                    r.class.as_str(),
                    r.permissions.iter().map(String::as_str).collect(),
                )),
            }
        }
        let mut roles = BTreeSet::new();
        for (role, ts) in &self.role_types {
            roles.insert(role.as_str());
            types.extend(ts.iter().map(String::as_str));
        }
        types.remove("self");
        if types.is_empty() && classes.is_empty() && roles.is_empty() {
            return String::new();
        }
        let mut s = String::from("require {\n");
        for t in types {
            s.push_str(&format!("\ttype {t};\n"));
        }
        for (c, perms) in classes {
            let perms: BTreeSet<String> = perms.into_iter().map(str::to_owned).collect();
            s.push_str(&format!("\tclass {c} {};\n", space_list(&perms)));
        }
        for r in roles {
            s.push_str(&format!("\trole {r};\n"));
        }
        s.push('}');
        s
    }

    fn render(&self, module: Option<&ModuleName>) -> String {
        // sepolgen writes one line per tree node: the module itself (empty), the module
        // statement and a spacer, the require block and a spacer, then the rules.
        let mut out = String::from("\n");
        if let Some(name) = module {
            out.push_str(&format!("module {name} 1.0;\n\n"));
            out.push_str(&self.require_block());
            out.push('\n');
        }
        out.push('\n');
        let mut current: Option<&str> = None;
        for rule in self.rules() {
            if current != Some(rule.source.as_str()) {
                if current.is_some() {
                    out.push('\n');
                }
                current = Some(&rule.source);
                out.push_str(&format!("#============= {} ==============\n", rule.source));
            }
            let notes = rule.notes();
            if !notes.is_empty() {
                out.push('\n');
                for n in notes {
                    out.push_str(&n);
                    out.push('\n');
                }
            }
            out.push_str(&rule.statement());
            out.push('\n');
        }
        let roles = self.role_types();
        if !roles.is_empty() {
            out.push_str("#============= ROLES ==============\n");
            for (role, types) in roles {
                for t in types {
                    out.push_str(&format!("role {role} types {t};\n"));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Types of home directory content. ~/.cache is cache_home_t on Fedora/RHEL
/// and xdg_cache_t in refpolicy (Debian), ~/.config config_home_t and
/// xdg_config_t.
fn is_home_type(t: &str) -> bool {
    matches!(
        t,
        "cache_home_t"
            | "xdg_cache_t"
            | "user_home_t"
            | "user_home_dir_t"
            | "home_root_t"
            | "config_home_t"
            | "xdg_config_t"
    )
}

/// The (role, type) of each `SELINUX_ERR` `security_compute_sid:  invalid context CTX for
/// scontext=.. tcontext=.. tclass=..` record of an event, as sepolgen's
/// `ComputeSidMessage` reads it. (sepolgen reads fixed token positions of the whole line,
/// so it drops these records when the line has a `node=` prefix; goguard keeps them.)
pub fn role_types_of(event: &AuditEvent) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in event.records() {
        if r.record_type != "SELINUX_ERR" {
            continue;
        }
        let body = String::from_utf8_lossy(r.body);
        let toks: Vec<&str> = body.split_whitespace().collect();
        // security_compute_sid: invalid context CTX for scontext=S tcontext=T tclass=C
        let Some(at) = toks.iter().position(|t| *t == "security_compute_sid:") else {
            continue;
        };
        let rest = &toks[at..];
        if rest.len() < 8 {
            continue;
        }
        let has_value = |t: &str| t.split('=').nth(1).is_some();
        if !(has_value(rest[5]) && has_value(rest[6]) && has_value(rest[7])) {
            continue;
        }
        if let Some(ctx) = SecurityContext::parse(rest[3]) {
            out.push((ctx.role, ctx.type_));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::BooleanFix;
    use goguard_audit::parse_log;

    fn avcs(log: &str) -> Vec<Avc> {
        let (events, _) = parse_log(log.as_bytes());
        events.iter().flat_map(AuditEvent::avcs).collect()
    }

    const GO: &str = "type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1234 comm=\"go\" name=\"00\" dev=\"dm-0\" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n\
type=SYSCALL msg=audit(1700000000.123:4567): arch=c000003e syscall=257 success=no exit=-13 pid=1234 auid=1000 uid=1000 comm=\"go\" exe=\"/usr/lib/golang/bin/go\"\n\
type=CWD msg=audit(1700000000.123:4567): cwd=\"/home/a/proj\"\n\
type=PATH msg=audit(1700000000.123:4567): item=0 name=\"/home/a/.cache/go-build/00\" inode=131 nametype=NORMAL\n\
type=EOE msg=audit(1700000000.123:4567): \n\
type=AVC msg=audit(1700000001.000:4568): avc:  denied  { add_name } for  pid=1234 comm=\"compile\" name=\"x\" scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n\
type=AVC msg=audit(1700000002.000:4569): avc:  granted  { read } for  pid=1 comm=\"go\" scontext=a:b:c tcontext=a:b:d tclass=file\n\
type=AVC msg=audit(1700000003.000:4570): avc:  denied  { signal } for  pid=1 comm=\"go\" scontext=a:r:go_t tcontext=a:r:go_t tclass=process\n";

    #[test]
    fn merges_skips_granted_and_writes_self() {
        let a = avcs(GO);
        let mut d = PolicyDraft::new();
        let added: Vec<Added> = a.iter().map(|x| d.add_avc(x, None)).collect();
        assert_eq!(
            added,
            [Added::Rule, Added::Rule, Added::Granted, Added::Rule]
        );
        assert_eq!(
            d.render_rules(),
            "\n\n#============= container_t ==============\nallow container_t cache_home_t:dir { add_name write };\n\n#============= go_t ==============\nallow go_t self:process signal;\n"
        );
        let m = d.render_module(&ModuleName::new("gocache").unwrap());
        assert_eq!(
            m,
            "\nmodule gocache 1.0;\n\nrequire {\n\ttype cache_home_t;\n\ttype container_t;\n\ttype go_t;\n\tclass dir { add_name write };\n\tclass process signal;\n}\n\n#============= container_t ==============\nallow container_t cache_home_t:dir { add_name write };\n\n#============= go_t ==============\nallow go_t self:process signal;\n"
        );
    }

    #[test]
    fn module_names_follow_audit2allow() {
        for ok in ["a", "goguard_cache-1.2"] {
            assert!(ModuleName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "_a", "a b", "a/b"] {
            assert!(ModuleName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_advice_for_container_on_home_cache() {
        let a = avcs(GO);
        let mut d = PolicyDraft::with_roots(vec![CacheRootLabel {
            path: "/home/a/.cache/go-build".into(),
            file_contexts_type: Some("cache_home_t".into()),
            declared_type: None,
        }]);
        for x in &a {
            d.add_avc(x, None);
        }
        let advice = d.label_advice();
        assert_eq!(
            advice.len(),
            1,
            "only the AVC with a path is inside the root"
        );
        assert_eq!(
            advice[0].commands(),
            [
                "semanage fcontext -a -t container_file_t '/home/a/\\.cache/go-build(/.*)?'",
                "restorecon -Rv /home/a/.cache/go-build"
            ]
        );
        let text = d.render_rules();
        assert!(
            text.contains("\n\n#!!!! a container build uses /home/a/.cache/go-build labeled cache_home_t: label it container_file_t (or mount it with :Z) instead of allowing:\n#     semanage fcontext -a -t container_file_t '/home/a/\\.cache/go-build(/.*)?'\n#     restorecon -Rv /home/a/.cache/go-build\nallow container_t cache_home_t:dir { add_name write };\n"),
            "{text}"
        );
    }

    #[test]
    fn label_advice_for_container_on_refpolicy_home_cache() {
        // The same denial on a Debian host, where ~/.cache is xdg_cache_t.
        let log = GO.replace("cache_home_t", "xdg_cache_t");
        let mut d = PolicyDraft::with_roots(vec![CacheRootLabel {
            path: "/home/a/.cache/go-build".into(),
            file_contexts_type: Some("xdg_cache_t".into()),
            declared_type: None,
        }]);
        for x in &avcs(&log) {
            d.add_avc(x, None);
        }
        let advice = d.label_advice();
        assert_eq!(advice.len(), 1);
        assert_eq!(
            advice[0].commands(),
            [
                "semanage fcontext -a -t container_file_t '/home/a/\\.cache/go-build(/.*)?'",
                "restorecon -Rv /home/a/.cache/go-build"
            ]
        );
    }

    #[test]
    fn label_advice_for_mislabeled_target() {
        let log = "type=AVC msg=audit(1.000:1): avc:  denied  { write } for  pid=1 comm=\"compile\" path=\"/srv/gocache/ab/x-d\" scontext=system_u:system_r:gobuild_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0 tclass=file permissive=0\n";
        let root = |declared: Option<&str>| CacheRootLabel {
            path: "/srv/gocache".into(),
            file_contexts_type: Some("gocache_t".into()),
            declared_type: declared.map(str::to_owned),
        };
        let mut d = PolicyDraft::with_roots(vec![root(None)]);
        d.add_avc(&avcs(log)[0], None);
        let a = d.label_advice();
        assert_eq!(
            a[0].reason,
            LabelReason::Mislabeled {
                found: "user_tmp_t".into(),
                wanted: "gocache_t".into()
            }
        );
        assert_eq!(a[0].commands(), ["restorecon -Rv /srv/gocache"]);
        // Declared differently from file_contexts: a local rule first.
        let mut d = PolicyDraft::with_roots(vec![root(Some("container_file_t"))]);
        d.add_avc(&avcs(log)[0], None);
        assert_eq!(
            d.label_advice()[0].commands(),
            [
                "semanage fcontext -a -t container_file_t '/srv/gocache(/.*)?'",
                "restorecon -Rv /srv/gocache"
            ]
        );
        // Correctly labeled: no advice.
        let ok = log.replace("user_tmp_t", "gocache_t");
        let mut d = PolicyDraft::with_roots(vec![root(None)]);
        d.add_avc(&avcs(&ok)[0], None);
        assert!(d.label_advice().is_empty());
    }

    #[test]
    fn verdict_notes_and_split_rules_as_audit2allow_p() {
        let log = "type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=1 comm=\"go\" scontext=u:r:a_t:s0 tcontext=u:object_r:b_t:s0 tclass=file\n\
type=AVC msg=audit(2.000:2): avc:  denied  { write } for  pid=1 comm=\"go\" scontext=u:r:a_t:s0 tcontext=u:object_r:b_t:s0 tclass=file\n\
type=AVC msg=audit(3.000:3): avc:  denied  { write } for  pid=1 comm=\"go\" scontext=v:r:a_t:s0 tcontext=u:object_r:c_t:s0:c1 tclass=file\n\
type=AVC msg=audit(4.000:4): avc:  denied  { bogus } for  pid=1 comm=\"go\" scontext=v:r:a_t:s0 tcontext=u:object_r:c_t:s0 tclass=file\n";
        let a = avcs(log);
        let mut d = PolicyDraft::new();
        let b = PolicyVerdict::Boolean(vec![BooleanFix {
            name: "go_can_write".into(),
            value: true,
        }]);
        d.add_avc(&a[0], Some(&PolicyVerdict::Allowed));
        d.add_avc(&a[1], Some(&b));
        d.add_avc(
            &a[2],
            Some(&PolicyVerdict::Constraint(
                "constrain file write (u1 == u2);".into(),
            )),
        );
        let bad = PolicyVerdict::Unknown(UnknownReason::Permission("bogus".into()));
        assert_eq!(d.add_avc(&a[3], Some(&bad)), Added::UnknownToPolicy);
        assert_eq!(
            d.render_rules(),
            "\n\n#============= a_t ==============\n\n#!!!! This avc is allowed in the current policy\nallow a_t b_t:file read;\n\n#!!!! This avc can be allowed using the boolean 'go_can_write'\nallow a_t b_t:file write;\n\n#!!!! This avc is a constraint violation.  You would need to modify the attributes of either the source or target types to allow this access.\n#Constraint rule: \n#\tconstrain file write (u1 == u2);\n#\tPossible cause is the source user (v) and target user (u) are different.\n#\tPossible cause is the source level (s0) and target level (s0:c1) are different.\nallow a_t c_t:file write;\n"
        );
    }

    #[test]
    fn roles_section() {
        let log = "type=SELINUX_ERR msg=audit(1163774199.777:11573): security_compute_sid:  invalid context staff_u:staff_r:staff_userhelper_t:s0 for scontext=staff_u:staff_r:staff_t:s0 tcontext=system_u:object_r:userhelper_exec_t:s0 tclass=process\n\
type=SELINUX_ERR msg=audit(1163774199.779:11574): security_compute_sid:  invalid context system_u:system_r:b_t:s0 for scontext=staff_u:staff_r:staff_t:s0 tcontext=system_u:object_r:userhelper_exec_t:s0 tclass=process\n\
type=SELINUX_ERR msg=audit(1163774199.780:11575): security_compute_sid:  invalid context system_u:system_r:a_t:s0 for scontext=staff_u:staff_r:staff_t:s0 tcontext=system_u:object_r:userhelper_exec_t:s0 tclass=process\n";
        let (events, _) = parse_log(log.as_bytes());
        let d = PolicyDraft::from_events(&events);
        assert_eq!(
            d.render_rules(),
            "\n\n#============= ROLES ==============\nrole staff_r types staff_userhelper_t;\n\nrole system_r types b_t;\nrole system_r types a_t;\n\n"
        );
        assert!(
            d.require_block()
                .contains("\ttype a_t;\n\ttype b_t;\n\ttype staff_userhelper_t;\n\trole staff_r;\n\trole system_r;\n")
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
        assert_eq!(root_regex(Path::new("/a+b/c.d")), "/a\\+b/c\\.d(/.*)?");
    }
}
