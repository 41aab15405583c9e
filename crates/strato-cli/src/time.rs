//! RFC 3339 timestamps without a date-time crate: the API speaks Unix seconds, people
//! and the AWS-shaped JSON speak UTC calendar dates.

const SECS_PER_DAY: i64 = 86_400;

/// Formats Unix seconds as an RFC 3339 UTC timestamp, e.g. `2024-05-01T12:00:00Z`.
pub fn format_rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(SECS_PER_DAY);
    let secs = unix.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses a point in time given as Unix seconds, an RFC 3339 timestamp
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`, fractions ignored) or a bare
/// date (`2024-05-01`, midnight UTC).
pub fn parse_time(input: &str) -> Result<i64, String> {
    let input = input.trim();
    if let Ok(unix) = input.parse::<i64>() {
        return Ok(unix);
    }
    parse_rfc3339(input).ok_or_else(|| {
        format!("invalid time {input:?}: expected Unix seconds or RFC 3339 (2024-05-01T12:00:00Z)")
    })
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, rest) = match s.split_once(['T', 't', ' ']) {
        Some((date, rest)) => (date, Some(rest)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = digits(parts.next()?, 4)?;
    let month: i64 = digits(parts.next()?, 2)?;
    let day: i64 = digits(parts.next()?, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut unix = days_from_civil(year, month, day) * SECS_PER_DAY;
    let Some(rest) = rest else {
        return Some(unix);
    };

    // The offset starts at the first 'Z', '+' or '-' after the clock time.
    let offset_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, offset) = rest.split_at(offset_at);
    let clock = clock.split_once('.').map_or(clock, |(whole, frac)| {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            ""
        } else {
            whole
        }
    });
    let mut hms = clock.split(':');
    let hour: i64 = digits(hms.next()?, 2)?;
    let minute: i64 = digits(hms.next()?, 2)?;
    let second: i64 = digits(hms.next()?, 2)?;
    if hms.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    unix += hour * 3600 + minute * 60 + second;

    match offset {
        "Z" | "z" => Some(unix),
        _ => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (oh, om) = offset.get(1..)?.split_once(':')?;
            let (oh, om): (i64, i64) = (digits(oh, 2)?, digits(om, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            Some(unix - sign * (oh * 3600 + om * 60))
        }
    }
}

/// Parses exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_all_accepted_forms() {
        assert_eq!(parse_time("1714564800"), Ok(1_714_564_800));
        assert_eq!(parse_time("2024-05-01T12:00:00Z"), Ok(1_714_564_800));
        assert_eq!(parse_time("2024-05-01T12:00:00.250Z"), Ok(1_714_564_800));
        assert_eq!(parse_time("2024-05-01T14:00:00+02:00"), Ok(1_714_564_800));
        assert_eq!(parse_time("2024-05-01T10:30:00-01:30"), Ok(1_714_564_800));
        assert_eq!(parse_time("2024-05-01"), Ok(1_714_521_600));
    }

    #[test]
    fn round_trips() {
        for unix in [0, 59, 86_399, 951_868_799, 4_102_444_800, 1_714_564_800] {
            assert_eq!(parse_time(&format_rfc3339(unix)), Ok(unix));
        }
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2023-02-29",
            "2024-05-01T12:00:00",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00Z",
            "2024-5-1",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00.Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
