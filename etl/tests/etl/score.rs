//! `voucher-etl score` answers each row of a customer list as the API answers it: the same
//! generated list goes through the real binary and through voucher-api (in this process, over
//! HTTP), and every row must agree.

use std::path::Path;

use polars::prelude::*;
use serde_json::{Map, Value, json};
use voucher_api::config::Config;
use voucher_api::server::Application;

use crate::common::*;

/// A generated customer list: JSON requests whose values each file format can hold.
struct List {
    requests: Vec<Map<String, Value>>,
}

/// Deterministic picks (64-bit LCG).
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

fn ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl List {
    /// `rows` requests: customer ids are integers, total orders floats (whole or not, even
    /// negative), the rest strings; any field may be absent.
    fn generate(rows: usize, seed: u64) -> List {
        let mut rng = Lcg(seed);
        let texts = |items: &[&str]| items.iter().map(|s| Some(json!(s))).collect::<Vec<_>>();
        let countries = [
            texts(&["Peru", "Peru", "Peru", "Atlantis", "Chile"]),
            vec![None],
        ]
        .concat();
        let lasts = [
            (0..8).map(|i| Some(json!(ago(i * 23 + 1)))).collect(),
            texts(&["2099-01-01", "yesterday", "2021-02-30"]),
            vec![None],
        ]
        .concat();
        let firsts = [
            texts(&["2019-01-01", "2019-05-05 10:00:00", "2098-01-01", "x"]),
            vec![None],
        ]
        .concat();
        let totals: Vec<Option<Value>> = [0.0, 3.0, 9.0, 14.0, 20.0, 37.0, 38.0, 2.5, -1.0]
            .iter()
            .map(|f| Some(json!(f)))
            .chain([None])
            .collect();
        let types = [
            texts(&[
                "frequent_segment",
                "recency_segment",
                "recency_segment",
                "bogus",
            ]),
            vec![None],
        ]
        .concat();
        let ids: Vec<Option<Value>> = vec![Some(json!(1)), Some(json!(424_242)), None];
        let requests = (0..rows)
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
            .collect();
        List { requests }
    }

    fn column<T>(&self, name: &str, value: impl Fn(&Value) -> T) -> Vec<Option<T>> {
        self.requests
            .iter()
            .map(|r| r.get(name).map(&value))
            .collect()
    }

    /// As Parquet: typed columns, absent values as nulls.
    fn write_parquet(&self, path: &Path) {
        let text = |v: &Value| v.as_str().expect("text").to_owned();
        let mut frame = DataFrame::new(
            self.requests.len(),
            vec![
                Column::new(
                    "customer_id".into(),
                    self.column("customer_id", |v| v.as_i64().expect("int")),
                ),
                Column::new("country_code".into(), self.column("country_code", text)),
                Column::new("last_order_ts".into(), self.column("last_order_ts", text)),
                Column::new("first_order_ts".into(), self.column("first_order_ts", text)),
                Column::new(
                    "total_orders".into(),
                    self.column("total_orders", |v| v.as_f64().expect("float")),
                ),
                Column::new("segment_name".into(), self.column("segment_name", text)),
                // Other columns ride along.
                Column::new("campaign".into(), vec!["winter"; self.requests.len()]),
            ],
        )
        .expect("frame");
        let file = std::fs::File::create(path).expect("create");
        ParquetWriter::new(file)
            .finish(&mut frame)
            .expect("write parquet");
    }

    /// As CSV: each value as JSON writes it, without quotes; absent values as empty cells.
    fn write_csv(&self, path: &Path) {
        let mut out = String::from(
            "customer_id,country_code,last_order_ts,first_order_ts,total_orders,segment_name\n",
        );
        for request in &self.requests {
            let cells: Vec<String> = voucher_etl::score::FIELDS
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
}

/// One row's result: status, voucher, segment and detail (as the scorer writes it).
type Row = (i32, Option<i64>, Option<String>, Option<String>);

/// What the API answers for each request (through its batch route, which answers each item as
/// the single route does), as (status, voucher, segment, detail as the scorer writes it).
fn api_answers(tables: &Path, requests: &[Map<String, Value>]) -> Vec<Row> {
    let config = <Config as clap::Parser>::try_parse_from([
        "voucher-api",
        "--tables-dir",
        tables.to_str().expect("utf-8"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--workers",
        "1",
    ])
    .expect("config");
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(&config).expect("build the API");
            tx.send((app.port(), app.handle())).expect("send");
            app.run().await.expect("serve");
        });
    });
    let (port, handle) = rx.recv().expect("the API started");
    let body = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/vouchers"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(requests).expect("json"))
        .send()
        .and_then(|r| r.text())
        .expect("the batch answer");
    drop(handle.stop(false));
    server.join().expect("the API stopped");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| {
            let status = item["status"].as_i64().expect("status") as i32;
            let detail = match status {
                200 => None,
                422 => Some(item["detail"].to_string()),
                _ => item["detail"].as_str().map(str::to_owned),
            };
            (
                status,
                item["voucher"].as_i64(),
                item["segment"].as_str().map(str::to_owned),
                detail,
            )
        })
        .collect()
}

/// The scorer's output, row by row, in the same form.
fn scored(path: &Path) -> (DataFrame, Vec<Row>) {
    let frame = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_str().expect("utf-8")),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .expect("read the output");
    let status = frame
        .column("status")
        .and_then(|c| c.i32().cloned())
        .expect("status");
    let voucher = frame
        .column("voucher")
        .and_then(|c| c.i64().cloned())
        .expect("voucher");
    let segment = frame
        .column("segment")
        .and_then(|c| c.str().cloned())
        .expect("segment");
    let detail = frame
        .column("detail")
        .and_then(|c| c.str().cloned())
        .expect("detail");
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

fn score(customers: &Path, tables: &Path, output: &Path) -> std::process::Output {
    bin()
        .args(["score", "--customers"])
        .arg(customers)
        .arg("--tables")
        .arg(tables)
        .arg("--output")
        .arg(output)
        .output()
        .expect("start voucher-etl")
}

fn published_tables(dir: &Path) -> std::path::PathBuf {
    let history = dir.join("history.parquet");
    generate(&history, 20_000, 11);
    let tables = dir.join("tables");
    assert_success(&run_etl(history.to_str().expect("utf-8"), &tables, &[]));
    tables
}

#[test]
fn a_campaign_scores_each_row_as_the_api_answers_it_from_parquet_and_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = published_tables(dir.path());
    let list = List::generate(3000, 5);
    let expected = api_answers(&tables, &list.requests);
    let statuses: std::collections::BTreeSet<i32> = expected.iter().map(|e| e.0).collect();
    assert_eq!(
        statuses,
        [200, 404, 422].into(),
        "the list covers every outcome"
    );

    let (parquet, csv) = (
        dir.path().join("customers.parquet"),
        dir.path().join("customers.csv"),
    );
    list.write_parquet(&parquet);
    list.write_csv(&csv);
    for customers in [&parquet, &csv] {
        let output = dir.path().join("scored.parquet");
        let out = score(customers, &tables, &output);
        assert_success(&out);
        let (frame, rows) = scored(&output);
        for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
            assert_eq!(
                got,
                want,
                "row {i} of {}: {:?}",
                customers.display(),
                list.requests[i]
            );
        }
        assert_eq!(rows.len(), expected.len());
        let (version, _, _) = read_live(&tables);
        let versions = frame
            .column("table_version")
            .and_then(|c| c.str().cloned())
            .expect("version");
        assert!(
            versions
                .iter()
                .all(|v| v == Some(version.to_string().as_str()))
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ok = expected.iter().filter(|e| e.0 == 200).count();
        assert!(
            stdout.contains(&format!(
                "scored 3000 customers with table {version}: {ok} vouchers"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn bad_customer_lists_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = published_tables(dir.path());
    let output = dir.path().join("out.parquet");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let cases = [
        (dir.path().join("missing.csv"), "does not exist"),
        (write("list.txt", "a,b\n"), "neither Parquet nor CSV"),
        (
            write("other.csv", "name,email\nann,a@x\n"),
            "has none of the request columns",
        ),
        (
            write("clash.csv", "total_orders,voucher\n1,2\n"),
            "already has a column `voucher`",
        ),
        (
            write("broken.parquet", "not parquet"),
            "cannot read customer list",
        ),
    ];
    for (path, expected) in cases {
        let out = score(&path, &tables, &output);
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
        &write("ok.csv", "total_orders\n1\n"),
        &empty_tables,
        &output,
    );
    assert!(
        stderr(&out).contains("no table version is published in"),
        "{}",
        stderr(&out)
    );
}
