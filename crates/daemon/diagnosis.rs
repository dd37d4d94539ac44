//! Diagnoses of stored denials for the API and the event stream: gathers the
//! facts goguard-diagnose needs for one denial and asks it. Returns domain values
//! ([`DiagnosedDenial`]); `pb` makes messages of them.
//!
//! Facts per denial: the AVC (re-parsed from the row's `last_raw` with
//! goguard-audit), the cache root holding the target, the label file_contexts
//! expects there and the target's owner/mode against the root's expected
//! state (goguard-policy's `evaluate`, the same rules scans use), and the
//! binary policy's verdict. The policy ([`Diagnoser`]) is loaded once at start
//! and again on SIGHUP: `[selinux] policy`, else `/sys/fs/selinux/policy`,
//! else none. Verdicts flip every boolean of the policy, so they are cached
//! per (scontext, tcontext, tclass, permissions) in a bounded cache.
//!
//! Never follows a symlink or leaves a root: the target is opened beneath its
//! root with goguard-fs (`openat2` BENEATH | NO_SYMLINKS | NO_XDEV), read
//! only; targets outside every root are judged from the AVC alone. Never
//! changes anything. The functions that touch the filesystem are blocking:
//! callers run them in `spawn_blocking`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use goguard_audit::Avc;
use goguard_diagnose::{
    CacheRootFacts, CacheRootKind, DiagnosisInput, NO_POLICY, OwnerFacts, Ownership, Policy,
    PolicyVerdict,
};
use goguard_fs::FileKind;
use goguard_policy::drift::Remedy;
use goguard_policy::{CacheRoot, DriftKind, RootKind};
use goguard_store::DenialRow;

use crate::config::Config;
use crate::roots::CacheState;

/// Where the kernel exposes the loaded policy.
const LOADED_POLICY: &str = "/sys/fs/selinux/policy";
/// Distinct (scontext, tcontext, tclass, permissions) verdicts kept.
const VERDICT_CACHE: usize = 4096;

/// (scontext, tcontext, tclass, sorted permissions).
type VerdictKey = (String, String, String, Vec<String>);

/// The binary policy in force for diagnoses, and the verdicts asked of it.
pub struct Diagnoser {
    /// `None`: label and owner analysis only.
    policy: Option<Policy>,
    /// "loaded policy", "policy FILE", or why there is none (API `policy_source`).
    source: String,
    /// Bounded: the oldest verdict goes first.
    verdicts: Mutex<VerdictCache>,
}

#[derive(Default)]
struct VerdictCache {
    map: HashMap<VerdictKey, Option<PolicyVerdict>>,
    order: VecDeque<VerdictKey>,
}

impl Diagnoser {
    /// Loads the policy `config` names, else the kernel's loaded one, else
    /// none. A policy that cannot be read or parsed is logged and left out:
    /// diagnoses go on with labels and owners. Blocking (reads the file).
    pub fn load(config: &Config) -> Diagnoser {
        let (path, name) = match &config.selinux.policy.0 {
            Some(p) => (p.clone(), format!("policy {}", p.display())),
            None if Path::new(LOADED_POLICY).exists() => {
                (PathBuf::from(LOADED_POLICY), "loaded policy".to_owned())
            }
            None => return Diagnoser::without_policy(NO_POLICY.to_owned()),
        };
        let started = std::time::Instant::now();
        let loaded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Policy::from_bytes(&bytes).map_err(|e| e.to_string()));
        match loaded {
            Ok(policy) => {
                tracing::info!(
                    path = %path.display(),
                    booleans = policy.booleans().len(),
                    ms = started.elapsed().as_millis() as u64,
                    "SELinux policy loaded for denial diagnoses"
                );
                Diagnoser {
                    policy: Some(policy),
                    source: name,
                    verdicts: Mutex::default(),
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot load the SELinux policy; diagnoses use labels and owners only");
                Diagnoser::without_policy(format!("{name} unusable ({e}); {NO_POLICY}"))
            }
        }
    }

    /// A diagnoser that never consults a policy; `why` becomes `policy_source`.
    pub fn without_policy(why: String) -> Diagnoser {
        Diagnoser {
            policy: None,
            source: why,
            verdicts: Mutex::default(),
        }
    }

    /// The verdict for `avc`, cached; `None` without a policy or when the AVC
    /// lacks contexts or class.
    fn verdict(&self, avc: &Avc) -> Option<PolicyVerdict> {
        let policy = self.policy.as_ref()?;
        let mut perms = avc.permissions.clone();
        perms.sort();
        perms.dedup();
        let key: VerdictKey = (
            avc.scontext.clone()?,
            avc.tcontext.clone()?,
            avc.tclass.clone()?,
            perms,
        );
        if let Some(v) = self.verdicts.lock().expect("verdict cache").map.get(&key) {
            return v.clone();
        }
        let v = policy.verdict_for(avc);
        let mut cache = self.verdicts.lock().expect("verdict cache");
        if cache.order.len() >= VERDICT_CACHE
            && let Some(old) = cache.order.pop_front()
        {
            cache.map.remove(&old);
        }
        if cache.map.insert(key.clone(), v.clone()).is_none() {
            cache.order.push_back(key);
        }
        v
    }
}

/// The roots and file_contexts a batch of diagnoses is judged against (a
/// copy, so no lock is held while the filesystem is read).
pub struct RootsSnapshot {
    pub roots: Vec<CacheRoot>,
    pub file_contexts: Option<PathBuf>,
}

impl RootsSnapshot {
    pub fn of(caches: &CacheState) -> RootsSnapshot {
        RootsSnapshot {
            roots: caches.roots.iter().map(|r| r.root.clone()).collect(),
            file_contexts: caches.file_contexts.clone(),
        }
    }

    /// The innermost root holding `path`.
    fn root_for(&self, path: &Path) -> Option<&CacheRoot> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(&r.path))
            .max_by_key(|r| r.path.components().count())
    }
}

/// A stored denial and its diagnosis.
#[derive(Debug, Clone)]
pub struct DiagnosedDenial {
    pub row: DenialRow,
    /// `None` when the row's AVC could not be read again, or diagnosing failed.
    pub diagnosis: Option<Diagnosis>,
}

/// goguard-diagnose's answer and the policy it consulted.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub report: goguard_diagnose::Diagnosis,
    /// "loaded policy", "policy FILE", or why there is none.
    pub policy_source: String,
}

/// The rows, each with its diagnosis (computed on a blocking thread).
pub async fn with_diagnoses(
    diagnoser: Arc<Diagnoser>,
    roots: RootsSnapshot,
    rows: Vec<DenialRow>,
) -> Result<Vec<DiagnosedDenial>, tokio::task::JoinError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let diagnoses = diagnose_rows(&diagnoser, &roots, &rows);
        tracing::debug!(
            denials = rows.len(),
            us = started.elapsed().as_micros() as u64,
            "denials diagnosed"
        );
        rows.into_iter()
            .zip(diagnoses)
            .map(|(row, diagnosis)| DiagnosedDenial { row, diagnosis })
            .collect()
    })
    .await
}

/// Diagnoses each row (same order). Blocking: reads targets inside roots.
pub fn diagnose_rows(
    diagnoser: &Diagnoser,
    roots: &RootsSnapshot,
    rows: &[DenialRow],
) -> Vec<Option<Diagnosis>> {
    // Opened lazily: only a target inside a root needs file_contexts.
    let mut contexts: Option<Option<goguard_fs::FileContexts>> = None;
    rows.iter()
        .map(|row| {
            let avc = avc_of(row)?;
            let path = avc.path.clone().filter(|p| p.is_absolute());
            let root = path.as_deref().and_then(|p| roots.root_for(p));
            let facts = match (root, &path) {
                (Some(root), Some(path)) => {
                    let fc = contexts.get_or_insert_with(|| {
                        roots
                            .file_contexts
                            .as_deref()
                            .and_then(|p| goguard_fs::FileContexts::open_full(p).ok())
                    });
                    target_facts(root, fc.as_ref(), path)
                }
                _ => TargetFacts::default(),
            };
            let root_facts = root.map(|r| CacheRootFacts {
                path: r.path.clone(),
                kind: cache_root_kind(r.kind),
            });
            let verdict = diagnoser.verdict(&avc);
            let d = goguard_diagnose::diagnose(&DiagnosisInput {
                expected_label: facts.expected_label.as_deref(),
                owner: facts.owner.as_ref(),
                verdict: verdict.as_ref(),
                cache_root: root_facts.as_ref(),
                ..DiagnosisInput::new(&avc)
            });
            Some(Diagnosis {
                report: d,
                policy_source: diagnoser.source.clone(),
            })
        })
        .collect()
}

/// The row's AVC from its last event, with the stored target as its path
/// when the record had none (a path found by inode, see `resolve`).
fn avc_of(row: &DenialRow) -> Option<Avc> {
    let (events, _) = goguard_audit::parse_log(row.last_raw.as_bytes());
    let mut avcs: Vec<Avc> = events.iter().flat_map(|e| e.avcs()).collect();
    let wanted = |a: &Avc| {
        let k = a.dedup_key();
        k.scontext == row.key.scontext
            && k.tcontext == row.key.tcontext
            && k.tclass == row.key.tclass
            && k.permissions.join(" ") == row.key.permissions
    };
    let i = avcs
        .iter()
        .position(wanted)
        .or_else(|| avcs.iter().position(Avc::is_denied))?;
    let mut avc = avcs.swap_remove(i);
    if avc.path.is_none() && row.key.target.starts_with('/') {
        avc.path = Some(PathBuf::from(&row.key.target));
    }
    Some(avc)
}

/// What the filesystem says about a target inside a root.
#[derive(Default)]
struct TargetFacts {
    expected_label: Option<String>,
    owner: Option<OwnerFacts>,
}

/// Opens `path` beneath `root` (no symlink, no mount crossing) and judges it
/// with the root's rules. Read-only.
fn target_facts(
    root: &CacheRoot,
    contexts: Option<&goguard_fs::FileContexts>,
    path: &Path,
) -> TargetFacts {
    let Ok(rel) = path.strip_prefix(&root.path) else {
        return TargetFacts::default();
    };
    let Ok(dir) = crate::roots::open_root(root) else {
        return TargetFacts::default();
    };
    let Ok(mut entry) = dir.open_entry(rel) else {
        return TargetFacts::default(); // gone, or refused (a symlink on the way)
    };
    let meta = *entry.meta();
    let (label, looked_up) = match contexts {
        Some(fc) if meta.kind != FileKind::Symlink => (
            entry.label().ok().flatten(),
            fc.lookup(
                &dir.abs_path(rel),
                crate::repair::st_mode(meta.kind, meta.mode),
            ),
        ),
        _ => (None, None),
    };
    drop(entry);
    let obs = crate::repair::observe_entry(
        rel,
        &meta,
        (label, looked_up.clone()),
        contexts,
        (Vec::new(), Vec::new()),
        None,
    );
    let findings = goguard_policy::evaluate(root, &obs);
    let observed = Ownership {
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
    };
    let expected = expected_ownership(observed, &findings);
    let relabel = findings.iter().find_map(|f| match &f.remedy {
        Some(Remedy::Relabel(ctx)) if f.kind == DriftKind::WrongLabel => Some(ctx.clone()),
        _ => None,
    });
    TargetFacts {
        expected_label: relabel.or(looked_up),
        owner: Some(OwnerFacts {
            path: path.to_path_buf(),
            observed,
            expected,
        }),
    }
}

/// The owner, group and mode the root's rules want, from the remedies of the
/// findings (what a repair would set); unchanged parts stay as observed.
fn expected_ownership(observed: Ownership, findings: &[goguard_policy::Finding]) -> Ownership {
    let mut out = observed;
    for f in findings {
        match f.remedy {
            Some(Remedy::Chown { uid, gid }) => {
                out.uid = uid.unwrap_or(out.uid);
                out.gid = gid.unwrap_or(out.gid);
            }
            Some(Remedy::ModeBits { set, clear, .. }) => {
                out.mode = (out.mode | set) & !clear;
            }
            _ => {}
        }
    }
    out
}

fn cache_root_kind(kind: RootKind) -> CacheRootKind {
    match kind {
        RootKind::GoCache => CacheRootKind::BuildCache,
        RootKind::GoModCache => CacheRootKind::ModuleCache,
        RootKind::GoPath => CacheRootKind::GoPath,
        RootKind::Custom => CacheRootKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goguard_policy::{Finding, Severity};

    fn finding(kind: DriftKind, remedy: Remedy) -> Finding {
        Finding {
            rel_path: PathBuf::new(),
            kind,
            observed: String::new(),
            expected: String::new(),
            severity: Severity::Error,
            remedy: Some(remedy),
        }
    }

    #[test]
    fn expected_ownership_applies_the_remedies() {
        let observed = Ownership {
            uid: 0,
            gid: 0,
            mode: 0o777,
        };
        let findings = [
            finding(
                DriftKind::ForeignOwner,
                Remedy::Chown {
                    uid: Some(1000),
                    gid: None,
                },
            ),
            finding(
                DriftKind::WorldWritable,
                Remedy::ModeBits {
                    from: 0o777,
                    set: 0,
                    clear: 0o002,
                    dir: false,
                },
            ),
        ];
        let e = expected_ownership(observed, &findings);
        assert_eq!(
            e,
            Ownership {
                uid: 1000,
                gid: 0,
                mode: 0o775
            }
        );
        assert_eq!(expected_ownership(observed, &[]), observed);
    }

    #[test]
    fn verdicts_without_policy_are_none_and_say_why() {
        let d = Diagnoser::without_policy(NO_POLICY.to_owned());
        let (events, _) = goguard_audit::parse_log(
            b"type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1 comm=\"go\" name=\"x\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=dir permissive=0\n",
        );
        let avc = &events[0].avcs()[0];
        assert_eq!(d.verdict(avc), None);
        assert_eq!(d.source, NO_POLICY);
    }
}
