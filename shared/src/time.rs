//! Parsing of the time strings found in voucher history and in API requests.
//!
//! The history holds tens of millions of time strings, so this is a hand-written byte parser
//! rather than a format-string parser: it is the hot path of the ETL (see `bench/RESULTS.md`).
//! Accepted forms, with surrounding ASCII whitespace ignored:
//!
//! - `YYYY-MM-DD`
//! - `YYYY-MM-DD HH:MM[:SS[.fraction]]` (`T` may replace the space)
//! - a date and time followed by `Z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH`
//!
//! Times with an offset are converted to UTC; times without one are UTC already.

/// Seconds in a day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// What [`parse_timestamp`] accepts, for error messages.
pub const ACCEPTED_TIME_FORMATS: &str = "YYYY-MM-DD, YYYY-MM-DD HH:MM:SS[.ffffff] or RFC 3339 \
     (e.g. 2021-10-26T00:00:00Z, 2021-10-26 00:00:00-05:00)";

/// Parses a time and returns it as seconds since the Unix epoch, in UTC.
///
/// Returns `None` for anything that is not one of the accepted forms or names an impossible
/// date or time (February 30th, hour 24, offset beyond ±23:59).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.trim_ascii().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(days * SECONDS_PER_DAY);
    }

    if rest[0] != b' ' && rest[0] != b'T' && rest[0] != b't' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hour = digits(&rest[0..2])?;
    let minute = digits(&rest[3..5])?;
    rest = &rest[5..];
    let mut second = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset = parse_offset(rest)?;
    Some(days * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second) - offset)
}

/// Parses a time like [`parse_timestamp`] and returns its UTC date as days since 1970-01-01.
pub fn parse_utc_date(s: &str) -> Option<i32> {
    parse_timestamp(s).and_then(|secs| i32::try_from(secs.div_euclid(SECONDS_PER_DAY)).ok())
}

/// The UTC offset in seconds of a trailing `Z`, `±HH:MM`, `±HHMM` or `±HH`; `0` when empty.
fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        [] => Some(0),
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// The value of a run of ASCII digits (at most 4 are ever passed).
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn date(s: &str) -> i32 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
    }

    #[test]
    fn both_history_formats_parse() {
        assert_eq!(
            parse_utc_date("2018-07-21 18:59:21.102761"),
            Some(date("2018-07-21"))
        );
        assert_eq!(
            parse_utc_date("2020-05-28 19:32:16.845956+00:00"),
            Some(date("2020-05-28"))
        );
        assert_eq!(parse_utc_date("2018-04-20"), Some(date("2018-04-20")));
        assert_eq!(
            parse_utc_date("2019-11-09 00:00:00+00:00"),
            Some(date("2019-11-09"))
        );
    }

    #[test]
    fn offsets_convert_to_utc_before_the_date_is_taken() {
        // 23:30 at UTC-5 is 04:30 the next day in UTC.
        assert_eq!(
            parse_utc_date("2021-03-01 23:30:00-05:00"),
            Some(date("2021-03-02"))
        );
        assert_eq!(
            parse_utc_date("2021-03-01T23:30:00-0500"),
            Some(date("2021-03-02"))
        );
        // 01:00 at UTC+3 is 22:00 the day before in UTC.
        assert_eq!(
            parse_utc_date("2021-03-01 01:00:00+03"),
            Some(date("2021-02-28"))
        );
        assert_eq!(
            parse_utc_date("2021-03-01T12:00:00Z"),
            Some(date("2021-03-01"))
        );
    }

    #[test]
    fn seconds_agree_with_chrono() {
        for s in [
            "2021-10-26T00:00:00Z",
            "2021-10-26T23:59:59.999999-05:00",
            "1969-12-31T23:00:00+01:00",
            "2000-02-29T12:34:56+05:30",
        ] {
            let expected = DateTime::parse_from_rfc3339(s)
                .expect("rfc3339")
                .timestamp();
            assert_eq!(parse_timestamp(s), Some(expected), "{s}");
        }
    }

    #[test]
    fn impossible_or_malformed_times_are_rejected() {
        for s in [
            "",
            "   ",
            "not a date",
            "2021-02-29",
            "2020-02-30",
            "2021-13-01",
            "2021-00-10",
            "2021-04-31",
            "2021-01-01 24:00:00",
            "2021-01-01 12:60:00",
            "2021-01-01 12:00:61",
            "2021-01-01 12:00:00.",
            "2021-01-01 12:00:00+24:00",
            "2021-01-01 12:00:00+0",
            "2021-01-01X12:00:00",
            "2021/01/01",
            "21-01-01",
            "2021-01-01 12",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s:?} should not parse");
        }
    }

    #[test]
    fn leap_days_and_whitespace() {
        assert_eq!(parse_utc_date(" 2020-02-29 "), Some(date("2020-02-29")));
        assert_eq!(parse_utc_date("2000-02-29"), Some(date("2000-02-29")));
        assert_eq!(parse_utc_date("1900-02-29"), None);
    }
}
