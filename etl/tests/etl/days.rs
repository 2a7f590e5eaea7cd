//! Days of history for the gate's tests: a normal day, and the bad days the gate must hold
//! (amounts in the wrong unit, half the amounts missing, a country missing), made by rewriting
//! generated history or the real sample; and the commands that inspect and move versions.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;
use serde_json::Value;
use voucher_shared::gate::{CheckKind, GATE_FILE, GateReport};
use voucher_shared::publish::{TablesDir, Version};

use crate::common::*;

/// Rows of a generated day: enough that every segment's favourite amount wins clearly on
/// any seed.
pub const DAY_ROWS: u64 = 40_000;

/// A normal day of generated history (every default country), different from other seeds'.
pub fn normal_day(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("day-{seed}.parquet"));
    generate(&path, DAY_ROWS, seed);
    path
}

/// Rewrites a history file: `amount(row, country, amount)` gives each row's new
/// `voucher_amount`, and only rows whose country `keep` accepts are written.
pub fn rewrite(
    input: &Path,
    output: &Path,
    amount: impl Fn(usize, &str, Option<f64>) -> Option<f64>,
    keep: impl Fn(&str) -> bool,
) {
    let mut df = ParquetReader::new(File::open(input).expect("open history"))
        .finish()
        .expect("read history");
    let country = df
        .column("country_code")
        .expect("country_code")
        .str()
        .expect("text")
        .clone();
    let countries: Vec<String> = (0..df.height())
        .map(|i| country.get(i).unwrap_or_default().to_owned())
        .collect();
    let amount_column = df
        .column("voucher_amount")
        .expect("voucher_amount")
        .cast(&DataType::Float64)
        .expect("float");
    let amount_values = amount_column.f64().expect("f64");
    let amounts: Vec<Option<f64>> = (0..df.height())
        .map(|i| amount(i, &countries[i], amount_values.get(i)))
        .collect();
    df.with_column(Column::new("voucher_amount".into(), amounts))
        .expect("replace amounts");
    let mask: Vec<bool> = countries.iter().map(|c| keep(c)).collect();
    let mut df = df
        .filter(&BooleanChunked::from_slice("keep".into(), &mask))
        .expect("filter");
    ParquetWriter::new(File::create(output).expect("create"))
        .finish(&mut df)
        .expect("write history");
}

/// `input` with every amount of `country` multiplied by `factor`.
pub fn amounts_times(input: &Path, output: &Path, country: &str, factor: f64) -> PathBuf {
    rewrite(
        input,
        output,
        |_, c, a| {
            if c == country {
                a.map(|a| a * factor)
            } else {
                a
            }
        },
        |_| true,
    );
    output.to_owned()
}

/// Day `seed` of generated history with `country`'s amounts ten times larger.
pub fn x10_day(dir: &Path, seed: u64, country: &str) -> PathBuf {
    let output = dir.join(format!("x10-{country}-{seed}.parquet"));
    amounts_times(&normal_day(dir, seed), &output, country, 10.0)
}

/// `dir/tables` with a normal day published, and the next day's history with `country`'s
/// amounts ten times larger (not run yet).
pub fn live_then_x10(dir: &Path, country: &str) -> (PathBuf, PathBuf) {
    let tables = dir.join("tables");
    assert_success(&run_day(&normal_day(dir, 1), &tables, &[]));
    (tables, x10_day(dir, 2, country))
}

/// `input` with every other row's amount missing.
pub fn half_amounts_missing(input: &Path, output: &Path) -> PathBuf {
    rewrite(input, output, |i, _, a| a.filter(|_| i % 2 == 1), |_| true);
    output.to_owned()
}

/// `input` without the rows of `country`.
pub fn without_country(input: &Path, output: &Path, country: &str) -> PathBuf {
    rewrite(input, output, |_, _, a| a, |c| c != country);
    output.to_owned()
}

/// `voucher-etl run` over every country, as the gate's tests run it.
pub fn run_day(history: &Path, tables: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--countries", "all", "--keep", "50"];
    args.extend_from_slice(extra);
    run_etl(history.to_str().expect("utf-8"), tables, &args)
}

/// Runs `voucher-etl` with `args`, then `--tables-dir tables` (for versions, diff, promote).
pub fn etl_on(tables: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .arg("--tables-dir")
        .arg(tables)
        .output()
        .expect("start voucher-etl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn exit_code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// `versions --json`.
pub fn versions_json(tables: &Path) -> Vec<Value> {
    let out = etl_on(tables, &["versions", "--json"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("versions --json is JSON")
}

/// The state `versions --json` gives `version`.
pub fn state_of(tables: &Path, version: Version) -> String {
    versions_json(tables)
        .iter()
        .find(|v| v["version"] == version.to_string())
        .and_then(|v| v["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{version} not listed"))
}

/// Every version, oldest first.
pub fn all_versions(tables: &Path) -> Vec<Version> {
    TablesDir::new(tables).versions().expect("versions")
}

pub fn live(tables: &Path) -> Option<Version> {
    TablesDir::new(tables).current().expect("CURRENT readable")
}

/// The gate report saved in a version's directory.
pub fn report(tables: &Path, version: Version) -> GateReport {
    let path = TablesDir::new(tables).version_dir(version).join(GATE_FILE);
    serde_json::from_slice(&std::fs::read(path).expect("gate.json")).expect("a gate report")
}

/// The kinds of check that failed in a report.
pub fn failed_kinds(report: &GateReport) -> std::collections::BTreeSet<CheckKind> {
    report.failed().map(|c| c.check).collect()
}

/// The real history as the tests of bad days use it: the Peru sample, and its rows again as a
/// second country, `Chile`, so that a day can break one country and leave the other alone.
pub fn real_history() -> DataFrame {
    let peru = read_history(&real_sample());
    let mut chile = peru.clone();
    let rows = chile.height();
    chile
        .with_column(Column::new("country_code".into(), vec!["Chile"; rows]))
        .expect("country");
    peru.vstack(&chile).expect("the same columns")
}

pub fn read_history(path: &Path) -> DataFrame {
    ParquetReader::new(File::open(path).expect("open history"))
        .finish()
        .expect("read history")
}

/// Writes `history` to `dir/name` and returns the path.
pub fn write_history(history: &DataFrame, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    ParquetWriter::new(File::create(&path).expect("create"))
        .finish(&mut history.clone())
        .expect("write history");
    path
}

/// The rows of `history` at `rows`, in that order.
pub fn rows_of(history: &DataFrame, rows: Vec<usize>) -> DataFrame {
    let rows = rows.into_iter().map(|i| i as IdxSize).collect();
    history
        .take(&IdxCa::from_vec("row".into(), rows))
        .expect("rows")
}

/// A normal next day: the history with 3 % more rows, copies of every 33rd row a day later
/// (the voucher and the last order both, so each stays in its segments).
pub fn next_day(history: &DataFrame) -> DataFrame {
    let mut more = rows_of(history, (0..history.height()).step_by(33).collect());
    for name in ["timestamp", "last_order_ts"] {
        let text = more.column(name).expect(name).str().expect("text").clone();
        let later: Vec<Option<String>> = (0..text.len())
            .map(|i| text.get(i).map(one_day_later))
            .collect();
        more.with_column(Column::new(name.into(), later))
            .expect("replace");
    }
    history.vstack(&more).expect("the same columns")
}

/// `2020-04-05 15:07:46+00:00` -> `2020-04-06 15:07:46+00:00`; text without a date as it is.
fn one_day_later(text: &str) -> String {
    let date = text
        .get(..10)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.succ_opt());
    match (date, text.get(10..)) {
        (Some(next), Some(rest)) => format!("{next}{rest}"),
        _ => text.to_owned(),
    }
}

/// The days from the last order to the voucher, when both dates read.
fn recency_days(timestamp: Option<&str>, last_order: Option<&str>) -> Option<i64> {
    let date = |t: Option<&str>| {
        t.and_then(|t| t.get(..10))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    Some((date(timestamp)? - date(last_order)?).num_days())
}

/// The rows of `country` with `amount`, total orders within `orders` and recency within
/// `recency` (days), in file order.
pub fn rows_where(
    history: &DataFrame,
    country: &str,
    amount: f64,
    orders: std::ops::RangeInclusive<f64>,
    recency: std::ops::RangeInclusive<i64>,
) -> Vec<usize> {
    let text = |name: &str| {
        history
            .column(name)
            .expect(name)
            .str()
            .expect("text")
            .clone()
    };
    let (countries, total_orders) = (text("country_code"), text("total_orders"));
    let (timestamps, last_orders) = (text("timestamp"), text("last_order_ts"));
    let amounts = history
        .column("voucher_amount")
        .expect("voucher_amount")
        .f64()
        .expect("f64")
        .clone();
    (0..history.height())
        .filter(|&i| {
            countries.get(i) == Some(country)
                && amounts.get(i) == Some(amount)
                && total_orders
                    .get(i)
                    .and_then(|o| o.trim().parse::<f64>().ok())
                    .is_some_and(|o| orders.contains(&o))
                && recency_days(timestamps.get(i), last_orders.get(i))
                    .is_some_and(|d| recency.contains(&d))
        })
        .collect()
}

/// Bad day: one Peru row of 4400 (5-13 orders, 30-60 days) copied 6,000 times, which turns
/// Peru's 5-13 and 30-60 segments from 2640 to 4400.
pub fn one_row_copied(history: &DataFrame) -> DataFrame {
    let row = rows_where(history, "Peru", 4400.0, 5.0..=13.0, 30..=60)[0];
    history
        .vstack(&rows_of(history, vec![row; 6000]))
        .expect("the same columns")
}

/// Bad day: three rows of a new country `PERU` at 999,999, one without total orders (dropped),
/// so that two are kept.
pub fn thin_new_country(history: &DataFrame) -> DataFrame {
    let rows = rows_where(history, "Peru", 2640.0, 14.0..=37.0, 61..=90);
    let mut more = rows_of(history, rows[..3].to_vec());
    more.with_column(Column::new("country_code".into(), vec!["PERU"; 3]))
        .expect("country");
    more.with_column(Column::new("voucher_amount".into(), vec![999_999.0; 3]))
        .expect("amounts");
    more.with_column(Column::new(
        "total_orders".into(),
        vec![Some("20.0"), Some("21.0"), None],
    ))
    .expect("orders");
    history.vstack(&more).expect("the same columns")
}
