//! The drafter against the real tools, on the real-log corpus (`crates/audit/tests/corpus`,
//! a copy of `../shared/corpus/audit`; its `PROVENANCE.md` says how `expected/` was made).
//!
//! 1. `rules_equal_audit2allow_expected`: for every `<short>.log`, goguard-audit parses the
//!    log, [`PolicyDraft::from_events`] drafts, and [`PolicyDraft::render_rules`] must equal
//!    `expected/<short>.audit2allow.txt` (`audit2allow -i LOG`, no policy) byte for byte,
//!    except for the differences [`allowed`] lists with their reasons. The test fails when a
//!    listed difference disappears too.
//! 2. `module_equals_live_audit2allow_m`: [`PolicyDraft::render_module`] against the real
//!    `audit2allow -m goguard_test -i LOG` run now (no policy, as PROVENANCE.md describes),
//!    with the same allow-list plus the `require` type order (Python set order, random per
//!    run).
//! 3. `modules_compile_with_checkmodule`: every non-empty corpus draft, and a draft with
//!    label advice, compiles with `checkmodule -M -m` (Debian checkpolicy); the one that
//!    cannot is listed with the reason and must fail for that reason.
//!
//! Needs `/usr/bin/audit2allow` (policycoreutils-python-utils, python3-sepolgen,
//! python3-selinux) and `/usr/bin/checkmodule` (checkpolicy). Reads the corpus, writes only
//! inside temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command;

use goguard_audit::parse_log;
use goguard_diagnose::{CacheRootLabel, ModuleName, PolicyDraft};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../audit/tests/corpus");

/// A deliberate difference from audit2allow on one corpus file.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// Lines audit2allow prints and goguard does not, exactly once each: (rules output,
    /// additional lines of the module form).
    OnlyAudit2allow {
        lines: &'static [&'static str],
        module_lines: &'static [&'static str],
        /// Why; printed when the entry goes stale.
        reason: &'static str,
    },
    /// The order of `role R types T;` lines of one role: sepolgen iterates a Python set
    /// (hash order, randomized per process), goguard keeps first-seen order.
    RoleTypeOrder,
}

fn allowed(short: &str) -> &'static [Allowed] {
    match short {
        "go-toolchain-avc-excerpts" => &[Allowed::OnlyAudit2allow {
            lines: &["allow container_t container_var_run_t:dir write;"],
            module_lines: &["\tclass dir write;", "\ttype container_var_run_t;"],
            reason: "line 2 is a journald line (`... kernel: audit: type=1400 ... AVC avc:  denied`, \
                     no `type=AVC msg=audit(...)` header); sepolgen takes any line with an `avc:` \
                     token, goguard-audit reads audit records only (crates/audit, not changed here)",
        }],
        "sepolgen-httpd" => &[Allowed::RoleTypeOrder],
        _ => &[],
    }
}

/// Panics with the first differing line and a few lines around it (whole outputs are
/// thousands of lines long).
fn assert_same(ours: &str, theirs: &str, what: &str) {
    if ours == theirs {
        return;
    }
    let a: Vec<&str> = ours.split('\n').collect();
    let b: Vec<&str> = theirs.split('\n').collect();
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = i.saturating_sub(3);
    panic!(
        "{what}: first difference at line {}\n--- goguard\n{}\n--- audit2allow\n{}",
        i + 1,
        a[from..(i + 4).min(a.len())].join("\n"),
        b[from..(i + 4).min(b.len())].join("\n"),
    );
}

fn logs() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(CORPUS)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    assert!(v.len() >= 19, "corpus missing: {v:?}");
    v
}

fn draft_of(log: &Path) -> PolicyDraft {
    let bytes = std::fs::read(log).expect("log");
    let (events, _) = parse_log(&bytes);
    PolicyDraft::from_events(&events)
}

fn expected(short: &str, suffix: &str) -> Option<String> {
    std::fs::read_to_string(
        Path::new(CORPUS)
            .join("expected")
            .join(format!("{short}{suffix}")),
    )
    .ok()
}

/// Removes each of `lines` from `text` (each must be there exactly once).
fn remove_lines(text: &str, lines: &[&str], short: &str, reason: &str) -> String {
    let mut v: Vec<&str> = text.split_inclusive('\n').collect();
    for l in lines {
        let hits: Vec<usize> = (0..v.len())
            .filter(|&i| v[i].trim_end_matches('\n') == *l)
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{short}: listed audit2allow-only line {l:?} appears {} times in its output: \
             the allow-list entry ({reason}) is stale",
            hits.len()
        );
        v.remove(hits[0]);
    }
    v.concat()
}

/// Sorts the lines of each blank-line-separated group after `#============= ROLES`, and the
/// `\ttype` lines of a `require` block.
fn normalize_sets(text: &str, roles: bool, require_types: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut group: Vec<String> = Vec::new();
    let mut in_roles = false;
    let mut in_require = false;
    let flush = |group: &mut Vec<String>, out: &mut Vec<String>| {
        group.sort();
        out.append(group);
    };
    for line in text.split('\n') {
        if in_require
            && (line.starts_with("\ttype ") || line.starts_with("\trole "))
            && require_types
        {
            group.push(line.to_owned());
            continue;
        }
        if in_roles && line.starts_with("role ") && roles {
            group.push(line.to_owned());
            continue;
        }
        flush(&mut group, &mut out);
        if line == "require {" {
            in_require = true;
        } else if line == "}" {
            in_require = false;
        } else if line == "#============= ROLES ==============" {
            in_roles = true;
        }
        out.push(line.to_owned());
    }
    flush(&mut group, &mut out);
    out.join("\n")
}

fn apply_allowed(short: &str, theirs: &str, ours: &str, module: bool) -> (String, String) {
    let mut theirs = theirs.to_owned();
    let mut ours = ours.to_owned();
    for a in allowed(short) {
        match *a {
            Allowed::OnlyAudit2allow {
                lines,
                module_lines,
                reason,
            } => {
                for l in lines.iter().chain(if module { module_lines } else { &[] }) {
                    assert!(
                        !ours.split('\n').any(|o| o == *l),
                        "{short}: goguard now prints {l:?}: remove it from the allow-list ({reason})"
                    );
                }
                theirs = remove_lines(&theirs, lines, short, reason);
                if module {
                    theirs = remove_lines(&theirs, module_lines, short, reason);
                }
            }
            Allowed::RoleTypeOrder => {
                theirs = normalize_sets(&theirs, true, false);
                ours = normalize_sets(&ours, true, false);
            }
        }
    }
    (theirs, ours)
}

/// True when audit2allow said "Nothing to do": no line of the input was an SELinux message
/// (an `avc:` / `security_compute_sid:` / policy-load token), so it printed nothing. The
/// draft must then be empty; a caller prints nothing for an empty draft of such input.
fn nothing_to_do(short: &str) -> bool {
    expected(short, ".audit2allow.stderr.txt").is_some_and(|e| e.trim() == "Nothing to do")
}

#[test]
fn rules_equal_audit2allow_expected() {
    let mut checked = 0;
    for (short, log) in logs() {
        let theirs = expected(&short, ".audit2allow.txt").expect("expected file");
        let draft = draft_of(&log);
        if nothing_to_do(&short) {
            assert_eq!(theirs, "", "{short}");
            assert!(draft.is_empty(), "{short}: {}", draft.render_rules());
            checked += 1;
            continue;
        }
        let ours = draft.render_rules();
        if allowed(&short).is_empty() {
            assert_same(&ours, &theirs, &short);
        } else {
            assert_ne!(
                ours, theirs,
                "{short}: equal now: remove its allow-list entries"
            );
            let (theirs, ours) = apply_allowed(&short, &theirs, &ours, false);
            assert_same(&ours, &theirs, &format!("{short} (allow-list applied)"));
        }
        checked += 1;
    }
    assert!(checked >= 19);
}

/// The real audit2allow, without a policy, as PROVENANCE.md ran it.
fn live_audit2allow(args: &[&str]) -> String {
    assert!(
        Path::new("/usr/bin/audit2allow").exists(),
        "needs /usr/bin/audit2allow (apt-get install policycoreutils-python-utils)"
    );
    let out = Command::new("/usr/bin/python3")
        .args([
            "-Es",
            "-c",
            "import sys,runpy,selinux.audit2why as a; a.init=lambda *x:None; \
             sys.argv=['audit2allow']+sys.argv[1:]; \
             runpy.run_path('/usr/bin/audit2allow',run_name='__main__')",
        ])
        .args(args)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .expect("run audit2allow");
    assert!(out.status.success(), "audit2allow {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn module_equals_live_audit2allow_m() {
    let name = ModuleName::new("goguard_test").unwrap();
    let mut checked = 0;
    for (short, log) in logs() {
        if nothing_to_do(&short) {
            continue;
        }
        let theirs = live_audit2allow(&["-m", "goguard_test", "-i", log.to_str().unwrap()]);
        let ours = draft_of(&log).render_module(&name);
        let (theirs, ours) = apply_allowed(&short, &theirs, &ours, true);
        // The type lines of `require` come from a Python set: compared as a set.
        let theirs = normalize_sets(&theirs, true, true);
        let ours = normalize_sets(&ours, true, true);
        assert_same(&ours, &theirs, &format!("{short} -m"));
        checked += 1;
    }
    assert!(checked >= 15);
}

/// `checkmodule -M -m -o DIR/NAME.mod DIR/NAME.te`: Ok(()) or Err(stderr).
fn checkmodule(te: &str, name: &str) -> Result<(), String> {
    assert!(
        Path::new("/usr/bin/checkmodule").exists(),
        "needs /usr/bin/checkmodule (apt-get install checkpolicy)"
    );
    let dir = tempfile::tempdir().unwrap();
    let te_path = dir.path().join(format!("{name}.te"));
    let mod_path = dir.path().join(format!("{name}.mod"));
    std::fs::write(&te_path, te).unwrap();
    let out = Command::new("/usr/bin/checkmodule")
        .arg("-M")
        .arg("-m")
        .arg("-o")
        .arg(&mod_path)
        .arg(&te_path)
        .output()
        .expect("run checkmodule");
    if out.status.success() {
        let len = std::fs::metadata(&mod_path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "checkmodule wrote no module");
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout))
    }
}

/// Drafts that cannot compile as a `.te` module, with the error checkmodule must give.
fn cannot_compile(short: &str) -> Option<&'static str> {
    match short {
        // `my_container.process` is udica's CIL block namespace; in the .te language a
        // dotted name is a typebounds child, and its parent type `my_container` exists in no
        // policy. audit2allow -M fails the same way; such rules need CIL (audit2allow -C).
        "udica-append-avc" => Some("my_container.process is an orphan"),
        _ => None,
    }
}

#[test]
fn modules_compile_with_checkmodule() {
    let name = ModuleName::new("goguard_test").unwrap();
    let mut compiled = 0;
    for (short, log) in logs() {
        let draft = draft_of(&log);
        if draft.is_empty() {
            // Nothing to allow: no module is written (checkmodule rejects an empty one).
            continue;
        }
        let result = checkmodule(&draft.render_module(&name), name.as_str());
        match cannot_compile(&short) {
            None => {
                result.unwrap_or_else(|e| panic!("{short}: checkmodule failed: {e}"));
                compiled += 1;
            }
            Some(why) => {
                let e = result.expect_err("listed as not compilable, but compiled");
                assert!(e.contains(why), "{short}: {e}");
            }
        }
    }
    assert!(compiled >= 14, "{compiled}");

    // Label advice is printed as comments next to the rules and keeps the module valid:
    // the corpus's go denial (podman#14964, `RUN --mount=type=cache` with `go install`)
    // as the kernel logs it with its PATH record, on a home module cache.
    let log = "type=AVC msg=audit(1658150000.123:4567): avc:  denied  { write } for  pid=2282764 comm=\"go\" name=\"mod\" dev=\"dm-1\" ino=103668455 scontext=system_u:system_r:container_t:s0:c771,c834 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n\
type=SYSCALL msg=audit(1658150000.123:4567): arch=c000003e syscall=257 success=no exit=-13 pid=2282764 uid=0 comm=\"go\" exe=\"/usr/local/go/bin/go\"\n\
type=PATH msg=audit(1658150000.123:4567): item=0 name=\"/home/a/go/pkg/mod\" inode=103668455 nametype=PARENT\n";
    let (events, _) = parse_log(log.as_bytes());
    let mut d = PolicyDraft::with_roots(vec![CacheRootLabel {
        path: "/home/a/go/pkg/mod".into(),
        file_contexts_type: Some("cache_home_t".into()),
        declared_type: None,
    }]);
    for e in &events {
        d.add_event(e);
    }
    assert_eq!(d.label_advice().len(), 1, "{}", d.render_rules());
    let te = d.render_module(&name);
    assert!(
        te.contains("#     restorecon -Rv /home/a/go/pkg/mod\n"),
        "{te}"
    );
    checkmodule(&te, name.as_str()).unwrap();
}
