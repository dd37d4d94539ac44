//! Repair plans, end to end on values: drifted entries → findings → plan → the plan applied
//! by a small simulator of the kernel and setfacl (mask recomputation, chown clearing
//! setuid) → no auto-healable finding left, and planning again yields nothing.

use std::path::Path;

use goguard_policy::acl::{AclEntry, AclTag};
use goguard_policy::config::{HealAction, RootKind};
use goguard_policy::drift::{FileType, Observed};
use goguard_policy::roots::CacheRoot;
use goguard_policy::{DriftKind, Operation, evaluate, plan};

fn obs(rel: &str, ft: FileType, uid: u32, gid: u32, mode: u32) -> Observed {
    Observed {
        rel_path: rel.into(),
        file_type: ft,
        uid,
        gid,
        mode,
        acl_access: vec![],
        acl_default: vec![],
        label: None,
        expected_label: None,
        label_customizable: false,
        link_target: None,
        nlink: 1,
    }
}

fn parse_spec(spec: &str) -> (bool, AclTag, Option<u8>) {
    let (default, rest) = match spec.strip_prefix("d:") {
        Some(r) => (true, r),
        None => (false, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let id = |s: &str| s.parse::<u32>().ok();
    let tag = match (parts[0], parts.get(1).copied().unwrap_or("")) {
        ("u", "") => AclTag::UserObj,
        ("u", q) => AclTag::User(id(q).unwrap()),
        ("g", "") => AclTag::GroupObj,
        ("g", q) => AclTag::Group(id(q).unwrap()),
        ("m", _) => AclTag::Mask,
        ("o", _) => AclTag::Other,
        other => panic!("spec {other:?}"),
    };
    let perms = parts.get(2).map(|p| {
        p.chars().fold(0u8, |a, c| {
            a | match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                _ => 0,
            }
        })
    });
    (default, tag, perms)
}

fn base_entries(mode: u32) -> Vec<AclEntry> {
    vec![
        AclEntry {
            tag: AclTag::UserObj,
            perms: ((mode >> 6) & 7) as u8,
        },
        AclEntry {
            tag: AclTag::GroupObj,
            perms: ((mode >> 3) & 7) as u8,
        },
        AclEntry {
            tag: AclTag::Other,
            perms: (mode & 7) as u8,
        },
    ]
}

fn recalc_mask(acl: &mut Vec<AclEntry>) {
    let named = acl.iter().any(|e| e.tag.is_named());
    acl.retain(|e| e.tag != AclTag::Mask);
    if named {
        let m = acl
            .iter()
            .filter(|e| e.tag.in_group_class())
            .fold(0, |a, e| a | e.perms);
        acl.push(AclEntry {
            tag: AclTag::Mask,
            perms: m,
        });
    }
    acl.sort_by_key(|e| e.tag);
}

fn set(acl: &mut Vec<AclEntry>, tag: AclTag, perms: u8) {
    match acl.iter_mut().find(|e| e.tag == tag) {
        Some(e) => e.perms = perms,
        None => acl.push(AclEntry { tag, perms }),
    }
}

/// Applies one operation with kernel/setfacl semantics.
fn apply(o: &mut Observed, op: &Operation) {
    match op {
        Operation::Chown { uid, gid } => {
            if let Some(u) = uid {
                o.uid = *u;
            }
            if let Some(g) = gid {
                o.gid = *g;
            }
            if o.file_type == FileType::Regular {
                // The kernel clears setuid, and setgid when group-exec is set; goguard-fs
                // clears what is left.
                o.mode &= !0o6000;
            }
        }
        Operation::Chmod { set, clear } => {
            let mode = &((o.mode & !clear) | set);
            o.mode = *mode;
            if let Some(m) = o.acl_access.iter_mut().find(|e| e.tag == AclTag::Mask) {
                m.perms = ((mode >> 3) & 7) as u8;
            }
            for e in o.acl_access.iter_mut() {
                match e.tag {
                    AclTag::UserObj => e.perms = ((mode >> 6) & 7) as u8,
                    AclTag::Other => e.perms = (mode & 7) as u8,
                    _ => {}
                }
            }
        }
        Operation::SetAcl { spec } | Operation::RemoveAclEntry { spec } => {
            let (default, tag, perms) = parse_spec(spec);
            let explicit_mask = tag == AclTag::Mask;
            let acl = if default {
                &mut o.acl_default
            } else {
                &mut o.acl_access
            };
            if acl.is_empty() {
                *acl = base_entries(o.mode);
            }
            match (matches!(op, Operation::SetAcl { .. }), perms) {
                (true, Some(p)) => set(acl, tag, p),
                _ => acl.retain(|e| e.tag != tag),
            }
            if !explicit_mask {
                recalc_mask(acl);
            }
            if !default {
                let group = acl
                    .iter()
                    .find(|e| e.tag == AclTag::Mask)
                    .or_else(|| acl.iter().find(|e| e.tag == AclTag::GroupObj))
                    .map_or(0, |e| e.perms as u32);
                o.mode = (o.mode & !0o070) | (group << 3);
            }
        }
        Operation::Relabel { context } => o.label = Some(context.clone()),
    }
}

fn user_root(kind: RootKind) -> CacheRoot {
    CacheRoot::for_user(
        "/home/a/c".into(),
        kind,
        "a",
        1000,
        1000,
        Path::new("/home/a"),
    )
}

fn shared_modcache() -> CacheRoot {
    #[derive(serde::Deserialize)]
    struct W {
        root: goguard_policy::RootDecl,
    }
    let w: W = toml::from_str(
        r#"[root]
path = "/opt/go/pkg/mod"
kind = "gomodcache"
group = "gobuild"
mode = { dir_require = "2070", dir_forbid = "0002", file_require = "0040" }
acl = ["g:gobuild:rwX", "d:g:gobuild:rwX"]
heal = { world_writable = "auto" }
"#,
    )
    .unwrap();
    let accounts = goguard_policy::accounts::Accounts::parse("", "gobuild:x:2000:\n");
    CacheRoot::from_decl(0, &w.root, &accounts).unwrap()
}

fn converge(root: &CacheRoot, mut o: Observed) -> Observed {
    let findings = evaluate(root, &o);
    let p = plan(&findings, &root.heal);
    for op in &p.ops {
        apply(&mut o, &op.op);
    }
    let again = evaluate(root, &o);
    let left: Vec<_> = again
        .iter()
        .filter(|f| root.heal.action(f.kind) == HealAction::Auto)
        .collect();
    assert!(
        left.is_empty(),
        "auto findings left after the plan {:?}: {left:#?}\nentry now {o:#?}",
        p.ops
    );
    let p2 = plan(&again, &root.heal);
    assert!(p2.ops.is_empty(), "second plan not empty: {:?}", p2.ops);
    o
}

#[test]
fn compliant_entries_plan_nothing() {
    let r = user_root(RootKind::GoCache);
    for o in [
        obs("", FileType::Dir, 1000, 1000, 0o755),
        obs("00/ab-a", FileType::Regular, 1000, 1000, 0o644),
    ] {
        assert!(plan(&evaluate(&r, &o), &r.heal).is_empty());
    }
}

#[test]
fn per_user_cache_repairs_converge() {
    let r = user_root(RootKind::GoCache);
    let mut o = obs("3f/x-d", FileType::Regular, 0, 0, 0o644);
    o.label = Some("unconfined_u:object_r:user_tmp_t:s0".into());
    o.expected_label = Some("system_u:object_r:cache_home_t:s0".into());
    let fixed = converge(&r, o.clone());
    assert_eq!((fixed.uid, fixed.gid), (1000, 1000));
    assert_eq!(
        fixed.label.as_deref(),
        Some("unconfined_u:object_r:cache_home_t:s0")
    );
    // The ops name what they fix, chown first.
    let p = plan(&evaluate(&r, &o), &r.heal);
    assert_eq!(
        p.ops[0].op,
        Operation::Chown {
            uid: Some(1000),
            gid: Some(1000)
        }
    );
    assert_eq!(p.ops[0].fixes, vec![DriftKind::ForeignOwner]);
    assert!(matches!(p.ops[1].op, Operation::Relabel { .. }));
    // World-writable is alert-only for a per-user root: reported, not changed.
    let ww = obs("00", FileType::Dir, 1000, 1000, 0o777);
    let p = plan(&evaluate(&r, &ww), &r.heal);
    assert!(p.ops.is_empty());
    assert_eq!(p.alerts[0].kind, DriftKind::WorldWritable);
}

#[test]
fn shared_module_cache_repairs_converge_without_group_write_on_modules() {
    let r = shared_modcache();
    // A 0444 module file extracted by alice: gets read for gobuild, stays 0444.
    let f = converge(
        &r,
        obs(
            "github.com/x/y@v1.0.0/a.go",
            FileType::Regular,
            1001,
            1001,
            0o444,
        ),
    );
    assert_eq!(f.mode, 0o444, "no 0464: group bits show the mask");
    assert_eq!(f.gid, 2000);
    // A read-only module dir: r-x for the group, no w.
    let d = converge(
        &r,
        obs("github.com/x/y@v1.0.0", FileType::Dir, 1001, 1001, 0o555),
    );
    assert_eq!(d.mode & 0o020, 0);
    assert_eq!(
        d.mode & 0o2000,
        0o2000,
        "setgid required on dirs by the declared mode"
    );
    // A download dir, world-writable, with a stray named user: rwx for gobuild, others out.
    let mut dl = obs("cache/download/x/@v", FileType::Dir, 1002, 1002, 0o777);
    dl.acl_access = vec![
        AclEntry {
            tag: AclTag::UserObj,
            perms: 7,
        },
        AclEntry {
            tag: AclTag::User(1005),
            perms: 7,
        },
        AclEntry {
            tag: AclTag::GroupObj,
            perms: 7,
        },
        AclEntry {
            tag: AclTag::Mask,
            perms: 7,
        },
        AclEntry {
            tag: AclTag::Other,
            perms: 7,
        },
    ];
    let dl = converge(&r, dl);
    assert_eq!(dl.mode & 0o007, 0o005);
    assert!(dl.acl_access.iter().all(|e| e.tag != AclTag::User(1005)));
    assert!(
        dl.acl_default
            .iter()
            .any(|e| e.tag == AclTag::Group(2000) && e.perms == 7)
    );
    // A download file under a narrow mask.
    let mut zip = obs(
        "cache/download/x/@v/v1.0.0.zip",
        FileType::Regular,
        1002,
        2000,
        0o644,
    );
    zip.acl_access = vec![
        AclEntry {
            tag: AclTag::UserObj,
            perms: 6,
        },
        AclEntry {
            tag: AclTag::GroupObj,
            perms: 4,
        },
        AclEntry {
            tag: AclTag::Group(2000),
            perms: 6,
        },
        AclEntry {
            tag: AclTag::Mask,
            perms: 4,
        },
        AclEntry {
            tag: AclTag::Other,
            perms: 4,
        },
    ];
    let zip = converge(&r, zip);
    assert_eq!(zip.mode & 0o070, 0o060);
}

/// A shared root owned by root with a group, world-writable healed: what a group member
/// would use to mint a setuid-root binary (issue 18, attack 1).
fn shared_root_owned_by_root(mode_rule: &str) -> CacheRoot {
    #[derive(serde::Deserialize)]
    struct W {
        root: goguard_policy::RootDecl,
    }
    let w: W = toml::from_str(&format!(
        r#"[root]
path = "/srv/gocache"
kind = "gocache"
owner = "root"
group = "gobuild"
{mode_rule}
heal = {{ world_writable = "auto" }}
"#
    ))
    .unwrap();
    let accounts = goguard_policy::accounts::Accounts::parse(
        "root:x:0:0::/root:/bin/sh\n",
        "gobuild:x:2000:\n",
    );
    CacheRoot::from_decl(0, &w.root, &accounts).unwrap()
}

#[test]
fn a_chowned_file_never_gets_setuid_or_setgid_back() {
    for rule in ["", r#"mode = { file_require = "0660" }"#] {
        let r = shared_root_owned_by_root(rule);
        for mode in [0o4757, 0o6757, 0o2747, 0o4777] {
            let o = obs("ab/x-a", FileType::Regular, 1001, 1001, mode);
            let p = plan(&evaluate(&r, &o), &r.heal);
            assert!(
                matches!(p.ops[0].op, Operation::Chown { uid: Some(0), .. }),
                "{rule} {mode:o}: {:?}",
                p.ops
            );
            let chmod = p
                .ops
                .iter()
                .find_map(|op| match op.op {
                    Operation::Chmod { set, clear } => Some((set, clear)),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{rule} {mode:o}: no chmod in {:?}", p.ops));
            assert_eq!(chmod.0 & 0o6000, 0, "{rule} {mode:o}: sets setid");
            assert_eq!(chmod.1 & 0o6000, 0o6000, "{rule} {mode:o}: keeps setid");
            let healed = converge(&r, o);
            assert_eq!(
                healed.mode & 0o6000,
                0,
                "{rule}: {mode:o} healed to {:o}",
                healed.mode
            );
            assert_eq!(healed.uid, 0);
        }
    }
    // Directories keep setgid (group inheritance): it grants nothing on exec.
    let r = shared_root_owned_by_root(r#"mode = { dir_require = "2770" }"#);
    let d = converge(&r, obs("ab", FileType::Dir, 1001, 1001, 0o2777));
    assert_eq!(d.mode & 0o2000, 0o2000);
}
