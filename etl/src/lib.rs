//! `voucher-etl`: builds the voucher table from raw voucher history and publishes it.
//!
//! - [`source`]: where the history comes from (files, a directory, a glob, or a URL);
//! - [`s3`]: history in S3-compatible object storage;
//! - [`postgres`]: history from a PostgreSQL query, streamed;
//! - [`history`]: the history's columns and the types accepted for each;
//! - [`parquet_types`]: a Parquet file's column types as polars reads them, and the numbers
//!   polars cannot hold (decimals, float16) decoded and converted;
//! - [`clean`]: the streaming polars query that applies the drop rules and tallies amounts;
//! - [`duplicates`]: rows that repeat an earlier row exactly, counted for the gate;
//! - [`vouchers`]: the choice of amount per segment;
//! - [`memory`]: the memory limit, and how many windows of rows are read at once under it;
//! - [`tally`]: per-file and per-shard tallies, which add up; merging them;
//! - [`run`]: one complete run, from input (history or tallies) to a published or held version;
//! - [`profile`]: what a new version's table holds, for the gate and diffs;
//! - [`metrics`]: the gate's outcomes as a Prometheus textfile;
//! - [`versions`]: the `versions`, `diff` and `promote` commands;
//! - [`exit`]: the exit codes of the binary;
//! - [`generate`]: realistic synthetic history of any size;
//! - [`schedule`]: runs on a cron schedule;
//! - [`score`]: offline campaign scoring of a customer list with the API's rules;
//! - [`output`]: files written whole or not at all;
//! - [`shown`]: values from outside shown in errors within bounds;
//! - [`progress`]: progress bars on a terminal, log lines elsewhere.

pub mod clean;
pub mod duplicates;
pub mod exit;
pub mod generate;
pub mod history;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod parquet_types;
pub mod postgres;
pub mod profile;
pub mod progress;
pub mod run;
pub mod s3;
pub mod schedule;
pub mod score;
pub mod shown;
pub mod source;
pub mod tally;
pub mod versions;
pub mod vouchers;

use voucher_shared::publish::PublishError;
use voucher_shared::segments::SegmentsError;
use voucher_shared::table::TableError;
use voucher_shared::versions::VersionError;

/// Polars settings that keep a run's memory bounded, applied unless the user set them.
///
/// Polars prefetches at least 16 row groups by default, several hundred MiB of columns on
/// production files; one in flight is enough, since decoding, not I/O, keeps both cores busy.
/// Files are memory-mapped (polars' default for local files): the pages a query touches count
/// towards RSS only until its window is done (see [`clean::windows`]), while the async reader
/// copies every column chunk it reads, which cost both time and memory on large row groups
/// (bench/RESULTS.md).
pub const POLARS_MEMORY_SETTINGS: [(&str, &str); 1] = [("POLARS_ROW_GROUP_PREFETCH_SIZE", "1")];

/// glibc malloc's arenas at most, unless `MALLOC_ARENA_MAX` is set. By default each thread
/// that allocates gets an arena of its own (up to eight per core: the decoder's, the window
/// workers', polars' pool), and memory freed in one is not reused by another, so the peak grew
/// with the number of windows read. With two, in alternating runs: one 1M-row-group file
/// 216-237 MiB instead of 263-278, ten of them 267-288 MiB instead of 296-323, in the same
/// time (bench/RESULTS.md).
pub const MALLOC_ARENAS: i32 = 2;

/// Applies [`POLARS_MEMORY_SETTINGS`] and [`MALLOC_ARENAS`]. Call it first thing in `main`,
/// before any thread exists: polars reads these from the environment when it first starts.
pub fn bound_polars_memory() {
    for (key, value) in POLARS_MEMORY_SETTINGS {
        if std::env::var_os(key).is_none() {
            // SAFETY: called at the start of `main`, while the process has a single thread, so
            // nothing can read the environment concurrently.
            unsafe { std::env::set_var(key, value) };
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of glibc's allocator; it is called before any
        // other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
    }
}

/// Everything that can make a run fail. Each names the file, URL or column at fault and
/// keeps the underlying error as its source (shown after it, once).
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error(transparent)]
    Segments(#[from] SegmentsError),
    #[error(
        "input {file} does not exist; expected a Parquet file, a directory of them, a glob, an s3:// object or prefix, or an http(s) URL"
    )]
    InputMissing { file: String },
    #[error("input {input}: {what}")]
    NoInputFiles { input: String, what: &'static str },
    #[error(
        "tally file {file} was made with other countries or segments than {first}; merge only tallies of one configuration"
    )]
    TallyMismatch { file: String, first: String },
    #[error("{file} is not a tally file written by voucher-etl tally")]
    BadTally {
        file: String,
        source: shown::Bounded<serde_json::Error>,
    },
    #[error("tally file {file} is refused; nothing was published")]
    TallyRefused {
        file: String,
        /// Boxed: it may hold a segment error, and `EtlError` stays small.
        #[source]
        problem: Box<tally::TallyProblem>,
    },
    #[error("cannot add up the counts of {input}")]
    Overflow {
        input: String,
        source: clean::CountOverflow,
    },
    #[error(
        "tally file {file} has format {found}; this voucher-etl reads {:?}",
        tally::FORMAT
    )]
    TallyFormat {
        file: String,
        /// The format found, quoted and bounded.
        found: String,
    },
    #[error("input {input} is not a usable pattern")]
    BadPattern {
        input: String,
        source: glob::PatternError,
    },
    #[error("input {file} is not a Parquet file: {reason}")]
    NotParquet { file: String, reason: String },
    #[error("cannot open input {file}")]
    Open {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot read input {file} as voucher history")]
    Read {
        file: String,
        source: polars::error::PolarsError,
    },
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
        accepted: history::Accepts,
    },
    #[error(
        "input {input} is not an object-storage URL; expected s3://bucket/key, s3://bucket/prefix/ or s3://bucket/prefix/*.parquet"
    )]
    BadS3Url { input: String },
    #[error(
        "cannot set up object storage for {input}; check the AWS_* environment (AWS_REGION, AWS_ENDPOINT_URL)"
    )]
    S3Config {
        input: String,
        source: object_store::Error,
    },
    #[error(
        "object storage refused {input}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and that they may read the bucket"
    )]
    S3Denied { input: String, source: s3::S3Cause },
    #[error("the bucket of {input} does not exist (or AWS_ENDPOINT_URL points at another server)")]
    S3NoBucket { input: String, source: s3::S3Cause },
    #[error(
        "cannot read {input} from object storage; is the server at AWS_ENDPOINT_URL (or AWS's) reachable?"
    )]
    S3 { input: String, source: s3::S3Cause },
    #[error(transparent)]
    Postgres(#[from] voucher_postgres::PgError),
    #[error(
        "input {input} is a database: give the query whose rows are the history with --query (VOUCHER_QUERY)"
    )]
    QueryMissing { input: String },
    #[error(
        "--query reads from a database, but input {input} is not a postgresql:// or postgres:// URL"
    )]
    QueryWithoutDatabase { input: String },
    #[error("input {input}: column `{column}` has type {found}; accepted: {accepted}")]
    PostgresColumnType {
        input: String,
        column: &'static str,
        found: String,
        accepted: String,
    },
    #[error("cannot download {url}")]
    Download { url: String, source: reqwest::Error },
    #[error("cannot download {url}: the server answered {status}")]
    DownloadStatus {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("cannot download {url}: the transfer broke off")]
    DownloadRead { url: String, source: std::io::Error },
    #[error("cannot save the download of {url} to a temporary file")]
    DownloadSave { url: String, source: std::io::Error },
    #[error(
        "no row of {countries} in {file} passed the cleaning rules; nothing was published and the live version is unchanged"
    )]
    NothingKept { file: String, countries: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the table to {}", path.display())]
    WriteTable {
        path: std::path::PathBuf,
        source: TableError,
    },
    #[error("cannot serialize the manifest")]
    Manifest(#[from] serde_json::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(
        "cannot read the live version to compare the new one with; fix or promote another version, or publish with --no-gate"
    )]
    Baseline(#[source] VersionError),
    #[error("the computed table is invalid")]
    Table(#[from] TableError),
}
