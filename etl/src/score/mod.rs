//! Offline campaign scoring: a customer list (Parquet or CSV, the request fields as columns)
//! scored against the live table with the API's own rules ([`voucher_shared::score`]), written
//! as Parquet with the answer or the errors of each row. While a canary runs, its customers
//! (by the same bucket rule as the API, [`voucher_shared::canary`]) are scored by the canary's
//! version, and each row names the version that scored it.
//!
//! The list is read in windows (Parquet row groups, CSV chunks), a few at once, and each
//! window is scored and written out before the next ones are read: memory follows the windows
//! in flight (see [`crate::memory`]), not the list. Each row is read as the API reads a JSON
//! body (see [`cells`]) and answered as the API answers it (see [`window`]).
//!
//! With a customer store (`--customers-db`, see [`store`]), a row that gives only
//! `customer_id` and `segment_name` is answered from the customer's stored profile, as the
//! API answers such a request: each window's ids are looked up together before it is scored.

mod cells;
mod list;
mod ordered;
mod pages;
mod results;
mod store;
mod window;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Serialize;
use voucher_shared::canary::CanaryRecord;
use voucher_shared::publish::{PublishError, TablesDir, Version};
use voucher_shared::score::{Snapshot, VoucherRequest};
use voucher_shared::table::{TableError, VoucherTable};

use self::list::{CustomerList, ParquetList, Slice};
use self::pages::{ColumnPages, PagedWriter};
use self::results::{Dictionaries, Results};
use self::store::CustomerStore;
pub use self::store::{CustomerSource, IDS_PER_QUERY};
use self::window::{Counts, Scorer};
use crate::memory::{self, MemoryLimit, Planned, WindowPlan};
use crate::output;
use crate::progress::Progress;

/// The request fields, each read from the column of the same name: [`VoucherRequest`]'s.
pub const FIELDS: &[&str] = VoucherRequest::FIELDS;

/// The columns added to the customer list.
pub const STATUS: &str = "status";
pub const VOUCHER: &str = "voucher";
pub const SEGMENT: &str = "segment";
pub const DETAIL: &str = "detail";
pub const TABLE_VERSION: &str = "table_version";
const RESULT_COLUMNS: [&str; 5] = [STATUS, VOUCHER, SEGMENT, DETAIL, TABLE_VERSION];

/// The windows a list is read in unless the memory limit asks for fewer or smaller ones: a
/// quarter of a typical row group (pyarrow and Spark write 1M-row groups), two at once, so
/// that both cores score while the row group before is written; meant to stay within
/// 300 MiB on 10M customers, which `make bench-score` measures.
pub const WINDOWS: WindowPlan = WindowPlan {
    window_rows: 1 << 18,
    in_flight: 2,
};

/// [`WINDOWS`]' rows, as the command line's default.
pub const WINDOW_ROWS_TEXT: &str = "262144";

/// Why a campaign could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("customer list {} does not exist; expected a Parquet or CSV file", path.display())]
    Missing { path: PathBuf },
    #[error("customer list {} is neither Parquet nor CSV: name it *.parquet or *.csv", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("cannot read customer list {}", path.display())]
    Read { path: PathBuf, source: PolarsError },
    #[error(
        "customer list {} has none of the request columns ({}); columns found: {}",
        path.display(), FIELDS.join(", "), found.join(", ")
    )]
    NoRequestColumns { path: PathBuf, found: Vec<String> },
    #[error("customer list {}: column `{column}` has type {found}, which a request field cannot hold; accepted: integers, floats, booleans, strings, dates and datetimes", path.display())]
    ColumnType {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("customer list {} has more than one column named {column} (columns are read by name); rename or drop the others", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("customer list {}: line {line} is not UTF-8 text (byte {byte} of the line); save the list as UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: u64,
        byte: usize,
    },
    #[error("customer list {} has columns nested in lists, which only a writer that decodes every column can copy, and column {column} of type {found}, which it cannot decode; drop one or the other", path.display())]
    NestedWithType {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("customer list {}: the record on line {line} has {fields} fields where the header has {header}; quote cells that hold commas, and give every line the header's fields", path.display())]
    RaggedLine {
        path: PathBuf,
        line: u64,
        fields: usize,
        header: usize,
    },
    #[error("customer list {} already has a column `{column}`, which the output adds; rename it", path.display())]
    ColumnClash { path: PathBuf, column: &'static str },
    #[error("no table version is published in {}", dir.display())]
    NoTable { dir: PathBuf },
    #[error("cannot find the live table in {}", dir.display())]
    Current { dir: PathBuf, source: PublishError },
    #[error("cannot read table {}", path.display())]
    TableRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid voucher table", path.display())]
    Table { path: PathBuf, source: TableError },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: PolarsError },
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot look customers up in table {table} of the customer store")]
    Customers {
        table: String,
        source: voucher_postgres::PgError,
    },
    #[error("cannot start the customer store's connection")]
    Runtime(#[source] std::io::Error),
}

/// What to score.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub customers: PathBuf,
    pub tables_dir: PathBuf,
    pub output: PathBuf,
    /// The time that recency is measured from and future times are refused after.
    pub now: DateTime<Utc>,
    /// The windows to read the list in ([`WINDOWS`] by default), fewer or smaller if
    /// `memory_limit` requires.
    pub windows: WindowPlan,
    /// The memory to stay under; `None`: the cgroup's limit, if any (see [`crate::memory`]).
    pub memory_limit: Option<MemoryLimit>,
    /// The customer store for rows by id; without it such rows miss their fields (422).
    pub customer_store: Option<CustomerSource>,
}

/// How a campaign came out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScoreSummary {
    pub version: String,
    /// The canary's version, when one is set.
    pub canary: Option<String>,
    /// Rows the canary's version scored.
    pub canary_rows: u64,
    pub rows: u64,
    pub ok: u64,
    pub invalid: u64,
    pub no_segment: u64,
    /// Rows by id whose customer the store does not hold.
    pub unknown_customer: u64,
    /// How the list was read: windows, in flight, memory limit.
    pub reading: String,
}

impl std::fmt::Display for ScoreSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "scored {} customers with table {}: {} vouchers, {} invalid, {} without a segment, {} unknown customers",
            self.rows, self.version, self.ok, self.invalid, self.no_segment, self.unknown_customer
        )?;
        if let Some(canary) = &self.canary {
            writeln!(
                f,
                "the canary {canary} scored {} of them (its customers by customer_id bucket)",
                self.canary_rows
            )?;
        }
        writeln!(f, "read in {}", self.reading)
    }
}

/// Scores every row of `opts.customers` and writes them, with their results, to `opts.output`
/// (replaced atomically: a failed run leaves no output and the old one intact).
pub fn score_customers(opts: &ScoreOptions) -> Result<ScoreSummary, ScoreError> {
    let started = Instant::now();
    let snapshot = live_snapshot(&opts.tables_dir)?;
    let list = CustomerList::open(&opts.customers)?;
    let planned = plan_windows(&list, opts.windows, opts.memory_limit);
    if !planned.fits {
        log::warn!(
            "the memory limit is below what even the smallest windows take: {planned}; reading on"
        );
    }
    log::info!(
        "scoring {} with table {}: {planned}",
        opts.customers.display(),
        snapshot.version_name()
    );
    let canary = canary_snapshot(&opts.tables_dir, &snapshot);
    let store = opts
        .customer_store
        .as_ref()
        .map(CustomerStore::open)
        .transpose()?;
    let dictionaries = Dictionaries::new(&snapshot, canary.as_ref().map(|(_, c)| c));
    let scorer = Scorer {
        snapshot: &snapshot,
        canary: canary.as_ref().map(|(record, c)| (record, c)),
        dictionaries: &dictionaries,
        now: opts.now.timestamp(),
        cells: list.cells(),
        store: store.as_ref(),
    };
    let create = |source| ScoreError::Create {
        path: opts.output.clone(),
        source,
    };
    let mut written = (0, Counts::default());
    output::write_atomically(&opts.output, create, |file| {
        written = write_scored(&list, planned.plan, &scorer, file, opts)?;
        Ok(())
    })?;
    let (rows, counts) = written;
    let summary = ScoreSummary {
        version: snapshot.version_name().to_owned(),
        canary: canary.as_ref().map(|(_, c)| c.version_name().to_owned()),
        canary_rows: counts.canary,
        rows,
        ok: counts.ok,
        invalid: counts.invalid,
        no_segment: counts.no_segment,
        unknown_customer: counts.unknown_customer,
        reading: planned.to_string(),
    };
    log::info!(
        "scored {} customers from {} with table {} into {} in {:.1}s: {} vouchers, {} invalid, {} without a segment, {} unknown customers",
        summary.rows,
        opts.customers.display(),
        summary.version,
        opts.output.display(),
        started.elapsed().as_secs_f64(),
        summary.ok,
        summary.invalid,
        summary.no_segment,
        summary.unknown_customer
    );
    Ok(summary)
}

/// Bytes a scored row adds to its window: the result columns, and their encoding for the
/// output (an estimate: keys of 4 bytes per keyed column, a detail's view, and the
/// encoded pages of a window held until its row group is written).
const RESULT_BYTES_PER_ROW: u64 = 64;

/// The windows to read `list` in under the memory limit. A Parquet list's windows are
/// estimated from its footer; a CSV list's cannot be, and keep `wanted` (polars' streaming
/// reader holds about a chunk per core).
fn plan_windows(list: &CustomerList, wanted: WindowPlan, limit: Option<MemoryLimit>) -> Planned {
    let limit = MemoryLimit::resolve(limit);
    match list {
        CustomerList::Parquet(parquet) => {
            // Copying pages, a window decodes only the request columns, and writing holds one
            // row group of the list as it is stored.
            let copy = parquet.copyable();
            let per_row = parquet.bytes_per_row(copy) + RESULT_BYTES_PER_ROW;
            let held = if copy {
                parquet.largest_group_bytes()
            } else {
                0
            };
            let cost = |rows: u64| per_row * parquet.window_rows(rows, !copy) + held;
            memory::plan(limit, wanted, Some(&cost))
        }
        CustomerList::Csv(_) => memory::plan(limit, wanted, None),
    }
}

/// The result columns' names and types, in order.
fn result_schema() -> Schema {
    [
        (STATUS, DataType::Int32),
        (VOUCHER, DataType::Int64),
        (SEGMENT, DataType::String),
        (DETAIL, DataType::String),
        (TABLE_VERSION, DataType::String),
    ]
    .into_iter()
    .map(|(name, dtype)| Field::new(name.into(), dtype))
    .collect()
}

/// How reading the list and writing the output fail.
#[derive(Clone, Copy)]
pub(super) struct Errors<'a> {
    customers: &'a Path,
    output: &'a Path,
}

impl Errors<'_> {
    pub(super) fn read(self, source: PolarsError) -> ScoreError {
        ScoreError::Read {
            path: self.customers.to_owned(),
            source,
        }
    }

    fn write(self, source: PolarsError) -> ScoreError {
        ScoreError::Write {
            path: self.output.to_owned(),
            source,
        }
    }
}

/// The output file, buffered.
type Out<'f> = BufWriter<&'f mut File>;

/// What has been written so far.
struct Written {
    progress: Progress,
    rows: u64,
    counts: Counts,
}

impl Written {
    fn add(&mut self, rows: u64, counts: Counts) {
        self.rows += rows;
        self.counts += counts;
        self.progress.set(self.rows);
    }
}

/// Reads, scores and writes every window of `list` into `file` as Parquet; the rows written
/// and how they came out.
fn write_scored(
    list: &CustomerList,
    plan: WindowPlan,
    scorer: &Scorer<'_>,
    file: &mut File,
    opts: &ScoreOptions,
) -> Result<(u64, Counts), ScoreError> {
    let errors = Errors {
        customers: &opts.customers,
        output: &opts.output,
    };
    let mut written = Written {
        progress: match list.rows() {
            Some(total) => Progress::rows("scoring customers", total),
            None => Progress::rows_unbounded("scoring customers"),
        },
        rows: 0,
        counts: Counts::default(),
    };
    let mut writing = Writing {
        plan,
        scorer,
        errors,
        written: &mut written,
    };
    let out = BufWriter::new(file);
    match list {
        CustomerList::Parquet(parquet) if parquet.copyable() => {
            writing.copying_pages(parquet, out)?
        }
        _ => writing.frames(list, out)?,
    }
    written.progress.finish();
    Ok((written.rows, written.counts))
}

/// How a list's windows are scored and written.
struct Writing<'a, 's> {
    plan: WindowPlan,
    scorer: &'a Scorer<'s>,
    errors: Errors<'a>,
    written: &'a mut Written,
}

impl Writing<'_, '_> {
    /// Scores a Parquet list window by window, and writes each row group of it as it is, with the
    /// results' pages added (see [`pages`]).
    fn copying_pages(&mut self, list: &ParquetList, out: Out<'_>) -> Result<(), ScoreError> {
        let (plan, scorer, errors) = (self.plan, self.scorer, self.errors);
        let mut writer =
            PagedWriter::new(out, list.metadata(), list.arrow_schema(), &result_schema())
                .map_err(|e| errors.write(e))?;
        let encoder = writer.encoder();
        // The result pages of the row group being scored, one list per result column.
        let mut results: Vec<ColumnPages> = Vec::new();
        let score = |slice: &Slice| {
            let frame = list.read_requests(slice).map_err(|e| errors.read(e))?;
            let window = scorer.score(&frame, errors)?;
            let counts = window.counts;
            let encode =
                |window: Results| encoder.encode(&window.into_arrays(scorer.dictionaries)?);
            let pages = encode(window).map_err(|e| errors.write(e))?;
            Ok((*slice, pages, counts))
        };
        let mut consume = |(slice, pages, counts): (Slice, Vec<ColumnPages>, Counts)| {
            pages::append(&mut results, pages);
            if slice.last {
                let group = list.row_group(slice.group).ok_or_else(|| {
                    errors.read(polars_err!(ComputeError: "row group {} is missing", slice.group))
                })?;
                let mut columns =
                    pages::read_row_group(list.path(), group).map_err(|e| errors.read(e))?;
                columns.append(&mut results);
                writer
                    .write(group.num_rows() as u64, &columns)
                    .map_err(|e| errors.write(e))?;
            }
            self.written.add(slice.rows, counts);
            Ok(())
        };
        ordered::map_in_order(
            &list.slices(plan.window_rows),
            usize::from(plan.in_flight),
            score,
            &mut consume,
        )?;
        writer.finish().map_err(|e| errors.write(e))
    }

    /// Scores a list window by window, and writes each window with its results as polars writes
    /// a frame: for CSV lists, and Parquet ones whose pages cannot be copied.
    fn frames(&mut self, list: &CustomerList, out: Out<'_>) -> Result<(), ScoreError> {
        let (plan, scorer, errors) = (self.plan, self.scorer, self.errors);
        let mut schema = list.schema().clone();
        schema.merge(result_schema());
        let mut writer = ParquetWriter::new(out)
            .with_compression(ParquetCompression::Zstd(None))
            .batched(&schema)
            .map_err(|e| errors.write(e))?;
        let score = |frame: DataFrame| {
            let window = scorer.score(&frame, errors)?;
            let counts = window.counts;
            let mut frame = frame
                .hstack(&window.into_columns(scorer.dictionaries))
                .map_err(|e| errors.write(e))?;
            // A streamed CSV chunk's columns may be cut in pieces where the result columns are
            // one: polars' writer needs every column cut alike.
            frame.rechunk_mut();
            Ok((frame, counts))
        };
        let mut consume = |(frame, counts): (DataFrame, Counts)| {
            writer.write_batch(&frame).map_err(|e| errors.write(e))?;
            self.written.add(frame.height() as u64, counts);
            Ok(())
        };
        match list {
            CustomerList::Parquet(parquet) => ordered::map_in_order(
                &parquet.windows(plan.window_rows),
                usize::from(plan.in_flight),
                |&window| score(parquet.read(window).map_err(|e| errors.read(e))?),
                &mut consume,
            )?,
            CustomerList::Csv(csv) => csv.stream(plan, |chunk| consume(score(chunk)?))?,
        }
        writer.finish().map(drop).map_err(|e| errors.write(e))
    }
}

/// The live version of a tables directory, as the API would load it.
fn live_snapshot(dir: &Path) -> Result<Snapshot, ScoreError> {
    let tables = TablesDir::new(dir);
    let version = tables
        .current()
        .map_err(|source| ScoreError::Current {
            dir: dir.to_owned(),
            source,
        })?
        .ok_or_else(|| ScoreError::NoTable {
            dir: dir.to_owned(),
        })?;
    snapshot_of(&tables, version)
}

/// The canary and its version, if one is set. As in the API, a canary that cannot be read
/// scores nothing: it is logged and the live version scores every row.
fn canary_snapshot(dir: &Path, live: &Snapshot) -> Option<(CanaryRecord, Snapshot)> {
    let tables = TablesDir::new(dir);
    let record = match tables.canary() {
        Ok(Some(record)) if record.version != live.version() => record,
        Ok(_) => return None,
        Err(e) => {
            log::error!(
                "cannot read the canary: {}; the live version scores every row",
                voucher_shared::errors::Chain(&e)
            );
            return None;
        }
    };
    match snapshot_of(&tables, record.version) {
        Ok(snapshot) => Some((record, snapshot)),
        Err(e) => {
            log::error!(
                "canary {} cannot be read: {}; the live version scores every row",
                record.version,
                voucher_shared::errors::Chain(&e)
            );
            None
        }
    }
}

/// One version of a tables directory, decoded for scoring.
fn snapshot_of(tables: &TablesDir, version: Version) -> Result<Snapshot, ScoreError> {
    let path = tables.table_path(version);
    let bytes = std::fs::read(&path).map_err(|source| ScoreError::TableRead {
        path: path.clone(),
        source,
    })?;
    let table = VoucherTable::read(Bytes::from(bytes))
        .map_err(|source| ScoreError::Table { path, source })?;
    Ok(Snapshot::new(version, &table, tables.manifest(version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_default_window_is_the_librarys() {
        assert_eq!(
            WINDOW_ROWS_TEXT.parse::<u64>().ok(),
            Some(WINDOWS.window_rows)
        );
    }
}
