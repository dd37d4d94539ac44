//! Plain row and request types of the store: what goes in, what comes out.
//!
//! These are the store's own types; the daemon maps the audit parser's values into them, so
//! this crate never depends on the parser. They hold data only: this module must never touch
//! the database.

use std::fmt;
use std::str::FromStr;

/// Identity of a denial: two AVC denials with the same key are the same alert, counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DenialKey {
    /// Source context, e.g. `system_u:system_r:container_t:s0`.
    pub scontext: String,
    /// Target context, e.g. `unconfined_u:object_r:user_home_t:s0`.
    pub tcontext: String,
    /// Target class, e.g. `file`, `dir`.
    pub tclass: String,
    /// Denied permissions, sorted and space-joined (`"open read"`). The store normalizes this
    /// before using it as a key, so `"read open"` and `"open read"` are the same denial.
    pub permissions: String,
    /// The object: a path when the audit event had one, else the `name=` field.
    pub target: String,
    /// The `comm=` of the denied process.
    pub comm: String,
}

impl DenialKey {
    /// Builds a key, sorting and de-duplicating `permissions`.
    pub fn new<P, S>(
        scontext: impl Into<String>,
        tcontext: impl Into<String>,
        tclass: impl Into<String>,
        permissions: P,
        target: impl Into<String>,
        comm: impl Into<String>,
    ) -> DenialKey
    where
        P: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut perms: Vec<String> = permissions
            .into_iter()
            .flat_map(|p| {
                p.as_ref()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        perms.sort();
        perms.dedup();
        DenialKey {
            scontext: scontext.into(),
            tcontext: tcontext.into(),
            tclass: tclass.into(),
            permissions: perms.join(" "),
            target: target.into(),
            comm: comm.into(),
        }
    }
}

/// Returns `permissions` sorted, de-duplicated and single-space-joined; borrows when it
/// already is.
pub(crate) fn normalize_permissions(permissions: &str) -> std::borrow::Cow<'_, str> {
    let mut perms: Vec<&str> = permissions.split_whitespace().collect();
    let already = perms.windows(2).all(|w| w[0] < w[1]) && perms.join(" ") == permissions;
    if already {
        return std::borrow::Cow::Borrowed(permissions);
    }
    perms.sort_unstable();
    perms.dedup();
    std::borrow::Cow::Owned(perms.join(" "))
}

/// One AVC denial as seen in the audit log, ready to be counted.
#[derive(Clone, Debug, PartialEq)]
pub struct DenialObservation {
    /// Which alert this event belongs to.
    pub key: DenialKey,
    /// Audit event timestamp, unix seconds (`msg=audit(1700000000.123:4567)` → 1700000000.123).
    pub seen_at: f64,
    /// Event id made by the daemon, e.g. `"node:1700000000.123:4567"`.
    pub event_id: String,
    /// The raw records of the event, kept so `explain` can show them.
    pub raw: String,
    /// `exe=` of the denied process, when known.
    pub exe: Option<String>,
    /// Whether the audit crate judged the event go-related.
    pub go_related: bool,
}

/// Where the audit tailer stands in one log file. One row per `log_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCursor {
    /// The log being followed, e.g. `/var/log/audit/audit.log`.
    pub log_path: String,
    /// `st_dev` of the file the offset refers to (detects rotation).
    pub dev: u64,
    /// `st_ino` of the file the offset refers to (detects rotation).
    pub ino: u64,
    /// Byte offset of the first byte not yet consumed.
    pub offset: u64,
    /// Id of the last event consumed, for logs and for a sanity check after a restart.
    pub last_event_id: Option<String>,
    /// Events already recorded whose lines begin at or after `offset` (they
    /// completed while an earlier event was still incomplete). A resume reads
    /// them again and must skip them. Usually empty. No key contains `\n`.
    pub replay_keys: Vec<String>,
}

/// Triage state of a denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Not looked at yet (also: a `Fixed` denial that came back).
    New,
    /// A repair fixed it (see `fixed_by_repair`).
    Fixed,
    /// A person has seen it; it stays counted but is not news.
    Acknowledged,
    /// A person decided it does not matter.
    Ignored,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 4] = [
        Status::New,
        Status::Fixed,
        Status::Acknowledged,
        Status::Ignored,
    ];

    /// The text stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Fixed => "fixed",
            Status::Acknowledged => "acknowledged",
            Status::Ignored => "ignored",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Status::from_str`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown denial status {0:?} (expected new, fixed, acknowledged or ignored)")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Status, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What [`crate::Store::record_batch`] did with one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedDenial {
    /// Row id of the denial the observation was counted in.
    pub id: i64,
    /// The denial's count after this observation.
    pub count: u64,
    /// True when this observation created the denial ("new denial" vs "seen again").
    pub is_new: bool,
    /// Status after this observation: a `Fixed` denial seen again after its fix is `New`.
    pub status: Status,
}

/// A stored denial.
#[derive(Clone, Debug, PartialEq)]
pub struct DenialRow {
    /// Stable row id; never reused, even after retention deleted rows.
    pub id: i64,
    /// The dedup key.
    pub key: DenialKey,
    /// How many events had this key.
    pub count: u64,
    /// Earliest event timestamp (unix seconds).
    pub first_seen: f64,
    /// Latest event timestamp (unix seconds).
    pub last_seen: f64,
    /// Id of the latest event.
    pub last_event_id: String,
    /// Raw text of the latest event.
    pub last_raw: String,
    /// `exe=` of the latest event, when known.
    pub exe: Option<String>,
    /// Whether any event of this denial was go-related.
    pub go_related: bool,
    /// Triage state.
    pub status: Status,
    /// Journal id of the repair that fixed it.
    pub fixed_by_repair: Option<i64>,
    /// When the status was last set (wall clock, unix seconds); `None` until first set.
    pub status_changed_at: Option<f64>,
    /// When the row was last written (wall clock, unix seconds).
    pub updated_at: f64,
}

/// Which denials [`crate::Store::list_denials`] returns. `Default` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenialFilter {
    /// Only denials seen at or after this time (`last_seen >= since`).
    pub since: Option<f64>,
    /// Only denials of this exact `comm`.
    pub comm: Option<String>,
    /// Only denials whose target is this path or lies beneath it, component-wise:
    /// `/a/b` matches `/a/b` and `/a/b/c`, not `/a/bc`. Trailing slashes are ignored; `/`
    /// matches every absolute path; an empty string matches everything.
    pub path_prefix: Option<String>,
    /// Only denials in this status.
    pub status: Option<Status>,
    /// Only go-related denials.
    pub go_related_only: bool,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page: 0 means [`PageRequest::DEFAULT_PAGE_SIZE`], more than
    /// [`PageRequest::MAX_PAGE_SIZE`] is lowered to it.
    pub page_size: u32,
    /// `next_page_token` of the previous page, `None` for the first page.
    pub page_token: Option<String>,
}

impl PageRequest {
    /// Page size when none is asked for.
    pub const DEFAULT_PAGE_SIZE: u32 = 100;
    /// Largest page served.
    pub const MAX_PAGE_SIZE: u32 = 1000;

    /// First page of `page_size` rows.
    pub fn first(page_size: u32) -> PageRequest {
        PageRequest {
            page_size,
            page_token: None,
        }
    }

    /// The page size actually served.
    pub fn effective_size(&self) -> u32 {
        match self.page_size {
            0 => Self::DEFAULT_PAGE_SIZE,
            n => n.min(Self::MAX_PAGE_SIZE),
        }
    }
}

/// A page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The rows, in the listing's order.
    pub items: Vec<T>,
    /// Token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Number of denials in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Denials in `new`.
    pub new: u64,
    /// Denials in `fixed`.
    pub fixed: u64,
    /// Denials in `acknowledged`.
    pub acknowledged: u64,
    /// Denials in `ignored`.
    pub ignored: u64,
}

impl StatusCounts {
    /// Count for one status.
    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::New => self.new,
            Status::Fixed => self.fixed,
            Status::Acknowledged => self.acknowledged,
            Status::Ignored => self.ignored,
        }
    }

    /// All denials.
    pub fn total(&self) -> u64 {
        self.new + self.fixed + self.acknowledged + self.ignored
    }
}

/// What [`crate::Store::apply_retention`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Denials removed in total.
    pub removed: u64,
    /// Of which: removed because older than the maximum age.
    pub removed_by_age: u64,
    /// Of which: removed because beyond the maximum row count.
    pub removed_by_count: u64,
}

/// One change made (or, for a dry run, planned) by a repair.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    /// When (wall clock, unix seconds).
    pub at: f64,
    /// The path changed.
    pub path: String,
    /// The cache root it lies in.
    pub root: String,
    /// What was changed: `owner`, `mode`, `acl`, `label`, ...
    pub kind: String,
    /// Value before the change, rendered.
    pub before: String,
    /// Value after the change, rendered.
    pub after: String,
    /// Why: the drift or denial that caused it.
    pub cause: String,
    /// Uid that asked for it through the API; `None` for self-healing.
    pub requester_uid: Option<u32>,
    /// True when nothing was changed, only planned.
    pub dry_run: bool,
}

/// A change about to be made, written before it is made (see `journal_intents`).
#[derive(Clone, Debug, PartialEq)]
pub struct JournalIntent {
    /// When it was planned (wall clock, unix seconds).
    pub at: f64,
    /// The path to change.
    pub path: String,
    /// The cache root it lies in.
    pub root: String,
    /// The operation: `chown`, `chmod`, `relabel`, `setfacl -m`, `setfacl -x`.
    pub kind: String,
    /// The operation's argument (what the entry is to become).
    pub target: String,
    /// The value seen when the change was planned, rendered as in the journal.
    pub before: String,
    /// Why, as in the journal.
    pub cause: String,
    /// Uid that asked for it through the API; `None` for self-healing.
    pub requester_uid: Option<u32>,
}

/// An intent still in the store: its change was planned and perhaps made, but its
/// outcome was never recorded (goguardd stopped in between).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingIntent {
    /// Its id in `journal_intents`.
    pub id: i64,
    /// The intent.
    pub intent: JournalIntent,
}

/// Which journal rows [`crate::Store::list_journal_matching`] returns. `Default` matches
/// every row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalFilter {
    /// Only rows whose path is this path or lies beneath it, component-wise, as in
    /// [`DenialFilter::path_prefix`]: `/a/b` matches `/a/b` and `/a/b/c`, not `/a/bc`.
    pub path_prefix: Option<String>,
    /// Only rows written at or after this time (`at >= since`, unix seconds).
    pub since: Option<f64>,
    /// Only rows of these roots (exact root paths); `Some` of an empty list matches
    /// nothing. `None` means every root. The caller decides who may see which roots.
    pub roots: Option<Vec<String>>,
    /// Only rows after this `(at, id)` in the listing's order (older, or as old with a
    /// smaller id): where the next page of a paged read resumes.
    pub before: Option<(f64, i64)>,
}

/// A stored journal entry.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    /// Stable id; never reused.
    pub id: i64,
    /// The entry.
    pub entry: JournalEntry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_new_sorts_and_dedups_permissions() {
        let k = DenialKey::new("s", "t", "file", ["write", "read open", "read"], "/a", "go");
        assert_eq!(k.permissions, "open read write");
    }

    #[test]
    fn normalize_permissions_borrows_when_normal() {
        assert!(matches!(
            normalize_permissions("open read"),
            std::borrow::Cow::Borrowed("open read")
        ));
        assert_eq!(normalize_permissions("read  open read"), "open read");
        assert_eq!(normalize_permissions(" read"), "read");
        assert_eq!(normalize_permissions(""), "");
    }

    #[test]
    fn status_round_trips_through_text() {
        for st in Status::ALL {
            assert_eq!(st.as_str().parse::<Status>(), Ok(st));
        }
        assert!("NEW".parse::<Status>().is_err());
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(PageRequest::first(0).effective_size(), 100);
        assert_eq!(PageRequest::first(7).effective_size(), 7);
        assert_eq!(PageRequest::first(5000).effective_size(), 1000);
    }
}
