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
    let (month_start, month_days) = month_info(year, month)?;
    if day == 0 || day > month_days {
        return None;
    }
    let days = month_start + i64::from(day) - 1;
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

const fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = ((month + 9) % 12) as i64;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The years whose months are looked up in [`MONTHS`] rather than computed: every date a
/// history or a request holds in practice.
const TABLE_FIRST_YEAR: i64 = 1900;
const TABLE_YEARS: usize = 300;

/// Each month of the table's years: the day its first day is (days since 1970-01-01) and its
/// length. Parsing tens of millions of history times, the arithmetic of
/// [`days_from_civil`] and the leap-year test were a tenth of the ETL's time (perf).
static MONTHS: [(i32, u8); TABLE_YEARS * 12] = month_table();

const fn month_table() -> [(i32, u8); TABLE_YEARS * 12] {
    let mut table = [(0, 0); TABLE_YEARS * 12];
    let mut i = 0;
    while i < table.len() {
        let year = TABLE_FIRST_YEAR + (i / 12) as i64;
        let month = (i % 12) as u32 + 1;
        table[i] = (
            days_from_civil(year, month, 1) as i32,
            days_in_month(year, month) as u8,
        );
        i += 1;
    }
    table
}

/// The first day (days since 1970-01-01) and the length of `month` (1 to 12) of `year`; `None`
/// for a month that is not 1 to 12.
fn month_info(year: i64, month: u32) -> Option<(i64, u32)> {
    if !(1..=12).contains(&month) {
        return None;
    }
    let index = year
        .checked_sub(TABLE_FIRST_YEAR)
        .and_then(|y| usize::try_from(y).ok())
        .filter(|y| *y < TABLE_YEARS)
        .map(|y| y * 12 + month as usize - 1);
    Some(match index.and_then(|i| MONTHS.get(i)) {
        Some(&(start, days)) => (i64::from(start), u32::from(days)),
        None => (days_from_civil(year, month, 1), days_in_month(year, month)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn the_month_table_agrees_with_chrono_inside_and_outside_its_years() {
        let years = (TABLE_FIRST_YEAR - 2)..(TABLE_FIRST_YEAR + TABLE_YEARS as i64 + 2);
        for year in years.chain([1, 1583, 9999]) {
            for m in 1..=12 {
                let first = NaiveDate::from_ymd_opt(year as i32, m, 1).expect("a date");
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .expect("next");
                let want = ((first - epoch).num_days(), (next - first).num_days() as u32);
                assert_eq!(month_info(year, m), Some(want), "{year}-{m}");
            }
        }
        assert_eq!(month_info(2024, 0), None);
        assert_eq!(month_info(2024, 13), None);
    }

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

    /// The parser against chrono, over generated strings of every accepted shape and of the
    /// near-misses around them (an impossible date or time, a short field, a bad separator or
    /// offset, a fraction without digits, non-ASCII padding).
    mod against_chrono {
        use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
        use proptest::prelude::*;

        use super::super::parse_timestamp;

        /// A generated time string with what each part says, before rendering.
        #[derive(Debug, Clone)]
        struct Candidate {
            pad: (&'static str, &'static str),
            year: u32,
            year_digits: usize,
            month: u32,
            month_digits: usize,
            day: u32,
            time: Option<TimeOfDay>,
        }

        #[derive(Debug, Clone)]
        struct TimeOfDay {
            separator: char,
            hour: u32,
            minute: Option<u32>,
            second: Option<u32>,
            /// The digits after a `.`; `Some("")` is a dot alone.
            fraction: Option<String>,
            offset: Offset,
        }

        #[derive(Debug, Clone)]
        enum Offset {
            None,
            Zulu(char),
            /// Sign, hours, minutes and the form: `+HH` (minutes unused), `+HHMM`, `+HH:MM`,
            /// or the near-misses `+H` and `+HHM`.
            Numeric(char, u32, u32, OffsetForm),
        }

        #[derive(Debug, Clone, Copy)]
        enum OffsetForm {
            Hours,
            Compact,
            Colon,
            OneDigit,
            ThreeDigits,
        }

        fn offset() -> impl Strategy<Value = Offset> {
            let form = prop_oneof![
                3 => Just(OffsetForm::Hours),
                3 => Just(OffsetForm::Compact),
                6 => Just(OffsetForm::Colon),
                1 => Just(OffsetForm::OneDigit),
                1 => Just(OffsetForm::ThreeDigits),
            ];
            prop_oneof![
                4 => Just(Offset::None),
                2 => prop::sample::select(vec!['Z', 'z']).prop_map(Offset::Zulu),
                6 => (prop::sample::select(vec!['+', '-']), 0..=25u32, 0..=61u32, form)
                    .prop_map(|(sign, h, m, form)| Offset::Numeric(sign, h, m, form)),
            ]
        }

        fn time_of_day() -> impl Strategy<Value = TimeOfDay> {
            (
                prop::sample::select(vec![' ', ' ', 'T', 'T', 't', 'X']),
                0..=25u32,
                prop::option::weighted(0.95, 0..=61u32),
                prop::option::weighted(0.7, 0..=61u32),
                prop::option::weighted(0.4, "[0-9]{0,12}"),
                offset(),
            )
                .prop_map(|(separator, hour, minute, second, fraction, offset)| {
                    TimeOfDay {
                        separator,
                        hour,
                        minute,
                        second,
                        fraction,
                        offset,
                    }
                })
        }

        fn candidate() -> impl Strategy<Value = Candidate> {
            let pad = prop::sample::select(vec!["", "", "", " ", "\t", "\r\n", "\u{a0}"]);
            (
                (pad.clone(), pad),
                0..=9999u32,
                prop::sample::select(vec![4, 4, 4, 4, 4, 4, 2, 5]),
                0..=13u32,
                prop::sample::select(vec![2, 2, 2, 2, 2, 1]),
                0..=32u32,
                prop::option::weighted(0.8, time_of_day()),
            )
                .prop_map(
                    |(pad, year, year_digits, month, month_digits, day, time)| Candidate {
                        pad,
                        year,
                        year_digits,
                        month,
                        month_digits,
                        day,
                        time,
                    },
                )
        }

        impl Candidate {
            fn render(&self) -> String {
                // Exactly `digits` digits: the number's last ones, or zeros before it.
                let field = |n: u32, digits: usize| {
                    let text = format!("{n:0digits$}");
                    text[text.len() - digits..].to_owned()
                };
                let mut s = format!(
                    "{}{}-{}-{:02}",
                    self.pad.0,
                    field(self.year, self.year_digits),
                    field(self.month, self.month_digits),
                    self.day
                );
                if let Some(t) = &self.time {
                    s.push(t.separator);
                    s.push_str(&format!("{:02}", t.hour));
                    // Without minutes, the hour alone (seconds would read as minutes).
                    if let Some(minute) = t.minute {
                        s.push_str(&format!(":{minute:02}"));
                        if let Some(second) = t.second {
                            s.push_str(&format!(":{second:02}"));
                        }
                        if let Some(fraction) = &t.fraction {
                            s.push('.');
                            s.push_str(fraction);
                        }
                    }
                    match t.offset {
                        Offset::None => {}
                        Offset::Zulu(z) => s.push(z),
                        Offset::Numeric(sign, h, m, form) => s.push_str(&match form {
                            OffsetForm::Hours => format!("{sign}{h:02}"),
                            OffsetForm::Compact => format!("{sign}{h:02}{m:02}"),
                            OffsetForm::Colon => format!("{sign}{h:02}:{m:02}"),
                            OffsetForm::OneDigit => format!("{sign}{}", h % 10),
                            OffsetForm::ThreeDigits => format!("{sign}{h:02}{}", m % 10),
                        }),
                    }
                }
                s.push_str(self.pad.1);
                s
            }

            /// What the string means, decided part by part: the shapes are the parser's
            /// documented forms, and chrono decides which dates, times and offsets exist and
            /// what instant they name.
            fn expected(&self) -> Option<i64> {
                let ascii_pad = |p: &str| p.bytes().all(|b| b.is_ascii_whitespace());
                if !ascii_pad(self.pad.0)
                    || !ascii_pad(self.pad.1)
                    || self.year_digits != 4
                    || self.month_digits != 2
                {
                    return None;
                }
                let date =
                    NaiveDate::from_ymd_opt(i32::try_from(self.year).ok()?, self.month, self.day)?;
                let Some(t) = &self.time else {
                    return Some(date.and_time(NaiveTime::MIN).and_utc().timestamp());
                };
                let fraction_ok = match &t.fraction {
                    None => true,
                    Some(digits) => t.second.is_some() && !digits.is_empty(),
                };
                if !matches!(t.separator, ' ' | 'T' | 't') || !fraction_ok {
                    return None;
                }
                let time = NaiveTime::from_hms_opt(t.hour, t.minute?, t.second.unwrap_or(0))?;
                let offset_secs = match t.offset {
                    Offset::None | Offset::Zulu(_) => 0,
                    Offset::Numeric(sign, h, m, form) => {
                        let m = match form {
                            OffsetForm::Hours => 0,
                            OffsetForm::Compact | OffsetForm::Colon => m,
                            OffsetForm::OneDigit | OffsetForm::ThreeDigits => return None,
                        };
                        if h > 23 || m > 59 {
                            return None;
                        }
                        let secs = i32::try_from(h * 3600 + m * 60).ok()?;
                        if sign == '-' { -secs } else { secs }
                    }
                };
                let offset = FixedOffset::east_opt(offset_secs)?;
                Some(
                    date.and_time(time)
                        .and_local_timezone(offset)
                        .single()?
                        .timestamp(),
                )
            }
        }

        /// chrono's own reading of a string, with formats at least as lenient as the parser:
        /// a date, or a date and `HH:MM[:SS[.f]]` after `T`, `t` or a space, with an optional
        /// offset (`%#z` takes `Z`, `+HH`, `+HHMM` and `+HH:MM`).
        fn chrono_reading(s: &str) -> Option<i64> {
            let s = s.trim_ascii();
            if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(date.and_time(NaiveTime::MIN).and_utc().timestamp());
            }
            for separator in ["T", "t", " "] {
                for time in ["%H:%M", "%H:%M:%S%.f"] {
                    let naive = format!("%Y-%m-%d{separator}{time}");
                    if let Ok(t) = NaiveDateTime::parse_from_str(s, &naive) {
                        return Some(t.and_utc().timestamp());
                    }
                    if let Ok(t) = DateTime::parse_from_str(s, &format!("{naive}%#z")) {
                        return Some(t.timestamp());
                    }
                }
            }
            None
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn generated_times_parse_as_chrono_says(candidate in candidate()) {
                let text = candidate.render();
                let expected = candidate.expected();
                prop_assert_eq!(parse_timestamp(&text), expected, "{:?}", text);
                if expected.is_some() {
                    prop_assert_eq!(chrono_reading(&text), expected, "{:?}", text);
                }
            }

            #[test]
            fn any_accepted_string_means_what_chrono_reads_in_it(
                text in prop_oneof![
                    "[0-9]{4}-[0-9]{2}-[0-9]{2}[ Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?",
                    "[0-9Tt :.+zZ-]{8,32}",
                    any::<String>(),
                ]
            ) {
                if let Some(secs) = parse_timestamp(&text) {
                    prop_assert_eq!(chrono_reading(&text), Some(secs), "{:?}", text);
                }
            }
        }
    }
}
