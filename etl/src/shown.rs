//! Values from outside, shown in errors within bounds: a tally or a history file may hold a
//! country name of 100 MiB, and an error that names it must stay a line, not megabytes.

use std::error::Error;
use std::fmt::{self, Write as _};

/// The most bytes of an outside value an error shows.
pub const SHOWN_BYTES: usize = 64;

/// The most bytes of another error's message shown by [`Bounded`].
pub const MESSAGE_BYTES: usize = 512;

/// `text` quoted, cut after [`SHOWN_BYTES`] bytes with its length said.
pub fn shown(text: &str) -> String {
    if text.len() <= SHOWN_BYTES {
        return format!("{text:?}");
    }
    format!(
        "{:?}… ({} bytes)",
        &text[..floor_char_boundary(text, SHOWN_BYTES)],
        text.len()
    )
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// An error whose message is cut after [`MESSAGE_BYTES`] bytes, for errors that quote their
/// input (serde_json quotes a mistyped string whole). Its causes are the inner error's.
#[derive(Debug)]
pub struct Bounded<E>(pub E);

impl<E: fmt::Display> fmt::Display for Bounded<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Limited {
            f,
            left: MESSAGE_BYTES,
            cut: false,
        };
        match write!(out, "{}", self.0) {
            Err(_) if out.cut => out.f.write_str("… (cut)"),
            done => done,
        }
    }
}

impl<E: Error> Error for Bounded<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// A writer that stops, with an error, once `left` bytes are written.
struct Limited<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl fmt::Write for Limited<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.left {
            self.left -= s.len();
            return self.f.write_str(s);
        }
        self.f.write_str(&s[..floor_char_boundary(s, self.left)])?;
        self.left = 0;
        self.cut = true;
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_cut_on_a_character_and_its_length_said() {
        assert_eq!(shown("Peru"), "\"Peru\"");
        let long = "é".repeat(1_000_000);
        let s = shown(&long);
        assert_eq!(s, format!("\"{}\"… (2000000 bytes)", "é".repeat(32)));
        let odd = format!("x{}", "é".repeat(100));
        assert!(shown(&odd).starts_with(&format!("\"x{}\"…", "é".repeat(31))));
    }

    #[test]
    fn a_long_message_is_cut_and_a_short_one_kept() {
        let err = serde_json::from_str::<u64>(&format!("\"{}\"", "x".repeat(10_000_000)))
            .expect_err("a string is not a number");
        let msg = Bounded(err).to_string();
        assert!(msg.starts_with("invalid type: string \"xxx"), "{msg}");
        assert!(msg.ends_with("… (cut)"), "{msg}");
        assert_eq!(msg.len(), MESSAGE_BYTES + "… (cut)".len());

        let err = serde_json::from_str::<u64>("true").expect_err("a bool is not a number");
        assert_eq!(Bounded(&err).to_string(), err.to_string());
    }
}
