//! History from PostgreSQL: `--input postgresql://... --query "SQL"`.
//!
//! The query's rows stream in the binary COPY format (`COPY (SELECT <the history's columns>
//! FROM (query)) TO STDOUT (FORMAT binary)`, so other columns never cross the network) and are
//! gathered into windows of rows: polars frames with the column types a Parquet file holding
//! the same rows gives (text as strings, numbers as Int64/Float64, dates and timestamps as
//! Date/Datetime). Each window goes through the very query and counter a Parquet window goes
//! through ([`clean::count_window`]), so the per-value rules are the shared ones and the tally
//! equals the one of such a file. Windows are counted on worker threads while the next one
//! arrives; a full queue stops reading from the socket, so the server waits (back-pressure)
//! and memory follows a few windows, whatever the row count.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use polars::prelude::*;
use tokio::sync::mpsc;
use voucher_postgres::{
    ColumnInfo, ConnectOptions, DbUrl, Family, PgError, RowSink, Session, Value, type_list,
};
use voucher_shared::segments::SegmentSet;

use crate::EtlError;
use crate::clean::{self, Countries, Tally};
use crate::history::{Accepts, COLUMNS};
use crate::memory::{self, MemoryLimit, WindowPlan};
use crate::progress::Progress;
use crate::tally::{ReadOptions, Tallied};

/// How history is read from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresRead {
    /// The query whose rows are the history (with `--input postgresql://...`).
    pub query: Option<String>,
    /// Limit for connecting and logging in.
    pub connect_timeout: Duration,
    /// Limit for the query on the server; `None` keeps the server's setting.
    pub statement_timeout: Option<Duration>,
}

/// The connect timeout unless told otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for PostgresRead {
    fn default() -> Self {
        PostgresRead {
            query: None,
            connect_timeout: CONNECT_TIMEOUT,
            statement_timeout: None,
        }
    }
}

/// Rows per window at most: a window of text-heavy history takes ~110 bytes a row in polars'
/// string views, and up to `windows_in_flight + 2` windows exist at once (one filling, one
/// queued, the ones being counted), so 256k-row windows keep them together well under the
/// memory of one 1M-row Parquet window; each window's query costs a few milliseconds.
pub const MAX_WINDOW_ROWS: u64 = 256 * 1024;

/// Whether `input` names a PostgreSQL database.
pub fn is_postgres(input: &str) -> bool {
    voucher_postgres::is_postgres_url(input)
}

/// Tallies the rows of `--query` in the database `input` names.
pub fn tally(
    input: &str,
    countries: &Countries,
    segments: &SegmentSet,
    read: &ReadOptions,
) -> Result<Tallied, EtlError> {
    let shown = voucher_postgres::display_input(input);
    let query = read
        .postgres
        .query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| EtlError::QueryMissing {
            input: shown.clone(),
        })?;
    let url = DbUrl::parse(input, voucher_postgres::env_password()).map_err(PgError::from)?;
    let shown = url.to_string();
    let options = ConnectOptions {
        connect_timeout: read.postgres.connect_timeout,
        statement_timeout: read.postgres.statement_timeout,
        application_name: "voucher-etl".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| EtlError::Open {
            file: shown.clone(),
            source,
        })?;
    // A query's rows have no footer to estimate a window from: the windows asked for are kept,
    // and the summary says so beside the limit.
    let wanted = WindowPlan {
        window_rows: read.window_rows.clamp(1, MAX_WINDOW_ROWS),
        in_flight: read.windows_in_flight.max(1),
    };
    let planned = memory::plan(MemoryLimit::resolve(read.memory_limit), wanted, None);
    let reader = Reader {
        shown: &shown,
        query,
        countries,
        segments,
        window_rows: planned.plan.window_rows as usize,
        in_flight: usize::from(planned.plan.in_flight),
    };
    let (tally, rows_read) = reader.read(&runtime, &url, &options)?;
    log::info!(
        "read {shown}: {rows_read} rows, {} kept, {} dropped",
        tally.rows_kept,
        tally.dropped.total()
    );
    Ok(Tallied::of_input(
        shown,
        Some(query.to_owned()),
        rows_read,
        tally,
        planned,
    ))
}

/// The history's columns in the query's result, each with the family it is read as; an
/// error names a missing column, or a column of a type its history column does not accept.
fn history_columns(
    shown: &str,
    described: &[ColumnInfo],
) -> Result<Vec<(&'static str, Family)>, EtlError> {
    COLUMNS
        .iter()
        .map(|column| {
            let Some(found) = described.iter().find(|c| c.name == column.name) else {
                return Err(EtlError::MissingColumn {
                    file: shown.to_owned(),
                    column: column.name,
                    found: described.iter().map(|c| c.name.clone()).collect(),
                });
            };
            match found.family {
                Some(family) if column.accepts.allows(&dtype(family)) => Ok((column.name, family)),
                _ => Err(EtlError::PostgresColumnType {
                    input: shown.to_owned(),
                    column: column.name,
                    found: found.type_name.clone(),
                    accepted: accepted_types(column.accepts),
                }),
            }
        })
        .collect()
}

/// The PostgreSQL types a history column accepts, for messages.
fn accepted_types(accepts: Accepts) -> String {
    type_list(
        Family::ALL
            .into_iter()
            .filter(|f| accepts.allows(&dtype(*f))),
    )
}

/// The polars type a family is read as: the one a Parquet file holding the same values has.
fn dtype(family: Family) -> DataType {
    match family {
        Family::Text => DataType::String,
        Family::Integer => DataType::Int64,
        Family::Float | Family::Numeric => DataType::Float64,
        Family::Date => DataType::Date,
        Family::Timestamp => DataType::Datetime(TimeUnit::Microseconds, None),
        Family::TimestampTz => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
    }
}

struct Reader<'a> {
    /// The database, as shown (without the password).
    shown: &'a str,
    query: &'a str,
    countries: &'a Countries,
    segments: &'a SegmentSet,
    window_rows: usize,
    in_flight: usize,
}

impl Reader<'_> {
    /// Connects, checks the query's columns, and streams its rows to counting workers; returns
    /// the tally and the rows read.
    fn read(
        &self,
        runtime: &tokio::runtime::Runtime,
        url: &DbUrl,
        options: &ConnectOptions,
    ) -> Result<(Tally, u64), EtlError> {
        let (session, columns) = runtime.block_on(async {
            let session = Session::connect(url, options).await?;
            let described = session.describe(self.query).await?;
            let columns = history_columns(self.shown, &described)?;
            Ok::<_, EtlError>((session, columns))
        })?;
        let (sender, receiver) = mpsc::channel::<DataFrame>(1);
        let receiver = Mutex::new(receiver);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.in_flight)
                .map(|_| scope.spawn(|| self.count(&receiver)))
                .collect();
            // Dropping the sender at the end (or on an error) lets the workers finish.
            let streamed = runtime.block_on(self.stream(&session, &columns, sender));
            let mut tally = Tally::default();
            let mut failed = None;
            for worker in workers {
                match worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                {
                    Ok(part) => {
                        if let Err(source) = tally.merge(part) {
                            failed = failed.or(Some(EtlError::Overflow {
                                input: self.shown.to_owned(),
                                source,
                            }));
                        }
                    }
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            // A broken read explains a worker's failure better than the other way round.
            let rows = streamed?;
            failed.map_or(Ok((tally, rows)), Err)
        })
    }

    /// Reads the rows into windows and hands them to the workers; returns the rows read.
    async fn stream(
        &self,
        session: &Session,
        columns: &[(&'static str, Family)],
        sender: mpsc::Sender<DataFrame>,
    ) -> Result<u64, EtlError> {
        let mut rows = session.copy_out(self.query, columns).await?;
        let progress = Progress::rows_unbounded("reading");
        let mut window = Window::new(columns, self.window_rows);
        loop {
            let more = rows.next_into(&mut window).await?;
            if window.rows >= self.window_rows || (!more && window.rows > 0) {
                let full = std::mem::replace(&mut window, Window::new(columns, self.window_rows));
                let frame = full.finish().map_err(|source| EtlError::Read {
                    file: self.shown.to_owned(),
                    source,
                })?;
                // A closed queue means a worker failed; its error is the one reported.
                if sender.send(frame).await.is_err() {
                    break;
                }
                progress.set(rows.rows());
            }
            if !more {
                break;
            }
        }
        progress.finish();
        Ok(rows.rows())
    }

    /// Counts windows until none is left; on an error, closes the queue so reading stops.
    fn count(&self, queue: &Mutex<mpsc::Receiver<DataFrame>>) -> Result<Tally, EtlError> {
        let mut tally = Tally::default();
        loop {
            let next = queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .blocking_recv();
            let Some(frame) = next else {
                return Ok(tally);
            };
            let counted = clean::count_window(frame.lazy(), self.countries, self.segments)
                .map_err(|source| EtlError::Read {
                    file: self.shown.to_owned(),
                    source,
                })
                .and_then(|part| {
                    tally.merge(part).map_err(|source| EtlError::Overflow {
                        input: self.shown.to_owned(),
                        source,
                    })
                });
            if let Err(e) = counted {
                queue.lock().unwrap_or_else(PoisonError::into_inner).close();
                return Err(e);
            }
        }
    }
}

/// One column of a window being filled.
enum Builder {
    Text(StringChunkedBuilder),
    Int(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Date(PrimitiveChunkedBuilder<Int32Type>),
    /// Microseconds since 1970, with the time zone of `timestamptz` (UTC) or none.
    Time(PrimitiveChunkedBuilder<Int64Type>, Option<TimeZone>),
}

impl Builder {
    fn new(name: &str, family: Family, capacity: usize) -> Self {
        let name = PlSmallStr::from_str(name);
        match family {
            Family::Text => Builder::Text(StringChunkedBuilder::new(name, capacity)),
            Family::Integer => Builder::Int(PrimitiveChunkedBuilder::new(name, capacity)),
            Family::Float | Family::Numeric => {
                Builder::Float(PrimitiveChunkedBuilder::new(name, capacity))
            }
            Family::Date => Builder::Date(PrimitiveChunkedBuilder::new(name, capacity)),
            Family::Timestamp => Builder::Time(PrimitiveChunkedBuilder::new(name, capacity), None),
            Family::TimestampTz => Builder::Time(
                PrimitiveChunkedBuilder::new(name, capacity),
                Some(TimeZone::UTC),
            ),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Int(b) | Builder::Time(b, _) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
        }
    }

    fn finish(self) -> Column {
        match self {
            Builder::Text(b) => b.finish().into_column(),
            Builder::Int(b) => b.finish().into_column(),
            Builder::Float(b) => b.finish().into_column(),
            Builder::Date(b) => b.finish().into_date().into_column(),
            Builder::Time(b, zone) => b
                .finish()
                .into_datetime(TimeUnit::Microseconds, zone)
                .into_column(),
        }
    }
}

/// A window of rows, column by column, as polars columns of the history's types.
struct Window {
    builders: Vec<Builder>,
    rows: usize,
}

impl Window {
    fn new(columns: &[(&'static str, Family)], capacity: usize) -> Self {
        Window {
            builders: columns
                .iter()
                .map(|(name, family)| Builder::new(name, *family, capacity))
                .collect(),
            rows: 0,
        }
    }

    fn finish(self) -> PolarsResult<DataFrame> {
        let height = self.rows;
        DataFrame::new(
            height,
            self.builders.into_iter().map(Builder::finish).collect(),
        )
    }
}

impl RowSink for Window {
    fn value(&mut self, column: usize, value: Value<'_>) {
        let Some(builder) = self.builders.get_mut(column) else {
            return;
        };
        match (builder, value) {
            (Builder::Text(b), Value::Text(v)) => b.append_value(v),
            (Builder::Int(b), Value::Int(v)) => b.append_value(v),
            (Builder::Float(b), Value::Float(v)) => b.append_value(v),
            (Builder::Date(b), Value::Date(v)) => b.append_value(v),
            (Builder::Time(b, _), Value::Timestamp(v)) => b.append_value(v),
            // NULL, and infinite times (no day: the drop rule counts them as missing); no
            // other value reaches a builder: a column's family sets both.
            (b, _) => b.append_null(),
        }
    }

    fn end_row(&mut self) {
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(columns: &[(&str, Option<Family>, &str)]) -> Vec<ColumnInfo> {
        columns
            .iter()
            .map(|(name, family, type_name)| ColumnInfo {
                name: (*name).to_owned(),
                type_name: (*type_name).to_owned(),
                family: *family,
            })
            .collect()
    }

    fn real_table() -> Vec<(&'static str, Option<Family>, &'static str)> {
        vec![
            ("timestamp", Some(Family::Text), "text"),
            ("country_code", Some(Family::Text), "text"),
            ("last_order_ts", Some(Family::Text), "text"),
            ("first_order_ts", Some(Family::Timestamp), "timestamp"),
            ("total_orders", Some(Family::Text), "text"),
            ("voucher_amount", Some(Family::Float), "float8"),
            ("customer_id", Some(Family::Integer), "int8"),
        ]
    }

    #[test]
    fn the_history_columns_are_found_by_name_in_the_source_order() {
        let mut table = real_table();
        table.reverse();
        let columns = history_columns("db", &described(&table)).expect("usable");
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, COLUMNS.map(|c| c.name));
        assert_eq!(columns[3], ("first_order_ts", Family::Timestamp));
    }

    #[test]
    fn a_missing_or_unusable_column_is_named_with_what_is_accepted() {
        let mut table = real_table();
        table.remove(1);
        let err = history_columns("postgresql://u@h:5432/db", &described(&table)).unwrap_err();
        assert!(
            err.to_string().contains("no column `country_code`")
                && err.to_string().contains("customer_id"),
            "{err}"
        );

        let mut table = real_table();
        table[5] = ("voucher_amount", Some(Family::Text), "varchar");
        let err = history_columns("db", &described(&table))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`voucher_amount` has type varchar")
                && err.contains("smallint, integer, bigint, real, double precision or numeric"),
            "{err}"
        );

        let mut table = real_table();
        table[0] = ("timestamp", None, "jsonb");
        let err = history_columns("db", &described(&table))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("jsonb") && err.contains("date, timestamp or timestamptz"),
            "{err}"
        );
    }

    #[test]
    fn windows_have_the_types_of_a_parquet_file() {
        let columns: Vec<(&'static str, Family)> = vec![
            ("timestamp", Family::TimestampTz),
            ("country_code", Family::Text),
            ("last_order_ts", Family::Date),
            ("first_order_ts", Family::Timestamp),
            ("total_orders", Family::Integer),
            ("voucher_amount", Family::Numeric),
        ];
        let mut window = Window::new(&columns, 4);
        for value in [
            Value::Timestamp(1_619_913_600_000_000),
            Value::Text("Peru"),
            Value::Date(18_687),
            Value::Null,
            Value::Int(14),
            Value::Float(2640.0),
        ]
        .into_iter()
        .enumerate()
        {
            window.value(value.0, value.1);
        }
        window.end_row();
        let df = window.finish().expect("frame");
        let types: Vec<DataType> = df.dtypes();
        assert_eq!(
            types,
            columns.iter().map(|(_, f)| dtype(*f)).collect::<Vec<_>>()
        );
        assert_eq!(df.height(), 1);
        assert_eq!(df.column("first_order_ts").expect("col").null_count(), 1);
    }
}
