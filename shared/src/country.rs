//! What a country code may be: the one rule that requests (the scoring core) and the history
//! (the cleaning) both apply.
//!
//! A country code is 1 to [`MAX_COUNTRY_CODE_BYTES`] bytes of UTF-8, without leading or
//! trailing whitespace, and without control characters. The bound keeps every table, every
//! answer and every error that names a country small; the other two parts make a country that
//! looks blank, or is spelt differently only in its invisible characters, no country.

use std::fmt;

/// The longest country code, in bytes.
pub const MAX_COUNTRY_CODE_BYTES: usize = 64;

/// The rule in words, for messages and documentation.
pub const COUNTRY_CODE_RULE: &str =
    "1 to 64 bytes, without leading or trailing whitespace or control characters";

/// Which part of the rule a country code fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryCodeError {
    Empty,
    /// Longer than [`MAX_COUNTRY_CODE_BYTES`]; holds the length.
    TooLong(usize),
    /// Starts or ends with whitespace (a blank code is this too).
    Untrimmed,
    /// Holds a control character (tab, newline, NUL, DEL, ...).
    Control,
}

impl fmt::Display for CountryCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountryCodeError::Empty => f.write_str("it is empty"),
            CountryCodeError::TooLong(len) => write!(f, "it is {len} bytes long"),
            CountryCodeError::Untrimmed => f.write_str("it starts or ends with whitespace"),
            CountryCodeError::Control => f.write_str("it holds a control character"),
        }
    }
}

impl std::error::Error for CountryCodeError {}

/// Checks `code` against the rule.
pub fn check_country_code(code: &str) -> Result<(), CountryCodeError> {
    if code.is_empty() {
        return Err(CountryCodeError::Empty);
    }
    if code.len() > MAX_COUNTRY_CODE_BYTES {
        return Err(CountryCodeError::TooLong(code.len()));
    }
    if code.starts_with(char::is_whitespace) || code.ends_with(char::is_whitespace) {
        return Err(CountryCodeError::Untrimmed);
    }
    if code.chars().any(char::is_control) {
        return Err(CountryCodeError::Control);
    }
    Ok(())
}

/// Whether `code` is a country code by the rule (the predicate of the cleaning's drop rule).
pub fn is_country_code(code: &str) -> bool {
    check_country_code(code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_accepts_real_names_and_refuses_blank_long_and_invisible_ones() {
        for good in [
            "Peru",
            "PE",
            "Côte d'Ivoire",
            "São Tomé and Príncipe",
            &"x".repeat(64),
        ] {
            assert_eq!(check_country_code(good), Ok(()), "{good:?}");
            assert!(is_country_code(good));
        }
        for (bad, why) in [
            ("", CountryCodeError::Empty),
            (" ", CountryCodeError::Untrimmed),
            (" Peru", CountryCodeError::Untrimmed),
            ("Peru\u{a0}", CountryCodeError::Untrimmed),
            ("Pe\tru", CountryCodeError::Control),
            ("Pe\0ru", CountryCodeError::Control),
            ("Peru\u{7f}x", CountryCodeError::Control),
            (&"x".repeat(65), CountryCodeError::TooLong(65)),
        ] {
            assert_eq!(check_country_code(bad), Err(why), "{bad:?}");
            assert!(!is_country_code(bad));
        }
        // The bound is in bytes: 33 two-byte characters are 66 bytes.
        assert_eq!(
            check_country_code(&"é".repeat(33)),
            Err(CountryCodeError::TooLong(66))
        );
        assert!(COUNTRY_CODE_RULE.contains(&MAX_COUNTRY_CODE_BYTES.to_string()));
    }
}
