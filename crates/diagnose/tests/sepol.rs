//! libsepol verdicts on a real compiled policy, with the real audit2why and audit2allow as
//! oracles.
//!
//! `tests/fixtures/go-mini.conf` is a tiny MLS policy (a Go build domain, its cache, two
//! booleans guarding cache writes, a boolean that is on, a dontaudit rule, a `constrain`
//! on the user, an `mlsconstrain` on levels, a role transition without a role allow). The
//! tests compile it with the real `checkpolicy -M`, load the binary with
//! [`Policy::from_bytes`], and
//! 1. `verdicts_match_audit2why`: for accesses covering every verdict, compare
//!    [`Policy::verdict`] with libselinux's own `selinux.audit2why.analyze` (the C code
//!    audit2why and audit2allow run) on the same binary, and check the fixture exercises
//!    the kind it was written for;
//! 2. `draft_with_verdicts_equals_audit2allow_p`: a log of those denials drafted with the
//!    verdicts equals `audit2allow -p policy.bin -i LOG` byte for byte (the `#!!!!` notes,
//!    the split of rules by verdict, the dropped invalid AVCs);
//! 3. `diagnosis_from_real_verdicts`: the verdicts drive [`diagnose`];
//! 4. `bad_policies_are_errors`.
//!
//! Needs `/usr/bin/checkpolicy` (checkpolicy), `/usr/bin/python3` with python3-selinux, and
//! `/usr/bin/audit2allow` (policycoreutils-python-utils). Writes only to temporary dirs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use goguard_audit::{AuditEvent, Avc, parse_log};
use goguard_diagnose::{
    BooleanFix, DiagnosisInput, DiagnosisKind, Policy, PolicyDraft, PolicyVerdict, UnknownReason,
    diagnose,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/go-mini.conf");

/// Compiles the fixture with the real checkpolicy; returns the temp dir and the binary.
fn compiled() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    assert!(
        Path::new("/usr/bin/checkpolicy").exists(),
        "needs /usr/bin/checkpolicy (apt-get install checkpolicy)"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("policy.bin");
    let out = Command::new("/usr/bin/checkpolicy")
        .arg("-M")
        .arg("-o")
        .arg(&bin)
        .arg(FIXTURE)
        .output()
        .unwrap();
    assert!(out.status.success(), "checkpolicy: {out:?}");
    let bytes = std::fs::read(&bin).unwrap();
    (dir, bin, bytes)
}

/// Accesses and the verdict kind each was written to produce (audit2why's code).
const CASES: &[(&str, &str, &str, &[&str], i32)] = &[
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:cache_t:s0",
        "file",
        &["read", "open"],
        0,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:cache_t:s0",
        "file",
        &["execute"],
        0,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:cache_t:s0",
        "file",
        &["write"],
        3,
    ),
    (
        "go_u:go_r:go_t:s0",
        "other_u:object_r:tmp_t:s0",
        "file",
        &["write"],
        4,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:tmp_t:s1",
        "file",
        &["read"],
        4,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:other_t:s0",
        "file",
        &["read"],
        1,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:other_t:s0",
        "file",
        &["execute"],
        2,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:other_r:other2_t:s0",
        "process",
        &["transition"],
        5,
    ),
    (
        "go_u:go_r:nope_t:s0",
        "go_u:object_r:other_t:s0",
        "file",
        &["read"],
        -2,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:nope_t:s0",
        "file",
        &["read"],
        -3,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:other_t:s0",
        "blah",
        &["read"],
        -4,
    ),
    (
        "go_u:go_r:go_t:s0",
        "go_u:object_r:other_t:s0",
        "file",
        &["frob"],
        -5,
    ),
];

/// `selinux.audit2why.analyze` for each case: (code, data as JSON).
fn audit2why_oracle(bin: &Path) -> Vec<(i32, String)> {
    let script = r#"
import sys, json, selinux.audit2why as a
a.init(sys.argv[1])
for line in sys.stdin:
    s, t, c, p = line.split()
    code, data = a.analyze(s, t, c, p.split(','))
    print('%d\t%s' % (code, json.dumps(data)))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-Es", "-c", script])
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with python3-selinux");
    let input: String = CASES
        .iter()
        .map(|(s, t, c, p, _)| format!("{s} {t} {c} {}\n", p.join(",")))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "audit2why oracle: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (code, data) = l.split_once('\t').unwrap();
            (code.parse().unwrap(), data.to_owned())
        })
        .collect()
}

/// Our verdict's data in the oracle's JSON shape.
fn data_json(v: &PolicyVerdict) -> String {
    match v {
        PolicyVerdict::Boolean(b) => format!(
            "[{}]",
            b.iter()
                .map(|b| format!("[\"{}\", {}]", b.name, u8::from(b.value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        PolicyVerdict::Constraint(text) => format!("{text:?}"),
        _ => "null".to_owned(),
    }
}

#[test]
fn verdicts_match_audit2why() {
    let (_dir, bin, bytes) = compiled();
    let policy = Policy::from_bytes(&bytes).unwrap();
    assert!(policy.mls_enabled());
    let mut bools = policy.booleans(); // libsepol's (hash table) order
    bools.sort();
    assert_eq!(
        bools,
        [
            ("go_cache_rw".to_owned(), false),
            ("go_can_write".to_owned(), false),
            ("go_exec".to_owned(), true)
        ]
    );
    let oracle = audit2why_oracle(&bin);
    assert_eq!(oracle.len(), CASES.len());
    let mut first = Vec::new();
    for ((s, t, c, p, designed), (code, data)) in CASES.iter().zip(&oracle) {
        let v = policy.verdict(s, t, c, p);
        first.push(v.clone());
        assert_eq!(
            v.audit2why_code(),
            *code,
            "{s} {t} {c} {p:?}: {v:?} vs audit2why {code} {data}"
        );
        assert_eq!(
            *code, *designed,
            "fixture no longer produces the intended case"
        );
        assert_eq!(data_json(&v), *data, "{s} {t} {c} {p:?}");
    }
    // The same policy answers the same again (booleans restored, SID table reused).
    for ((s, t, c, p, _), v) in CASES.iter().zip(&first) {
        assert_eq!(policy.verdict(s, t, c, p), *v);
    }
    let PolicyVerdict::Boolean(b) = &first[2] else {
        panic!("{:?}", first[2]);
    };
    let mut names: Vec<&BooleanFix> = b.iter().collect();
    names.sort();
    assert_eq!(
        names,
        [
            &BooleanFix {
                name: "go_cache_rw".into(),
                value: true
            },
            &BooleanFix {
                name: "go_can_write".into(),
                value: true
            },
        ]
    );
    // Two policies in one process do not disturb each other.
    let other = Policy::from_bytes(&bytes).unwrap();
    drop(other);
    assert_eq!(
        policy.verdict(CASES[0].0, CASES[0].1, "file", &["read"]),
        PolicyVerdict::Allowed
    );
}

/// AVC lines for the cases the policy can judge or that audit2allow drops.
fn case_log() -> String {
    let mut log = String::new();
    for (i, (s, t, c, p, _)) in CASES.iter().enumerate() {
        log.push_str(&format!(
            "type=AVC msg=audit(1700000000.{i:03}:{}): avc:  denied  {{ {} }} for  pid=42 comm=\"go\" name=\"x\" scontext={s} tcontext={t} tclass={c} permissive=0\n",
            100 + i,
            p.join(" ")
        ));
    }
    log
}

fn avcs(log: &str) -> Vec<Avc> {
    let (events, _) = parse_log(log.as_bytes());
    events.iter().flat_map(AuditEvent::avcs).collect()
}

#[test]
fn draft_with_verdicts_equals_audit2allow_p() {
    let (dir, bin, bytes) = compiled();
    let policy = Policy::from_bytes(&bytes).unwrap();
    let log = case_log();
    let log_path = dir.path().join("audit.log");
    std::fs::write(&log_path, &log).unwrap();
    let mut draft = PolicyDraft::new();
    for a in avcs(&log) {
        let v = policy.verdict_for(&a).expect("contexts and class");
        draft.add_avc(&a, Some(&v));
    }
    assert!(
        Path::new("/usr/bin/audit2allow").exists(),
        "needs /usr/bin/audit2allow (apt-get install policycoreutils-python-utils)"
    );
    let out = Command::new("/usr/bin/audit2allow")
        .arg("-p")
        .arg(&bin)
        .arg("-i")
        .arg(&log_path)
        .env("LC_ALL", "C")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let theirs = String::from_utf8(out.stdout).unwrap();
    assert!(theirs.contains("#!!!! This avc can be allowed using one of the these booleans"));
    assert_eq!(draft.render_rules(), theirs);
}

#[test]
fn diagnosis_from_real_verdicts() {
    let (_dir, _bin, bytes) = compiled();
    let policy = Policy::from_bytes(&bytes).unwrap();
    let expect = [
        (2, DiagnosisKind::BooleanWouldAllow),
        (3, DiagnosisKind::Constraint),
        (4, DiagnosisKind::Constraint),
        (6, DiagnosisKind::MissingAllowRule),
        (7, DiagnosisKind::RoleNotAuthorized),
        (8, DiagnosisKind::UnknownToPolicy),
    ];
    let all = avcs(&case_log());
    for (i, kind) in expect {
        let a = &all[i];
        let v = policy.verdict(
            a.scontext.as_deref().unwrap(),
            a.tcontext.as_deref().unwrap(),
            a.tclass.as_deref().unwrap(),
            &a.permissions,
        );
        let d = diagnose(&DiagnosisInput {
            verdict: Some(&v),
            ..DiagnosisInput::new(a)
        });
        assert_eq!(d.kind, kind, "case {i}: {v:?} {d:#?}");
        assert!(d.policy_checked);
        if let PolicyVerdict::Boolean(b) = &v {
            let mut fixes = d.fixes.clone();
            fixes.sort();
            assert_eq!(
                fixes,
                ["setsebool -P go_cache_rw 1", "setsebool -P go_can_write 1"]
            );
            assert_eq!(
                d.fixes,
                b.iter().map(BooleanFix::command).collect::<Vec<_>>()
            );
        }
        if i == 4 {
            assert!(d.summary.contains("MLS"), "{}", d.summary);
            assert!(
                d.explanation.contains("mlsconstrain file { read }"),
                "{}",
                d.explanation
            );
        }
    }
    assert_eq!(
        policy.verdict(
            "go_u:go_r:go_t:s0",
            "go_u:object_r:cache_t:s0",
            "file",
            &["nope"]
        ),
        PolicyVerdict::Unknown(UnknownReason::Permission("nope".into()))
    );
}

#[test]
fn bad_policies_are_errors() {
    assert!(Policy::from_bytes(b"").is_err());
    assert!(Policy::from_bytes(b"not a policy at all, just bytes").is_err());
    let (_dir, _bin, bytes) = compiled();
    assert!(Policy::from_bytes(&bytes[..bytes.len() / 2]).is_err());
}
