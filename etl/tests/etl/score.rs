//! `voucher-etl score` answers each row of a customer list as the scoring core answers the
//! same request sent as JSON to the API: the four-door case set (every kind of valid and
//! invalid request, [`door_requests`]) goes through the real binary as Parquet, as CSV and
//! with typed times, in one window or in many, and every row must equal what
//! [`voucher_shared::score`] gives that request.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};
use polars::prelude::*;
use serde_json::{Value, json};
use voucher_shared::fixtures::{contract_table, door_requests};
use voucher_shared::publish::{TABLE_FILE, TablesDir, Version};
use voucher_shared::score::{self, Outcome, Refusal, Snapshot, VoucherRequest};

use crate::common::*;

/// One row's result: status, voucher, segment and detail, as the scorer writes them.
type Row = (i32, Option<i64>, Option<String>, Option<String>);

/// What the scoring core answers each request (sent as a JSON body) at `now`, in the
/// scorer's columns: the HTTP status of its outcome, the voucher or the `detail` (the list of
/// bad fields as JSON, or the message of no segment).
fn core_answers(requests: &[Value], snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Row> {
    requests
        .iter()
        .map(|request| {
            let body = serde_json::to_vec(request).expect("json");
            let request = VoucherRequest::parse(&body).expect("an object");
            let scored = score::score(&request, snapshot, now.timestamp());
            let status = i32::from(Outcome::of(&scored).http_status());
            match scored {
                Ok(answer) => (
                    status,
                    Some(answer.voucher),
                    Some(answer.segment.to_owned()),
                    None,
                ),
                Err(Refusal::Invalid(errors)) => (
                    status,
                    None,
                    None,
                    Some(serde_json::to_string(&errors).expect("json")),
                ),
                Err(refusal) => (status, None, None, Some(refusal.message())),
            }
        })
        .collect()
}

/// The field names the requests use, in name order.
fn names(requests: &[Value]) -> BTreeSet<String> {
    requests
        .iter()
        .flat_map(|r| r.as_object().expect("an object").keys().cloned())
        .collect()
}

/// As a frame: one typed column per field (integers, floats or strings, as the JSON values
/// are), absent values as nulls; and a column of its own, which rides along.
fn frame(requests: &[Value]) -> DataFrame {
    let mut columns: Vec<Column> = names(requests)
        .into_iter()
        .map(|name| {
            let values: Vec<Option<&Value>> = requests.iter().map(|r| r.get(&name)).collect();
            let present = || values.iter().flatten();
            if present().all(|v| v.is_i64()) {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_i64))
                        .collect::<Vec<_>>(),
                )
            } else if present().all(|v| v.is_number()) {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_f64))
                        .collect::<Vec<_>>(),
                )
            } else {
                assert!(
                    present().all(|v| v.is_string()),
                    "{name}: one type per column"
                );
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_str))
                        .collect::<Vec<_>>(),
                )
            }
        })
        .collect();
    columns.push(Column::new(
        "campaign".into(),
        vec!["winter"; requests.len()],
    ));
    DataFrame::new(requests.len(), columns).expect("frame")
}

/// Writes `frame` as Parquet, in row groups of `row_group` rows (polars' default if `None`).
fn write_frame(frame: &mut DataFrame, path: &Path, row_group: Option<usize>) {
    let file = std::fs::File::create(path).expect("create");
    ParquetWriter::new(file)
        .with_row_group_size(row_group)
        .finish(frame)
        .expect("write parquet");
}

fn write_parquet(requests: &[Value], path: &Path) {
    write_frame(&mut frame(requests), path, None);
}

/// As Parquet with `last_order_ts` a datetime column and `first_order_ts` a date column, as
/// warehouse exports type them: a time that does not parse is a null there. The requests
/// change to match: a datetime is sent as its text (`YYYY-MM-DD HH:MM:SS`), a date as
/// `YYYY-MM-DD`, a null is left out.
fn write_typed_times(requests: &mut [Value], path: &Path) {
    let parse = |value: &Value| {
        let secs = voucher_shared::time::parse_timestamp(value.as_str()?)?;
        DateTime::<Utc>::from_timestamp(secs, 0)
    };
    for request in requests.iter_mut() {
        let request = request.as_object_mut().expect("an object");
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
    let times = |name: &str| -> Vec<Option<i64>> {
        requests
            .iter()
            .map(|r| r.get(name).and_then(parse).map(|t| t.timestamp_micros()))
            .collect()
    };
    let last = Series::new("last_order_ts".into(), times("last_order_ts"))
        .cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            Some(TimeZone::UTC),
        ))
        .expect("datetime");
    let first = Series::new("first_order_ts".into(), times("first_order_ts"))
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .and_then(|s| s.cast(&DataType::Date))
        .expect("date");
    let mut frame = frame(requests);
    for series in [last, first] {
        frame
            .with_column(series.into_column())
            .expect("replace a column");
    }
    write_frame(&mut frame, path, None);
}

/// As CSV: a number as JSON writes it, a string in quotes (so that an empty string is not an
/// empty cell), an absent value as an empty cell.
fn write_csv(requests: &[Value], path: &Path) {
    let names = names(requests);
    let mut out = names.iter().cloned().collect::<Vec<_>>().join(",");
    out.push('\n');
    for request in requests {
        let cells: Vec<String> = names
            .iter()
            .map(|name| match request.get(name) {
                Some(Value::String(s)) => format!("\"{}\"", s.replace('"', "\"\"")),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).expect("write csv");
}

/// The scorer's output, row by row, and its table versions.
fn scored(path: &Path) -> (Vec<Row>, BTreeSet<Option<String>>) {
    let frame = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_str().expect("utf-8")),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .expect("read the output");
    let text = |name: &str| {
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
    let (segment, detail) = (text("segment"), text("detail"));
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
    let versions = text("table_version")
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    (rows, versions)
}

fn score(
    customers: &Path,
    tables: &Path,
    output: &Path,
    now: Option<DateTime<Utc>>,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(["score", "--customers"])
        .arg(customers)
        .arg("--tables")
        .arg(tables)
        .arg("--output")
        .arg(output)
        .args(extra);
    if let Some(now) = now {
        cmd.arg("--now").arg(now.to_rfc3339());
    }
    cmd.output().expect("start voucher-etl")
}

/// Publishes the contract table (the four-door test's) as the live version.
pub(crate) fn published_contract_table(dir: &Path) -> (PathBuf, Version) {
    let tables = dir.join("tables");
    let staged = TablesDir::new(&tables).stage(Utc::now()).expect("stage");
    let file = std::fs::File::create(staged.path(TABLE_FILE)).expect("create");
    contract_table().write(file).expect("write the table");
    let version = staged.commit().expect("commit").version;
    (tables, version)
}

/// The contract table published in a directory, and the time lists are scored at.
struct Campaign {
    dir: tempfile::TempDir,
    tables: PathBuf,
    version: Version,
    snapshot: Snapshot,
    now: DateTime<Utc>,
}

impl Campaign {
    fn new() -> Campaign {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tables, version) = published_contract_table(dir.path());
        Campaign {
            snapshot: Snapshot::new(version, &contract_table(), None),
            dir,
            tables,
            version,
            now: Utc::now().trunc_subsecs(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Scores `customers` (the list of `requests`) with `extra` arguments, checks that every
    /// row is answered as the core answers its request, once and in order, with the live
    /// version and the summary's counts; the summary.
    fn check(&self, customers: &Path, requests: &[Value], extra: &[&str]) -> String {
        let expected = core_answers(requests, &self.snapshot, self.now);
        let output = self.path("scored.parquet");
        let out = score(customers, &self.tables, &output, Some(self.now), extra);
        assert_success(&out);
        let (rows, versions) = scored(&output);
        for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
            assert_eq!(
                got,
                want,
                "row {i} of {}: {}",
                customers.display(),
                requests[i]
            );
        }
        assert_eq!(rows.len(), expected.len());
        assert_eq!(versions, [Some(self.version.to_string())].into());
        let ok = expected.iter().filter(|e| e.0 == 200).count();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            stdout.contains(&format!(
                "scored {} customers with table {}: {ok} vouchers",
                requests.len(),
                self.version
            )),
            "{stdout}"
        );
        stdout
    }

    /// Checks that the core gives `requests` every outcome.
    fn assert_every_outcome(&self, list: &str, requests: &[Value]) {
        let statuses: BTreeSet<i32> = core_answers(requests, &self.snapshot, self.now)
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            statuses,
            [200, 404, 422].into(),
            "{list} covers every outcome"
        );
    }
}

#[test]
fn a_campaign_scores_each_row_as_the_core_answers_it_from_parquet_and_csv() {
    let campaign = Campaign::new();
    // The four-door case set, and total orders as floats (whole, fractional, negative), which
    // a Parquet column of floats or a CSV cell can carry.
    let doors = door_requests(1000, 2026, false, campaign.now);
    let floats: Vec<Value> = [14.0, 2.5, -1.0, 38.0]
        .iter()
        .map(|total| {
            json!({"customer_id": 7, "country_code": "Peru", "last_order_ts": "2021-10-26",
                   "first_order_ts": "2021-01-01", "total_orders": total,
                   "segment_name": "frequent_segment"})
        })
        .collect();
    for (list, requests) in [("doors", &doors), ("floats", &floats)] {
        campaign.assert_every_outcome(list, requests);
        let parquet = campaign.path(&format!("{list}.parquet"));
        let csv = campaign.path(&format!("{list}.csv"));
        write_parquet(requests, &parquet);
        write_csv(requests, &csv);
        for customers in [&parquet, &csv] {
            campaign.check(customers, requests, &[]);
        }
    }
}

#[test]
fn date_and_datetime_columns_are_scored_as_their_text_would_be() {
    let campaign = Campaign::new();
    let mut requests = door_requests(2000, 7, false, campaign.now);
    let customers = campaign.path("typed-times.parquet");
    write_typed_times(&mut requests, &customers);
    campaign.assert_every_outcome("typed times", &requests);
    campaign.check(&customers, &requests, &[]);
}

#[test]
fn a_list_of_many_windows_is_answered_as_one_and_written_window_by_window() {
    let campaign = Campaign::new();
    let requests = door_requests(20_000, 8, false, campaign.now);
    let customers = campaign.path("customers.parquet");
    write_frame(&mut frame(&requests), &customers, Some(1000));

    let args = ["--window-rows", "1000", "--windows-in-flight", "3"];
    let stdout = campaign.check(&customers, &requests, &args);
    assert!(
        stdout.contains("read in windows of 1000 rows, 3 in flight"),
        "{stdout}"
    );
    let output = std::fs::File::open(campaign.path("scored.parquet")).expect("output");
    let groups = ParquetReader::new(output)
        .get_metadata()
        .expect("footer")
        .row_groups
        .len();
    assert_eq!(groups, 20, "one row group per row group of the list");

    // Windows that cut row groups, and a CSV list streamed in chunks: the same answers.
    campaign.check(&customers, &requests, &["--window-rows", "300"]);
    let csv = campaign.path("customers.csv");
    write_csv(&requests, &csv);
    campaign.check(&csv, &requests, &["--window-rows", "1000"]);

    // A limit below what any window takes: the smallest windows, one at a time, same answers.
    let stdout = campaign.check(&customers, &requests, &["--memory-limit", "1MiB"]);
    assert!(
        stdout.contains("1 in flight (memory limit: 1 MiB, from --memory-limit")
            && stdout.contains("over the limit"),
        "{stdout}"
    );
}

#[test]
fn bad_customer_lists_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, _) = published_contract_table(dir.path());
    let output = dir.path().join("out.parquet");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let cases = [
        (dir.path().join("missing.csv"), "does not exist"),
        (write("list.txt", b"a,b\n"), "neither Parquet nor CSV"),
        (
            write("other.csv", b"name,email\nann,a@x\n"),
            "has none of the request columns",
        ),
        (
            write("clash.csv", b"total_orders,voucher\n1,2\n"),
            "already has a column `voucher`",
        ),
        (
            write(
                "twice.csv",
                b"customer_id,total_orders,customer_id\n1,2,3\n",
            ),
            "has more than one column named \"customer_id\"",
        ),
        (
            write(
                "latin1.csv",
                b"customer_id,country_code\n1,Peru\n2,P\xe9ru\n",
            ),
            "line 3 is not UTF-8 text (byte 3 of the line)",
        ),
        (
            write("broken.parquet", b"not parquet"),
            "cannot read customer list",
        ),
    ];
    for (path, expected) in cases {
        let out = score(&path, &tables, &output, None, &[]);
        assert!(!out.status.success(), "{}", path.display());
        let err = stderr(&out);
        assert!(
            err.contains(expected) && err.contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!output.exists(), "nothing is written");
    }
    let empty_tables = dir.path().join("empty");
    std::fs::create_dir(&empty_tables).expect("mkdir");
    let out = score(
        &write("ok.csv", b"total_orders\n1\n"),
        &empty_tables,
        &output,
        None,
        &[],
    );
    assert!(
        stderr(&out).contains("no table version is published in"),
        "{}",
        stderr(&out)
    );
}

/// The fields and kinds of a 422 `detail` as the scorer writes it.
fn bad_fields(detail: Option<&String>) -> Vec<(String, String)> {
    let detail: Value = serde_json::from_str(detail.expect("a 422 has a detail")).expect("JSON");
    detail
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["loc"][1].to_string(), e["type"].to_string()))
        .collect()
}

/// The four-door requests that have every field in a form a table column holds (text, and an
/// integer order count), each given its own customer id.
fn storable_requests(now: DateTime<Utc>) -> Vec<Value> {
    let profile_texts = [
        "country_code",
        "last_order_ts",
        "first_order_ts",
        "segment_name",
    ];
    let mut full: Vec<Value> = door_requests(1500, 26, false, now)
        .into_iter()
        .filter(|r| profile_texts.iter().all(|f| r[*f].is_string()) && r["total_orders"].is_i64())
        .collect();
    for (i, request) in full.iter_mut().enumerate() {
        request["customer_id"] = json!(1_000 + i);
    }
    full
}

/// Creates `table` holding the profile of each of `requests`, in text columns and an integer
/// order count.
fn store_customers(db: &crate::postgres::Db, table: &str, requests: &[Value]) {
    let text =
        |r: &Value, f: &str| format!("'{}'", r[f].as_str().expect("text").replace('\'', "''"));
    db.execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} \
         (customer_id bigint PRIMARY KEY, country_code text, last_order_ts text, \
         first_order_ts text, total_orders bigint)"
    ));
    for chunk in requests.chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|r| {
                format!(
                    "({}, {}, {}, {}, {})",
                    r["customer_id"],
                    text(r, "country_code"),
                    text(r, "last_order_ts"),
                    text(r, "first_order_ts"),
                    r["total_orders"]
                )
            })
            .collect();
        db.execute(&format!("INSERT INTO {table} VALUES {}", rows.join(", ")));
    }
}

#[test]
fn postgres_rows_by_id_are_scored_as_the_full_rows_made_of_the_stored_profile() {
    let Some(db) = crate::postgres::db() else {
        return;
    };
    let campaign = Campaign::new();
    let full = storable_requests(campaign.now);
    campaign.assert_every_outcome("the stored profiles", &full);
    store_customers(&db, "score_customers", &full);
    // Each stored customer asked for by id, then in full (answered without a lookup), then
    // ids the store does not hold; in windows of 500 rows, so that a run looks up many times.
    let unknown = [1_i64, 2, 999_999];
    let by_id = |id: &Value, segment: &Value| json!({"customer_id": id, "segment_name": segment});
    let list: Vec<Value> = full
        .iter()
        .map(|r| by_id(&r["customer_id"], &r["segment_name"]))
        .chain(full.iter().cloned())
        .chain(unknown.map(|id| by_id(&json!(id), &json!("recency_segment"))))
        .collect();
    let expected = core_answers(&full, &campaign.snapshot, campaign.now);
    for (name, write) in [
        ("ids.parquet", write_parquet as fn(&[Value], &Path)),
        ("ids.csv", write_csv),
    ] {
        let path = campaign.path(name);
        write(&list, &path);
        let output = campaign.path("scored.parquet");
        let mut args = store(&db.url, "score_customers").to_vec();
        args.extend(["--window-rows", "500"]);
        let out = score(&path, &campaign.tables, &output, Some(campaign.now), &args);
        assert_success(&out);
        let (got, _) = scored(&output);
        assert_eq!(got.len(), list.len(), "{name}");
        assert_by_id_answers(name, &got, &full, &expected, &unknown);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(", 3 unknown customers"), "{stdout}");
    }

    // Without a store, the rows by id are the 422 of the missing fields; a table without the
    // profile's columns fails the run, naming it, and writes nothing.
    let ids = campaign.path("ids.parquet");
    let output = campaign.path("scored.parquet");
    let out = score(&ids, &campaign.tables, &output, Some(campaign.now), &[]);
    assert_success(&out);
    let (rows, _) = scored(&output);
    assert!(rows[..full.len()].iter().all(|r| r.0 == 422));
    db.execute(
        "DROP TABLE IF EXISTS score_no_profile; CREATE TABLE score_no_profile (customer_id bigint)",
    );
    let never = campaign.path("never.parquet");
    let args = store(&db.url, "score_no_profile");
    let out = score(&ids, &campaign.tables, &never, Some(campaign.now), &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("score_no_profile"),
        "{}",
        stderr(&out)
    );
    assert!(!never.exists(), "nothing is written");
}

/// The arguments that look rows by id up in `table` of the database at `url`.
fn store<'a>(url: &'a str, table: &'a str) -> [&'a str; 4] {
    ["--customers-db", url, "--customers-table", table]
}

/// Checks the answers to the list of `postgres_rows_by_id_...`: `full` asked for by id (as the
/// core answers `full`, a stored value refused under `loc` "profile"), `full` itself, then the
/// `unknown` ids.
fn assert_by_id_answers(
    name: &str,
    got: &[Row],
    full: &[Value],
    expected: &[Row],
    unknown: &[i64],
) {
    let (ids, rest) = got.split_at(full.len());
    let (in_full, unknowns) = rest.split_at(full.len());
    for (i, (got, want)) in ids.iter().zip(expected).enumerate() {
        if want.0 == 422 {
            assert_eq!(got.0, 422, "{name} row {i}: {}", full[i]);
            assert_eq!(
                bad_fields(got.3.as_ref()),
                bad_fields(want.3.as_ref()),
                "row {i}"
            );
        } else {
            assert_eq!(got, want, "{name} row {i}: {}", full[i]);
        }
    }
    assert_eq!(in_full, expected, "{name}: the full rows");
    for (row, id) in unknowns.iter().zip(unknown) {
        let detail = format!("customer {id} is not in the customer store");
        assert_eq!(
            (row.0, row.3.as_deref()),
            (404, Some(detail.as_str())),
            "{name}"
        );
    }
}
