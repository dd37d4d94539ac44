//! The trim after its speed-up plans exactly what it planned before: a generated cache with
//! every kind of entry (whole, shared and dangling entries across directories, invalid and
//! mismatched `-a` records, strays, foreign and non-regular names, ages on both sides of the
//! cutoff and of the in-use grace) is planned by the previous planner over the previous
//! listing (every `-a` read, sequentially: kept verbatim below as the oracle) and trimmed by
//! `trim::execute` (parallel listing that reads only the `-a` records the age rule keeps,
//! parallel two-phase removal); the dry-run report must list the same removals in the same
//! order with the same reasons, sizes and counts, and a real run must remove exactly those
//! files and leave no kept `-a` without its `-d`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use goguard_hygiene::gocache::{self, ActionRecord, CacheId, EntryKind, EntryName, TrimDue};
use goguard_hygiene::trim::{
    self, CacheEntry, CapOutcome, RemovalOutcome, RemovalReason, TrimPolicy, TrimReport,
};

const DAY: u64 = 86_400;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn id(&mut self) -> CacheId {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        CacheId(b)
    }
    /// An age (seconds before now) from a mix around Go's cutoff and the in-use grace.
    fn age(&mut self) -> u64 {
        let cutoff = 5 * DAY + 3600;
        match self.below(9) {
            0 => 30 * DAY,
            1 => 10 * DAY,
            2 => cutoff + 60,
            3 => cutoff - 60,
            4 => 3 * DAY,
            5 => 2 * 3600,
            6 => 30 * 60,
            7 => 60,
            _ => 8 * DAY + self.below(DAY),
        }
    }
}

fn write_aged(path: &Path, content: &[u8], now: SystemTime, age: u64) {
    std::fs::write(path, content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(now - Duration::from_secs(age))
        .unwrap();
}

fn entry_path(cache: &Path, id: &CacheId, kind: EntryKind) -> std::path::PathBuf {
    cache.join(id.subdir()).join(id.file_name(kind))
}

/// A cache of about `actions` entries and their outputs, the same for the same `seed`.
fn generate(cache: &Path, seed: u64, actions: usize, now: SystemTime) {
    let mut rng = Rng(seed);
    for b in 0..=255u8 {
        std::fs::create_dir_all(cache.join(format!("{b:02x}"))).unwrap();
    }
    let mut outputs: Vec<CacheId> = Vec::new();
    for _ in 0..actions {
        let a = rng.id();
        let out = match rng.below(20) {
            0..=11 => {
                let o = rng.id();
                let size = rng.below(5000);
                let data = vec![b'x'; size as usize];
                write_aged(
                    &entry_path(cache, &o, EntryKind::Output),
                    &data,
                    now,
                    rng.age(),
                );
                outputs.push(o);
                o
            }
            12..=15 if !outputs.is_empty() => outputs[rng.below(outputs.len() as u64) as usize],
            _ => rng.id(), // dangling: no -d
        };
        let rec = ActionRecord {
            action: a,
            output: out,
            size: 1,
            time_unix_nanos: 1,
        };
        let content = match rng.below(40) {
            0 => b"v1 garbage\n".to_vec(),
            1 => ActionRecord {
                action: rng.id(), // mismatched id
                ..rec
            }
            .to_line()
            .into_bytes(),
            2 => {
                let mut long = rec.to_line().into_bytes();
                long.extend_from_slice(b"more\n");
                long
            }
            _ => rec.to_line().into_bytes(),
        };
        write_aged(
            &entry_path(cache, &a, EntryKind::Action),
            &content,
            now,
            rng.age(),
        );
    }
    // Outputs no action names, strays, foreign files, non-regular entries.
    for _ in 0..actions / 10 {
        let o = rng.id();
        write_aged(
            &entry_path(cache, &o, EntryKind::Output),
            b"orphan",
            now,
            rng.age(),
        );
    }
    for i in 0..20u64 {
        let dir = cache.join(format!("{:02x}", rng.below(256) as u8 | 1));
        let age = rng.age();
        write_aged(&dir.join(format!("stray{i}-d")), b"s", now, age);
        write_aged(&dir.join(format!("stray{i}-a")), b"s", now, age);
        let upper = rng.id().to_string().to_uppercase();
        write_aged(&dir.join(format!("{upper}-a")), b"u", now, age);
        write_aged(&dir.join(format!("README{i}")), b"r", now, 30 * DAY);
    }
    let misplaced = rng.id(); // a well-formed name in the wrong directory: a stray
    let wrong = format!("{:02x}", misplaced.0[0] ^ 1);
    write_aged(
        &cache
            .join(wrong)
            .join(misplaced.file_name(EntryKind::Output)),
        b"m",
        now,
        30 * DAY,
    );
    let link = rng.id();
    std::os::unix::fs::symlink("/etc/passwd", entry_path(cache, &link, EntryKind::Action)).unwrap();
    let dir = rng.id();
    std::fs::create_dir(entry_path(cache, &dir, EntryKind::Output)).unwrap();
    // A missing directory (Go's trim skips it too): what it held is gone, its -a's elsewhere
    // now dangle.
    std::fs::remove_dir_all(cache.join("ee")).unwrap();
}

/// The previous listing: every directory in turn, every `-a` read (std::fs, not following
/// symlinks), in directory order.
fn old_list(cache: &Path) -> (Vec<CacheEntry>, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut not_regular = 0;
    for b in 0..=255u8 {
        let Ok(rd) = std::fs::read_dir(cache.join(format!("{b:02x}"))) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let class = gocache::classify_name(b, &name);
            if class == EntryName::Other {
                continue;
            }
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if !m.file_type().is_file() {
                not_regular += 1;
                continue;
            }
            let action = match class {
                EntryName::Entry(_, EntryKind::Action) => {
                    let mut buf = Vec::new();
                    std::fs::File::open(e.path())
                        .unwrap()
                        .take(gocache::ACTION_ENTRY_SIZE as u64 + 1)
                        .read_to_end(&mut buf)
                        .unwrap();
                    Some(ActionRecord::parse(&buf))
                }
                _ => None,
            };
            entries.push(CacheEntry {
                dir: b,
                name,
                size: m.len(),
                mtime: m.modified().unwrap(),
                ino: m.ino(),
                action,
            });
        }
    }
    (entries, not_regular)
}

/// `rel path -> size` of every `-a`/`-d` name that is a regular file.
fn on_disk(cache: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for b in 0..=255u8 {
        let Ok(rd) = std::fs::read_dir(cache.join(format!("{b:02x}"))) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.file_type().is_file() && (name.ends_with("-a") || name.ends_with("-d")) {
                out.insert(format!("{b:02x}/{name}"), m.len());
            }
        }
    }
    out
}

/// The dry-run report must be the one the previous code would have made from `old`.
fn assert_same(old: &OldPlan, old_not_regular: u64, r: &TrimReport) {
    assert_eq!(r.due, old.due);
    assert_eq!(r.age_trim, old.age_trim);
    assert_eq!(r.cap, old.cap);
    assert_eq!(r.entries_scanned, old.entries_before);
    assert_eq!(r.bytes_scanned, old.bytes_before);
    assert_eq!(r.entries_removed, old.entries_before - old.entries_after);
    assert_eq!(r.bytes_freed, old.bytes_before - old.bytes_after);
    assert_eq!(r.not_regular, old_not_regular);
    assert!(r.skipped_dirs.is_empty(), "{:?}", r.skipped_dirs);
    let want: Vec<(String, u64, RemovalReason)> = old
        .removals
        .iter()
        .map(|x| (x.rel_path(), x.size, x.reason))
        .collect();
    let got: Vec<(String, u64, RemovalReason)> = r
        .removals
        .iter()
        .map(|x| (x.path.clone(), x.size, x.reason))
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "removal #{i} differs");
    }
}

#[test]
fn fast_trim_plans_and_removes_what_the_previous_trim_did() {
    let now = SystemTime::now();
    let last_trim = |ago: u64| Some(gocache::unix_secs(now - Duration::from_secs(ago)).to_string());
    let policy = TrimPolicy::default();
    let cases: Vec<(&str, Option<String>, TrimPolicy)> = vec![
        ("due, no cap", None, policy.clone()),
        (
            "due two days ago, no cap",
            last_trim(2 * DAY),
            policy.clone(),
        ),
        (
            "not due, forced",
            last_trim(3600),
            TrimPolicy {
                force: true,
                ..policy.clone()
            },
        ),
        (
            "not due, cap only",
            last_trim(3600),
            TrimPolicy {
                max_bytes: Some(150_000),
                ..policy.clone()
            },
        ),
        (
            "due, cap, no grace",
            None,
            TrimPolicy {
                max_bytes: Some(60_000),
                in_use_grace: Duration::ZERO,
                ..policy.clone()
            },
        ),
        (
            "not due, no cap: nothing listed",
            last_trim(3600),
            policy.clone(),
        ),
    ];
    for (seed, (what, trim_txt, policy)) in cases.into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        generate(&cache, 40 + seed as u64, 900, now);
        if let Some(t) = &trim_txt {
            std::fs::write(cache.join("trim.txt"), t).unwrap();
        }
        let (entries, not_regular) = old_list(&cache);
        let old = old_plan(
            &entries,
            trim_txt.as_deref().map(str::as_bytes),
            &policy,
            now,
        );
        assert!(
            entries.iter().any(|e| matches!(e.action, Some(Ok(_))))
                && entries.iter().any(|e| matches!(e.action, Some(Err(_)))),
            "{what}: the generated cache lacks valid or invalid records"
        );

        let dry = TrimPolicy {
            dry_run: true,
            ..policy.clone()
        };
        let report = trim::execute(&cache, &dry, now).unwrap();
        if !report.scanned {
            assert!(!old.age_trim && policy.max_bytes.is_none(), "{what}");
            assert!(matches!(report.due, TrimDue::NotDue { .. }));
            continue;
        }
        assert!(!old.removals.is_empty(), "{what}: nothing to compare");
        let mut reasons: HashMap<RemovalReason, usize> = HashMap::new();
        for r in &old.removals {
            *reasons.entry(r.reason).or_default() += 1;
        }
        eprintln!("{what}: {} entries, removals {reasons:?}", entries.len());
        let want = if policy.max_bytes.is_some() {
            RemovalReason::Evicted
        } else {
            RemovalReason::Expired
        };
        assert!(reasons.contains_key(&want), "{what}: no {want:?} removal");
        assert_same(&old, not_regular, &report);
        assert!(
            report
                .removals
                .iter()
                .all(|r| r.outcome == RemovalOutcome::Planned)
        );

        let before = on_disk(&cache);
        let report = trim::execute(&cache, &policy, now).unwrap();
        assert_same(&old, not_regular, &report);
        assert_eq!(
            report.trim_txt_written,
            old.new_trim_txt.is_some(),
            "{what}"
        );
        if let Some(txt) = &old.new_trim_txt {
            assert_eq!(
                &std::fs::read_to_string(cache.join("trim.txt")).unwrap(),
                txt
            );
        }
        let bad: Vec<_> = report
            .removals
            .iter()
            .filter(|r| r.outcome != RemovalOutcome::Removed)
            .collect();
        assert!(bad.is_empty(), "{what}: {bad:?}");
        let after = on_disk(&cache);
        let removed: HashSet<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        let planned: HashSet<String> = old.removals.iter().map(|r| r.rel_path()).collect();
        assert_eq!(removed, planned.iter().collect(), "{what}");
        // No kept usable -a without its -d.
        for rel in after.keys().filter(|k| k.ends_with("-a")) {
            let bytes = std::fs::read(cache.join(rel)).unwrap();
            let Ok(rec) = ActionRecord::parse(&bytes) else {
                continue;
            };
            let dir = u8::from_str_radix(&rel[..2], 16).unwrap();
            if gocache::classify_name(dir, &rel[3..])
                != EntryName::Entry(rec.action, EntryKind::Action)
            {
                continue;
            }
            let out = format!(
                "{}/{}",
                rec.output.subdir(),
                rec.output.file_name(EntryKind::Output)
            );
            let had = before.contains_key(&out);
            assert!(
                !had || after.contains_key(&out),
                "{what}: {rel} kept, {out} removed"
            );
        }
    }
}

// ---- The previous planner (crates/hygiene/src/trim/plan.rs before the speed-up), verbatim
// but for its name and result types. ----

#[allow(dead_code)] // mtime, ino, after_actions: made by the old planner, not compared
struct OldRemoval {
    dir: u8,
    name: String,
    size: u64,
    mtime: SystemTime,
    ino: u64,
    reason: RemovalReason,
    after_actions: Vec<String>,
}

impl OldRemoval {
    fn rel_path(&self) -> String {
        format!("{:02x}/{}", self.dir, self.name)
    }
}

struct OldPlan {
    due: TrimDue,
    age_trim: bool,
    removals: Vec<OldRemoval>,
    entries_before: u64,
    bytes_before: u64,
    entries_after: u64,
    bytes_after: u64,
    cap: Option<CapOutcome>,
    new_trim_txt: Option<String>,
}

/// What the planner knows about one listed entry.
struct Slot {
    kind: SlotKind,
    removed: Option<RemovalReason>,
}

enum SlotKind {
    /// A usable `-a`; `output` indexes the `-d` in the listing, if any.
    Action {
        output: Option<usize>,
    },
    /// An `-a` Go would not use.
    InvalidAction,
    Output,
    Stray,
}

/// Plans a trim of one cache: `entries` is the listing of its `00`..`ff` directories,
/// `trim_txt` the content of its `trim.txt` (`None` when absent), `now` the time of the trim.
fn old_plan(
    entries: &[CacheEntry],
    trim_txt: Option<&[u8]>,
    policy: &TrimPolicy,
    now: SystemTime,
) -> OldPlan {
    let due = gocache::trim_due(trim_txt, now);
    let age_trim = due.is_due() || policy.force;
    let cutoff = gocache::age_cutoff(now);
    let grace_cut = now
        .checked_sub(policy.in_use_grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);

    // Classify; `Other` names are not Go's and are left out entirely.
    let mut outputs: HashMap<CacheId, usize> = HashMap::new();
    let mut idx: Vec<usize> = Vec::new();
    let mut classes: Vec<(EntryName, usize)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let class = gocache::classify_name(e.dir, &e.name);
        if class == EntryName::Other {
            continue;
        }
        if let EntryName::Entry(id, EntryKind::Output) = class {
            outputs.insert(id, i);
        }
        classes.push((class, i));
        idx.push(i);
    }
    let mut slots: HashMap<usize, Slot> = HashMap::with_capacity(classes.len());
    for &(class, i) in &classes {
        let kind = match class {
            EntryName::Entry(id, EntryKind::Action) => match &entries[i].action {
                Some(Ok(rec)) if rec.action == id => SlotKind::Action {
                    output: outputs.get(&rec.output).copied(),
                },
                _ => SlotKind::InvalidAction,
            },
            EntryName::Entry(_, EntryKind::Output) => SlotKind::Output,
            _ => SlotKind::Stray,
        };
        slots.insert(
            i,
            Slot {
                kind,
                removed: None,
            },
        );
    }

    // 1 + 2: actions and strays by age, then unusable actions past the grace.
    for &i in &idx {
        let e = &entries[i];
        let slot = slots.get_mut(&i).expect("slot");
        let expired = age_trim && e.mtime < cutoff;
        slot.removed = match slot.kind {
            SlotKind::Output => None,
            _ if expired => Some(RemovalReason::Expired),
            SlotKind::InvalidAction if e.mtime < grace_cut => Some(RemovalReason::InvalidAction),
            SlotKind::Action { output: None } if e.mtime < grace_cut => {
                Some(RemovalReason::DanglingAction)
            }
            _ => None,
        };
    }
    // Reference counts of outputs by kept actions.
    let mut refs: HashMap<usize, u32> = HashMap::new();
    for &i in &idx {
        let s = &slots[&i];
        if let (SlotKind::Action { output: Some(o) }, None) = (&s.kind, s.removed) {
            *refs.entry(*o).or_default() += 1;
        }
    }
    // Outputs: removed by age only when no kept action refers to them.
    for &i in &idx {
        let e = &entries[i];
        let slot = slots.get_mut(&i).expect("slot");
        if matches!(slot.kind, SlotKind::Output)
            && age_trim
            && e.mtime < cutoff
            && refs.get(&i).copied().unwrap_or(0) == 0
        {
            slot.removed = Some(RemovalReason::Expired);
        }
    }

    let size_of = |i: usize| entries[i].size;
    let bytes_before: u64 = idx.iter().map(|&i| size_of(i)).sum();
    let mut kept_bytes: u64 = idx
        .iter()
        .filter(|i| slots[i].removed.is_none())
        .map(|&i| size_of(i))
        .sum();

    // 3: the size cap.
    let cap = policy.max_bytes.map(|max_bytes| {
        if kept_bytes > max_bytes {
            let by_age = |a: &usize, b: &usize| {
                (entries[*a].mtime, &entries[*a].name).cmp(&(entries[*b].mtime, &entries[*b].name))
            };
            let mut orphans: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|i| {
                    let s = &slots[i];
                    matches!(s.kind, SlotKind::Output)
                        && s.removed.is_none()
                        && refs.get(i).copied().unwrap_or(0) == 0
                        && entries[*i].mtime < grace_cut
                })
                .collect();
            orphans.sort_by(by_age);
            for i in orphans {
                if kept_bytes <= max_bytes {
                    break;
                }
                slots.get_mut(&i).expect("slot").removed = Some(RemovalReason::UnreferencedOutput);
                kept_bytes -= size_of(i);
            }
            // (Issue 16: an entry is a candidate only when its `-a` and its `-d` are both
            // past the grace, ranked by the newer of the two; the same rule as the planner.)
            let last_use = |i: usize| match slots[&i].kind {
                SlotKind::Action { output: Some(o) } => entries[i].mtime.max(entries[o].mtime),
                _ => entries[i].mtime,
            };
            let mut units: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|i| {
                    let s = &slots[i];
                    !matches!(s.kind, SlotKind::Output)
                        && s.removed.is_none()
                        && entries[*i].mtime < grace_cut
                        && match s.kind {
                            SlotKind::Action { output: Some(o) } => entries[o].mtime < grace_cut,
                            _ => true,
                        }
                })
                .collect();
            units.sort_by(|a, b| {
                (last_use(*a), &entries[*a].name).cmp(&(last_use(*b), &entries[*b].name))
            });
            for i in units {
                if kept_bytes <= max_bytes {
                    break;
                }
                let slot = slots.get_mut(&i).expect("slot");
                slot.removed = Some(RemovalReason::Evicted);
                kept_bytes -= size_of(i);
                if let SlotKind::Action { output: Some(o) } = slot.kind {
                    let n = refs.get_mut(&o).expect("counted");
                    *n -= 1;
                    let out = slots.get_mut(&o).expect("slot");
                    if *n == 0 && out.removed.is_none() {
                        // The last kept action referring to it is gone: the entry goes whole
                        // (every action naming it was checked to be past the grace).
                        out.removed = Some(RemovalReason::Evicted);
                        kept_bytes -= size_of(o);
                    }
                }
            }
        }
        CapOutcome {
            max_bytes,
            met: kept_bytes <= max_bytes,
            kept_bytes,
        }
    });

    // Removals: actions and strays first, then outputs with the removed actions they wait for.
    let mut waiting: HashMap<usize, Vec<String>> = HashMap::new();
    for &i in &idx {
        let s = &slots[&i];
        if let (SlotKind::Action { output: Some(o) }, Some(_)) = (&s.kind, s.removed) {
            waiting.entry(*o).or_default().push(entries[i].rel_path());
        }
    }
    let mut removals = Vec::new();
    let mut outs = Vec::new();
    for &i in &idx {
        let s = &slots[&i];
        let Some(reason) = s.removed else { continue };
        let e = &entries[i];
        let r = OldRemoval {
            dir: e.dir,
            name: e.name.clone(),
            size: e.size,
            mtime: e.mtime,
            ino: e.ino,
            reason,
            after_actions: waiting.remove(&i).unwrap_or_default(),
        };
        if matches!(s.kind, SlotKind::Output) {
            outs.push(r);
        } else {
            removals.push(r);
        }
    }
    removals.extend(outs);

    let entries_before = idx.len() as u64;
    OldPlan {
        due,
        age_trim,
        entries_after: entries_before - removals.len() as u64,
        removals,
        entries_before,
        bytes_before,
        bytes_after: kept_bytes,
        cap,
        new_trim_txt: age_trim.then(|| gocache::format_trim_txt(now)),
    }
}
