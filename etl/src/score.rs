//! Offline campaign scoring: a customer list (Parquet or CSV, the request fields as columns)
//! scored against the live table with the API's own rules ([`voucher_shared::score`]), written
//! as Parquet with the answer or the errors of each row. While a canary runs, its customers
//! (by the same bucket rule as the API, [`voucher_shared::canary`]) are scored by the canary's
//! version, and each row names the version that scored it.
//!
//! Each row is read as the API reads a JSON body: a typed Parquet column gives its values'
//! JSON kinds (an integer, a string...); a CSV cell is a JSON scalar written without quotes
//! (`14` is a number, `Peru` a string). A null cell, or a column that is not there, is a field
//! left out. Rows go through in slices, so memory follows the slice, not the list.
//!
//! With a customer store ([`CustomerSource`], `--customers-db`), a row with only `customer_id`
//! and `segment_name` is a request by id, scored with the customer's stored profile exactly as
//! the API scores it: one query per slice (`WHERE customer_id = ANY($1)`). A campaign is
//! offline, so a store that cannot answer fails the run rather than its rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Serialize;
use voucher_postgres::customers::CustomerLookup;
use voucher_postgres::{ConnectOptions, DbUrl, PgError, Session};
use voucher_shared::canary::CanaryRecord;
use voucher_shared::publish::{PublishError, TablesDir, Version};
use voucher_shared::score::{
    self, Json, Profiles, Refusal, Snapshot, ValidationError, VoucherRequest,
};
use voucher_shared::table::{TableError, VoucherTable};
use voucher_shared::time::SECONDS_PER_DAY;

use crate::output;
use crate::progress::Progress;

/// The request fields, in the order of [`VoucherRequest`]; each is read from the column of the
/// same name.
pub const FIELDS: [&str; 6] = [
    "customer_id",
    "country_code",
    "last_order_ts",
    "first_order_ts",
    "total_orders",
    "segment_name",
];

/// The columns added to the customer list.
pub const STATUS: &str = "status";
pub const VOUCHER: &str = "voucher";
pub const SEGMENT: &str = "segment";
pub const DETAIL: &str = "detail";
pub const TABLE_VERSION: &str = "table_version";
const RESULT_COLUMNS: [&str; 5] = [STATUS, VOUCHER, SEGMENT, DETAIL, TABLE_VERSION];

/// Rows scored at a time.
const SLICE_ROWS: usize = 65_536;

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
    Customers { table: String, source: PgError },
    #[error("cannot start the customer store's connection")]
    Runtime(#[source] std::io::Error),
}

/// Where the profiles of requests by id come from.
#[derive(Debug, Clone)]
pub struct CustomerSource {
    pub url: DbUrl,
    /// `NAME` or `SCHEMA.NAME`.
    pub table: String,
    pub options: ConnectOptions,
}

/// What to score.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub customers: PathBuf,
    pub tables_dir: PathBuf,
    pub output: PathBuf,
    /// The time that recency is measured from and future times are refused after.
    pub now: DateTime<Utc>,
    /// The customer store for rows by id; without it such rows miss their fields (422).
    pub customer_store: Option<CustomerSource>,
}

/// How a campaign came out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScoreSummary {
    pub version: String,
    /// The canary's version, when one answered some rows.
    pub canary: Option<String>,
    /// Rows the canary's version scored.
    pub canary_rows: u64,
    pub rows: u64,
    pub ok: u64,
    pub invalid: u64,
    pub no_segment: u64,
    /// Rows by id for a customer the customer store does not hold (404).
    pub unknown_customer: u64,
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
        Ok(())
    }
}

/// Scores every row of `opts.customers` and writes them, with their results, to `opts.output`.
pub fn score_customers(opts: &ScoreOptions) -> Result<ScoreSummary, ScoreError> {
    let snapshot = live_snapshot(&opts.tables_dir)?;
    let canary = canary_snapshot(&opts.tables_dir, &snapshot);
    let (customers, from_text) = read_customers(&opts.customers)?;
    let mut summary = ScoreSummary {
        version: snapshot.version_name().to_owned(),
        canary: canary.as_ref().map(|(_, c)| c.version_name().to_owned()),
        rows: customers.height() as u64,
        ..ScoreSummary::default()
    };
    let store = opts
        .customer_store
        .as_ref()
        .map(StoreLookup::open)
        .transpose()?;
    let progress = Progress::rows("scoring customers", summary.rows);
    let mut results = Results::with_capacity(customers.height());
    let now = opts.now.timestamp();
    for offset in (0..customers.height()).step_by(SLICE_ROWS) {
        let slice = customers.slice(offset as i64, SLICE_ROWS);
        let requests = slice_requests(&slice, from_text, &opts.customers)?;
        let profiles = match &store {
            Some(store) => store.profiles(&requests)?,
            None => Profiles::no_store(),
        };
        for request in &requests {
            let by_canary = canary
                .as_ref()
                .filter(|(record, _)| record.answers(request));
            let version = by_canary.map_or(&snapshot, |(_, c)| c);
            summary.canary_rows += u64::from(by_canary.is_some());
            let scored = score::score_with(request, &profiles, version, now);
            results.push(scored, version.version_name(), &mut summary);
        }
        progress.set((offset + slice.height()) as u64);
    }
    progress.finish();
    let mut out = results.into_frame(customers, &opts.customers)?;
    write_parquet(&mut out, &opts.output)?;
    log::info!(
        "scored customers from {} into {}: {}",
        opts.customers.display(),
        opts.output.display(),
        summary.to_string().trim_end()
    );
    Ok(summary)
}

/// The requests of the rows of `slice`.
fn slice_requests<'a>(
    slice: &'a DataFrame,
    from_text: bool,
    path: &Path,
) -> Result<Vec<VoucherRequest<'a>>, ScoreError> {
    let mut fields = FIELDS
        .iter()
        .map(|name| request_values(slice, name, from_text, path))
        .map(|values| values.map(Vec::into_iter))
        .collect::<Result<Vec<_>, _>>()?;
    // Every field has one value per row, so `next` never runs dry within the slice.
    let mut next = |field: usize| fields[field].next().unwrap_or_default();
    Ok((0..slice.height())
        .map(|_| VoucherRequest {
            customer_id: next(0),
            country_code: next(1),
            last_order_ts: next(2),
            first_order_ts: next(3),
            total_orders: next(4),
            segment_name: next(5),
        })
        .collect())
}

/// The customer store's table, prepared on one connection.
struct StoreLookup {
    runtime: tokio::runtime::Runtime,
    session: Session,
    lookup: CustomerLookup,
    table: String,
}

impl StoreLookup {
    fn open(source: &CustomerSource) -> Result<StoreLookup, ScoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ScoreError::Runtime)?;
        let (session, lookup) = runtime
            .block_on(async {
                let session = Session::connect(&source.url, &source.options).await?;
                let lookup = CustomerLookup::prepare(&session, &source.table).await?;
                Ok::<_, PgError>((session, lookup))
            })
            .map_err(|e| ScoreError::Customers {
                table: source.table.clone(),
                source: e,
            })?;
        Ok(StoreLookup {
            runtime,
            session,
            lookup,
            table: source.table.clone(),
        })
    }

    /// The profiles of the requests by id among `requests`, in one query.
    fn profiles(&self, requests: &[VoucherRequest<'_>]) -> Result<Profiles, ScoreError> {
        let mut ids: Vec<i64> = requests
            .iter()
            .filter_map(VoucherRequest::lookup_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut profiles = Profiles::with_store(ids.len());
        if ids.is_empty() {
            return Ok(profiles);
        }
        let found = self
            .runtime
            .block_on(self.lookup.fetch(&self.session, &ids))
            .map_err(|source| ScoreError::Customers {
                table: self.table.clone(),
                source,
            })?;
        let mut found: HashMap<i64, _> = found.into_iter().collect();
        for id in ids {
            profiles.insert(id, found.remove(&id).map(Arc::new));
        }
        Ok(profiles)
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

/// The customer list, and whether its cells are text to read as JSON scalars (CSV).
fn read_customers(path: &Path) -> Result<(DataFrame, bool), ScoreError> {
    if !path.exists() {
        return Err(ScoreError::Missing {
            path: path.to_owned(),
        });
    }
    let read = |source| ScoreError::Read {
        path: path.to_owned(),
        source,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let polars_path = PlRefPath::new(path.to_string_lossy().as_ref());
    let (frame, from_text) = match extension.as_deref() {
        Some("parquet" | "pq") => (
            LazyFrame::scan_parquet(polars_path, Default::default()).and_then(|lf| lf.collect()),
            false,
        ),
        // Every cell as text: CSV has no types, so each is read as a JSON scalar would be.
        Some("csv") => (
            LazyCsvReader::new(polars_path)
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .finish()
                .and_then(|lf| lf.collect()),
            true,
        ),
        _ => {
            return Err(ScoreError::UnknownFormat {
                path: path.to_owned(),
            });
        }
    };
    let frame = frame.map_err(read)?;
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    if !FIELDS.iter().any(|f| names.iter().any(|n| n == f)) {
        return Err(ScoreError::NoRequestColumns {
            path: path.to_owned(),
            found: names,
        });
    }
    if let Some(column) = RESULT_COLUMNS
        .iter()
        .find(|c| names.iter().any(|n| n == *c))
    {
        return Err(ScoreError::ColumnClash {
            path: path.to_owned(),
            column,
        });
    }
    Ok((frame, from_text))
}

/// One request field of every row of `slice`, as the JSON kinds the API would have seen.
fn request_values<'a>(
    slice: &'a DataFrame,
    field: &'static str,
    from_text: bool,
    path: &Path,
) -> Result<Vec<Json<'a>>, ScoreError> {
    let Ok(column) = slice.column(field) else {
        return Ok(vec![Json::Missing; slice.height()]);
    };
    let read = |source| ScoreError::Read {
        path: path.to_owned(),
        source,
    };
    let dtype = column.dtype().clone();
    let values: Vec<Json<'a>> = match &dtype {
        DataType::String if from_text => column
            .str()
            .map_err(read)?
            .iter()
            .map(|v| v.map_or(Json::Missing, text_cell))
            .collect(),
        DataType::String => column
            .str()
            .map_err(read)?
            .iter()
            .map(|v| v.map_or(Json::Missing, |s| Json::Str(Cow::Borrowed(s))))
            .collect(),
        DataType::Boolean => column
            .bool()
            .map_err(read)?
            .iter()
            .map(|v| v.map_or(Json::Missing, Json::Bool))
            .collect(),
        DataType::UInt64 => column
            .u64()
            .map_err(read)?
            .iter()
            .map(|v| {
                v.map_or(Json::Missing, |n| {
                    i64::try_from(n).map_or(Json::UInt(n), Json::Int)
                })
            })
            .collect(),
        t if t.is_integer() => cast_values(column, &DataType::Int64, read)?
            .i64()
            .map_err(read)?
            .iter()
            .map(|v| v.map_or(Json::Missing, Json::Int))
            .collect(),
        t if t.is_float() => cast_values(column, &DataType::Float64, read)?
            .f64()
            .map_err(read)?
            .iter()
            .map(|v| v.map_or(Json::Missing, Json::Float))
            .collect(),
        DataType::Date | DataType::Datetime(..) => time_values(column, &dtype).map_err(read)?,
        other => {
            return Err(ScoreError::ColumnType {
                path: path.to_owned(),
                column: field,
                found: other.to_string(),
            });
        }
    };
    Ok(values)
}

fn cast_values(
    column: &Column,
    to: &DataType,
    read: impl Fn(PolarsError) -> ScoreError,
) -> Result<Series, ScoreError> {
    column.as_materialized_series().cast(to).map_err(read)
}

/// A CSV cell as a JSON scalar without quotes: a number when it reads as one, else text.
fn text_cell(cell: &str) -> Json<'_> {
    let trimmed = cell.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Json::Int(n);
    }
    if let Ok(n) = trimmed.parse::<u64>() {
        return Json::UInt(n);
    }
    // Only plain decimal numbers: "nan", "inf" and the like stay text, as JSON has no such
    // numbers.
    let numeric = !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match trimmed.parse::<f64>() {
        Ok(f) if numeric && f.is_finite() => Json::Float(f),
        _ => Json::Str(Cow::Borrowed(cell)),
    }
}

/// Dates and datetimes as the text a JSON client would send: `YYYY-MM-DD`, and
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC.
fn time_values<'a>(column: &Column, dtype: &DataType) -> PolarsResult<Vec<Json<'a>>> {
    let text = |t: Option<String>| t.map_or(Json::Missing, |s| Json::Str(Cow::Owned(s)));
    let series = column.as_materialized_series();
    Ok(match dtype {
        DataType::Date => series
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .map(|days| {
                text(days.and_then(|d| {
                    DateTime::from_timestamp(i64::from(d) * SECONDS_PER_DAY, 0)
                        .map(|t| t.date_naive().format("%Y-%m-%d").to_string())
                }))
            })
            .collect(),
        DataType::Datetime(unit, _) => {
            let per_second: i64 = match unit {
                TimeUnit::Nanoseconds => 1_000_000_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Milliseconds => 1_000,
            };
            series
                .cast(&DataType::Int64)?
                .i64()?
                .iter()
                .map(|v| {
                    text(v.and_then(|v| {
                        let nanos = v.rem_euclid(per_second) * (1_000_000_000 / per_second);
                        DateTime::from_timestamp(v.div_euclid(per_second), nanos as u32)
                            .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string())
                    }))
                })
                .collect()
        }
        _ => Vec::new(),
    })
}

/// The result columns, built row by row.
struct Results {
    /// The version that scored each row.
    version: Vec<String>,
    status: Vec<i32>,
    voucher: Vec<Option<i64>>,
    segment: Vec<Option<String>>,
    detail: Vec<Option<String>>,
}

impl Results {
    fn with_capacity(rows: usize) -> Self {
        Results {
            version: Vec::with_capacity(rows),
            status: Vec::with_capacity(rows),
            voucher: Vec::with_capacity(rows),
            segment: Vec::with_capacity(rows),
            detail: Vec::with_capacity(rows),
        }
    }

    /// Records one row as the HTTP API answers it: 200 with the voucher, 422 with the
    /// `detail` list of bad fields (as JSON), or 404 with the message.
    fn push(&mut self, scored: score::Scored<'_>, version: &str, summary: &mut ScoreSummary) {
        self.version.push(version.to_owned());
        match scored {
            Ok(answer) => {
                summary.ok += 1;
                self.status.push(200);
                self.voucher.push(Some(answer.voucher));
                self.segment.push(Some(answer.segment.to_owned()));
                self.detail.push(None);
            }
            Err(refusal) => {
                let (status, detail) = match &refusal {
                    Refusal::Invalid(errors) => {
                        summary.invalid += 1;
                        (422, detail_json(errors))
                    }
                    Refusal::NoSegment(no_segment) => {
                        summary.no_segment += 1;
                        (404, no_segment.message.clone())
                    }
                    Refusal::UnknownCustomer(_) => {
                        summary.unknown_customer += 1;
                        (404, refusal.message())
                    }
                    // Never from a store that answered; a failed lookup fails the run.
                    Refusal::CustomersUnavailable(_) => (503, refusal.message()),
                };
                self.status.push(status);
                self.voucher.push(None);
                self.segment.push(None);
                self.detail.push(Some(detail));
            }
        }
    }

    fn into_frame(self, customers: DataFrame, path: &Path) -> Result<DataFrame, ScoreError> {
        let results = [
            Column::new(STATUS.into(), self.status),
            Column::new(VOUCHER.into(), self.voucher),
            Column::new(SEGMENT.into(), self.segment),
            Column::new(DETAIL.into(), self.detail),
            Column::new(TABLE_VERSION.into(), self.version),
        ];
        customers
            .hstack(&results)
            .map_err(|source| ScoreError::Read {
                path: path.to_owned(),
                source,
            })
    }
}

/// The 422 `detail` list as the API writes it.
fn detail_json(errors: &[ValidationError]) -> String {
    // Serializing strings into memory cannot fail; the fallback keeps the cell readable.
    serde_json::to_string(errors).unwrap_or_else(|e| format!("{errors:?} ({e})"))
}

/// Writes `frame` to `path` through a temporary file renamed into place, so that a failed run
/// never leaves a half-written output.
fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<(), ScoreError> {
    let create = |source| ScoreError::Create {
        path: path.to_owned(),
        source,
    };
    output::write_atomically(path, create, |file| {
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(frame)
            .map(drop)
            .map_err(|source| ScoreError::Write {
                path: path.to_owned(),
                source,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_json_scalars_without_quotes() {
        assert_eq!(text_cell("14"), Json::Int(14));
        assert_eq!(text_cell(" 14 "), Json::Int(14));
        assert_eq!(text_cell("14.0"), Json::Float(14.0));
        assert_eq!(text_cell("-2.5"), Json::Float(-2.5));
        assert_eq!(text_cell("18446744073709551615"), Json::UInt(u64::MAX));
        for text in ["Peru", "2021-10-26", "nan", "inf", "1e", "frequent_segment"] {
            assert_eq!(text_cell(text), Json::Str(Cow::Borrowed(text)), "{text}");
        }
    }
}
