//! Opaque keyset page tokens for denial listings.
//!
//! A token names the last row a page returned by its sort key (`last_seen`, `id`), so the
//! next page starts strictly after it whatever was inserted or deleted meanwhile (no
//! `OFFSET`, no skipped or repeated rows when rows come and go). It also carries a
//! fingerprint of the filter it was made for and a checksum, so a token used with another
//! filter, truncated or made up is rejected as [`StoreError::InvalidPageToken`].
//! Tokens are not secrets and must never be trusted for anything but where to resume.
//!
//! Layout (hex of 29 bytes): version `1` (1 byte) · `last_seen` f64 bits (8, big endian) ·
//! `id` (8) · filter fingerprint (8) · FNV-1a checksum of the preceding bytes (4).

use crate::error::{Result, StoreError};
use crate::types::DenialFilter;

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 8 + 8 + 4;

/// Where the next page resumes: strictly after the row with this sort key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Resume {
    pub(crate) last_seen: f64,
    pub(crate) id: i64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fingerprint of the filter that a token belongs to, stable across restarts.
pub(crate) fn fingerprint(filter: &DenialFilter) -> u64 {
    let mut canon = Vec::new();
    let mut field = |tag: u8, value: Option<&[u8]>| {
        canon.push(tag);
        match value {
            None => canon.push(0),
            Some(v) => {
                canon.push(1);
                canon.extend_from_slice(&(v.len() as u64).to_be_bytes());
                canon.extend_from_slice(v);
            }
        }
    };
    field(
        b's',
        filter
            .since
            .map(f64::to_bits)
            .map(u64::to_be_bytes)
            .as_ref()
            .map(|b| &b[..]),
    );
    field(b'c', filter.comm.as_deref().map(str::as_bytes));
    field(b'p', filter.path_prefix.as_deref().map(str::as_bytes));
    field(b't', filter.status.map(|s| s.as_str().as_bytes()));
    field(b'g', Some(&[u8::from(filter.go_related_only)]));
    fnv1a(&canon)
}

/// Makes the token that resumes after `resume` under `filter`.
pub(crate) fn encode(resume: Resume, filter: &DenialFilter) -> String {
    let mut bytes = Vec::with_capacity(LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&resume.last_seen.to_bits().to_be_bytes());
    bytes.extend_from_slice(&resume.id.to_be_bytes());
    bytes.extend_from_slice(&fingerprint(filter).to_be_bytes());
    let check = fnv1a(&bytes) as u32;
    bytes.extend_from_slice(&check.to_be_bytes());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a token against `filter` and returns where to resume.
pub(crate) fn decode(token: &str, filter: &DenialFilter) -> Result<Resume> {
    let invalid = |reason| StoreError::InvalidPageToken { reason };
    if token.len() != LEN * 2 {
        return Err(invalid("wrong length"));
    }
    let bytes = (0..LEN)
        .map(|i| u8::from_str_radix(token.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid("not hexadecimal"))?;
    let (body, check) = bytes.split_at(LEN - 4);
    if (fnv1a(body) as u32).to_be_bytes() != check {
        return Err(invalid("checksum mismatch"));
    }
    if body[0] != VERSION {
        return Err(invalid("unknown version"));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[at..at + 8]);
        b
    };
    let last_seen = f64::from_bits(u64::from_be_bytes(word(1)));
    let id = i64::from_be_bytes(word(9));
    if u64::from_be_bytes(word(17)) != fingerprint(filter) {
        return Err(invalid("token was issued for a different filter"));
    }
    if !last_seen.is_finite() {
        return Err(invalid("bad position"));
    }
    Ok(Resume { last_seen, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Status;

    fn filter() -> DenialFilter {
        DenialFilter {
            since: Some(12.5),
            comm: Some("go".into()),
            path_prefix: Some("/home".into()),
            status: Some(Status::New),
            go_related_only: true,
        }
    }

    #[test]
    fn round_trips() {
        let r = Resume {
            last_seen: 1_700_000_000.123,
            id: 42,
        };
        let t = encode(r, &filter());
        assert_eq!(t.len(), LEN * 2);
        assert_eq!(decode(&t, &filter()).unwrap(), r);
    }

    #[test]
    fn rejects_other_filters_and_garbage() {
        let r = Resume {
            last_seen: 1.0,
            id: 1,
        };
        let t = encode(r, &filter());
        let mut other = filter();
        other.go_related_only = false;
        assert!(matches!(
            decode(&t, &other),
            Err(StoreError::InvalidPageToken { .. })
        ));
        for bad in [
            "",
            "abc",
            &"zz".repeat(LEN),
            &"00".repeat(LEN),
            "é".repeat(LEN).as_str(),
        ] {
            assert!(
                matches!(
                    decode(bad, &filter()),
                    Err(StoreError::InvalidPageToken { .. })
                ),
                "{bad:?}"
            );
        }
        // Flip one hex digit anywhere: rejected.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let flipped = String::from_utf8(b).unwrap();
            assert!(decode(&flipped, &filter()).is_err(), "position {i}");
        }
    }

    #[test]
    fn fingerprint_separates_fields() {
        let a = DenialFilter {
            comm: Some("ab".into()),
            path_prefix: Some("c".into()),
            ..DenialFilter::default()
        };
        let b = DenialFilter {
            comm: Some("a".into()),
            path_prefix: Some("bc".into()),
            ..DenialFilter::default()
        };
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
