//! The trim planner: a listing of a GOCACHE's `00`..`ff` entries, its `trim.txt` and the
//! time → a [`TrimPlan`] (what to remove and why, the bytes before and after, the new
//! `trim.txt`), with no I/O.
//!
//! # Rules
//! 1. **Go's age rule** (`Cache.Trim`/`trimSubdir`, Go 1.19.8 `cmd/go/internal/cache/cache.go`
//!    l.309–371): when a trim is due by `trim.txt` (at most once per `trimInterval`, see
//!    [`crate::gocache::trim_due`]) or forced, every `-a`, `-d` (and stray `*-a`/`*-d`) file
//!    whose mtime is before `now - trimLimit - mtimeInterval` is removed. The planner does not
//!    care who trimmed last: an abandoned cache that no `go` command touches is trimmed the
//!    same way.
//! 2. **Whole entries only.** Go removes `-a` and `-d` files independently, which can leave an
//!    `-a` whose `-d` is gone (harmless to Go: a miss, see `crate::trim` docs). We never do:
//!    a `-d` referenced by a kept `-a` is kept even when it is older than the cutoff (its
//!    entry is alive), and a `-d` is removed only when no kept `-a` refers to it. `-a` files
//!    Go would ignore (unparsable, or pointing at a `-d` that is missing) are removed once
//!    they are older than the in-use grace.
//! 3. **Size cap** (optional, goguard's own), the rule that keeps every running build working
//!    ([`size_cap`]): when the kept bytes exceed the cap, entries are evicted until the cap
//!    is met, and only like this:
//!    - **whole entries only**: an entry is an `-a` and the `-d` it names. A `-d` goes only
//!      with the last kept `-a` that names it (never one a kept `-a` still names); a `-d` no
//!      `-a` names goes first (no build can reach it: only an `-a` leads to a `-d`);
//!    - **both halves past the grace**: an entry is a candidate only when the mtimes of its
//!      `-a` *and* of its `-d` are older than `now - in_use_grace`; a `-d` no `-a` names,
//!      only when its own mtime is. An `-a` whose record was not read (what it names is
//!      unknown) is never evicted;
//!    - **least recently used first**, an entry ranked by the newer of its two mtimes (one
//!      entry, one rank: its `-a` and `-d` are never ranked apart);
//!    - **`-a` before `-d`**: every removal of an `-a` comes before every removal of a `-d`
//!      (the executor removes in two phases), so a build that finds an `-a` either finds
//!      its `-d` too or misses (Go's `GetFile` stats the `-d` and treats a missing one as a
//!      miss), never a hit whose output then disappears because we removed it first.
//!
//!    When only entries inside the grace are left, the cap stays unmet ([`CapOutcome::met`]
//!    false, with the bytes kept): goguardd reports a finding and a metric, and no build
//!    breaks.
//! 4. **In-use grace** ([`TrimPolicy::in_use_grace`], default [`DEFAULT_IN_USE_GRACE`], never
//!    below [`MIN_IN_USE_GRACE`] in goguardd's config), and why it keeps running builds safe:
//!    Go's `Cache.used` (cache.go l.300–306) refreshes a file's mtime on a hit only when it is
//!    an hour (`mtimeInterval`) old or older. So right after a build looks an entry up at
//!    time `T` (`GetFile`: `get` reads the `-a` and calls `used` on it, `OutputFile` calls
//!    `used` on the `-d`, then the `-d`'s path is returned), both files have an mtime after
//!    `T - mtimeInterval`. A trim at `N` evicts only entries whose two mtimes are before
//!    `N - grace`; so it can evict that entry only if `N - T > grace - mtimeInterval`: a build
//!    that holds a looked-up path for less than the margin `grace - mtimeInterval` (one hour
//!    by default) never loses it. A grace of exactly `mtimeInterval` has no margin at all: an
//!    entry looked up a second before its mtime turns an hour old is not refreshed and is
//!    evictable a second later, while the build that looked it up still has to open it.
//!    The race between our listing and a lookup (the listing saw an old mtime, a build
//!    refreshed it just after) is closed by the executor, which checks inode and mtime again
//!    right before each `unlinkat`, and keeps the `-d` of any `-a` that stayed. What is left
//!    is the instant between that check and the unlink (Go's own trim has the same, for
//!    entries unused for 5 days). A `-d` without its `-a` inside the grace may be a `Put` in
//!    progress (`put` writes `-d` first, then `-a`), and is kept too.
//!
//! Only the records of `-a` files that are kept by the age rule matter: an expired `-a` goes
//! whatever it names, and a `-d` is kept for the `-a` files that stay. So the executor reads
//! only those (see [`super::list`]); the plan is the same as with every record read.
//!
//! The planner must never plan the removal of something that is not in the listing, nor a
//! `-d` that a kept `-a` refers to (nor any `-d` while a kept `-a` was listed unread).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::gocache::{
    self, ActionRecord, ActionRecordError, CacheId, EntryKind, EntryName, MTIME_INTERVAL, TrimDue,
};

/// The default in-use grace: Go's `mtimeInterval` plus an hour of margin for the longest
/// build to open what it looked up (see the module docs, rule 4).
pub const DEFAULT_IN_USE_GRACE: Duration = Duration::from_secs(MTIME_INTERVAL.as_secs() + 3600);

/// The shortest in-use grace goguardd accepts with a size cap: Go's `mtimeInterval` plus
/// five minutes. Below `mtimeInterval` a cap can evict an entry a build has just looked up
/// (its mtime was not refreshed); at `mtimeInterval` the margin is zero.
pub const MIN_IN_USE_GRACE: Duration = Duration::from_secs(MTIME_INTERVAL.as_secs() + 300);

/// One file in a `00`..`ff` directory of a GOCACHE, as listed (without following symlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The directory it is in: `0x00`..`0xff` for `00`..`ff`.
    pub dir: u8,
    /// Its file name.
    pub name: String,
    /// Its size in bytes (`st_size`).
    pub size: u64,
    /// Its mtime (Go's "last used", refreshed at most hourly).
    pub mtime: SystemTime,
    /// Its inode number, so the executor can check it removes the file it listed.
    pub ino: u64,
    /// For `-a` names: the parsed content, or why Go would not use it. `None` for other
    /// names, and for an `-a` listed without reading it because Go's age rule removes it
    /// whatever it says (see [`super::list`]); [`plan`] then needs no record from it.
    pub action: Option<Result<ActionRecord, ActionRecordError>>,
}

impl CacheEntry {
    /// `"ab/<name>"`: the path relative to the cache root.
    pub fn rel_path(&self) -> String {
        format!("{:02x}/{}", self.dir, self.name)
    }
}

/// How to trim one cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimPolicy {
    /// Size cap in bytes (sum of `-a`, `-d` and stray entry sizes); `None`: no cap.
    pub max_bytes: Option<u64>,
    /// Apply Go's age rule even when `trim.txt` says the last trim was less than a day ago
    /// (a manual `goguardctl trim`).
    pub force: bool,
    /// Entries whose `-a` or `-d` mtime is newer than `now - in_use_grace` are never
    /// evicted, nor removed as dangling (module docs, rule 4).
    pub in_use_grace: Duration,
    /// Plan and report only; remove nothing and leave `trim.txt` alone (executor only).
    pub dry_run: bool,
}

impl Default for TrimPolicy {
    fn default() -> Self {
        TrimPolicy {
            max_bytes: None,
            force: false,
            in_use_grace: DEFAULT_IN_USE_GRACE,
            dry_run: false,
        }
    }
}

/// Why an entry is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemovalReason {
    /// Unused for `trimLimit + mtimeInterval`: Go's own rule.
    Expired,
    /// Evicted, least recently used first, to meet the size cap.
    Evicted,
    /// A `-d` no kept `-a` refers to, evicted first to meet the size cap.
    UnreferencedOutput,
    /// An `-a` whose `-d` is missing: Go's `GetFile` would miss on it anyway.
    DanglingAction,
    /// An `-a` that Go's `get` rejects (bad length, header, hex, numbers, mismatched id).
    InvalidAction,
}

impl RemovalReason {
    /// A short fixed name for rows and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Expired => "expired",
            RemovalReason::Evicted => "evicted",
            RemovalReason::UnreferencedOutput => "unreferenced_output",
            RemovalReason::DanglingAction => "dangling_action",
            RemovalReason::InvalidAction => "invalid_action",
        }
    }
}

/// One planned removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The entry's directory byte.
    pub dir: u8,
    /// The entry's file name.
    pub name: String,
    /// Its size when listed.
    pub size: u64,
    /// Its mtime when listed (the executor skips it if it changed: it was used since).
    pub mtime: SystemTime,
    /// Its inode when listed.
    pub ino: u64,
    /// Why.
    pub reason: RemovalReason,
}

impl Removal {
    /// `"ab/<name>"`.
    pub fn rel_path(&self) -> String {
        format!("{:02x}/{}", self.dir, self.name)
    }
}

/// The size cap's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapOutcome {
    /// The cap.
    pub max_bytes: u64,
    /// Whether the kept bytes are within it (false when the rule allows no more evictions:
    /// what is left is inside the in-use grace, or named by an `-a` that was not read).
    pub met: bool,
    /// The bytes kept (the plan's `bytes_after`); over `max_bytes` when not met.
    pub kept_bytes: u64,
}

impl CapOutcome {
    /// Bytes over the cap that the rule kept (0 when met).
    pub fn excess_bytes(&self) -> u64 {
        self.kept_bytes.saturating_sub(self.max_bytes)
    }
}

/// What a trim will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimPlan {
    /// Whether Go's age trim is due by `trim.txt`.
    pub due: TrimDue,
    /// Whether the age rule was applied (due, or forced).
    pub age_trim: bool,
    /// Removals: `-a` and stray files first, then `-d` files.
    pub removals: Vec<Removal>,
    /// Entries (`-a`, `-d`, strays) in the listing, and their bytes.
    pub entries_before: u64,
    /// Bytes of those entries.
    pub bytes_before: u64,
    /// Entries left after the plan.
    pub entries_after: u64,
    /// Bytes left after the plan.
    pub bytes_after: u64,
    /// The size cap's outcome, when a cap is set.
    pub cap: Option<CapOutcome>,
    /// The new `trim.txt` content, when the age rule was applied (Go writes it after every
    /// completed trim; a cap-only eviction leaves it alone).
    pub new_trim_txt: Option<String>,
}

impl TrimPlan {
    /// Bytes the plan frees.
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_before - self.bytes_after
    }
}

/// What the planner knows about one listed entry.
#[derive(Clone, Copy)]
struct Slot {
    kind: SlotKind,
    removed: Option<RemovalReason>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    /// A usable `-a`; `output` indexes the `-d` in the listing, if any.
    Action {
        output: Option<usize>,
    },
    /// An `-a` Go would not use.
    InvalidAction,
    /// An `-a` whose record was not read (see [`CacheEntry::action`]): what it refers to is
    /// unknown, so while it is kept no `-d` may go.
    UnreadAction,
    Output,
    Stray,
    /// Not Go's: left out entirely.
    Other,
}

/// Plans a trim of one cache: `entries` is the listing of its `00`..`ff` directories,
/// `trim_txt` the content of its `trim.txt` (`None` when absent), `now` the time of the trim.
///
/// An `-a` listed without its record (`action: None`) is fine when the age rule removes it
/// (its mtime is before the cutoff and the age rule applies): its content does not change
/// the plan. Should one be kept, its output is unknown and no `-d` is removed at all.
pub fn plan(
    entries: &[CacheEntry],
    trim_txt: Option<&[u8]>,
    policy: &TrimPolicy,
    now: SystemTime,
) -> TrimPlan {
    let due = gocache::trim_due(trim_txt, now);
    let age_trim = due.is_due() || policy.force;
    let cutoff = gocache::age_cutoff(now);
    let grace_cut = now
        .checked_sub(policy.in_use_grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);

    // Classify; `Other` names are not Go's and are left out entirely.
    let classes: Vec<EntryName> = entries
        .iter()
        .map(|e| gocache::classify_name(e.dir, &e.name))
        .collect();
    let mut outputs: HashMap<CacheId, usize> = HashMap::new();
    for (i, class) in classes.iter().enumerate() {
        if let EntryName::Entry(id, EntryKind::Output) = *class {
            outputs.insert(id, i);
        }
    }
    let mut slots: Vec<Slot> = entries
        .iter()
        .zip(&classes)
        .map(|(e, class)| {
            let kind = match *class {
                EntryName::Other => SlotKind::Other,
                EntryName::Entry(id, EntryKind::Action) => match &e.action {
                    Some(Ok(rec)) if rec.action == id => SlotKind::Action {
                        output: outputs.get(&rec.output).copied(),
                    },
                    Some(_) => SlotKind::InvalidAction,
                    None => SlotKind::UnreadAction,
                },
                EntryName::Entry(_, EntryKind::Output) => SlotKind::Output,
                EntryName::Stray => SlotKind::Stray,
            };
            Slot {
                kind,
                removed: None,
            }
        })
        .collect();
    let idx: Vec<usize> = (0..entries.len())
        .filter(|&i| slots[i].kind != SlotKind::Other)
        .collect();

    // 1 + 2: actions and strays by age, then unusable actions past the grace.
    for &i in &idx {
        let e = &entries[i];
        let slot = &mut slots[i];
        let expired = age_trim && e.mtime < cutoff;
        slot.removed = match slot.kind {
            SlotKind::Output | SlotKind::Other => None,
            _ if expired => Some(RemovalReason::Expired),
            SlotKind::InvalidAction if e.mtime < grace_cut => Some(RemovalReason::InvalidAction),
            SlotKind::Action { output: None } if e.mtime < grace_cut => {
                Some(RemovalReason::DanglingAction)
            }
            _ => None,
        };
    }
    // Reference counts of outputs by kept actions; a kept unread action refers to anything.
    let mut refs: Vec<u32> = vec![0; entries.len()];
    let mut unknown_refs = false;
    for &i in &idx {
        match (slots[i].kind, slots[i].removed) {
            (SlotKind::Action { output: Some(o) }, None) => refs[o] += 1,
            (SlotKind::UnreadAction, None) => unknown_refs = true,
            _ => {}
        }
    }
    let unreferenced = |refs: &[u32], i: usize| !unknown_refs && refs[i] == 0;
    // Outputs: removed by age only when no kept action refers to them.
    for &i in &idx {
        if slots[i].kind == SlotKind::Output
            && age_trim
            && entries[i].mtime < cutoff
            && unreferenced(&refs, i)
        {
            slots[i].removed = Some(RemovalReason::Expired);
        }
    }

    let size_of = |i: usize| entries[i].size;
    let bytes_before: u64 = idx.iter().map(|&i| size_of(i)).sum();
    let mut kept_bytes: u64 = idx
        .iter()
        .filter(|&&i| slots[i].removed.is_none())
        .map(|&i| size_of(i))
        .sum();

    // 3: the size cap.
    let cap = policy.max_bytes.map(|max_bytes| {
        size_cap(
            entries,
            &idx,
            &mut slots,
            &mut refs,
            unknown_refs,
            grace_cut,
            max_bytes,
            &mut kept_bytes,
        );
        CapOutcome {
            max_bytes,
            met: kept_bytes <= max_bytes,
            kept_bytes,
        }
    });

    // Removals: actions and strays first, then outputs.
    let removal = |i: usize, reason: RemovalReason| {
        let e = &entries[i];
        Removal {
            dir: e.dir,
            name: e.name.clone(),
            size: e.size,
            mtime: e.mtime,
            ino: e.ino,
            reason,
        }
    };
    let mut removals = Vec::new();
    for output_pass in [false, true] {
        for &i in &idx {
            if let Some(reason) = slots[i].removed
                && (slots[i].kind == SlotKind::Output) == output_pass
            {
                removals.push(removal(i, reason));
            }
        }
    }

    let entries_before = idx.len() as u64;
    TrimPlan {
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

/// Rule 3: evicts whole entries, both halves past the grace, least recently used first,
/// until `kept_bytes` is within `max_bytes` or the rule allows nothing more.
#[allow(clippy::too_many_arguments)]
fn size_cap(
    entries: &[CacheEntry],
    idx: &[usize],
    slots: &mut [Slot],
    refs: &mut [u32],
    unknown_refs: bool,
    grace_cut: SystemTime,
    max_bytes: u64,
    kept_bytes: &mut u64,
) {
    if *kept_bytes <= max_bytes {
        return;
    }
    let past_grace = |i: usize| entries[i].mtime < grace_cut;
    let unreferenced = |refs: &[u32], i: usize| !unknown_refs && refs[i] == 0;
    // First the `-d` files no `-a` names: nothing leads a build to them.
    let mut orphans: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| {
            slots[i].kind == SlotKind::Output
                && slots[i].removed.is_none()
                && unreferenced(refs, i)
                && past_grace(i)
        })
        .collect();
    orphans.sort_by(|&a, &b| {
        (entries[a].mtime, &entries[a].name).cmp(&(entries[b].mtime, &entries[b].name))
    });
    for i in orphans {
        if *kept_bytes <= max_bytes {
            return;
        }
        slots[i].removed = Some(RemovalReason::UnreferencedOutput);
        *kept_bytes -= entries[i].size;
    }
    // Then whole entries: an `-a` (or a stray) with the `-d` it names, both past the grace,
    // ranked by the newer of the two mtimes. An unread `-a` names an unknown `-d`: never.
    let last_use = |i: usize| match slots[i].kind {
        SlotKind::Action { output: Some(o) } => entries[i].mtime.max(entries[o].mtime),
        _ => entries[i].mtime,
    };
    let mut units: Vec<(SystemTime, usize)> = idx
        .iter()
        .copied()
        .filter(|&i| {
            slots[i].removed.is_none()
                && past_grace(i)
                && match slots[i].kind {
                    SlotKind::Action { output: Some(o) } => past_grace(o),
                    SlotKind::Action { output: None } | SlotKind::InvalidAction => true,
                    SlotKind::Stray => true,
                    SlotKind::UnreadAction | SlotKind::Output | SlotKind::Other => false,
                }
        })
        .map(|i| (last_use(i), i))
        .collect();
    units.sort_by(|a, b| (a.0, &entries[a.1].name).cmp(&(b.0, &entries[b.1].name)));
    for (_, i) in units {
        if *kept_bytes <= max_bytes {
            return;
        }
        slots[i].removed = Some(RemovalReason::Evicted);
        *kept_bytes -= entries[i].size;
        if let SlotKind::Action { output: Some(o) } = slots[i].kind {
            refs[o] -= 1;
            if unreferenced(refs, o) && slots[o].removed.is_none() {
                // Its last kept `-a` is gone: the entry goes whole (the `-d` is past the
                // grace: every `-a` naming it was checked for that).
                slots[o].removed = Some(RemovalReason::Evicted);
                *kept_bytes -= entries[o].size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::UNIX_EPOCH;

    const DAY: u64 = 86_400;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(100 * DAY)
    }

    fn ago(secs: u64) -> SystemTime {
        now() - Duration::from_secs(secs)
    }

    /// Deterministic distinct ids: `n` in the first byte (the directory) and the last.
    fn id(n: u8) -> CacheId {
        let mut b = [0x11u8; 32];
        b[0] = n;
        b[31] = n;
        CacheId(b)
    }

    fn action(a: u8, out: u8, size: u64, age: u64) -> CacheEntry {
        let rec = ActionRecord {
            action: id(a),
            output: id(out),
            size,
            time_unix_nanos: 1,
        };
        CacheEntry {
            dir: a,
            name: id(a).file_name(EntryKind::Action),
            size: crate::gocache::ACTION_ENTRY_SIZE as u64,
            mtime: ago(age),
            ino: u64::from(a),
            action: Some(Ok(rec)),
        }
    }

    fn output(o: u8, size: u64, age: u64) -> CacheEntry {
        CacheEntry {
            dir: o,
            name: id(o).file_name(EntryKind::Output),
            size,
            mtime: ago(age),
            ino: 1000 + u64::from(o),
            action: None,
        }
    }

    /// The invariant: no kept usable action refers to a removed output.
    fn assert_whole(entries: &[CacheEntry], p: &TrimPlan) {
        let removed: HashSet<String> = p.removals.iter().map(|r| r.rel_path()).collect();
        for e in entries {
            if let Some(Ok(rec)) = &e.action {
                if !removed.contains(&e.rel_path()) {
                    let out = format!(
                        "{}/{}",
                        rec.output.subdir(),
                        rec.output.file_name(EntryKind::Output)
                    );
                    assert!(
                        !removed.contains(&out),
                        "kept {} but removed its output {out}",
                        e.rel_path()
                    );
                }
            }
        }
        let kept: u64 = entries
            .iter()
            .filter(|e| !removed.contains(&e.rel_path()))
            .map(|e| e.size)
            .sum();
        assert_eq!(kept, p.bytes_after);
    }

    fn names(p: &TrimPlan) -> Vec<(String, RemovalReason)> {
        p.removals
            .iter()
            .map(|r| (r.rel_path(), r.reason))
            .collect()
    }

    #[test]
    fn not_due_removes_nothing_and_keeps_trim_txt() {
        let entries = vec![action(1, 2, 10, 30 * DAY), output(2, 10, 30 * DAY)];
        let last = (100 * DAY - 3600).to_string();
        let p = plan(
            &entries,
            Some(last.as_bytes()),
            &TrimPolicy::default(),
            now(),
        );
        assert!(!p.age_trim);
        assert!(p.removals.is_empty());
        assert_eq!(p.new_trim_txt, None);
        // Forced: the age rule applies and trim.txt is rewritten.
        let forced = TrimPolicy {
            force: true,
            ..TrimPolicy::default()
        };
        let p = plan(&entries, Some(last.as_bytes()), &forced, now());
        assert_eq!(p.removals.len(), 2);
        assert_eq!(p.new_trim_txt, Some((100 * DAY).to_string()));
    }

    #[test]
    fn age_rule_cutoff_is_trim_limit_plus_mtime_interval() {
        let limit = 5 * DAY + 3600;
        let entries = vec![
            action(1, 2, 10, limit + 1), // just past the cutoff
            output(2, 10, limit + 1),
            action(3, 4, 10, limit), // exactly at the cutoff: not before it, kept
            output(4, 10, limit),
        ];
        let p = plan(&entries, None, &TrimPolicy::default(), now());
        let got = names(&p);
        assert_eq!(
            got,
            vec![
                (entries[0].rel_path(), RemovalReason::Expired),
                (entries[1].rel_path(), RemovalReason::Expired),
            ]
        );
        assert_whole(&entries, &p);
    }

    #[test]
    fn old_output_of_a_fresh_action_is_kept_whole() {
        // Go would delete the old -d and leave the fresh -a dangling; we keep the entry.
        let entries = vec![action(1, 2, 10, DAY), output(2, 10, 30 * DAY)];
        let p = plan(&entries, None, &TrimPolicy::default(), now());
        assert!(p.removals.is_empty());
        assert_whole(&entries, &p);
    }

    #[test]
    fn unread_actions_are_fine_when_expired_and_block_outputs_when_kept() {
        let unread = |mut e: CacheEntry| {
            e.action = None;
            e
        };
        // Expired and unread: the same plan as with its record.
        let entries = vec![
            action(1, 2, 10, 30 * DAY),
            output(2, 10, 30 * DAY),
            action(3, 4, 10, DAY),
            output(4, 10, 30 * DAY),
        ];
        let full = plan(&entries, None, &TrimPolicy::default(), now());
        let mut partly = entries.clone();
        partly[0] = unread(partly[0].clone());
        assert_eq!(plan(&partly, None, &TrimPolicy::default(), now()), full);
        assert_eq!(full.removals.len(), 2);
        // Kept and unread (a caller that did not read what it had to): what it names is
        // unknown, so no output goes, by age or by the cap.
        partly[2] = unread(partly[2].clone());
        let p = plan(&partly, None, &TrimPolicy::default(), now());
        assert_eq!(
            names(&p),
            vec![(entries[0].rel_path(), RemovalReason::Expired)]
        );
        let capped = TrimPolicy {
            max_bytes: Some(0),
            ..TrimPolicy::default()
        };
        let p = plan(&partly, None, &capped, now());
        assert!(p.removals.iter().all(|r| r.name.ends_with("-a")), "{p:?}");
    }

    #[test]
    fn shared_output_goes_with_its_last_action() {
        let entries = vec![
            action(1, 9, 10, 30 * DAY),
            action(2, 9, 10, 2 * DAY),
            output(9, 10, 30 * DAY),
        ];
        let p = plan(&entries, None, &TrimPolicy::default(), now());
        assert_eq!(
            names(&p),
            vec![(entries[0].rel_path(), RemovalReason::Expired)]
        );
        assert_whole(&entries, &p);
    }

    #[test]
    fn dangling_and_invalid_actions_past_the_grace() {
        let mut bad = action(5, 6, 1, 3 * 3600);
        bad.action = Some(Err(ActionRecordError::Header));
        let mut mismatched = action(7, 8, 1, 3 * 3600);
        if let Some(Ok(rec)) = &mut mismatched.action {
            rec.action = id(99);
        }
        let entries = vec![
            action(1, 2, 10, 3 * 3600), // output missing, past the grace
            action(3, 4, 10, 60),       // output missing, within the grace: a Put in progress?
            bad,
            mismatched,
            output(8, 1, 3 * 3600),
        ];
        let p = plan(&entries, None, &TrimPolicy::default(), now());
        assert_eq!(
            names(&p),
            vec![
                (entries[0].rel_path(), RemovalReason::DanglingAction),
                (entries[2].rel_path(), RemovalReason::InvalidAction),
                (entries[3].rel_path(), RemovalReason::InvalidAction),
            ]
        );
    }

    #[test]
    fn cap_evicts_orphans_then_lru_entries_whole() {
        let entries = vec![
            action(1, 2, 1000, 3 * DAY),
            output(2, 1000, 3 * DAY),
            action(3, 4, 1000, 2 * DAY),
            output(4, 1000, 2 * DAY),
            action(5, 6, 1000, 3 * 3600),
            output(6, 1000, 3 * 3600),
            output(7, 500, 4 * DAY), // orphan
        ];
        let total: u64 = entries.iter().map(|e| e.size).sum();
        let policy = TrimPolicy {
            max_bytes: Some(total - 600),
            ..TrimPolicy::default()
        };
        let last = (100 * DAY - 60).to_string(); // not due: only the cap acts
        let p = plan(&entries, Some(last.as_bytes()), &policy, now());
        assert!(!p.age_trim);
        assert_eq!(p.new_trim_txt, None);
        // The orphan (500) is not enough; the least recently used entry goes whole.
        assert_eq!(
            names(&p),
            vec![
                (entries[0].rel_path(), RemovalReason::Evicted),
                (entries[1].rel_path(), RemovalReason::Evicted),
                (entries[6].rel_path(), RemovalReason::UnreferencedOutput),
            ]
        );
        assert_eq!(
            p.cap,
            Some(CapOutcome {
                max_bytes: total - 600,
                met: true,
                kept_bytes: p.bytes_after,
            })
        );
        assert!(p.bytes_after <= total - 600);
        assert_whole(&entries, &p);
    }

    #[test]
    fn cap_spares_entries_inside_the_grace() {
        let entries = vec![action(1, 2, 1000, 60), output(2, 1000, 60)];
        let policy = TrimPolicy {
            max_bytes: Some(10),
            ..TrimPolicy::default()
        };
        let p = plan(&entries, None, &policy, now());
        assert!(p.removals.is_empty());
        assert_eq!(
            p.cap,
            Some(CapOutcome {
                max_bytes: 10,
                met: false,
                kept_bytes: 1000 + crate::gocache::ACTION_ENTRY_SIZE as u64,
            })
        );
        assert_eq!(
            p.cap.unwrap().excess_bytes(),
            990 + crate::gocache::ACTION_ENTRY_SIZE as u64
        );
        // With no grace the cap is met, and the entry still goes whole.
        let policy = TrimPolicy {
            in_use_grace: Duration::ZERO,
            ..policy
        };
        let p = plan(&entries, None, &policy, now());
        assert_eq!(p.removals.len(), 2);
        assert_eq!(p.bytes_after, 0);
        assert!(p.cap.unwrap().met);
        assert_whole(&entries, &p);
    }

    #[test]
    fn strays_age_out_and_other_files_are_left_alone() {
        let mut stray = output(1, 5, 30 * DAY);
        stray.name = "not-hex-d".to_string();
        let mut other = output(1, 5, 30 * DAY);
        other.name = "README".to_string();
        let entries = vec![stray, other];
        let p = plan(&entries, None, &TrimPolicy::default(), now());
        assert_eq!(
            names(&p),
            vec![("01/not-hex-d".to_string(), RemovalReason::Expired)]
        );
        assert_eq!(p.entries_before, 1);
    }

    fn capped(max: u64) -> TrimPolicy {
        TrimPolicy {
            max_bytes: Some(max),
            ..TrimPolicy::default()
        }
    }

    /// Not due, so only the cap acts.
    fn not_due() -> String {
        (100 * DAY - 60).to_string()
    }

    #[test]
    fn the_default_grace_has_a_margin_over_gos_refresh_interval() {
        assert_eq!(TrimPolicy::default().in_use_grace, DEFAULT_IN_USE_GRACE);
        assert!(MIN_IN_USE_GRACE > MTIME_INTERVAL);
        assert!(DEFAULT_IN_USE_GRACE >= MIN_IN_USE_GRACE);
    }

    #[test]
    fn cap_never_evicts_an_entry_whose_output_is_inside_the_grace() {
        // The -a is old, its -d was used ten minutes ago: the entry stays whole. (Before,
        // the -a was ranked alone and took the fresh -d along.)
        let entries = vec![action(1, 2, 1000, 3 * 3600), output(2, 1000, 600)];
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert!(p.removals.is_empty(), "{:?}", names(&p));
        assert!(!p.cap.unwrap().met);
        assert_eq!(p.cap.unwrap().kept_bytes, p.bytes_after);
    }

    #[test]
    fn cap_never_evicts_an_entry_whose_action_is_inside_the_grace() {
        // A fresh -a over an old -d (Go's `put` does not rewrite a -d that is already
        // there): neither goes, and the -d is not taken for an unreferenced one.
        let entries = vec![action(1, 2, 1000, 600), output(2, 1000, 3 * DAY)];
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert!(p.removals.is_empty(), "{:?}", names(&p));
        assert!(!p.cap.unwrap().met);
    }

    #[test]
    fn cap_ranks_an_entry_by_the_newer_of_its_two_mtimes() {
        // Entry 1: -a unused for 10 h, but its -d was used 3 h ago. Entry 3: both 5 h ago.
        // Entry 3 is the least recently used; ranking by the -a alone would pick entry 1.
        let entries = vec![
            action(1, 2, 1000, 10 * 3600),
            output(2, 1000, 3 * 3600),
            action(3, 4, 1000, 5 * 3600),
            output(4, 1000, 5 * 3600),
        ];
        let total: u64 = entries.iter().map(|e| e.size).sum();
        let p = plan(
            &entries,
            Some(not_due().as_bytes()),
            &capped(total - 1),
            now(),
        );
        assert_eq!(
            names(&p),
            vec![
                (entries[2].rel_path(), RemovalReason::Evicted),
                (entries[3].rel_path(), RemovalReason::Evicted),
            ]
        );
        assert_whole(&entries, &p);
    }

    #[test]
    fn cap_removes_every_action_before_any_output() {
        let mut entries = Vec::new();
        for n in 0..20u8 {
            entries.push(action(2 * n + 1, 2 * n + 2, 100, 3 * 3600 + u64::from(n)));
            entries.push(output(2 * n + 2, 100, 3 * 3600 + u64::from(n)));
        }
        entries.push(output(200, 100, 4 * 3600)); // named by nobody
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert_eq!(p.removals.len(), entries.len());
        let first_output = p
            .removals
            .iter()
            .position(|r| r.name.ends_with("-d"))
            .unwrap();
        assert!(
            p.removals[first_output..]
                .iter()
                .all(|r| r.name.ends_with("-d")),
            "{:?}",
            names(&p)
        );
        assert!(p.cap.unwrap().met);
        assert_whole(&entries, &p);
    }

    #[test]
    fn cap_keeps_a_shared_output_while_any_action_names_it() {
        // Two old actions share one old -d: evicting one keeps the -d for the other.
        let entries = vec![
            action(1, 9, 1000, 5 * 3600),
            action(2, 9, 1000, 4 * 3600),
            output(9, 1000, 4 * 3600),
        ];
        let a = crate::gocache::ACTION_ENTRY_SIZE as u64;
        let total = 2 * a + 1000;
        let p = plan(
            &entries,
            Some(not_due().as_bytes()),
            &capped(total - 1),
            now(),
        );
        assert_eq!(
            names(&p),
            vec![(entries[0].rel_path(), RemovalReason::Evicted)]
        );
        assert_whole(&entries, &p);
        // Both must go: the -d goes with the last of them.
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert_eq!(p.removals.len(), 3);
        assert_eq!(p.removals[2].rel_path(), entries[2].rel_path());
        // One of them fresh: it and the -d stay, whatever the cap.
        let entries = vec![
            action(1, 9, 1000, 5 * 3600),
            action(2, 9, 1000, 60),
            output(9, 1000, 5 * 3600),
        ];
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert_eq!(
            names(&p),
            vec![(entries[0].rel_path(), RemovalReason::Evicted)]
        );
        assert!(!p.cap.unwrap().met);
        assert_whole(&entries, &p);
    }

    #[test]
    fn cap_spares_an_unreferenced_output_inside_the_grace() {
        // A `Put` in progress writes the -d first: it has no -a yet.
        let entries = vec![output(5, 1000, 60), output(6, 1000, 3 * 3600)];
        let p = plan(&entries, Some(not_due().as_bytes()), &capped(0), now());
        assert_eq!(
            names(&p),
            vec![(entries[1].rel_path(), RemovalReason::UnreferencedOutput)]
        );
        assert_eq!(p.cap.unwrap().kept_bytes, 1000);
        assert_eq!(p.cap.unwrap().excess_bytes(), 1000);
    }

    /// Go's `Cache.used` on a hit at `t` of a file with mtime `m`.
    fn go_used(m: SystemTime, t: SystemTime) -> SystemTime {
        if t.duration_since(m).unwrap_or_default() < MTIME_INTERVAL {
            m
        } else {
            t
        }
    }

    #[test]
    fn an_entry_a_build_looked_up_survives_the_margin_whatever_its_age() {
        // A build looks an entry up at `t` (Go refreshes each half if it is an hour old or
        // more) and opens its -d up to `margin` later. No trim in that time, with any cap,
        // may evict it: whatever the entry's mtimes were before the lookup.
        let policy = capped(0);
        let margin = policy.in_use_grace - MTIME_INTERVAL;
        let t = now() - Duration::from_secs(2 * DAY);
        let ages = [
            0,
            1,
            59,
            1800,
            3599,
            3600,
            3601,
            7199,
            7200,
            7201,
            DAY,
            10 * DAY,
        ];
        for &age_a in &ages {
            for &age_d in &ages {
                let mut entries = vec![action(1, 2, 1000, 0), output(2, 1000, 0)];
                entries[0].mtime = go_used(t - Duration::from_secs(age_a), t);
                entries[1].mtime = go_used(t - Duration::from_secs(age_d), t);
                for after in [0, 1, 600, margin.as_secs() - 1] {
                    let trim_at = t + Duration::from_secs(after);
                    let last = (trim_at - Duration::from_secs(60))
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        .to_string();
                    let p = plan(&entries, Some(last.as_bytes()), &policy, trim_at);
                    assert!(
                        p.removals.is_empty(),
                        "ages {age_a}/{age_d}, trim {after} s after the lookup: {:?}",
                        names(&p)
                    );
                }
            }
        }
        // Past the margin, an entry that was not used again may go: here one whose mtimes
        // were a second short of an hour at the lookup (not refreshed).
        let mut entries = vec![action(1, 2, 1000, 0), output(2, 1000, 0)];
        entries[0].mtime = go_used(t - Duration::from_secs(3599), t);
        entries[1].mtime = go_used(t - Duration::from_secs(3599), t);
        let trim_at = t + margin + Duration::from_secs(2);
        let p = plan(&entries, None, &policy, trim_at);
        assert_eq!(p.removals.len(), 2);
        // Why the margin: with a grace of exactly `mtimeInterval`, that entry (looked up a
        // second before its mtime turned an hour old, so not refreshed) is evictable two
        // seconds after the lookup, while the build may still have to open its -d.
        let no_margin = TrimPolicy {
            in_use_grace: MTIME_INTERVAL,
            ..policy
        };
        let p = plan(&entries, None, &no_margin, t + Duration::from_secs(2));
        assert_eq!(p.removals.len(), 2);
    }
}
