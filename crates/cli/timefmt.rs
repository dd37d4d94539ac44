//! Times for people and for flags: UTC timestamps without a date library,
//! and `--since` values (`10m`, `2h`, `3d`, unix seconds, or an RFC 3339 UTC
//! time like `2026-11-29T06:00:00Z`).

/// `2026-11-29 06:10:03` (UTC) for a unix time.
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days → (year, month, day) for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The current unix time (0 if the clock is before 1970).
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Parses a `--since` value into a unix time, given the current unix time.
pub fn parse_since(s: &str, now: f64) -> Result<f64, String> {
    let bad = || {
        format!(
            "{s:?} is not a time: use a duration like 10m, 2h or 3d, unix seconds, \
             or a UTC time like 2026-11-29T06:00:00Z"
        )
    };
    let s = s.trim();
    if s.ends_with('Z') {
        return parse_rfc3339(s).ok_or_else(bad);
    }
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let n: f64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        let mult = match unit {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86_400.0,
            'w' => 604_800.0,
            _ => return Err(bad()),
        };
        if n < 0.0 {
            return Err(bad());
        }
        return Ok(now - n * mult);
    }
    s.parse::<f64>().map_err(|_| bad())
}

fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T').or_else(|| s.split_once(' '))?;
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    Some((days_from_civil(y, m, day) * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000.123), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn since_accepts_durations_unix_and_rfc3339() {
        let now = 1_700_000_000.0;
        assert_eq!(parse_since("10m", now).unwrap(), now - 600.0);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7200.0);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400.0);
        assert_eq!(parse_since("1699999000", now).unwrap(), 1_699_999_000.0);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000.0
        );
        for bad in ["yesterday", "10x", "-5m", "2023-13-01T00:00:00Z", ""] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
