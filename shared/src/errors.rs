//! Showing an error with its causes.
//!
//! Library errors keep their cause as a `source` and do not repeat it in their own message, so
//! that each cause is shown once. Binaries print the chain with `anyhow`'s `{:#}`; log lines
//! written inside the libraries use [`Chain`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes, separated by `: `.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read segments file /x.toml")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_shown_once() {
        let e = Outer {
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            Chain(&e).to_string(),
            "cannot read segments file /x.toml: entity not found"
        );
    }
}
