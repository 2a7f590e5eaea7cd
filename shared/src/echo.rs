//! Bounded echoes: what an error message may repeat of the input, or of the table.
//!
//! An error that names the bad value helps its sender, but an error that repeats a value of any
//! size turns a few kilobytes of input into megabytes of output (and, in gRPC, into a status
//! too large for the metadata limits of the client). Every message the scoring core builds
//! repeats values only through [`Echo`] and [`Plain`], and lists only through [`few`]: at most
//! [`MAX_ECHO`] bytes of a value and [`MAX_LISTED`] items of a list, each with a marker that
//! says what was left out.

use std::fmt::{self, Display, Write as _};

/// The most bytes of one value an error message repeats.
pub const MAX_ECHO: usize = 80;

/// The most items of a list an error message shows.
pub const MAX_LISTED: usize = 8;

/// A value as an error message repeats it: quoted and escaped as Rust's `{:?}` does (so that
/// control characters show as escapes), cut to [`MAX_ECHO`] bytes with `…` and the value's full
/// length when longer: `"Atlant…" (4000 bytes)`.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

/// Like [`Echo`], unquoted: for values of a trusted source (the table's countries and
/// segments), whose length is still not ours to trust.
#[derive(Debug, Clone, Copy)]
pub struct Plain<'a>(pub &'a str);

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = cut(self.0, MAX_ECHO);
        if shown.len() == self.0.len() {
            write!(f, "{shown:?}")
        } else {
            write!(f, "{shown:?}… ({} bytes)", self.0.len())
        }
    }
}

impl Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = cut(self.0, MAX_ECHO);
        f.write_str(shown)?;
        if shown.len() < self.0.len() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A list as an error message shows it: the first [`MAX_LISTED`] items, each cut as [`Plain`]
/// cuts it, separated by `, `; when there are more, how many more and in all:
/// `A, B, …, H and 12 more (20 in all)`.
pub fn few<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    let mut item = String::new();
    for value in items {
        count += 1;
        if count > MAX_LISTED {
            continue;
        }
        item.clear();
        let _ = write!(item, "{value}");
        if count > 1 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", Plain(&item));
    }
    if count > MAX_LISTED {
        let _ = write!(out, " and {} more ({count} in all)", count - MAX_LISTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_echoed_whole_and_long_ones_cut_with_their_length() {
        assert_eq!(Echo("Peru").to_string(), "\"Peru\"");
        assert_eq!(Echo("a\nb").to_string(), "\"a\\nb\"");
        let long = "x".repeat(4000);
        let echoed = Echo(&long).to_string();
        assert_eq!(
            echoed,
            format!("\"{}\"… (4000 bytes)", "x".repeat(MAX_ECHO))
        );
        assert_eq!(
            Plain(&long).to_string().len(),
            MAX_ECHO + "… (4000 bytes)".len()
        );
        assert_eq!(Plain("Latvia").to_string(), "Latvia");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(100);
        let shown = cut(&text, 81);
        assert_eq!(shown.len(), 80);
        assert!(Echo(&text).to_string().contains("… (200 bytes)"));
        assert_eq!(cut("abc", 0), "");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn lists_show_a_few_items_and_say_how_many_there_are() {
        assert_eq!(few(["Latvia", "Peru"]), "Latvia, Peru");
        assert_eq!(few(Vec::<&str>::new()), "");
        let many: Vec<String> = (1..=20).map(|i| format!("C{i}")).collect();
        assert_eq!(
            few(&many),
            "C1, C2, C3, C4, C5, C6, C7, C8 and 12 more (20 in all)"
        );
        let huge = "y".repeat(1 << 20);
        let listed = few([huge.as_str(), "Peru"]);
        assert!(listed.len() < 200, "{}", listed.len());
        assert!(listed.ends_with(", Peru"), "{listed}");
    }
}
