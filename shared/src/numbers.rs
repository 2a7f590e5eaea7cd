//! Whole-number rules shared by the history cleaning and the API.

/// The largest integer an `f64` holds exactly; larger values are not trusted as counts.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// A voucher amount as a whole number > 0, or `None` (null, NaN, infinite, <= 0, fractional).
pub fn whole_amount(value: f64) -> Option<i64> {
    (value.is_finite() && value > 0.0 && value.fract() == 0.0 && value <= MAX_EXACT)
        .then_some(value as i64)
}

/// An order count as a whole number >= 0, or `None` (negative, fractional, not finite).
pub fn whole_count(value: f64) -> Option<i64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_EXACT)
        .then_some(value as i64)
}

/// A whole number given as a float (`123.0`) as the integer it is, or `None` (fractional, not
/// finite, or beyond 2^53 in size, where a float no longer holds every integer).
pub fn whole_integer(value: f64) -> Option<i64> {
    (value.is_finite() && value.fract() == 0.0 && value.abs() <= MAX_EXACT).then_some(value as i64)
}

/// An order count from text: `14`, `14.0` and ` 14 ` are 14; blanks and anything else that
/// is not a whole number >= 0 are `None`.
pub fn parse_count(text: &str) -> Option<i64> {
    let t = text.trim();
    // Fast path for the common `NN` / `NN.0` forms: no float parsing.
    let int_part = t.strip_suffix(".0").unwrap_or(t);
    if !int_part.is_empty() && int_part.len() <= 15 && int_part.bytes().all(|b| b.is_ascii_digit())
    {
        return int_part.parse().ok();
    }
    if t.is_empty() || t.eq_ignore_ascii_case("nan") || t.to_ascii_lowercase().contains("inf") {
        return None;
    }
    t.parse::<f64>().ok().and_then(whole_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        for (s, want) in [
            ("14", Some(14)),
            ("14.0", Some(14)),
            (" 14 ", Some(14)),
            ("0.0", Some(0)),
            ("2.00", Some(2)),
            ("1e2", Some(100)),
            ("", None),
            ("   ", None),
            ("2.5", None),
            ("-1", None),
            ("-1.0", None),
            ("abc", None),
            ("NaN", None),
            ("inf", None),
            (".0", Some(0)),
        ] {
            assert_eq!(parse_count(s), want, "{s:?}");
        }
    }

    #[test]
    fn whole_integers_are_exact_floats_only() {
        assert_eq!(whole_integer(-1.0), Some(-1));
        assert_eq!(whole_integer(9_007_199_254_740_992.0), Some(1 << 53));
        for bad in [
            1.5,
            1e300,
            -1e19,
            9_007_199_254_740_994.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert_eq!(whole_integer(bad), None, "{bad}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(whole_amount(2640.0), Some(2640));
        for bad in [
            0.0,
            -5.0,
            2640.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(whole_amount(bad), None, "{bad}");
        }
    }
}
