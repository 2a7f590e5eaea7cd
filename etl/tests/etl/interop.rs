//! Files from other writers: campaign lists and histories written with the Rust `parquet`
//! crate in the forms other tools write (no statistics, version 2 pages, dictionaries on and
//! off, INT96 times with the column order this crate declares for them, decimals, float16, an
//! all-null column) give the answers and the table that the same values give in the form
//! polars writes. These pin what a polars upgrade could break: `score` copies the list's pages
//! through polars-parquet's writer, and both commands read types (and footers) polars cannot
//! (see `etl/src/parquet_types.rs`). The other writers (pyarrow, DuckDB, polars' Python, CSV)
//! are in `etl/tests/interop/` (`make interop-test`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parquet::basic::Compression;
use parquet::data_type::{
    ByteArray, ByteArrayType, FixedLenByteArray, FixedLenByteArrayType, Int32Type, Int64Type,
    Int96, Int96Type,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field as RecordField;
use parquet::schema::parser::parse_message_type;
use polars::prelude::*;

use crate::common::*;
use crate::score::published_contract_table;

/// The writer settings of the matrix: what DuckDB and pyarrow without statistics write
/// (none), version 2 pages without dictionaries in many small pages, and the defaults (page
/// statistics, which polars-parquet cannot combine for INT96).
fn writer_settings() -> Vec<(&'static str, WriterProperties)> {
    let base = || WriterProperties::builder().set_max_row_group_row_count(Some(700));
    vec![
        (
            "no statistics, v1 pages, dictionaries",
            base()
                .set_statistics_enabled(EnabledStatistics::None)
                .set_writer_version(WriterVersion::PARQUET_1_0)
                .set_dictionary_enabled(true)
                .build(),
        ),
        (
            "page statistics, v2 pages, no dictionaries, small pages",
            base()
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_dictionary_enabled(false)
                .set_data_page_row_count_limit(50)
                .set_compression(Compression::ZSTD(Default::default()))
                .build(),
        ),
        (
            "chunk statistics only",
            base()
                .set_statistics_enabled(EnabledStatistics::Chunk)
                .build(),
        ),
    ]
}

/// A column to write: its values, `None` for null.
enum Values {
    Text(Vec<Option<String>>),
    Int32(Vec<Option<i32>>),
    Int64(Vec<Option<i64>>),
    /// Seconds since the epoch, written as INT96 (Spark's timestamps).
    Int96(Vec<Option<i64>>),
    /// Fixed-length bytes (decimals of more than 18 digits, float16).
    Fixed(Vec<Option<Vec<u8>>>),
}

/// Writes `columns` (in the order of `schema`, a Parquet message type) with `properties`.
fn write_with_parquet_crate(
    path: &Path,
    schema: &str,
    columns: &[Values],
    properties: WriterProperties,
) {
    let schema = Arc::new(parse_message_type(schema).expect("schema"));
    let rows = match &columns[0] {
        Values::Text(v) => v.len(),
        Values::Int32(v) => v.len(),
        Values::Int64(v) | Values::Int96(v) => v.len(),
        Values::Fixed(v) => v.len(),
    };
    let group_rows = properties.max_row_group_row_count().unwrap_or(rows).max(1);
    let file = File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(properties)).expect("writer");
    let mut start = 0;
    while start < rows {
        let end = (start + group_rows).min(rows);
        let mut group = writer.next_row_group().expect("row group");
        for values in columns {
            let mut column = group.next_column().expect("column").expect("a column");
            write_values(&mut column, values, start..end);
            column.close().expect("close column");
        }
        group.close().expect("close row group");
        start = end;
    }
    writer.close().expect("close");
}

fn write_values(
    column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &Values,
    rows: std::ops::Range<usize>,
) {
    fn split<T: Clone, U>(values: &[Option<T>], f: impl Fn(&T) -> U) -> (Vec<U>, Vec<i16>) {
        let defs = values.iter().map(|v| i16::from(v.is_some())).collect();
        (values.iter().flatten().map(f).collect(), defs)
    }
    match values {
        Values::Text(v) => {
            let (data, defs) = split(&v[rows], |s| ByteArray::from(s.as_str()));
            column
                .typed::<ByteArrayType>()
                .write_batch(&data, Some(&defs), None)
        }
        Values::Int32(v) => {
            let (data, defs) = split(&v[rows], |n| *n);
            column
                .typed::<Int32Type>()
                .write_batch(&data, Some(&defs), None)
        }
        Values::Int64(v) => {
            let (data, defs) = split(&v[rows], |n| *n);
            column
                .typed::<Int64Type>()
                .write_batch(&data, Some(&defs), None)
        }
        Values::Int96(v) => {
            let (data, defs) = split(&v[rows], |secs| int96(*secs));
            column
                .typed::<Int96Type>()
                .write_batch(&data, Some(&defs), None)
        }
        Values::Fixed(v) => {
            let (data, defs) = split(&v[rows], |b| FixedLenByteArray::from(b.clone()));
            column
                .typed::<FixedLenByteArrayType>()
                .write_batch(&data, Some(&defs), None)
        }
    }
    .expect("write values");
}

/// Seconds since the epoch as Spark writes an INT96 timestamp: nanoseconds of the day, then
/// the Julian day.
fn int96(secs: i64) -> Int96 {
    let nanos = u64::try_from(secs.rem_euclid(86_400) * 1_000_000_000).expect("nanos");
    let julian = u32::try_from(secs.div_euclid(86_400) + 2_440_588).expect("julian day");
    let mut value = Int96::new();
    value.set_data(nanos as u32, (nanos >> 32) as u32, julian);
    value
}

/// A decimal's unscaled value as `bytes` big-endian two's complement bytes.
fn decimal_bytes(unscaled: i128, bytes: usize) -> Vec<u8> {
    unscaled.to_be_bytes()[16 - bytes..].to_vec()
}

/// Half-precision floats, as Parquet stores them (little-endian): 1.5, -2, 0.25, 65504.
const HALVES: [u16; 4] = [0x3e00, 0xc000, 0x3400, 0x7bff];

fn text(day: i64) -> String {
    DateTime::<Utc>::from_timestamp(day * 86_400, 0)
        .expect("a day")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A history of `n` rows, some of which each drop rule drops, as polars would write it.
struct History {
    timestamp: Vec<Option<String>>,
    country: Vec<Option<String>>,
    last_order_day: Vec<Option<i64>>,
    first_order: Vec<Option<String>>,
    total_orders: Vec<Option<i32>>,
    /// In cents.
    amount_cents: Vec<Option<i64>>,
}

impl History {
    fn new(n: i64) -> History {
        let every = |i: i64, k: i64| i % k == k - 1;
        let day = |i: i64| 18_900 + i % 30;
        let last = |i: i64| day(i) - (i * 7) % 400;
        History {
            timestamp: (0..n).map(|i| Some(text(day(i)))).collect(),
            country: (0..n)
                .map(|i| (!every(i, 89)).then(|| ["Peru", "Chile"][(i % 2) as usize].into()))
                .collect(),
            last_order_day: (0..n).map(|i| (!every(i, 83)).then(|| last(i))).collect(),
            first_order: (0..n)
                .map(|i| Some(text(last(i) - (i * 13) % 300)))
                .collect(),
            total_orders: (0..n)
                .map(|i| (!every(i, 97)).then(|| ((i * 3) % 40) as i32))
                .collect(),
            amount_cents: (0..n)
                .map(|i| {
                    (!every(i, 101)).then(|| [2640, 3520, 4400, 5280][(i * 5 % 4) as usize] * 100)
                })
                .collect(),
        }
    }

    /// The history as polars writes it: times as text, numbers as floats.
    fn write_reference(&self, path: &Path) {
        let last: Vec<Option<String>> = self.last_order_day.iter().map(|d| d.map(text)).collect();
        let orders: Vec<Option<f64>> = self.total_orders.iter().map(|n| n.map(f64::from)).collect();
        let amounts: Vec<Option<f64>> = self
            .amount_cents
            .iter()
            .map(|c| c.map(|c| c as f64 / 100.0))
            .collect();
        let mut frame = df!(
            "timestamp" => &self.timestamp,
            "country_code" => &self.country,
            "last_order_ts" => &last,
            "first_order_ts" => &self.first_order,
            "total_orders" => &orders,
            "voucher_amount" => &amounts,
        )
        .expect("frame");
        ParquetWriter::new(File::create(path).expect("create"))
            .finish(&mut frame)
            .expect("write reference");
    }

    /// The same values as a warehouse or Spark writes them: INT96 order times, decimal
    /// amounts and counts, and columns the run does not use of types polars cannot hold.
    fn write_foreign(&self, path: &Path, properties: WriterProperties) {
        let n = self.timestamp.len();
        let schema = "message history {
            optional binary timestamp (STRING);
            optional binary country_code (STRING);
            optional int96 last_order_ts;
            optional binary first_order_ts (STRING);
            optional int32 total_orders (DECIMAL(9, 0));
            optional int64 voucher_amount (DECIMAL(12, 2));
            optional fixed_len_byte_array(10) spend (DECIMAL(22, 2));
            optional fixed_len_byte_array(2) ratio (FLOAT16);
            optional int64 empty;
        }";
        let columns = [
            Values::Text(self.timestamp.clone()),
            Values::Text(self.country.clone()),
            Values::Int96(
                self.last_order_day
                    .iter()
                    .map(|d| d.map(|d| d * 86_400))
                    .collect(),
            ),
            Values::Text(self.first_order.clone()),
            Values::Int32(self.total_orders.clone()),
            Values::Int64(self.amount_cents.clone()),
            Values::Fixed(
                (0..n)
                    .map(|i| Some(decimal_bytes(-(i as i128) * 10_001, 10)))
                    .collect(),
            ),
            Values::Fixed(
                (0..n)
                    .map(|i| Some(HALVES[i % 4].to_le_bytes().to_vec()))
                    .collect(),
            ),
            Values::Int64(vec![None; n]),
        ];
        write_with_parquet_crate(path, schema, &columns, properties);
    }
}

#[test]
fn histories_with_int96_decimals_and_float16_publish_the_reference_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = History::new(3_000);
    let reference = dir.path().join("reference.parquet");
    history.write_reference(&reference);
    let tables = dir.path().join("reference-tables");
    assert_success(&run_etl(
        reference.to_str().expect("utf-8"),
        &tables,
        &["--countries", "all"],
    ));
    let (_, want, want_manifest) = read_live(&tables);
    for (i, (settings, properties)) in writer_settings().into_iter().enumerate() {
        let foreign = dir.path().join(format!("foreign-{i}.parquet"));
        history.write_foreign(&foreign, properties);
        let tables = dir.path().join(format!("tables-{i}"));
        let out = run_etl(
            foreign.to_str().expect("utf-8"),
            &tables,
            &["--countries", "all"],
        );
        assert_success(&out);
        let (_, got, manifest) = read_live(&tables);
        assert_eq!(got, want, "{settings}");
        assert_eq!(manifest.rows_read, want_manifest.rows_read, "{settings}");
        assert_eq!(manifest.rows_kept, want_manifest.rows_kept, "{settings}");
        assert_eq!(manifest.dropped, want_manifest.dropped, "{settings}");
    }
}

#[test]
fn a_time_column_of_decimals_is_refused_naming_its_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.parquet");
    let schema = "message history {
        optional binary timestamp (STRING);
        optional binary country_code (STRING);
        optional int64 last_order_ts (DECIMAL(12, 2));
        optional binary first_order_ts (STRING);
        optional int32 total_orders;
        optional int64 voucher_amount;
    }";
    let text = |s: &str| Values::Text(vec![Some(s.to_owned())]);
    let columns = [
        text("2021-10-26"),
        text("Peru"),
        Values::Int64(vec![Some(1)]),
        text("2021-10-26"),
        Values::Int32(vec![Some(3)]),
        Values::Int64(vec![Some(2640)]),
    ];
    write_with_parquet_crate(&path, schema, &columns, WriterProperties::default());
    let out = run_etl(
        path.to_str().expect("utf-8"),
        &dir.path().join("tables"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("column `last_order_ts` has type decimal(12, 2); accepted: a string, date or timestamp type"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// A campaign list: Peru's customers of every segment, some invalid, and a Latvian one.
struct List {
    ids: Vec<Option<i64>>,
    country: Vec<Option<String>>,
    last_order_secs: Vec<Option<i64>>,
    first_order: Vec<Option<String>>,
    total_orders: Vec<Option<i32>>,
    segment: Vec<Option<String>>,
}

impl List {
    fn new(n: i64, now: i64) -> List {
        let day = now / 86_400;
        List {
            ids: (0..n).map(|i| (i % 50 != 7).then_some(1000 + i)).collect(),
            country: (0..n)
                .map(|i| Some(["Peru", "Peru", "Latvia", "Chile"][(i % 4) as usize].into()))
                .collect(),
            last_order_secs: (0..n)
                .map(|i| (i % 31 != 3).then(|| (day - (i * 17) % 500) * 86_400 + i % 86_400))
                .collect(),
            first_order: (0..n).map(|i| Some(text(day - 600 - i % 40))).collect(),
            total_orders: (0..n).map(|i| Some(((i * 7) % 45) as i32 - 1)).collect(),
            segment: (0..n)
                .map(|i| Some(["frequent_segment", "recency_segment"][(i % 2) as usize].into()))
                .collect(),
        }
    }

    /// The list as polars writes it.
    fn write_reference(&self, path: &Path) {
        let millis: Vec<Option<i64>> = self
            .last_order_secs
            .iter()
            .map(|s| s.map(|s| s * 1000))
            .collect();
        let last = Series::new("last_order_ts".into(), &millis)
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .expect("times")
            .into_column();
        let mut frame = df!(
            "customer_id" => &self.ids,
            "country_code" => &self.country,
            "first_order_ts" => &self.first_order,
            "total_orders" => &self.total_orders,
            "segment_name" => &self.segment,
        )
        .expect("frame");
        frame.with_column(last).expect("times");
        ParquetWriter::new(File::create(path).expect("create"))
            .finish(&mut frame)
            .expect("write reference");
    }

    /// The same values with an id of decimals, INT96 order times and extra columns of types
    /// polars cannot hold.
    fn write_foreign(&self, path: &Path, properties: WriterProperties) {
        let n = self.ids.len();
        let schema = "message list {
            optional int64 customer_id (DECIMAL(18, 0));
            optional binary country_code (STRING);
            optional binary first_order_ts (STRING);
            optional int32 total_orders;
            optional binary segment_name (STRING);
            optional int96 last_order_ts;
            optional fixed_len_byte_array(10) spend (DECIMAL(22, 2));
            optional fixed_len_byte_array(2) ratio (FLOAT16);
            optional binary empty (STRING);
        }";
        let columns = [
            Values::Int64(self.ids.clone()),
            Values::Text(self.country.clone()),
            Values::Text(self.first_order.clone()),
            Values::Int32(self.total_orders.clone()),
            Values::Text(self.segment.clone()),
            Values::Int96(self.last_order_secs.clone()),
            Values::Fixed(
                (0..n)
                    .map(|i| Some(decimal_bytes(i as i128 * 12_345, 10)))
                    .collect(),
            ),
            Values::Fixed(
                (0..n)
                    .map(|i| Some(HALVES[i % 4].to_le_bytes().to_vec()))
                    .collect(),
            ),
            Values::Text(vec![None; n]),
        ];
        write_with_parquet_crate(path, schema, &columns, properties);
    }
}

/// The result columns of a scored list, read without its other columns (which polars may not
/// hold).
fn results(path: &Path) -> DataFrame {
    ParquetReader::new(File::open(path).expect("open"))
        .with_columns(Some(
            ["status", "voucher", "segment", "detail", "table_version"]
                .map(String::from)
                .to_vec(),
        ))
        .finish()
        .expect("read the results")
}

/// Every row of a Parquet file as the `parquet` crate reads it: (column, value) pairs.
fn rows(path: &Path) -> Vec<Vec<(String, RecordField)>> {
    let reader = SerializedFileReader::new(File::open(path).expect("open")).expect("reader");
    reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| row.expect("a row").into_columns())
        .collect()
}

#[test]
fn lists_from_other_writers_score_as_the_reference_list_and_keep_their_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, _) = published_contract_table(dir.path());
    let now = Utc::now();
    let list = List::new(2_000, now.timestamp());
    let score = |customers: &Path, output: &Path| {
        let out = bin()
            .args(["score", "--customers"])
            .arg(customers)
            .arg("--tables")
            .arg(&tables)
            .arg("--output")
            .arg(output)
            .args(["--now", &now.to_rfc3339(), "--window-rows", "300"])
            .output()
            .expect("start voucher-etl");
        assert_success(&out);
    };
    let reference = dir.path().join("reference.parquet");
    list.write_reference(&reference);
    let want_path = dir.path().join("reference-scored.parquet");
    score(&reference, &want_path);
    let want = results(&want_path);
    let statuses = want
        .column("status")
        .expect("status")
        .i32()
        .expect("i32")
        .clone();
    for status in [200, 404, 422] {
        assert!(
            (0..statuses.len()).any(|i| statuses.get(i) == Some(status)),
            "the list has {status} rows"
        );
    }
    for (i, (settings, properties)) in writer_settings().into_iter().enumerate() {
        let foreign = dir.path().join(format!("foreign-{i}.parquet"));
        list.write_foreign(&foreign, properties);
        let output = dir.path().join(format!("scored-{i}.parquet"));
        score(&foreign, &output);
        assert!(results(&output).equals_missing(&want), "{settings}");
        // The list's own columns are copied as they were, whatever their types.
        let (input, scored) = (rows(&foreign), rows(&output));
        assert_eq!(input.len(), scored.len(), "{settings}");
        for (row, (a, b)) in input.iter().zip(&scored).enumerate() {
            assert_eq!(a[..], b[..a.len()], "row {row} with {settings}");
        }
    }
}
