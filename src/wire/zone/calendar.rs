//! RRSIG times (RFC 4034 section 3.2): `YYYYMMDDHHmmSS` in UTC both ways, or plain seconds since
//! 1970 when read. The conversion between seconds and proleptic Gregorian dates is done here with
//! integer arithmetic rather than through a date crate: the wire layer depends on nothing, and
//! this is the only place that needs a calendar.

use std::fmt;

/// An RRSIG time as `YYYYMMDDHHmmSS` in UTC (RFC 4034 section 3.2).
pub(super) struct Time(pub(super) u32);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::from(self.0);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

/// `YYYYMMDDHHmmSS` in UTC, or plain seconds since 1970 (RFC 4034 section 3.2).
pub(super) fn parse_time(t: &str) -> Option<u32> {
    if !t.bytes().all(|c| c.is_ascii_digit()) || t.is_empty() {
        return None;
    }
    if t.len() != 14 {
        return t.parse().ok();
    }
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    u32::try_from(secs).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rrsig_times_convert_both_ways() {
        assert_eq!(parse_time("19700101000000"), Some(0));
        assert_eq!(parse_time("20030322173103"), Some(1_048_354_263));
        assert_eq!(parse_time("21060207062815"), Some(u32::MAX));
        assert_eq!(parse_time("21060207062816"), None);
        assert_eq!(parse_time("20240230000000"), None);
        assert_eq!(
            parse_time("20240229000000").map(|t| Time(t).to_string()),
            Some("20240229000000".into())
        );
        assert_eq!(parse_time("1048354263"), Some(1_048_354_263));
        assert_eq!(Time(u32::MAX).to_string(), "21060207062815");
        for t in [
            0u32,
            1,
            59,
            86_399,
            951_782_400,
            1_700_000_000,
            u32::MAX - 1,
        ] {
            assert_eq!(parse_time(&Time(t).to_string()), Some(t));
        }
    }
}
