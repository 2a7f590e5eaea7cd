//! The exit codes of `voucher-etl`, for schedulers and alerts (docs/operations.md).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done: for `run`, the version was published (or `--no-gate` published it anyway).
    Success = 0,
    /// Failed: nothing was published, the live version is unchanged.
    Failed = 1,
    /// Invalid usage: an unknown flag or a bad value (clap's own code).
    Usage = 2,
    /// `run` only: the version was written complete but the gate held it; the live version is
    /// unchanged. Worth an alert: a person decides (`voucher-etl promote`) or the next run
    /// replaces it.
    Held = 3,
}

impl Exit {
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_matches_clap() {
        // clap exits with 2 on invalid usage; the documented code must be the same.
        let err = clap::Command::new("x")
            .try_get_matches_from(["x", "--nope"])
            .expect_err("an unknown flag is refused");
        assert_eq!(err.exit_code(), i32::from(Exit::Usage.code()));
    }
}
