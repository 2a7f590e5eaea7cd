//! `voucher-etl score` streams a customer list in windows and answers every row as the scoring
//! core answers the same request sent as JSON (`voucher_shared::score`, which every door
//! calls): on the four-door case set (valid requests and every kind of invalid one) written as
//! Parquet, as CSV and with typed times, and on a list cut in many windows. And `run` under a
//! memory limit reads fewer windows and publishes the same table.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use polars::prelude::*;
use serde_json::{Map, Value, json};
use voucher_shared::publish::TablesDir;
use voucher_shared::score::{self, Outcome, Refusal, Snapshot, VoucherRequest};
use voucher_shared::table::VoucherTable;

use crate::common::*;

/// The time the lists are scored at (`--now`).
const NOW: &str = "2026-11-30T12:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().expect("an RFC 3339 time")
}

fn ago(days: i64) -> String {
    (now() - TimeDelta::days(days))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Deterministic picks (64-bit LCG), so that a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items[((self.0 >> 33) % items.len() as u64) as usize].clone()
    }
}

/// How a list holds its values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// Parquet with an integer and string columns: what gRPC can say too.
    Typed,
    /// CSV: also fractions and values of the wrong kind, as bare cells.
    Csv,
}

/// The four-door case set (api/tests/api/doors.rs draws the same kinds of values) for a table
/// of Peru, Chile, Colombia and Mexico: `count` requests, any field possibly left out.
fn requests(count: usize, seed: u64, form: Form) -> Vec<Map<String, Value>> {
    let s = |v: &str| Some(json!(v));
    let mut ids = vec![Some(json!(1)), Some(json!(987_654)), None];
    let mut countries = vec![s("Peru"), s("Peru"), s("Chile"), s("Atlantis"), s(""), None];
    let lasts = vec![
        Some(json!(ago(3))),
        Some(json!(ago(45))),
        Some(json!(ago(100))),
        Some(json!(ago(400))),
        s("2021-10-26"),
        s("2021-10-26T00:00:00Z"),
        Some(json!(ago(-2))),
        s("2021-02-30"),
        s("yesterday"),
        None,
    ];
    let firsts = vec![
        s("2020-01-01 00:00:00"),
        s("2020-01-01"),
        s("2099-01-01"),
        s("x"),
        None,
    ];
    let mut totals: Vec<Option<Value>> = [0, 4, 5, 14, 37, 38, -1]
        .iter()
        .map(|n| Some(json!(n)))
        .chain([None])
        .collect();
    let types = vec![
        s("frequent_segment"),
        s("recency_segment"),
        s("bogus"),
        None,
    ];
    if form == Form::Csv {
        // Only what a bare cell says the same way: no strings that read as numbers, no
        // booleans or nulls.
        totals.extend([Some(json!(14.0)), Some(json!(2.5))]);
        ids.extend([s("abc"), Some(json!(1.5))]);
        countries.push(Some(json!(5)));
    }
    let mut rng = Lcg(seed);
    (0..count)
        .map(|_| {
            let mut request = Map::new();
            for (name, value) in [
                ("customer_id", rng.pick(&ids)),
                ("country_code", rng.pick(&countries)),
                ("last_order_ts", rng.pick(&lasts)),
                ("first_order_ts", rng.pick(&firsts)),
                ("total_orders", rng.pick(&totals)),
                ("segment_name", rng.pick(&types)),
            ] {
                if let Some(value) = value {
                    request.insert(name.into(), value);
                }
            }
            request
        })
        .collect()
}

/// One row's result as the scorer writes it: status, voucher, segment and detail.
type Row = (i32, Option<i64>, Option<String>, Option<String>);

/// What the scoring core answers for each request, in the scorer's form.
fn core_answers(tables: &Path, requests: &[Map<String, Value>]) -> Vec<Row> {
    let dir = TablesDir::new(tables);
    let version = dir.current().expect("CURRENT").expect("a live version");
    let bytes = std::fs::read(dir.table_path(version)).expect("table");
    let table = VoucherTable::read(Bytes::from(bytes)).expect("valid table");
    let snapshot = Snapshot::new(version, &table, dir.manifest(version));
    let now = now().timestamp();
    requests
        .iter()
        .map(|request| {
            let body = serde_json::to_vec(request).expect("json");
            let request = VoucherRequest::parse(&body).expect("an object");
            let scored = score::score(&request, &snapshot, now);
            let status = i32::from(Outcome::of(&scored).http_status());
            match scored {
                Ok(answer) => (
                    status,
                    Some(answer.voucher),
                    Some(answer.segment.into()),
                    None,
                ),
                Err(Refusal::Invalid(errors)) => (
                    status,
                    None,
                    None,
                    Some(serde_json::to_string(&errors).expect("json")),
                ),
                Err(Refusal::NoSegment(none)) => (status, None, None, Some(none.message)),
            }
        })
        .collect()
}

fn column<T>(
    requests: &[Map<String, Value>],
    name: &str,
    value: impl Fn(&Value) -> Option<T>,
) -> Vec<Option<T>> {
    requests
        .iter()
        .map(|r| r.get(name).and_then(&value))
        .collect()
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The list as Parquet, in row groups of `row_group` rows: an integer id and count, strings
/// otherwise, and a column that rides along.
fn write_parquet(requests: &[Map<String, Value>], path: &Path, row_group: usize) {
    let mut frame = DataFrame::new(
        requests.len(),
        vec![
            Column::new(
                "customer_id".into(),
                column(requests, "customer_id", Value::as_i64),
            ),
            Column::new(
                "country_code".into(),
                column(requests, "country_code", text),
            ),
            Column::new(
                "last_order_ts".into(),
                column(requests, "last_order_ts", text),
            ),
            Column::new(
                "first_order_ts".into(),
                column(requests, "first_order_ts", text),
            ),
            Column::new(
                "total_orders".into(),
                column(requests, "total_orders", Value::as_i64),
            ),
            Column::new(
                "segment_name".into(),
                column(requests, "segment_name", text),
            ),
            Column::new("campaign".into(), vec!["winter"; requests.len()]),
        ],
    )
    .expect("frame");
    write_frame(&mut frame, path, row_group);
}

fn write_frame(frame: &mut DataFrame, path: &Path, row_group: usize) {
    let file = std::fs::File::create(path).expect("create");
    ParquetWriter::new(file)
        .with_row_group_size(Some(row_group))
        .finish(frame)
        .expect("write parquet");
}

/// The list as CSV: each value as JSON writes it, without quotes; absent values as empty cells.
fn write_csv(requests: &[Map<String, Value>], path: &Path) {
    let mut out = VoucherRequest::FIELDS.join(",");
    out.push('\n');
    for request in requests {
        let cells: Vec<String> = VoucherRequest::FIELDS
            .iter()
            .map(|name| match request.get(*name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).expect("write csv");
}

/// The list with `last_order_ts` as a datetime column and `first_order_ts` as a date column:
/// a time that does not parse is a null there, and the requests change to match (a datetime
/// is read as its text, a date as `YYYY-MM-DD`).
fn write_typed_times(requests: &mut [Map<String, Value>], path: &Path) {
    let parse = |value: &Value| {
        let text = value.as_str()?;
        let secs = voucher_shared::time::parse_timestamp(text)?;
        DateTime::<Utc>::from_timestamp(secs, 0)
    };
    let last: Vec<Option<i64>> = column(requests, "last_order_ts", |v| {
        parse(v).map(|t| t.timestamp_micros())
    });
    let first: Vec<Option<i32>> = column(requests, "first_order_ts", |v| {
        parse(v).map(|t| (t.timestamp().div_euclid(86_400)) as i32)
    });
    for request in requests.iter_mut() {
        for (name, format) in [
            ("last_order_ts", "%Y-%m-%d %H:%M:%S"),
            ("first_order_ts", "%Y-%m-%d"),
        ] {
            match request.get(name).and_then(parse) {
                Some(t) => request.insert(name.into(), json!(t.format(format).to_string())),
                None => request.remove(name),
            };
        }
    }
    let mut frame = DataFrame::new(
        requests.len(),
        vec![
            Column::new(
                "customer_id".into(),
                column(requests, "customer_id", Value::as_i64),
            ),
            Column::new(
                "country_code".into(),
                column(requests, "country_code", text),
            ),
            Series::new("last_order_ts".into(), last)
                .cast(&DataType::Datetime(
                    TimeUnit::Microseconds,
                    Some(TimeZone::UTC),
                ))
                .expect("datetime")
                .into_column(),
            Series::new("first_order_ts".into(), first)
                .cast(&DataType::Date)
                .expect("date")
                .into_column(),
            Column::new(
                "total_orders".into(),
                column(requests, "total_orders", Value::as_i64),
            ),
            Column::new(
                "segment_name".into(),
                column(requests, "segment_name", text),
            ),
        ],
    )
    .expect("frame");
    write_frame(&mut frame, path, 1000);
}

/// The scorer's output: its frame and its rows in the [`Row`] form.
fn scored(path: &Path) -> (DataFrame, Vec<Row>) {
    let frame = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_str().expect("utf-8")),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .expect("read the output");
    let strings = |name: &str| {
        frame
            .column(name)
            .and_then(|c| c.str().cloned())
            .expect(name)
    };
    let status = frame
        .column("status")
        .and_then(|c| c.i32().cloned())
        .expect("status");
    let voucher = frame
        .column("voucher")
        .and_then(|c| c.i64().cloned())
        .expect("voucher");
    let (segment, detail) = (strings("segment"), strings("detail"));
    let rows = (0..frame.height())
        .map(|i| {
            (
                status.get(i).expect("a status"),
                voucher.get(i),
                segment.get(i).map(str::to_owned),
                detail.get(i).map(str::to_owned),
            )
        })
        .collect();
    (frame, rows)
}

fn score(customers: &Path, tables: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let out = bin()
        .args(["score", "--now", NOW, "--customers"])
        .arg(customers)
        .arg("--tables")
        .arg(tables)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .expect("start voucher-etl");
    assert_success(&out);
    out
}

/// A table of every country of generated history.
fn published_tables(dir: &Path) -> PathBuf {
    let history = dir.join("history.parquet");
    generate(&history, 20_000, 11);
    let tables = dir.join("tables");
    assert_success(&run_etl(
        history.to_str().expect("utf-8"),
        &tables,
        &["--countries", "all"],
    ));
    tables
}

/// Checks every row of `output` against the core's answer to its request.
fn assert_answers_as_the_core(output: &Path, tables: &Path, requests: &[Map<String, Value>]) {
    let expected = core_answers(tables, requests);
    let (frame, rows) = scored(output);
    assert_eq!(rows.len(), expected.len(), "{}", output.display());
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "row {i} of {}: {:?}",
            output.display(),
            requests[i]
        );
    }
    let (version, _, _) = read_live(tables);
    let versions = frame
        .column("table_version")
        .and_then(|c| c.str().cloned())
        .expect("table_version");
    let version = version.to_string();
    assert!(versions.iter().all(|v| v == Some(version.as_str())));
}

#[test]
fn every_row_is_answered_as_the_core_answers_it_from_parquet_csv_and_typed_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = published_tables(dir.path());
    let output = dir.path().join("scored.parquet");

    let typed = requests(3000, 5, Form::Typed);
    let statuses: std::collections::BTreeSet<i32> =
        core_answers(&tables, &typed).iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 404, 422].into(), "every outcome is covered");
    let parquet = dir.path().join("customers.parquet");
    write_parquet(&typed, &parquet, 1000);
    let out = score(&parquet, &tables, &output, &[]);
    assert_answers_as_the_core(&output, &tables, &typed);
    let ok = core_answers(&tables, &typed)
        .iter()
        .filter(|r| r.0 == 200)
        .count();
    let (version, _, _) = read_live(&tables);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "scored 3000 customers with table {version}: {ok} vouchers"
        )),
        "{stdout}"
    );

    let cells = requests(3000, 6, Form::Csv);
    let csv = dir.path().join("customers.csv");
    write_csv(&cells, &csv);
    score(&csv, &tables, &output, &[]);
    assert_answers_as_the_core(&output, &tables, &cells);

    let mut timed = requests(3000, 7, Form::Typed);
    let typed_times = dir.path().join("typed-times.parquet");
    write_typed_times(&mut timed, &typed_times);
    score(&typed_times, &tables, &output, &[]);
    assert_answers_as_the_core(&output, &tables, &timed);
}

#[test]
fn a_list_of_many_windows_is_answered_as_one_and_written_window_by_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = published_tables(dir.path());
    let list = requests(20_000, 8, Form::Typed);
    let customers = dir.path().join("customers.parquet");
    write_parquet(&list, &customers, 1000);
    let output = dir.path().join("scored.parquet");

    let args = ["--window-rows", "1000", "--windows-in-flight", "3"];
    let out = score(&customers, &tables, &output, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("read in windows of 1000 rows, 3 in flight"),
        "{stdout}"
    );
    assert_answers_as_the_core(&output, &tables, &list);
    let mut reader = ParquetReader::new(std::fs::File::open(&output).expect("output"));
    let groups = reader.get_metadata().expect("footer").row_groups.len();
    assert_eq!(groups, 20, "one row group per window written");

    // A limit below what any window takes: the smallest windows, one at a time, same answers.
    let out = score(&customers, &tables, &output, &["--memory-limit", "1MiB"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 in flight (memory limit: 1 MiB, from --memory-limit")
            && stdout.contains("over the limit"),
        "{stdout}"
    );
    assert_answers_as_the_core(&output, &tables, &list);
}

#[test]
fn run_under_a_memory_limit_reads_fewer_windows_and_publishes_the_same_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    generate_in_row_groups(&history, 60_000, 5, Some(10_000));
    let input = history.to_str().expect("utf-8");

    let roomy = dir.path().join("roomy");
    let out = run_etl(
        input,
        &roomy,
        &["--countries", "all", "--memory-limit", "unlimited"],
    );
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("windows of 1048576 rows, 2 in flight (memory limit: unlimited"),
        "{stdout}"
    );

    let tight = dir.path().join("tight");
    let out = bin()
        .arg("run")
        .args(["--input", input, "--countries", "all", "--output"])
        .arg(&tight)
        .env("VOUCHER_MEMORY_LIMIT", "1MiB")
        .output()
        .expect("start voucher-etl");
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("windows of 65536 rows, 1 in flight (memory limit: 1 MiB"),
        "{stdout}"
    );
    let (_, roomy_table, roomy_manifest) = read_live(&roomy);
    let (_, tight_table, tight_manifest) = read_live(&tight);
    assert_eq!(roomy_table, tight_table);
    assert_eq!(
        (
            roomy_manifest.rows_read,
            roomy_manifest.rows_kept,
            roomy_manifest.dropped
        ),
        (
            tight_manifest.rows_read,
            tight_manifest.rows_kept,
            tight_manifest.dropped
        )
    );
}
