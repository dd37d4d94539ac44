//! [`Diagnosis`] of one go-related SELinux denial: what is wrong, why, the commands that fix
//! it, and whether goguard fixes it itself.
//!
//! Facts come in as values ([`DiagnosisInput`]): the [`Avc`]; the label file_contexts
//! expects for the target and the target's observed vs expected owner/mode (computed by the
//! caller with selabel and fstat); the [`PolicyVerdict`] from the binary policy, if one was
//! available; and the cache root the target lies in. [`diagnose`] picks the most useful
//! answer, in this order:
//! 1. the decision was not a denial → [`DiagnosisKind::NotDenied`];
//! 2. the target's type differs from what file_contexts expects → relabel
//!    ([`DiagnosisKind::MislabeledTarget`], auto-healed inside cache roots);
//! 3. the owner or mode differs from what the root expects → chown/chmod or
//!    `goguardctl repair` ([`DiagnosisKind::WrongOwnerOrMode`]);
//! 4. Go-specific causes, which beat a raw allow rule: a container build on a host cache
//!    without `:Z` (type or MCS categories), a confined service writing a home cache, a test
//!    binary executed from /tmp;
//! 5. the policy verdict: boolean, constraint (MLS included), missing allow rule, RBAC,
//!    bounds, allowed (policy changed since), unknown to the policy;
//! 6. no policy: "no policy available: label and owner analysis only".
//!
//! Pure: no I/O, no policy access, never panics; commands are text for the caller to show
//! or run, quoted for a POSIX shell.

use std::fmt;
use std::path::{Path, PathBuf};

use goguard_audit::{Avc, Decision};

use crate::context::SecurityContext;
use crate::draft::{root_regex, shell_quote};
use crate::verdict::{PolicyVerdict, UnknownReason};

/// What kind of cache a root is (it decides the advice wording and the env variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheRootKind {
    /// `GOCACHE` (build cache).
    BuildCache,
    /// `GOMODCACHE` (module cache).
    ModuleCache,
    /// A `GOPATH` tree.
    GoPath,
    /// `GOTMPDIR` or another declared root.
    Other,
}

impl CacheRootKind {
    /// The Go environment variable that points at this kind of root.
    pub fn env_var(self) -> &'static str {
        match self {
            CacheRootKind::BuildCache => "GOCACHE",
            CacheRootKind::ModuleCache => "GOMODCACHE",
            CacheRootKind::GoPath => "GOPATH",
            CacheRootKind::Other => "GOTMPDIR",
        }
    }
}

/// The cache root the target lies in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRootFacts {
    pub path: PathBuf,
    pub kind: CacheRootKind,
}

/// Owner, group and permission bits of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
}

/// The target's observed ownership against what its root expects (from the caller's fstat
/// and goguard-policy's expected state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFacts {
    pub path: PathBuf,
    pub observed: Ownership,
    pub expected: Ownership,
}

/// Everything [`diagnose`] knows about one denial.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosisInput<'a> {
    pub avc: &'a Avc,
    /// The label file_contexts expects for the target (a full context or just a type),
    /// from `selabel_lookup`; `None` when unknown.
    pub expected_label: Option<&'a str>,
    pub owner: Option<&'a OwnerFacts>,
    /// The binary policy's verdict; `None` when no policy was available.
    pub verdict: Option<&'a PolicyVerdict>,
    /// The cache root holding the target, if it is in one.
    pub cache_root: Option<&'a CacheRootFacts>,
}

impl<'a> DiagnosisInput<'a> {
    /// An input with only the AVC.
    pub fn new(avc: &'a Avc) -> DiagnosisInput<'a> {
        DiagnosisInput {
            avc,
            expected_label: None,
            owner: None,
            verdict: None,
            cache_root: None,
        }
    }
}

/// The cause of a denial, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiagnosisKind {
    /// A granted decision (`avc:  granted`): nothing to fix.
    NotDenied,
    MislabeledTarget,
    WrongOwnerOrMode,
    /// `container_t` used a host cache that is not labeled for containers (no `:Z`).
    ContainerBuildWithoutRelabel,
    /// A confined service domain writes a cache under a home directory.
    ConfinedServiceOnHomeCache,
    /// `go test`/`go run` executes a binary built under /tmp, which the domain may not run.
    TestBinaryExecFromTmp,
    BooleanWouldAllow,
    /// A constraint denies it; MLS/MCS (category) mismatches included.
    Constraint,
    MissingAllowRule,
    /// The source role may not reach the target role.
    RoleNotAuthorized,
    /// A `typebounds` child domain asked for more than its parent may do.
    BoundsViolation,
    /// The analysed policy allows it: the denial was under another policy or boolean state.
    AllowedByCurrentPolicy,
    /// The analysed policy does not know the contexts, class or permission.
    UnknownToPolicy,
    /// No label or owner problem found, and no policy to ask.
    Unexplained,
}

impl DiagnosisKind {
    /// A stable snake_case name (for JSON and the API).
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosisKind::NotDenied => "not_denied",
            DiagnosisKind::MislabeledTarget => "mislabeled_target",
            DiagnosisKind::WrongOwnerOrMode => "wrong_owner_or_mode",
            DiagnosisKind::ContainerBuildWithoutRelabel => "container_build_without_relabel",
            DiagnosisKind::ConfinedServiceOnHomeCache => "confined_service_on_home_cache",
            DiagnosisKind::TestBinaryExecFromTmp => "test_binary_exec_from_tmp",
            DiagnosisKind::BooleanWouldAllow => "boolean_would_allow",
            DiagnosisKind::Constraint => "constraint",
            DiagnosisKind::MissingAllowRule => "missing_allow_rule",
            DiagnosisKind::RoleNotAuthorized => "role_not_authorized",
            DiagnosisKind::BoundsViolation => "bounds_violation",
            DiagnosisKind::AllowedByCurrentPolicy => "allowed_by_current_policy",
            DiagnosisKind::UnknownToPolicy => "unknown_to_policy",
            DiagnosisKind::Unexplained => "unexplained",
        }
    }
}

impl fmt::Display for DiagnosisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: DiagnosisKind,
    /// One line.
    pub summary: String,
    /// A few sentences: what the facts are and why the fix is the right one.
    pub explanation: String,
    /// Shell commands that fix it, in order (may be empty).
    pub fixes: Vec<String>,
    /// True when goguard fixes it itself (relabel or owner repair inside a cache root).
    pub auto_fix: bool,
    /// True when a policy verdict was part of the analysis.
    pub policy_checked: bool,
}

/// The sentence used when no policy could be consulted.
pub const NO_POLICY: &str = "no policy available: label and owner analysis only";

/// Diagnoses one denial. See the module doc for the order of the checks.
pub fn diagnose(input: &DiagnosisInput<'_>) -> Diagnosis {
    let facts = Facts::new(input);
    let d = if input.avc.decision == Decision::Granted {
        facts.not_denied()
    } else if let Some(d) = facts.mislabeled() {
        d
    } else if let Some(d) = facts.wrong_owner() {
        d
    } else if let Some(d) = facts.go_specific() {
        d
    } else if let Some(v) = input.verdict {
        facts.by_verdict(v)
    } else {
        facts.unexplained()
    };
    Diagnosis {
        policy_checked: input.verdict.is_some(),
        ..d
    }
}

/// The parsed facts every check uses.
struct Facts<'a> {
    input: &'a DiagnosisInput<'a>,
    source: Option<SecurityContext>,
    target: Option<SecurityContext>,
    stype: &'a str,
    ttype: &'a str,
    class: &'a str,
    perms: String,
    comm: &'a str,
    /// The target's path (from the audit event), else the root's.
    path: Option<&'a Path>,
}

impl<'a> Facts<'a> {
    fn new(input: &'a DiagnosisInput<'a>) -> Facts<'a> {
        let avc = input.avc;
        let source = avc.scontext.as_deref().and_then(SecurityContext::parse);
        let target = avc.tcontext.as_deref().and_then(SecurityContext::parse);
        let type_in = |c: &'a Option<String>| {
            c.as_deref()
                .and_then(crate::context::type_of)
                .unwrap_or("?")
        };
        Facts {
            input,
            source,
            target,
            stype: type_in(&avc.scontext),
            ttype: type_in(&avc.tcontext),
            class: avc.tclass.as_deref().unwrap_or("?"),
            perms: avc.permissions.join(" "),
            comm: avc.comm.as_deref().unwrap_or("?"),
            path: avc
                .path
                .as_deref()
                .or(input.cache_root.map(|r| r.path.as_path())),
        }
    }

    fn what(&self) -> String {
        let target = match (&self.input.avc.path, &self.input.avc.name) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(n)) => format!("\"{n}\""),
            (None, None) => format!("a {}", self.class),
        };
        format!(
            "{} ({}) was denied {{ {} }} on {} {target} ({})",
            self.comm, self.stype, self.perms, self.class, self.ttype
        )
    }

    fn base(&self, kind: DiagnosisKind, summary: String, explanation: String) -> Diagnosis {
        Diagnosis {
            kind,
            summary,
            explanation,
            fixes: Vec::new(),
            auto_fix: false,
            policy_checked: false,
        }
    }

    fn verdict_note(&self) -> String {
        match self.input.verdict {
            Some(v) => format!(" The policy says: {v}."),
            None => format!(" ({NO_POLICY}.)"),
        }
    }

    fn not_denied(&self) -> Diagnosis {
        self.base(
            DiagnosisKind::NotDenied,
            format!("granted, not denied: {} {{ {} }}", self.comm, self.perms),
            "An `avc:  granted` record is logged by an auditallow rule; nothing was blocked."
                .to_owned(),
        )
    }

    /// `restorecon` for the target (recursive for directories), else for the root, else a
    /// `find` by inode.
    fn restorecon(&self) -> String {
        let avc = self.input.avc;
        match (avc.path.as_deref(), self.input.cache_root) {
            (Some(p), _) if self.class == "dir" => format!("restorecon -Rv {}", q(p)),
            (Some(p), _) => format!("restorecon -v {}", q(p)),
            (None, Some(root)) => format!("restorecon -Rv {}", q(&root.path)),
            (None, None) => match &avc.ino {
                Some(ino) => format!("find / -xdev -inum {ino} -exec restorecon -v {{}} +"),
                None => "restorecon -Rv PATH".to_owned(),
            },
        }
    }

    fn mislabeled(&self) -> Option<Diagnosis> {
        let label = self.input.expected_label?;
        let expected = SecurityContext::parse(label)
            .map(|c| c.type_)
            .unwrap_or_else(|| label.to_owned());
        if expected == self.ttype || self.ttype == "?" {
            return None;
        }
        let in_root = self.input.cache_root.is_some();
        let mut explanation = format!(
            "{}. file_contexts expects {expected} there, so the label is wrong, not the policy: \
             relabeling restores access without widening the policy.",
            self.what()
        );
        if self.ttype.ends_with("tmp_t") {
            explanation.push_str(
                " Files moved (mv) from /tmp keep their tmp label; copying or restorecon gives \
                 them the right one.",
            );
        }
        if in_root {
            explanation.push_str(
                " The target is inside a cache root: goguard relabels it automatically where \
                 the root's heal policy allows (restorecon semantics).",
            );
        }
        let mut d = self.base(
            DiagnosisKind::MislabeledTarget,
            format!(
                "mislabeled target: {} is {} where file_contexts expects {expected}",
                self.path
                    .map_or_else(|| "the target".to_owned(), |p| p.display().to_string()),
                self.ttype
            ),
            explanation,
        );
        d.fixes.push(self.restorecon());
        d.auto_fix = in_root;
        Some(d)
    }

    fn wrong_owner(&self) -> Option<Diagnosis> {
        let o = self.input.owner?;
        if o.observed == o.expected {
            return None;
        }
        let mut fixes = Vec::new();
        if (o.observed.uid, o.observed.gid) != (o.expected.uid, o.expected.gid) {
            fixes.push(format!(
                "chown {}:{} {}",
                o.expected.uid,
                o.expected.gid,
                q(&o.path)
            ));
        }
        if o.observed.mode != o.expected.mode {
            fixes.push(format!("chmod {:o} {}", o.expected.mode, q(&o.path)));
        }
        fixes.push(format!("goguardctl repair {}", q(&o.path)));
        let mut d = self.base(
            DiagnosisKind::WrongOwnerOrMode,
            format!(
                "wrong owner or mode: {} is {}:{} {:o}, expected {}:{} {:o}",
                o.path.display(),
                o.observed.uid,
                o.observed.gid,
                o.observed.mode,
                o.expected.uid,
                o.expected.gid,
                o.expected.mode
            ),
            format!(
                "{}. The entry's owner or mode differs from what its root expects (for \
                 example left by `sudo go build` or a container running as another UID); \
                 the process needs DAC override to use it, which the policy denies. Give the \
                 entry back rather than granting capabilities.{}",
                self.what(),
                self.verdict_note()
            ),
        );
        d.fixes = fixes;
        d.auto_fix = self.input.cache_root.is_some();
        Some(d)
    }

    fn go_specific(&self) -> Option<Diagnosis> {
        self.container_without_relabel()
            .or_else(|| self.test_binary_from_tmp())
            .or_else(|| self.confined_on_home_cache())
    }

    fn container_without_relabel(&self) -> Option<Diagnosis> {
        if self.stype != "container_t" {
            return None;
        }
        let host = self
            .input
            .cache_root
            .map(|r| r.path.clone())
            .or_else(|| self.input.avc.path.clone());
        let host_text = host
            .as_deref()
            .map_or_else(|| "HOST_CACHE".to_owned(), |p| p.display().to_string());
        let mut fixes = vec![format!(
            "podman run -v {}:CONTAINER_PATH:Z ...   # or RUN --mount=type=cache,...,Z / relabel=private",
            shell_quote(&host_text)
        )];
        if self.ttype == "container_file_t" {
            // Right type, other categories: an MCS constraint.
            let (s, t) = (self.source.as_ref()?, self.target.as_ref()?);
            if s.categories() == t.categories() {
                return None;
            }
            if matches!(self.input.verdict, Some(v) if !matches!(v, PolicyVerdict::Constraint(_))) {
                return None;
            }
            let mut d = self.base(
                DiagnosisKind::Constraint,
                format!(
                    "MCS categories differ: container {} vs cache {} (mount without :Z)",
                    s.level.as_deref().unwrap_or("-"),
                    t.level.as_deref().unwrap_or("-")
                ),
                format!(
                    "{}. Both sides are container types, but the container runs with \
                     categories {} and the cache carries {}: the MCS constraint keeps one \
                     container out of another's files. A cache shared by several builds \
                     needs the shared label (`:z`, no categories); a cache private to one \
                     build needs `:Z`.{}",
                    self.what(),
                    s.categories().unwrap_or("none"),
                    t.categories().unwrap_or("none"),
                    self.verdict_note()
                ),
            );
            fixes[0] = fixes[0].replace(":Z ", ":z ");
            if let Some(h) = &host {
                fixes.push(format!("chcon -R -l s0 {}", q(h)));
            }
            d.fixes = fixes;
            return Some(d);
        }
        if let Some(h) = &host {
            fixes.push(format!(
                "semanage fcontext -a -t container_file_t '{}'",
                root_regex(h).replace('\'', "'\\''")
            ));
            fixes.push(format!("restorecon -Rv {}", q(h)));
        }
        let mut d = self.base(
            DiagnosisKind::ContainerBuildWithoutRelabel,
            format!(
                "container build without :Z: container_t may not use a cache labeled {}",
                self.ttype
            ),
            format!(
                "{}. A container (container_t) may only use files labeled for containers \
                 (container_file_t). The host cache was mounted without a relabel option, so it \
                 keeps its host label. Mount it with `:Z` (private) or `:z` (shared), or \
                 declare the cache a root labeled container_file_t so goguard keeps it so; an \
                 allow rule would open every {} on the host to every container.{}",
                self.what(),
                self.ttype,
                self.verdict_note()
            ),
        );
        d.fixes = fixes;
        Some(d)
    }

    fn test_binary_from_tmp(&self) -> Option<Diagnosis> {
        let avc = self.input.avc;
        let exec = avc
            .permissions
            .iter()
            .any(|p| matches!(p.as_str(), "execute" | "execute_no_trans"));
        if !exec || !matches!(self.ttype, "tmp_t" | "user_tmp_t") {
            return None;
        }
        let in_go_build = |p: &Path| {
            p.components()
                .nth(1)
                .is_some_and(|c| c.as_os_str() == "tmp")
                && p.components()
                    .nth(2)
                    .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("go-build"))
        };
        let go_test = self.comm.ends_with(".test")
            || avc.path.as_deref().is_some_and(in_go_build)
            || avc.exe.as_deref().is_some_and(in_go_build);
        if !go_test {
            return None;
        }
        let mut d = self.base(
            DiagnosisKind::TestBinaryExecFromTmp,
            format!(
                "test binary executed from /tmp: {} may not execute {} files",
                self.stype, self.ttype
            ),
            format!(
                "{}. `go test` and `go run` build into $GOTMPDIR (default /tmp/go-build*) and \
                 execute from there; this domain may not execute files labeled {} (or /tmp is \
                 mounted noexec). Point GOTMPDIR at a directory whose label the domain may \
                 execute, inside the user's cache, instead of allowing execution from /tmp.{}",
                self.what(),
                self.ttype,
                self.verdict_note()
            ),
        );
        d.fixes = vec![
            "mkdir -p \"$HOME/.cache/go-tmp\"".to_owned(),
            "go env -w GOTMPDIR=\"$HOME/.cache/go-tmp\"".to_owned(),
            "restorecon -Rv \"$HOME/.cache/go-tmp\"".to_owned(),
        ];
        Some(d)
    }

    fn confined_on_home_cache(&self) -> Option<Diagnosis> {
        if !matches!(
            self.ttype,
            "cache_home_t" | "user_home_t" | "user_home_dir_t" | "config_home_t"
        ) || is_user_domain(self.stype)
        {
            return None;
        }
        let writes = self.input.avc.permissions.iter().any(|p| {
            matches!(
                p.as_str(),
                "write"
                    | "add_name"
                    | "remove_name"
                    | "create"
                    | "append"
                    | "rename"
                    | "unlink"
                    | "setattr"
                    | "open"
                    | "read"
                    | "search"
                    | "getattr"
                    | "lock"
                    | "map"
            )
        });
        if !writes {
            return None;
        }
        let var = self
            .input
            .cache_root
            .map_or("GOCACHE", |r| r.kind.env_var());
        let mut fixes = vec![format!(
            "systemctl edit SERVICE   # [Service] CacheDirectory=go  Environment={var}=/var/cache/go"
        )];
        if let Some(root) = self.input.cache_root {
            fixes.push(format!(
                "semanage fcontext -a -t container_file_t '{}'",
                root_regex(&root.path).replace('\'', "'\\''")
            ));
            fixes.push(format!("restorecon -Rv {}", q(&root.path)));
        }
        let mut d = self.base(
            DiagnosisKind::ConfinedServiceOnHomeCache,
            format!(
                "confined service {} uses a home cache labeled {}",
                self.stype, self.ttype
            ),
            format!(
                "{}. A confined service domain may not write users' home content; its Go \
                 cache defaults to $HOME/.cache/go-build. Give the service its own {var} \
                 (systemd CacheDirectory=, which gets a label the service may write), or, if \
                 the cache must be shared, declare it a goguard root labeled \
                 container_file_t (or another type the domain may write).{}",
                self.what(),
                self.verdict_note()
            ),
        );
        d.fixes = fixes;
        Some(d)
    }

    fn by_verdict(&self, v: &PolicyVerdict) -> Diagnosis {
        match v {
            PolicyVerdict::Boolean(bools) => {
                let mut d = self.base(
                    DiagnosisKind::BooleanWouldAllow,
                    match bools.as_slice() {
                        [b] => format!(
                            "boolean {} would allow it (set it to {})",
                            b.name,
                            u8::from(b.value)
                        ),
                        _ => format!("one of {} booleans would allow it", bools.len()),
                    },
                    format!(
                        "{}. A conditional rule in the policy grants this access when the \
                         boolean is set; no new policy is needed. Check that the boolean's \
                         whole scope is acceptable before setting it.",
                        self.what()
                    ),
                );
                d.fixes = bools.iter().map(|b| b.command()).collect();
                d
            }
            PolicyVerdict::Constraint(text) => {
                let causes = match (&self.source, &self.target) {
                    (Some(s), Some(t)) => crate::draft::constraint_causes(s, t)
                        .into_iter()
                        .map(|(w, a, b)| {
                            format!("the source {w} ({a}) and target {w} ({b}) differ")
                        })
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                let mls = causes.iter().any(|c| c.starts_with("the source level"));
                let mut explanation = format!(
                    "{}. No allow rule can fix this: a constraint{} forbids it regardless of TE \
                     rules.",
                    self.what(),
                    if mls { " (MLS/MCS)" } else { "" }
                );
                if !text.trim().is_empty() {
                    explanation.push_str(&format!(" Failing constraint: {}.", text.trim()));
                }
                if !causes.is_empty() {
                    explanation.push_str(&format!(" Possible cause: {}.", causes.join("; ")));
                }
                let mut d = self.base(
                    DiagnosisKind::Constraint,
                    format!(
                        "constraint violation{}",
                        if mls { " (MLS levels differ)" } else { "" }
                    ),
                    explanation,
                );
                if mls {
                    d.fixes.push(format!(
                        "chcon -l {} {}",
                        self.source
                            .as_ref()
                            .and_then(|s| s.level.clone())
                            .unwrap_or_else(|| "s0".to_owned()),
                        self.path.map_or_else(|| "PATH".to_owned(), q)
                    ));
                }
                d
            }
            PolicyVerdict::MissingAllow | PolicyVerdict::DontAudit => {
                let mut d = self.base(
                    DiagnosisKind::MissingAllowRule,
                    format!(
                        "missing allow rule: allow {} {}:{} {{ {} }}",
                        self.stype,
                        if self.stype == self.ttype {
                            "self"
                        } else {
                            self.ttype
                        },
                        self.class,
                        self.perms
                    ),
                    format!(
                        "{}. The labels are as expected and no boolean allows it: the policy \
                         lacks a rule. Review the drafted module before loading it.{}",
                        self.what(),
                        if *v == PolicyVerdict::DontAudit {
                            " (A dontaudit rule normally hides this denial: it shows because \
                             dontaudit rules are disabled, `semodule -DB`.)"
                        } else {
                            ""
                        }
                    ),
                );
                d.fixes = vec![
                    "goguardctl policy --name goguard_local > goguard_local.te".to_owned(),
                    "checkmodule -M -m -o goguard_local.mod goguard_local.te && semodule_package -o goguard_local.pp -m goguard_local.mod && semodule -i goguard_local.pp".to_owned(),
                ];
                d
            }
            PolicyVerdict::Rbac => self.base(
                DiagnosisKind::RoleNotAuthorized,
                format!(
                    "role {} may not reach role {}",
                    self.source.as_ref().map_or("?", |s| s.role.as_str()),
                    self.target.as_ref().map_or("?", |t| t.role.as_str())
                ),
                format!(
                    "{}. The role-based access control part of the policy denies it: a \
                     `role ... types` or role `allow` rule is missing.",
                    self.what()
                ),
            ),
            PolicyVerdict::Bounds => self.base(
                DiagnosisKind::BoundsViolation,
                "typebounds violation".to_owned(),
                format!(
                    "{}. The source is a bounded child type and its parent may not do this; \
                     the parent type needs the allow rule too.",
                    self.what()
                ),
            ),
            PolicyVerdict::Allowed => self.base(
                DiagnosisKind::AllowedByCurrentPolicy,
                "allowed by the current policy".to_owned(),
                format!(
                    "{}. The analysed policy allows it: the denial happened under another \
                     policy version or boolean setting (in-memory booleans can differ from the \
                     permanent ones). Nothing to fix unless it recurs.",
                    self.what()
                ),
            ),
            PolicyVerdict::Unknown(r) => self.base(
                DiagnosisKind::UnknownToPolicy,
                format!("the policy cannot judge it: {v}"),
                format!(
                    "{}. {}",
                    self.what(),
                    match r {
                        UnknownReason::SourceContext | UnknownReason::TargetContext =>
                            "The context is invalid in the analysed policy: the denial comes \
                             from another policy (another host, or a module since removed).",
                        UnknownReason::Class | UnknownReason::Permission(_) =>
                            "The analysed policy does not define this class or permission: it \
                             is older than the kernel's.",
                        UnknownReason::Computation => "libsepol failed to compute the decision.",
                    }
                ),
            ),
        }
    }

    fn unexplained(&self) -> Diagnosis {
        let mut d = self.base(
            DiagnosisKind::Unexplained,
            format!("{NO_POLICY}; no label or owner problem found"),
            format!(
                "{}. The target's label and owner look right; whether a boolean, a constraint \
                 or a missing allow rule is the cause needs the policy (`--policy PATH`, or the \
                 loaded /sys/fs/selinux/policy).",
                self.what()
            ),
        );
        d.fixes = vec!["goguardctl policy --name goguard_local > goguard_local.te".to_owned()];
        d
    }
}

/// Login-user and unconfined domains, whose home caches are theirs to write.
fn is_user_domain(t: &str) -> bool {
    t.starts_with("unconfined_")
        || matches!(
            t,
            "user_t" | "staff_t" | "sysadm_t" | "guest_t" | "xguest_t" | "secadm_t" | "auditadm_t"
        )
}

fn q(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::BooleanFix;
    use goguard_audit::{AuditEvent, parse_log};

    fn avc(log: &str) -> Avc {
        let (events, _) = parse_log(log.as_bytes());
        let v: Vec<Avc> = events.iter().flat_map(AuditEvent::avcs).collect();
        assert_eq!(v.len(), 1, "{log}");
        v.into_iter().next().unwrap()
    }

    fn corpus_line(file: &str, needle: &str) -> String {
        let path = format!(
            "{}/../audit/tests/corpus/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        let line = text.lines().find(|l| l.contains(needle)).unwrap();
        format!("{line}\n")
    }

    /// DOMAIN.md's example: a podman build writing the user's home build cache.
    const CONTAINER_HOME: &str = "type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1234 comm=\"go\" name=\"go-build\" dev=\"dm-0\" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n\
type=SYSCALL msg=audit(1700000000.123:4567): arch=c000003e syscall=257 success=no exit=-13 pid=1234 uid=1000 comm=\"go\" exe=\"/usr/local/go/bin/go\"\n\
type=PATH msg=audit(1700000000.123:4567): item=0 name=\"/home/a/.cache/go-build\" inode=131 nametype=PARENT\n";

    fn root(path: &str) -> CacheRootFacts {
        CacheRootFacts {
            path: path.into(),
            kind: CacheRootKind::BuildCache,
        }
    }

    #[test]
    fn mislabeled_target_in_root_is_auto_fixed() {
        // A cache entry moved from /tmp keeps user_tmp_t.
        let a = avc(
            "type=AVC msg=audit(1700000100.000:10): avc:  denied  { read } for  pid=77 comm=\"compile\" path=\"/home/a/.cache/go-build/3f/3fa9-d\" dev=\"dm-0\" ino=99 scontext=system_u:system_r:gobuild_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0 tclass=file permissive=0\n",
        );
        let r = root("/home/a/.cache/go-build");
        let d = diagnose(&DiagnosisInput {
            expected_label: Some("unconfined_u:object_r:cache_home_t:s0"),
            cache_root: Some(&r),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::MislabeledTarget);
        assert_eq!(d.fixes, ["restorecon -v /home/a/.cache/go-build/3f/3fa9-d"]);
        assert!(d.auto_fix);
        assert!(
            d.summary
                .contains("user_tmp_t where file_contexts expects cache_home_t")
        );
        assert!(d.explanation.contains("keep their tmp label"));
        assert!(d.explanation.contains("automatically"));
        assert!(!d.policy_checked);
        // The same label as expected: not mislabeled, and without a policy it says so.
        let d = diagnose(&DiagnosisInput {
            expected_label: Some("user_tmp_t"),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::Unexplained);
        assert!(d.summary.contains(NO_POLICY));
    }

    #[test]
    fn mislabeled_without_path_uses_root_or_inode() {
        let a = avc(&corpus_line("go-toolchain-avc-excerpts.log", "unlink"));
        assert!(a.path.is_none());
        let d = diagnose(&DiagnosisInput {
            expected_label: Some("container_file_t"),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::MislabeledTarget);
        assert_eq!(
            d.fixes,
            ["find / -xdev -inum 13634944 -exec restorecon -v {} +"]
        );
        assert!(!d.auto_fix);
    }

    #[test]
    fn wrong_owner_or_mode() {
        let a = avc(
            "type=AVC msg=audit(1700000200.000:11): avc:  denied  { dac_override } for  pid=88 comm=\"go\" capability=1 scontext=system_u:system_r:gobuild_t:s0 tcontext=system_u:system_r:gobuild_t:s0 tclass=capability permissive=0\n",
        );
        let o = OwnerFacts {
            path: "/home/a/.cache/go-build/3f".into(),
            observed: Ownership {
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
            expected: Ownership {
                uid: 1000,
                gid: 1000,
                mode: 0o700,
            },
        };
        let r = root("/home/a/.cache/go-build");
        let d = diagnose(&DiagnosisInput {
            owner: Some(&o),
            cache_root: Some(&r),
            verdict: Some(&PolicyVerdict::MissingAllow),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::WrongOwnerOrMode);
        assert_eq!(
            d.fixes,
            [
                "chown 1000:1000 /home/a/.cache/go-build/3f",
                "chmod 700 /home/a/.cache/go-build/3f",
                "goguardctl repair /home/a/.cache/go-build/3f"
            ]
        );
        assert!(d.auto_fix && d.policy_checked);
        // Matching ownership: the verdict decides.
        let ok = OwnerFacts {
            observed: o.expected,
            ..o.clone()
        };
        let d = diagnose(&DiagnosisInput {
            owner: Some(&ok),
            verdict: Some(&PolicyVerdict::MissingAllow),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::MissingAllowRule);
        assert!(
            d.summary
                .contains("allow gobuild_t self:capability { dac_override }")
        );
    }

    #[test]
    fn boolean_would_allow() {
        let a = avc(&corpus_line(
            "setroubleshoot-testdata.log",
            "name_connect } for  pid=21134 comm=\"httpd\"",
        ));
        let v = PolicyVerdict::Boolean(vec![BooleanFix {
            name: "httpd_can_network_connect".into(),
            value: true,
        }]);
        let d = diagnose(&DiagnosisInput {
            verdict: Some(&v),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::BooleanWouldAllow);
        assert_eq!(d.fixes, ["setsebool -P httpd_can_network_connect 1"]);
        assert!(d.summary.contains("httpd_can_network_connect"));
        assert!(!d.auto_fix);
    }

    #[test]
    fn missing_allow_rule_and_dontaudit() {
        let a = avc(&corpus_line("avcparser-2avc-interpreted.log", "{ read }"));
        for v in [PolicyVerdict::MissingAllow, PolicyVerdict::DontAudit] {
            let d = diagnose(&DiagnosisInput {
                verdict: Some(&v),
                ..DiagnosisInput::new(&a)
            });
            assert_eq!(d.kind, DiagnosisKind::MissingAllowRule);
            assert!(
                d.summary
                    .contains("allow zabbix_agent_t shadow_t:file { read }"),
                "{}",
                d.summary
            );
            assert!(d.fixes[0].starts_with("goguardctl policy"));
            assert_eq!(
                d.explanation.contains("semodule -DB"),
                v == PolicyVerdict::DontAudit
            );
        }
    }

    #[test]
    fn constraint_with_mls_levels() {
        let a = avc(
            "type=AVC msg=audit(1700000300.000:12): avc:  denied  { write } for  pid=9 comm=\"link\" path=\"/srv/gocache/out\" dev=\"dm-0\" ino=5 scontext=staff_u:staff_r:staff_t:s0:c3 tcontext=system_u:object_r:gocache_t:s0:c1,c2 tclass=file permissive=0\n",
        );
        let v = PolicyVerdict::Constraint("mlsconstrain file write (l1 eq l2)".into());
        let d = diagnose(&DiagnosisInput {
            verdict: Some(&v),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::Constraint);
        assert!(d.summary.contains("MLS"));
        assert!(
            d.explanation
                .contains("the source user (staff_u) and target user (system_u) differ")
        );
        assert!(
            d.explanation
                .contains("the source level (s0:c3) and target level (s0:c1,c2) differ")
        );
        assert!(d.explanation.contains("mlsconstrain file write"));
        assert_eq!(d.fixes, ["chcon -l s0:c3 /srv/gocache/out"]);
    }

    #[test]
    fn container_build_without_z_on_home_cache() {
        let a = avc(CONTAINER_HOME);
        let r = root("/home/a/.cache/go-build");
        let d = diagnose(&DiagnosisInput {
            expected_label: Some("cache_home_t"),
            cache_root: Some(&r),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::ContainerBuildWithoutRelabel);
        assert!(d.fixes[0].contains("/home/a/.cache/go-build:CONTAINER_PATH:Z"));
        assert_eq!(
            d.fixes[1..],
            [
                "semanage fcontext -a -t container_file_t '/home/a/\\.cache/go-build(/.*)?'",
                "restorecon -Rv /home/a/.cache/go-build"
            ]
        );
        assert!(d.explanation.contains(NO_POLICY));
        // The corpus's own go denial (podman#14964): a cache mount labeled container_var_run_t.
        let a = avc(&corpus_line("go-toolchain-avc-excerpts.log", "unlink"));
        let d = diagnose(&DiagnosisInput {
            verdict: Some(&PolicyVerdict::MissingAllow),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::ContainerBuildWithoutRelabel);
        assert!(
            d.explanation
                .contains("missing type enforcement allow rule")
        );
    }

    #[test]
    fn container_mcs_categories_differ() {
        let a = avc(
            "type=AVC msg=audit(1700000400.000:13): avc:  denied  { write } for  pid=5 comm=\"go\" path=\"/srv/gomod/cache/download\" dev=\"dm-0\" ino=8 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:container_file_t:s0:c7,c9 tclass=dir permissive=0\n",
        );
        let d = diagnose(&DiagnosisInput::new(&a));
        assert_eq!(d.kind, DiagnosisKind::Constraint);
        assert!(d.summary.contains("s0:c1,c2 vs cache s0:c7,c9"));
        assert!(d.fixes[0].contains(":z"));
        assert_eq!(d.fixes[1], "chcon -R -l s0 /srv/gomod/cache/download");
        // A policy that says something else wins.
        let d = diagnose(&DiagnosisInput {
            verdict: Some(&PolicyVerdict::MissingAllow),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::MissingAllowRule);
    }

    #[test]
    fn confined_service_on_home_cache() {
        let a = avc(
            "type=AVC msg=audit(1700000500.000:14): avc:  denied  { add_name } for  pid=6 comm=\"go\" name=\"trim.txt\" dev=\"dm-0\" ino=12 scontext=system_u:system_r:gitlab_runner_t:s0 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n",
        );
        let r = root("/home/ci/.cache/go-build");
        let d = diagnose(&DiagnosisInput {
            cache_root: Some(&r),
            ..DiagnosisInput::new(&a)
        });
        assert_eq!(d.kind, DiagnosisKind::ConfinedServiceOnHomeCache);
        assert!(d.fixes[0].contains("Environment=GOCACHE="));
        assert!(d.fixes[1].contains("container_file_t '/home/ci/\\.cache/go-build(/.*)?'"));
        // The user's own shell writing its home cache is not this case.
        let user = CONTAINER_HOME.replace(
            "system_u:system_r:container_t:s0:c1,c2",
            "unconfined_u:unconfined_r:unconfined_t:s0",
        );
        let d = diagnose(&DiagnosisInput::new(&avc(&user)));
        assert_eq!(d.kind, DiagnosisKind::Unexplained);
    }

    #[test]
    fn test_binary_executed_from_tmp() {
        let a = avc(
            "type=AVC msg=audit(1700000600.000:15): avc:  denied  { execute } for  pid=7 comm=\"go\" path=\"/tmp/go-build2841/b001/pkg.test\" dev=\"tmpfs\" ino=44 scontext=user_u:user_r:user_t:s0 tcontext=user_u:object_r:user_tmp_t:s0 tclass=file permissive=0\n",
        );
        let d = diagnose(&DiagnosisInput::new(&a));
        assert_eq!(d.kind, DiagnosisKind::TestBinaryExecFromTmp);
        assert!(d.fixes.iter().any(|f| f.contains("go env -w GOTMPDIR=")));
        // comm=*.test with execute_no_trans, no path.
        let b = avc(
            "type=AVC msg=audit(1700000600.000:16): avc:  denied  { execute_no_trans } for  pid=8 comm=\"cache.test\" name=\"cache.test\" dev=\"tmpfs\" ino=45 scontext=user_u:user_r:user_t:s0 tcontext=system_u:object_r:tmp_t:s0 tclass=file permissive=0\n",
        );
        assert_eq!(
            diagnose(&DiagnosisInput::new(&b)).kind,
            DiagnosisKind::TestBinaryExecFromTmp
        );
        // Some other program executing from /tmp is not Go's.
        let c = avc(
            "type=AVC msg=audit(1700000600.000:17): avc:  denied  { execute } for  pid=9 comm=\"sh\" path=\"/tmp/x.sh\" dev=\"tmpfs\" ino=46 scontext=user_u:user_r:user_t:s0 tcontext=user_u:object_r:user_tmp_t:s0 tclass=file permissive=0\n",
        );
        assert_eq!(
            diagnose(&DiagnosisInput::new(&c)).kind,
            DiagnosisKind::Unexplained
        );
    }

    #[test]
    fn other_verdicts_and_granted() {
        let a = avc(&corpus_line("auparse-test.log", "avc:"));
        let cases = [
            (PolicyVerdict::Rbac, DiagnosisKind::RoleNotAuthorized),
            (PolicyVerdict::Bounds, DiagnosisKind::BoundsViolation),
            (
                PolicyVerdict::Allowed,
                DiagnosisKind::AllowedByCurrentPolicy,
            ),
            (
                PolicyVerdict::Unknown(UnknownReason::SourceContext),
                DiagnosisKind::UnknownToPolicy,
            ),
        ];
        for (v, kind) in cases {
            let d = diagnose(&DiagnosisInput {
                verdict: Some(&v),
                ..DiagnosisInput::new(&a)
            });
            assert_eq!(d.kind, kind, "{v:?}");
            assert!(
                d.explanation.contains("postfix_pickup_t"),
                "{}",
                d.explanation
            );
        }
        let g = avc(&corpus_line("hillu-parser-testdata-lines.log", "granted"));
        assert_eq!(
            diagnose(&DiagnosisInput::new(&g)).kind,
            DiagnosisKind::NotDenied
        );
    }
}
