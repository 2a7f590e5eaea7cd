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
