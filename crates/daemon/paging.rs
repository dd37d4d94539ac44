//! Paging of the listings that grow with what users put in their caches
//! (`ListRoots`, `ListFindings`, `ListJournal`): how much one reply may hold and
//! the opaque tokens that say where the next page resumes.
//!
//! A reply holds at most [`MAX_PAGE`] items and [`REPLY_BUDGET`] bytes of
//! encoded items (half the 4 MiB a tonic client accepts by default, so the
//! envelope and the other fields always fit), and at least one item, so paging
//! always moves on. Tokens are keysets (the sort key of the last item sent),
//! not offsets: an item is never sent twice while a client pages, whatever
//! changes meanwhile. A token carries a fingerprint of the listing and filter
//! it was issued for and a checksum; anything else is `INVALID_ARGUMENT`.
//! Tokens are not secrets and are trusted for nothing but where to resume.
//!
//! Layout (hex): version (1 byte) · listing (1) · fields, each a 4-byte big
//! endian length and its bytes · FNV-1a of the filter (8) · FNV-1a of all the
//! preceding bytes (4).

use tonic::Status;

/// Encoded bytes of the items of one reply, at most.
pub const REPLY_BUDGET: usize = 2 << 20;

/// Items in one reply, at most (and the page size a request of 0 gets).
pub const MAX_PAGE: usize = 10_000;

const VERSION: u8 = 1;

/// Which listing a token belongs to (a token of one is refused by the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Listing {
    Roots = b'r',
    Findings = b'f',
    Journal = b'j',
}

/// The items a request's `page_size` allows: 0 means [`MAX_PAGE`].
pub fn page_cap(page_size: u32) -> usize {
    match page_size {
        0 => MAX_PAGE,
        n => (n as usize).min(MAX_PAGE),
    }
}

/// Counts a reply's encoded size as items are added.
#[derive(Debug, Default)]
pub struct Budget {
    used: usize,
    items: usize,
}

impl Budget {
    /// True (and counted) when an item of `encoded_len` bytes still fits; the
    /// first item always does.
    pub fn take(&mut self, encoded_len: usize) -> bool {
        // A repeated field's tag and length prefix: at most 1 + 5 bytes.
        let cost = encoded_len + 6;
        if self.items > 0 && self.used + cost > REPLY_BUDGET {
            return false;
        }
        self.used += cost;
        self.items += 1;
        true
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fingerprint of a filter's fields (length-prefixed, so fields cannot run
/// into each other).
pub fn fingerprint(fields: &[&[u8]]) -> u64 {
    let mut canon = Vec::new();
    for f in fields {
        canon.extend_from_slice(&(f.len() as u64).to_be_bytes());
        canon.extend_from_slice(f);
    }
    fnv1a(&canon)
}

/// The token resuming `listing` after the item whose key is `fields`, under the
/// filter with fingerprint `filter`.
pub fn encode(listing: Listing, fields: &[&[u8]], filter: u64) -> String {
    let mut bytes = vec![VERSION, listing as u8];
    for f in fields {
        bytes.extend_from_slice(&(f.len() as u32).to_be_bytes());
        bytes.extend_from_slice(f);
    }
    bytes.extend_from_slice(&filter.to_be_bytes());
    let check = fnv1a(&bytes) as u32;
    bytes.extend_from_slice(&check.to_be_bytes());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key fields of a token issued by [`encode`] for `listing` and `filter`.
pub fn decode(token: &str, listing: Listing, filter: u64) -> Result<Vec<Vec<u8>>, Status> {
    let invalid = |why: &str| {
        Status::invalid_argument(format!(
            "page_token is not one goguardd issued for this listing and filter ({why}); \
             start again without it"
        ))
    };
    if token.len() % 2 != 0 || token.len() < 2 * (2 + 8 + 4) {
        return Err(invalid("wrong length"));
    }
    let bytes = (0..token.len() / 2)
        .map(|i| u8::from_str_radix(token.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid("not hexadecimal"))?;
    let (body, check) = bytes.split_at(bytes.len() - 4);
    if (fnv1a(body) as u32).to_be_bytes() != check {
        return Err(invalid("checksum mismatch"));
    }
    if body[0] != VERSION || body[1] != listing as u8 {
        return Err(invalid("another version or listing"));
    }
    let (fields_bytes, fp) = body[2..].split_at(body.len() - 2 - 8);
    if fp != filter.to_be_bytes() {
        return Err(invalid("issued for another filter"));
    }
    let mut fields = Vec::new();
    let mut rest = fields_bytes;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(invalid("truncated"));
        }
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        if tail.len() < len {
            return Err(invalid("truncated"));
        }
        let (field, tail) = tail.split_at(len);
        fields.push(field.to_vec());
        rest = tail;
    }
    Ok(fields)
}

/// An `f64` as token bytes, and back.
pub fn f64_bytes(v: f64) -> [u8; 8] {
    v.to_bits().to_be_bytes()
}

pub fn f64_from(bytes: &[u8]) -> Option<f64> {
    Some(f64::from_bits(u64::from_be_bytes(bytes.try_into().ok()?))).filter(|v| v.is_finite())
}

pub fn i64_from(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_everything_else() {
        let fields: [&[u8]; 3] = [b"/home/u/.cache/go-build", b"ab/x\n\xff-d", b""];
        let t = encode(Listing::Findings, &fields, 7);
        assert_eq!(decode(&t, Listing::Findings, 7).unwrap(), fields);
        assert!(decode(&t, Listing::Findings, 8).is_err(), "another filter");
        assert!(decode(&t, Listing::Roots, 7).is_err(), "another listing");
        for bad in ["", "abc", "zz", &t[..t.len() - 2], &"0".repeat(t.len())] {
            let e = decode(bad, Listing::Findings, 7).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let flipped = String::from_utf8(b).unwrap();
            assert!(decode(&flipped, Listing::Findings, 7).is_err(), "digit {i}");
        }
    }

    #[test]
    fn a_reply_stays_under_the_budget_but_always_moves_on() {
        let mut b = Budget::default();
        assert!(b.take(REPLY_BUDGET * 2), "the first item always fits");
        assert!(!b.take(1));
        let mut b = Budget::default();
        let mut n = 0;
        while b.take(4096) {
            n += 1;
        }
        assert_eq!(n, REPLY_BUDGET / (4096 + 6));
        assert_eq!(page_cap(0), MAX_PAGE);
        assert_eq!(page_cap(5), 5);
        assert_eq!(page_cap(u32::MAX), MAX_PAGE);
    }
}
