//! Reading and cleaning the voucher history with polars, down to a small tally.
//!
//! The history can hold hundreds of millions of rows, so nothing row-sized is ever collected:
//! one streaming polars query parses the columns, applies the drop rules in order, assigns
//! segments and groups by (country, drop rule, segments, amount). The result has at most a few
//! thousand rows, which [`Tally::from_groups`] folds into drop counts and per-segment amount
//! counts. The per-value rules (what is a valid time, count or amount) live in
//! `voucher_shared` so the API applies exactly the same ones.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use voucher_shared::manifest::DropCounts;
use voucher_shared::numbers::{parse_count, whole_amount, whole_count};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};
use voucher_shared::time::{SECONDS_PER_DAY, parse_utc_date};

use crate::EtlError;

/// The history's columns this job reads, with the types each may have.
pub mod columns {
    pub const TIMESTAMP: &str = "timestamp";
    pub const COUNTRY_CODE: &str = "country_code";
    pub const LAST_ORDER_TS: &str = "last_order_ts";
    pub const FIRST_ORDER_TS: &str = "first_order_ts";
    pub const TOTAL_ORDERS: &str = "total_orders";
    pub const VOUCHER_AMOUNT: &str = "voucher_amount";
}
use columns::*;

const REASON: &str = "drop_reason";
const ROWS: &str = "rows";

/// Which countries to build tables for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Countries {
    All,
    Only(Vec<String>),
}

impl Countries {
    /// `all`, or a comma-separated list of country codes (`Peru`, `Peru,Chile`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("all") {
            return Ok(Countries::All);
        }
        let list: Vec<String> = text.split(',').map(|c| c.trim().to_owned()).collect();
        if list.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} is not a country list; use `all` or country codes separated by commas, e.g. `Peru,Chile`"
            ));
        }
        Ok(Countries::Only(list))
    }

    /// The manifest's form: the list asked for, or `["all"]`.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Countries::All => vec!["all".into()],
            Countries::Only(list) => list.clone(),
        }
    }
}

/// What the cleaning found: drop counts and, for kept rows, how often each amount occurs in
/// each segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub dropped: DropCounts,
    pub rows_kept: u64,
    /// (country, segment type, segment label) → amount → kept rows.
    pub amounts: BTreeMap<(String, SegmentType, String), BTreeMap<i64, u64>>,
}

/// Which input types each column accepts, for error messages.
fn accepted(column: &str) -> &'static str {
    match column {
        COUNTRY_CODE => "String",
        VOUCHER_AMOUNT => "a float or integer type",
        TOTAL_ORDERS => "String, float or integer",
        _ => "String, Date or Datetime",
    }
}

fn usable(column: &str, dtype: &DataType) -> bool {
    let time_like = matches!(
        dtype,
        DataType::String | DataType::Date | DataType::Datetime(..) | DataType::Null
    );
    match column {
        COUNTRY_CODE => matches!(dtype, DataType::String),
        VOUCHER_AMOUNT => dtype.is_primitive_numeric() || dtype.is_null(),
        TOTAL_ORDERS => {
            matches!(dtype, DataType::String) || dtype.is_primitive_numeric() || dtype.is_null()
        }
        _ => time_like,
    }
}

/// Scans a history file, checking that every needed column is there with a usable type.
pub fn scan(path: &Path) -> Result<LazyFrame, EtlError> {
    let display = path.display().to_string();
    let polars_err = |source: PolarsError| EtlError::Read {
        file: display.clone(),
        message: source.to_string(),
    };
    let mut lf = LazyFrame::scan_parquet(PlRefPath::new(display.as_str()), Default::default())
        .map_err(polars_err)?;
    let schema = lf.collect_schema().map_err(polars_err)?;
    for column in [
        TIMESTAMP,
        COUNTRY_CODE,
        LAST_ORDER_TS,
        FIRST_ORDER_TS,
        TOTAL_ORDERS,
        VOUCHER_AMOUNT,
    ] {
        let Some(dtype) = schema.get(column) else {
            return Err(EtlError::MissingColumn {
                file: display,
                column,
                found: schema.iter_names().map(|n| n.to_string()).collect(),
            });
        };
        if !usable(column, dtype) {
            return Err(EtlError::ColumnType {
                file: display,
                column,
                found: dtype.to_string(),
                accepted: accepted(column),
            });
        }
    }
    Ok(lf)
}

/// Rows in a history file of every country (from the Parquet metadata).
pub fn count_rows(path: &Path) -> Result<u64, EtlError> {
    let display = path.display().to_string();
    let df = LazyFrame::scan_parquet(PlRefPath::new(display.as_str()), Default::default())
        .and_then(|lf| lf.select([len().alias(ROWS)]).collect())
        .and_then(|df| df.column(ROWS)?.cast(&DataType::UInt64))
        .map_err(|e| EtlError::Read {
            file: display.clone(),
            message: e.to_string(),
        })?;
    Ok(df.u64().ok().and_then(|c| c.get(0)).unwrap_or(0))
}

/// Applies the drop rules and tallies amounts per segment for the selected countries.
pub fn tally(
    history: LazyFrame,
    countries: &Countries,
    segments: &SegmentSet,
    file: &str,
) -> Result<Tally, EtlError> {
    let groups = grouped(history, countries, segments)
        .collect_with_engine(Engine::Streaming)
        .map(|r| r.unwrap_single())
        .map_err(|e| EtlError::Read {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
    Tally::from_groups(&groups, segments).map_err(|e| EtlError::Read {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

/// The streaming query: one row per (country, drop reason, segments, amount) with its count.
fn grouped(history: LazyFrame, countries: &Countries, segments: &SegmentSet) -> LazyFrame {
    let selected = match countries {
        Countries::All => col(COUNTRY_CODE).is_not_null(),
        Countries::Only(list) => list
            .iter()
            .map(|c| col(COUNTRY_CODE).eq(lit(c.as_str())))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false)),
    };
    let amount = col(VOUCHER_AMOUNT);
    let orders = col(TOTAL_ORDERS);
    let ts = col(TIMESTAMP);
    let last = col(LAST_ORDER_TS);
    let first = col(FIRST_ORDER_TS);
    // Rule numbers follow `DropCounts`; 0 means kept.
    let reason = when(amount.clone().is_null())
        .then(lit(1i32))
        .when(orders.clone().is_null())
        .then(lit(2i32))
        .when(ts.clone().is_null())
        .then(lit(3i32))
        .when(last.clone().is_null())
        .then(lit(4i32))
        .when(ts.clone().lt(last.clone()))
        .then(lit(5i32))
        .when(first.gt(last.clone()))
        .then(lit(6i32))
        .otherwise(lit(0i32))
        .alias(REASON);
    let days = ts - last;
    let segment_of = |segment_type: SegmentType, value: Expr| {
        segment_index(segments.get(segment_type).unwrap_or(&[]), value).alias(segment_type.name())
    };

    history
        .filter(selected)
        .select([
            col(COUNTRY_CODE),
            col(VOUCHER_AMOUNT).map(amount_udf, |_, f| {
                Ok(Field::new(f.name().clone(), DataType::Int64))
            }),
            col(TOTAL_ORDERS).map(count_udf, |_, f| {
                Ok(Field::new(f.name().clone(), DataType::Int64))
            }),
            col(TIMESTAMP).map(days_udf, days_field),
            col(LAST_ORDER_TS).map(days_udf, days_field),
            col(FIRST_ORDER_TS).map(days_udf, days_field),
        ])
        .select([
            col(COUNTRY_CODE),
            reason,
            segment_of(SegmentType::Frequent, orders),
            segment_of(SegmentType::Recency, days),
            col(VOUCHER_AMOUNT),
        ])
        .group_by([
            col(COUNTRY_CODE),
            col(REASON),
            col(SegmentType::Frequent.name()),
            col(SegmentType::Recency.name()),
            col(VOUCHER_AMOUNT),
        ])
        .agg([len().alias(ROWS)])
}

/// The index of the segment holding `value`, or null.
fn segment_index(segments: &[Segment], value: Expr) -> Expr {
    segments
        .iter()
        .enumerate()
        .rev()
        .fold(lit(NULL).cast(DataType::Int32), |otherwise, (i, s)| {
            let mut inside = value.clone().gt_eq(lit(s.lower));
            if let Some(upper) = s.upper {
                inside = inside.and(value.clone().lt_eq(lit(upper)));
            }
            when(inside).then(lit(i as i32)).otherwise(otherwise)
        })
}

fn days_field(_: &Schema, f: &Field) -> PolarsResult<Field> {
    Ok(Field::new(f.name().clone(), DataType::Int32))
}

/// A time column as its UTC date in days since 1970-01-01; null where it does not parse.
fn days_udf(c: Column) -> PolarsResult<Column> {
    let name = c.name().clone();
    let days: Int32Chunked = match c.dtype() {
        DataType::String => c
            .str()?
            .iter()
            .map(|s| s.and_then(parse_utc_date))
            .collect(),
        DataType::Date => c.to_physical_repr().i32()?.clone(),
        DataType::Datetime(unit, _) => {
            // Datetimes are stored as UTC instants whatever their zone, so the UTC date is a
            // floor division of the physical value.
            let per_day = match unit {
                TimeUnit::Nanoseconds => 1_000_000_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Milliseconds => 1_000,
            } * SECONDS_PER_DAY;
            c.to_physical_repr()
                .i64()?
                .iter()
                .map(|v| v.and_then(|v| i32::try_from(v.div_euclid(per_day)).ok()))
                .collect()
        }
        DataType::Null => Int32Chunked::full_null(name.clone(), c.len()),
        other => polars_bail!(ComputeError: "column `{name}` has unusable type {other}"),
    };
    Ok(days.with_name(name).into_column())
}

/// `total_orders` as a whole number >= 0; null where it is not one.
fn count_udf(c: Column) -> PolarsResult<Column> {
    let name = c.name().clone();
    let counts: Int64Chunked = match c.dtype() {
        DataType::String => c.str()?.iter().map(|s| s.and_then(parse_count)).collect(),
        _ => c
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.and_then(whole_count))
            .collect(),
    };
    Ok(counts.with_name(name).into_column())
}

/// `voucher_amount` as a whole number > 0; null where it is not one.
fn amount_udf(c: Column) -> PolarsResult<Column> {
    let name = c.name().clone();
    let amounts: Int64Chunked = c
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.and_then(whole_amount))
        .collect();
    Ok(amounts.with_name(name).into_column())
}

impl Tally {
    /// Folds the grouped query result into drop counts and per-segment amount counts.
    fn from_groups(groups: &DataFrame, segments: &SegmentSet) -> PolarsResult<Tally> {
        let country = groups.column(COUNTRY_CODE)?.str()?;
        let reason = groups.column(REASON)?.i32()?;
        let frequent = groups.column(SegmentType::Frequent.name())?.i32()?;
        let recency = groups.column(SegmentType::Recency.name())?.i32()?;
        let amount = groups.column(VOUCHER_AMOUNT)?.i64()?;
        let rows = groups.column(ROWS)?.cast(&DataType::UInt64)?;
        let rows = rows.u64()?;

        let mut tally = Tally::default();
        for i in 0..groups.height() {
            let n = rows.get(i).unwrap_or(0);
            let d = &mut tally.dropped;
            match reason.get(i) {
                Some(1) => d.voucher_amount += n,
                Some(2) => d.total_orders += n,
                Some(3) => d.timestamp += n,
                Some(4) => d.last_order_ts += n,
                Some(5) => d.recency += n,
                Some(6) => d.first_after_last += n,
                _ => {
                    tally.rows_kept += n;
                    let (Some(country), Some(amount)) = (country.get(i), amount.get(i)) else {
                        continue;
                    };
                    for (segment_type, index) in [
                        (SegmentType::Frequent, frequent.get(i)),
                        (SegmentType::Recency, recency.get(i)),
                    ] {
                        let segment = index.and_then(|ix| {
                            segments.get(segment_type)?.get(usize::try_from(ix).ok()?)
                        });
                        if let Some(segment) = segment {
                            *tally
                                .amounts
                                .entry((country.to_owned(), segment_type, segment.label.clone()))
                                .or_default()
                                .entry(amount)
                                .or_default() += n;
                        }
                    }
                }
            }
        }
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> SegmentSet {
        SegmentSet::from_toml(include_str!("../../data/segments.toml")).expect("segments")
    }

    /// Runs the real query on an in-memory frame.
    fn run(df: DataFrame, countries: &Countries) -> Tally {
        let groups = grouped(df.lazy(), countries, &segments())
            .collect()
            .expect("query");
        Tally::from_groups(&groups, &segments()).expect("tally")
    }

    /// A frame of rows that pass every rule unless a test breaks one.
    fn history(n: usize) -> DataFrame {
        df!(
            TIMESTAMP => vec!["2021-05-01 10:00:00.123456"; n],
            COUNTRY_CODE => vec!["Peru"; n],
            LAST_ORDER_TS => vec!["2021-03-01"; n],
            FIRST_ORDER_TS => vec![Some("2020-01-01 00:00:00+00:00"); n],
            TOTAL_ORDERS => vec![Some("14.0"); n],
            VOUCHER_AMOUNT => vec![Some(2640.0); n],
        )
        .expect("frame")
    }

    fn with_strings(df: DataFrame, column: &str, values: Vec<Option<&str>>) -> DataFrame {
        let mut df = df;
        df.with_column(Series::new(column.into(), values).into())
            .expect("column");
        df
    }

    fn with_amounts(df: DataFrame, values: Vec<Option<f64>>) -> DataFrame {
        let mut df = df;
        df.with_column(Series::new(VOUCHER_AMOUNT.into(), values).into())
            .expect("column");
        df
    }

    #[test]
    fn each_rule_counts_its_drops_in_order() {
        let df = history(8);
        let df = with_amounts(
            df,
            vec![
                None,
                Some(f64::NAN),
                Some(-5.0),
                Some(10.5),
                Some(2640.0),
                Some(2640.0),
                Some(2640.0),
                Some(2640.0),
            ],
        );
        // Row 0 breaks rule 1 and rule 2: only rule 1 counts it.
        let df = with_strings(
            df,
            TOTAL_ORDERS,
            vec![
                Some(""),
                Some("1"),
                Some("1"),
                Some("1"),
                Some(" "),
                Some("2.5"),
                Some("-1"),
                Some("x"),
            ],
        );
        let t = run(df, &Countries::Only(vec!["Peru".into()]));
        assert_eq!(t.dropped.voucher_amount, 4);
        assert_eq!(t.dropped.total_orders, 4);
        assert_eq!(t.rows_kept, 0);
    }

    #[test]
    fn time_recency_and_first_order_rules() {
        let df = history(6);
        let df = with_strings(
            df,
            TIMESTAMP,
            vec![
                Some("garbage"),
                Some("2021-02-30 10:00:00"),
                Some("2021-05-01 10:00:00"),
                Some("2021-05-01"),
                Some("2021-05-01"),
                Some("2021-05-01"),
            ],
        );
        let df = with_strings(
            df,
            LAST_ORDER_TS,
            vec![
                Some("2021-03-01"),
                Some("2021-03-01"),
                None,
                Some("2021-05-02"),
                Some("2021-05-01"),
                Some("2021-04-01"),
            ],
        );
        let df = with_strings(
            df,
            FIRST_ORDER_TS,
            vec![None, None, None, None, Some("2021-05-02 00:00:00"), None],
        );
        let t = run(df, &Countries::All);
        assert_eq!(t.dropped.timestamp, 2);
        assert_eq!(t.dropped.last_order_ts, 1);
        // Last order the day after the voucher.
        assert_eq!(t.dropped.recency, 1);
        // First order after the last one; a null first order passes (the last row).
        assert_eq!(t.dropped.first_after_last, 1);
        assert_eq!(t.rows_kept, 1);
    }

    #[test]
    fn an_offset_crossing_midnight_moves_the_date() {
        // 23:30 at UTC-5 is the next day in UTC: 2021-04-01 -> 2021-03-02 is 30 days, in 30-60;
        // read naively it would be 29 days and in no recency segment.
        let df = history(1);
        let df = with_strings(df, TIMESTAMP, vec![Some("2021-03-31 23:30:00-05:00")]);
        let df = with_strings(df, LAST_ORDER_TS, vec![Some("2021-03-02 00:00:00+00:00")]);
        let t = run(df, &Countries::All);
        let key = ("Peru".to_owned(), SegmentType::Recency, "30-60".to_owned());
        assert_eq!(
            t.amounts.get(&key).and_then(|m| m.get(&2640)),
            Some(&1),
            "{t:?}"
        );
    }

    #[test]
    fn segments_are_assigned_at_their_bounds() {
        let orders = ["4.0", "5", "13.0", "14", "37.0", "38.0"];
        let df = with_strings(
            history(6),
            TOTAL_ORDERS,
            orders.iter().map(|s| Some(*s)).collect(),
        );
        let t = run(df, &Countries::All);
        let count = |label: &str| {
            t.amounts
                .get(&("Peru".to_owned(), SegmentType::Frequent, label.to_owned()))
                .map_or(0, |m| m.values().sum::<u64>())
        };
        assert_eq!((count("0-4"), count("5-13"), count("14-37")), (1, 2, 2));
        assert_eq!(
            t.rows_kept, 6,
            "38 orders is in no segment but still a kept row"
        );

        // Days since last order at each recency bound.
        let last = [
            "2021-04-02",
            "2021-04-01",
            "2021-03-02",
            "2021-03-01",
            "2021-01-31",
            "2021-01-30",
            "2021-01-01",
            "2020-12-31",
            "2020-11-02",
            "2020-11-01",
        ];
        let df = with_strings(
            history(10),
            LAST_ORDER_TS,
            last.iter().map(|s| Some(*s)).collect(),
        );
        let df = with_strings(df, TIMESTAMP, vec![Some("2021-05-01"); 10]);
        let t = run(df, &Countries::All);
        let count = |label: &str| {
            t.amounts
                .get(&("Peru".to_owned(), SegmentType::Recency, label.to_owned()))
                .map_or(0, |m| m.values().sum::<u64>())
        };
        // 29, 30 | 60, 61 | 90, 91 | 120, 121 | 180, 181
        assert_eq!(
            ["30-60", "61-90", "91-120", "121-180", "180+"].map(count),
            [2, 2, 2, 2, 1]
        );
    }

    #[test]
    fn other_countries_are_skipped_before_the_rules() {
        let df = with_strings(
            history(3),
            COUNTRY_CODE,
            vec![Some("Peru"), Some("Chile"), None],
        );
        let df = with_amounts(df, vec![Some(2640.0), None, None]);
        let t = run(df.clone(), &Countries::Only(vec!["Peru".into()]));
        assert_eq!((t.rows_kept, t.dropped.total()), (1, 0));
        let t = run(df, &Countries::All);
        assert_eq!(
            (t.rows_kept, t.dropped.voucher_amount),
            (1, 1),
            "null country is skipped"
        );
    }

    #[test]
    fn typed_time_columns_are_read_as_utc_dates() {
        let df = history(2);
        let ts = Series::new(TIMESTAMP.into(), [1_619_913_600_000i64, 1_619_913_600_000])
            .cast(&DataType::Datetime(
                TimeUnit::Milliseconds,
                Some(TimeZone::UTC),
            ))
            .expect("datetime");
        let last = Series::new(LAST_ORDER_TS.into(), [18_687i32, 18_718])
            .cast(&DataType::Date)
            .expect("date");
        let mut df = df;
        df.with_column(ts.into()).expect("ts");
        df.with_column(last.into()).expect("last");
        // 2021-05-02 (1619913600 s) minus 2021-03-01 (day 18687) is 62 days: 61-90; minus
        // 2021-04-01 (day 18718) is 31 days: 30-60.
        let t = run(df, &Countries::All);
        let key = ("Peru".to_owned(), SegmentType::Recency, "61-90".to_owned());
        assert_eq!(t.amounts.get(&key).and_then(|m| m.get(&2640)), Some(&1));
        let key = ("Peru".to_owned(), SegmentType::Recency, "30-60".to_owned());
        assert_eq!(t.amounts.get(&key).and_then(|m| m.get(&2640)), Some(&1));
    }

    #[test]
    fn country_lists_parse() {
        assert_eq!(Countries::parse("all"), Ok(Countries::All));
        assert_eq!(
            Countries::parse("Peru, Chile"),
            Ok(Countries::Only(vec!["Peru".into(), "Chile".into()]))
        );
        assert!(Countries::parse("Peru,,Chile").is_err());
    }
}
