//! The real Peru sample (a fixture in `tests/fixtures`) through the binary, checked against an
//! independent computation: a plain row loop with chrono's parsers and the contract's bounds
//! written out by hand.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use crate::common::*;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use polars::prelude::*;
use voucher_shared::rules::{DropCounts, DropRule};
use voucher_shared::segments::SegmentType;

/// UTC date of a history time string, with chrono only.
fn utc_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.naive_utc().date());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.date());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

const FREQUENT: [(&str, i64, Option<i64>); 3] = [
    ("0-4", 0, Some(4)),
    ("5-13", 5, Some(13)),
    ("14-37", 14, Some(37)),
];
const RECENCY: [(&str, i64, Option<i64>); 5] = [
    ("30-60", 30, Some(60)),
    ("61-90", 61, Some(90)),
    ("91-120", 91, Some(120)),
    ("121-180", 121, Some(180)),
    ("180+", 181, None),
];

fn label(bounds: &[(&'static str, i64, Option<i64>)], v: i64) -> Option<&'static str> {
    bounds
        .iter()
        .find(|(_, lo, hi)| v >= *lo && hi.is_none_or(|hi| v <= hi))
        .map(|(l, _, _)| *l)
}

struct Expected {
    rows_read: u64,
    kept: u64,
    dropped: DropCounts,
    counts: BTreeMap<(SegmentType, &'static str), BTreeMap<i64, u64>>,
}

/// The sample's columns, each in the one physical type the real file has.
struct Columns {
    ts: StringChunked,
    country: StringChunked,
    last: StringChunked,
    first: Int64Chunked,
    orders: StringChunked,
    amount: Float64Chunked,
}

impl Columns {
    fn read(df: &DataFrame) -> Columns {
        let text = |name: &str| df.column(name).expect(name).str().expect("str").clone();
        let first = df.column("first_order_ts").expect("first");
        assert!(matches!(
            first.dtype(),
            DataType::Datetime(TimeUnit::Nanoseconds, _)
        ));
        Columns {
            ts: text("timestamp"),
            country: text("country_code"),
            last: text("last_order_ts"),
            first: first.to_physical_repr().i64().expect("i64").clone(),
            orders: text("total_orders"),
            amount: df
                .column("voucher_amount")
                .expect("amount")
                .f64()
                .expect("f64")
                .clone(),
        }
    }

    /// Row `i` as (amount, orders, days since last order), or the rule that drops it.
    fn classify(&self, i: usize) -> Result<(i64, i64, i64), DropRule> {
        let a = self
            .amount
            .get(i)
            .filter(|a| a.is_finite() && *a > 0.0 && a.fract() == 0.0)
            .ok_or(DropRule::VoucherAmount)?;
        let o = self
            .orders
            .get(i)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|o| o.is_finite() && *o >= 0.0 && o.fract() == 0.0)
            .ok_or(DropRule::TotalOrders)?;
        let t = self
            .ts
            .get(i)
            .and_then(utc_date)
            .ok_or(DropRule::Timestamp)?;
        let l = self
            .last
            .get(i)
            .and_then(utc_date)
            .ok_or(DropRule::LastOrderTs)?;
        if t < l {
            return Err(DropRule::Recency);
        }
        let f = self
            .first
            .get(i)
            .map(|ns| DateTime::from_timestamp_nanos(ns).date_naive());
        if f.is_some_and(|f| f > l) {
            return Err(DropRule::FirstAfterLast);
        }
        Ok((a as i64, o as i64, (t - l).num_days()))
    }
}

fn expected(path: &PathBuf) -> Expected {
    let df = ParquetReader::new(File::open(path).expect("open"))
        .finish()
        .expect("read sample");
    let cols = Columns::read(&df);
    let mut e = Expected {
        rows_read: df.height() as u64,
        kept: 0,
        dropped: DropCounts::default(),
        counts: BTreeMap::new(),
    };
    for i in 0..df.height() {
        if cols.country.get(i) != Some("Peru") {
            continue;
        }
        let (amount, orders, days) = match cols.classify(i) {
            Ok(row) => row,
            Err(rule) => {
                e.dropped[rule] += 1;
                continue;
            }
        };
        e.kept += 1;
        for (segment_type, label) in [
            (SegmentType::Frequent, label(&FREQUENT, orders)),
            (SegmentType::Recency, label(&RECENCY, days)),
        ] {
            if let Some(label) = label {
                *e.counts
                    .entry((segment_type, label))
                    .or_default()
                    .entry(amount)
                    .or_default() += 1;
            }
        }
    }
    e
}

#[test]
fn the_real_sample_gives_the_independently_computed_table() {
    let path = real_sample();
    let want = expected(&path);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_etl(path.to_str().expect("utf-8"), dir.path(), &[]);
    assert_success(&out);
    let (_, table, manifest) = read_live(dir.path());

    assert_eq!(manifest.rows_read, want.rows_read);
    assert_eq!(manifest.rows_read, 10_655);
    assert_eq!(manifest.dropped, want.dropped);
    assert_eq!(manifest.rows_kept, want.kept);
    assert_eq!(table.rows().len(), want.counts.len());
    for ((segment_type, label), counts) in &want.counts {
        let (&amount, &n) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .expect("non-empty");
        let row = table
            .rows()
            .iter()
            .find(|r| r.segment_name == *segment_type && r.segment == *label)
            .unwrap_or_else(|| panic!("no row for {segment_type} {label}"));
        assert_eq!(
            (row.voucher_amount, row.occurrences as u64),
            (amount, n),
            "{segment_type} {label}: {counts:?}"
        );
        assert_eq!(row.segment_rows as u64, counts.values().sum::<u64>());
    }
}

/// The sample with five rows of no country code appended: a null, an empty, a blank, a padded
/// and a 1 MiB `country_code`, each otherwise a copy of a sample row.
fn with_rows_of_no_country(path: &std::path::Path) -> PathBuf {
    let sample = read_parquet(&real_sample());
    let mut bad = sample.slice(0, 5);
    let huge = "Peru".repeat(1 << 18);
    let countries = [
        None,
        Some(""),
        Some(" "),
        Some("Peru "),
        Some(huge.as_str()),
    ];
    bad.with_column(Series::new("country_code".into(), countries).into_column())
        .expect("countries");
    let mut mixed = sample.vstack(&bad).expect("same columns");
    ParquetWriter::new(File::create(path).expect("create"))
        .finish(&mut mixed)
        .expect("write");
    path.to_owned()
}

#[test]
fn rows_of_no_country_are_dropped_and_counted_so_the_drops_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mixed = with_rows_of_no_country(&dir.path().join("mixed.parquet"));
    let mut manifests = Vec::new();
    for (name, input) in [("sample", real_sample()), ("mixed", mixed)] {
        let tables = dir.path().join(name);
        // Before the country rule, the empty country failed the whole run ("row 0: empty
        // country_code") and the 1 MiB one would have been published.
        assert_success(&run_etl(
            input.to_str().expect("utf-8"),
            &tables,
            &["--countries", "all"],
        ));
        let (_, table, manifest) = read_live(&tables);
        assert!(table.rows().iter().all(|r| r.country_code == "Peru"));
        assert_eq!(
            manifest.rows_read - manifest.rows_kept,
            manifest.dropped.total(),
            "{name}: every row not kept is counted under one rule"
        );
        manifests.push((table, manifest));
    }
    let [(table, sample), (mixed_table, mixed)] = <[_; 2]>::try_from(manifests).expect("two");
    assert_eq!(mixed_table.rows(), table.rows());
    assert_eq!(mixed.rows_read, sample.rows_read + 5);
    assert_eq!(mixed.rows_kept, sample.rows_kept);
    let mut want = sample.dropped;
    want[DropRule::CountryCode] += 5;
    assert_eq!(mixed.dropped, want);
    // The manifest is small: the 1 MiB value is counted, not copied.
    let manifest_bytes = serde_json::to_vec(&mixed).expect("json").len();
    assert!(manifest_bytes < 64 * 1024, "{manifest_bytes} bytes");
}
