//! `voucher-etl`: builds the voucher table from raw voucher history and publishes it.
//!
//! - [`source`]: where the history comes from (a file, or an http(s) URL downloaded first);
//! - [`clean`]: the streaming polars query that applies the drop rules and tallies amounts;
//! - [`vouchers`]: the choice of amount per segment;
//! - [`run`]: one complete run, from input to a published version;
//! - [`generate`]: realistic synthetic history of any size;
//! - [`schedule`]: runs on a cron schedule;
//! - [`progress`]: progress bars on a terminal, log lines elsewhere.

pub mod clean;
pub mod generate;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod source;
pub mod vouchers;

use voucher_shared::publish::PublishError;
use voucher_shared::segments::SegmentsError;
use voucher_shared::table::TableError;

/// Everything that can make a run fail. Each names the file, URL or column at fault.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error(transparent)]
    Segments(#[from] SegmentsError),
    #[error("input file {file} does not exist")]
    InputMissing { file: String },
    #[error("input {file} is not a Parquet file: {reason}")]
    NotParquet { file: String, reason: String },
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("input {file} has no column `{column}` (columns found: {})", found.join(", "))]
    MissingColumn {
        file: String,
        column: &'static str,
        found: Vec<String>,
    },
    #[error("input {file}: column `{column}` has type {found}; accepted: {accepted}")]
    ColumnType {
        file: String,
        column: &'static str,
        found: String,
        accepted: &'static str,
    },
    #[error("cannot download {url}: {message}")]
    Download { url: String, message: String },
    #[error(
        "no row of {countries} in {file} passed the cleaning rules; nothing was published and the live version is unchanged"
    )]
    NothingKept { file: String, countries: String },
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the computed table is invalid: {0}")]
    Table(#[from] TableError),
}
