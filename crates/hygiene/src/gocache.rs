//! Go's GOCACHE on-disk format and trimming constants, as pure values and parsers.
//!
//! Everything here mirrors `cmd/go/internal/cache/cache.go` of **Go 1.19.8** (Debian's
//! `golang-go`, source at `/usr/lib/go-1.19/src/cmd/go/internal/cache/cache.go`; line numbers
//! below are from that file). A later golang/go `cache.go` (commit 06261062) has the same
//! `used`, `Trim`, `trimSubdir` and `putIndexEntry`.
//!
//! - Layout (`fileName`, l.73): an entry for id `ID` (32 bytes, SHA-256) lives in the
//!   directory named by `fmt.Sprintf("%02x", id[0])` and is called `fmt.Sprintf("%x", id)`
//!   plus `-a` (action entry) or `-d` (output data).
//! - Action entry (`entrySize`, l.94–98; written by `putIndexEntry`, l.387, parsed by `get`,
//!   l.153–213): exactly `"v1 %x %x %20d %20d\n"` of action id, output id, output size and
//!   the write time in Unix nanoseconds: 175 bytes.
//! - Times (l.273–289): `mtimeInterval = 1h` (an entry's mtime is refreshed on use at most
//!   once an hour, `used`, l.300–306), `trimInterval = 24h` (a trim runs at most once a day),
//!   `trimLimit = 5 days` (entries unused that long are removed).
//! - `trim.txt` (`Trim`, l.309–344): the Unix time in seconds of the last completed trim,
//!   written as `fmt.Fprintf(&b, "%d", now.Unix())` (no newline) with `lockedfile.Write`
//!   (flock'ed, mode 0666 before umask); read with `lockedfile.Read`, `strings.TrimSpace`
//!   and `strconv.ParseInt(.., 10, 64)`; a trim is skipped when
//!   `now - lastTrim < trimInterval && now - lastTrim > -mtimeInterval`. A missing or
//!   unparsable file, or a time too far in the future, means "trim now".
//! - Trim cutoff (l.331): `now - trimLimit - mtimeInterval`; `trimSubdir` (l.347–371)
//!   removes every name ending in `-a` or `-d` whose mtime is *before* the cutoff.
//!
//! This module must never do I/O.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `mtimeInterval` (cache.go l.286): an entry's mtime is refreshed on use only when it is
/// older than this, so mtimes may lag the last use by up to an hour.
pub const MTIME_INTERVAL: Duration = Duration::from_secs(3600);
/// `trimInterval` (cache.go l.287): a trim runs at most once per this interval.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// `trimLimit` (cache.go l.288): entries unused this long are removed by a trim.
pub const TRIM_LIMIT: Duration = Duration::from_secs(5 * 24 * 3600);
/// `HashSize` (cache/hash.go): ids are SHA-256 sums.
pub const HASH_SIZE: usize = 32;
/// `entrySize` (cache.go l.97): `2 + 1 + 64 + 1 + 64 + 1 + 20 + 1 + 20 + 1`.
pub const ACTION_ENTRY_SIZE: usize =
    2 + 1 + 2 * HASH_SIZE + 1 + 2 * HASH_SIZE + 1 + 20 + 1 + 20 + 1;
/// The name of the last-trim file in the cache root.
pub const TRIM_TXT: &str = "trim.txt";

/// An action or output id: 32 bytes, shown as 64 lower-case hex digits as Go names files.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheId(pub [u8; HASH_SIZE]);

impl CacheId {
    /// Decodes 64 hex digits. Like Go's `hex.Decode`, upper-case digits are accepted.
    pub fn from_hex(s: &[u8]) -> Option<CacheId> {
        if s.len() != 2 * HASH_SIZE {
            return None;
        }
        let mut out = [0u8; HASH_SIZE];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(CacheId(out))
    }

    /// The name of the directory holding this id's entries (`%02x` of the first byte).
    pub fn subdir(&self) -> String {
        format!("{:02x}", self.0[0])
    }

    /// The file name of this id's entry of `kind` (`%x` + `-a`/`-d`).
    pub fn file_name(&self, kind: EntryKind) -> String {
        format!("{self}-{}", kind.suffix())
    }
}

impl fmt::Display for CacheId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CacheId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheId({self})")
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The two kinds of cache files Go trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// `<id>-a`: action id → output id, size, time.
    Action,
    /// `<id>-d`: output data, named by its SHA-256.
    Output,
}

impl EntryKind {
    /// `"a"` or `"d"`.
    pub fn suffix(self) -> &'static str {
        match self {
            EntryKind::Action => "a",
            EntryKind::Output => "d",
        }
    }
}

/// What a file name inside a `00`..`ff` directory is, to Go's trimmer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryName {
    /// A well-formed `<64 lower-case hex>-a|-d` name in the directory Go would look in.
    Entry(CacheId, EntryKind),
    /// Ends in `-a` or `-d` but is not a name `Cache.fileName` produces there (wrong length,
    /// case or directory). Go's `trimSubdir` still removes it by age; Go never reads it.
    Stray,
    /// Anything else: Go's trimmer leaves it alone, and so do we.
    Other,
}

/// Classifies `name` found in the directory whose first id byte is `dir_byte`.
pub fn classify_name(dir_byte: u8, name: &str) -> EntryName {
    let kind = if let Some(stem) = name.strip_suffix("-a") {
        (stem, EntryKind::Action)
    } else if let Some(stem) = name.strip_suffix("-d") {
        (stem, EntryKind::Output)
    } else {
        return EntryName::Other;
    };
    let (stem, kind) = kind;
    // Go writes lower-case hex (`%x`); an upper-case name is never looked up.
    let lower = stem.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    match CacheId::from_hex(stem.as_bytes()) {
        Some(id) if lower && id.0[0] == dir_byte => EntryName::Entry(id, kind),
        _ => EntryName::Stray,
    }
}

/// A parsed action entry (`-a` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionRecord {
    /// The action id (must equal the id in the file name, as `get` checks).
    pub action: CacheId,
    /// The output id: the `-d` entry holding the result.
    pub output: CacheId,
    /// The output's size in bytes (`GetFile` treats a `-d` of another size as a miss).
    pub size: u64,
    /// When the entry was written, Unix nanoseconds.
    pub time_unix_nanos: i64,
}

/// Why an action entry is unusable; each mirrors a `missing(...)` reason of `get`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionRecordError {
    /// Not exactly [`ACTION_ENTRY_SIZE`] bytes ("too long", "entry file incomplete").
    #[error("action entry is {0} bytes, want 175")]
    Length(usize),
    /// Separators or `v1` prefix wrong ("invalid header").
    #[error("invalid header")]
    Header,
    /// An id is not 64 hex digits ("decoding ID", "decoding output ID").
    #[error("bad hex id")]
    Hex,
    /// The size or time field is not a non-negative decimal.
    #[error("bad size or timestamp")]
    Number,
    /// The file could not be read (Go's `get` misses on it too).
    #[error("unreadable")]
    Unreadable,
}

impl ActionRecord {
    /// Parses an action entry exactly as `Cache.get` does (cache.go l.162–208). `get` also
    /// rejects an entry whose action id differs from the one looked up ("mismatched ID");
    /// callers compare [`ActionRecord::action`] with the file name.
    pub fn parse(entry: &[u8]) -> Result<ActionRecord, ActionRecordError> {
        if entry.len() != ACTION_ENTRY_SIZE {
            return Err(ActionRecordError::Length(entry.len()));
        }
        let h = 2 * HASH_SIZE;
        if entry[0] != b'v'
            || entry[1] != b'1'
            || entry[2] != b' '
            || entry[3 + h] != b' '
            || entry[3 + h + 1 + h] != b' '
            || entry[3 + h + 1 + h + 1 + 20] != b' '
            || entry[ACTION_ENTRY_SIZE - 1] != b'\n'
        {
            return Err(ActionRecordError::Header);
        }
        let action = CacheId::from_hex(&entry[3..3 + h]).ok_or(ActionRecordError::Hex)?;
        let output = CacheId::from_hex(&entry[4 + h..4 + 2 * h]).ok_or(ActionRecordError::Hex)?;
        let size_field = &entry[5 + 2 * h..5 + 2 * h + 20];
        let time_field = &entry[6 + 2 * h + 20..6 + 2 * h + 40];
        let size = parse_padded(size_field)?;
        let time = parse_padded(time_field)?;
        Ok(ActionRecord {
            action,
            output,
            size: size as u64,
            time_unix_nanos: time,
        })
    }

    /// The entry as `putIndexEntry` writes it: `"v1 %x %x %20d %20d\n"`.
    pub fn to_line(&self) -> String {
        format!(
            "v1 {} {} {:20} {:20}\n",
            self.action, self.output, self.size, self.time_unix_nanos
        )
    }
}

/// Leading spaces skipped, then `strconv.ParseInt(.., 10, 64)`, then `< 0` refused.
fn parse_padded(field: &[u8]) -> Result<i64, ActionRecordError> {
    let start = field.iter().take_while(|&&c| c == b' ').count();
    let text = std::str::from_utf8(&field[start..]).map_err(|_| ActionRecordError::Number)?;
    // Rust's i64 parser accepts what ParseInt(base 10) accepts: optional sign, digits.
    let n: i64 = text.parse().map_err(|_| ActionRecordError::Number)?;
    if n < 0 {
        return Err(ActionRecordError::Number);
    }
    Ok(n)
}

/// Parses `trim.txt` as `Trim` does: `strings.TrimSpace`, then a base-10 `int64`.
/// `None` when the content does not parse (Go then trims at once).
pub fn parse_trim_txt(data: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(data).ok()?;
    text.trim().parse::<i64>().ok()
}

/// `trim.txt` content for a trim completed at `now`: `fmt.Fprintf(&b, "%d", now.Unix())`.
pub fn format_trim_txt(now: SystemTime) -> String {
    unix_secs(now).to_string()
}

/// Whether a trim by age is due, by `Trim`'s test (cache.go l.319–326).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimDue {
    /// Due: no (parsable) `trim.txt`, or the last trim is a day old or more, or more than
    /// `mtimeInterval` in the future.
    Due {
        /// The last trim's Unix time, when `trim.txt` parsed.
        last_trim: Option<i64>,
    },
    /// Not due: the last trim was less than a day ago.
    NotDue {
        /// The last trim's Unix time.
        last_trim: i64,
    },
}

impl TrimDue {
    /// True for [`TrimDue::Due`].
    pub fn is_due(&self) -> bool {
        matches!(self, TrimDue::Due { .. })
    }
}

/// Decides whether Go would trim now, given `trim.txt`'s content (`None` when absent).
pub fn trim_due(trim_txt: Option<&[u8]>, now: SystemTime) -> TrimDue {
    let Some(last) = trim_txt.and_then(parse_trim_txt) else {
        return TrimDue::Due { last_trim: None };
    };
    // d := now.Sub(time.Unix(t, 0)); due unless d < trimInterval && d > -mtimeInterval.
    let d = unix_nanos(now) - i128::from(last) * 1_000_000_000;
    let not_due = d < TRIM_INTERVAL.as_nanos() as i128 && d > -(MTIME_INTERVAL.as_nanos() as i128);
    if not_due {
        TrimDue::NotDue { last_trim: last }
    } else {
        TrimDue::Due {
            last_trim: Some(last),
        }
    }
}

/// The trim cutoff `now - trimLimit - mtimeInterval` (cache.go l.331).
pub fn age_cutoff(now: SystemTime) -> SystemTime {
    now.checked_sub(TRIM_LIMIT + MTIME_INTERVAL)
        .unwrap_or(UNIX_EPOCH)
}

/// Nanoseconds since the Unix epoch (negative before it).
pub fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Seconds since the Unix epoch, rounded toward negative infinity like Go's `Time.Unix`.
pub fn unix_secs(t: SystemTime) -> i64 {
    unix_nanos(t).div_euclid(1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> CacheId {
        CacheId([b; HASH_SIZE])
    }

    #[test]
    fn action_record_round_trip_and_rejections() {
        let rec = ActionRecord {
            action: id(0xab),
            output: id(0x01),
            size: 1234,
            time_unix_nanos: 1_700_000_000_123_456_789,
        };
        let line = rec.to_line();
        assert_eq!(line.len(), ACTION_ENTRY_SIZE);
        assert_eq!(ActionRecord::parse(line.as_bytes()), Ok(rec));

        let mut long = line.clone().into_bytes();
        long.push(b'\n');
        assert_eq!(
            ActionRecord::parse(&long),
            Err(ActionRecordError::Length(176))
        );
        assert_eq!(
            ActionRecord::parse(&line.as_bytes()[..100]),
            Err(ActionRecordError::Length(100))
        );
        let mut bad = line.clone().into_bytes();
        bad[1] = b'2';
        assert_eq!(ActionRecord::parse(&bad), Err(ActionRecordError::Header));
        let mut bad = line.clone().into_bytes();
        bad[10] = b'g';
        assert_eq!(ActionRecord::parse(&bad), Err(ActionRecordError::Hex));
        let neg = line.replace("                1234", "               -1234");
        assert_eq!(
            ActionRecord::parse(neg.as_bytes()),
            Err(ActionRecordError::Number)
        );
        // Upper-case hex inside the record decodes, like hex.Decode.
        let upper = line.replacen(&"ab".repeat(32), &"AB".repeat(32), 1);
        assert_eq!(
            ActionRecord::parse(upper.as_bytes()).unwrap().action,
            id(0xab)
        );
    }

    #[test]
    fn names() {
        let name = id(0xab).file_name(EntryKind::Action);
        assert_eq!(
            classify_name(0xab, &name),
            EntryName::Entry(id(0xab), EntryKind::Action)
        );
        assert_eq!(classify_name(0xac, &name), EntryName::Stray);
        assert_eq!(
            classify_name(0xab, &name.to_uppercase().replace("-A", "-a")),
            EntryName::Stray
        );
        assert_eq!(classify_name(0xab, "junk-d"), EntryName::Stray);
        assert_eq!(classify_name(0xab, "README"), EntryName::Other);
        assert_eq!(id(0x0f).subdir(), "0f");
    }

    #[test]
    fn trim_due_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: i64| secs.to_string().into_bytes();
        assert_eq!(trim_due(None, now), TrimDue::Due { last_trim: None });
        assert_eq!(
            trim_due(Some(b"garbage"), now),
            TrimDue::Due { last_trim: None }
        );
        // Just under a day ago: not due; exactly a day: due.
        let t = 1_000_000 - 86_399;
        assert_eq!(
            trim_due(Some(&at(t)), now),
            TrimDue::NotDue { last_trim: t }
        );
        let t = 1_000_000 - 86_400;
        assert!(trim_due(Some(&at(t)), now).is_due());
        // Whitespace is trimmed.
        assert!(!trim_due(Some(b" 999990\n"), now).is_due());
        // In the future by less than an hour: not due; by an hour or more: due.
        assert!(!trim_due(Some(&at(1_000_000 + 3599)), now).is_due());
        assert!(trim_due(Some(&at(1_000_000 + 3600)), now).is_due());
    }

    #[test]
    fn cutoff_and_format() {
        let now = UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        assert_eq!(
            age_cutoff(now),
            UNIX_EPOCH + Duration::from_secs(5 * 86_400 - 3600)
        );
        assert_eq!(format_trim_txt(now + Duration::from_millis(999)), "864000");
    }
}
