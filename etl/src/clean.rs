//! Reading and cleaning the voucher history with polars, down to a small tally.
//!
//! The history can hold hundreds of millions of rows, so nothing row-sized is ever collected:
//! one streaming polars query parses the columns, applies the drop rules in order, assigns
//! segments and groups by (country, drop rule, segments, amount). The result has at most a few
//! thousand rows, which [`Tally::from_groups`] folds into drop counts and per-segment amount
//! counts. The per-value rules (what is a valid time, count or amount) live in
//! `voucher_shared` so the API applies exactly the same ones.

use std::collections::BTreeMap;

use polars::prelude::*;
use voucher_shared::numbers::{parse_count, whole_amount, whole_count};
use voucher_shared::rules::{DropCounts, DropRule};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};
use voucher_shared::time::{SECONDS_PER_DAY, parse_utc_date};

use crate::EtlError;
use crate::history::{
    COLUMNS, COUNTRY_CODE, FIRST_ORDER_TS, LAST_ORDER_TS, TIMESTAMP, TOTAL_ORDERS, VOUCHER_AMOUNT,
};
use crate::source::Input;

/// The query's column holding a row's drop rule: 0 when kept, else the rule's index + 1.
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

/// One segment of one country and type: (country, segment type, index of the segment in
/// its type's [`SegmentSet`] list, which is ordered by lower bound).
pub type SegmentKey = (String, SegmentType, usize);

/// The kept rows of one segment: the segment with its bounds, and rows per amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTally {
    pub segment: Segment,
    pub amounts: BTreeMap<i64, u64>,
}

/// What the cleaning found: drop counts and, for kept rows, how often each amount occurs in
/// each segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub dropped: DropCounts,
    pub rows_kept: u64,
    pub segments: BTreeMap<SegmentKey, SegmentTally>,
}

/// Scans a history file, checking that every needed column is there with a usable type.
pub fn scan(input: &Input) -> Result<LazyFrame, EtlError> {
    let read_err = |source: PolarsError| EtlError::Read {
        file: input.name.clone(),
        source,
    };
    let mut lf =
        LazyFrame::scan_parquet(input.polars_path(), Default::default()).map_err(read_err)?;
    let schema = lf.collect_schema().map_err(read_err)?;
    for column in COLUMNS {
        let Some(dtype) = schema.get(column.name) else {
            return Err(EtlError::MissingColumn {
                file: input.name.clone(),
                column: column.name,
                found: schema.iter_names().map(|n| n.to_string()).collect(),
            });
        };
        if !column.accepts.allows(dtype) {
            return Err(EtlError::ColumnType {
                file: input.name.clone(),
                column: column.name,
                found: dtype.to_string(),
                accepted: column.accepts,
            });
        }
    }
    Ok(lf)
}

/// The rows of each row group of a history file, from its Parquet footer.
pub fn row_groups(input: &Input) -> Result<Vec<u64>, EtlError> {
    let file = std::fs::File::open(input.path()).map_err(|source| EtlError::Open {
        file: input.name.clone(),
        source,
    })?;
    let mut reader = ParquetReader::new(file);
    let metadata = reader.get_metadata().map_err(|source| EtlError::Read {
        file: input.name.clone(),
        source,
    })?;
    Ok(metadata
        .row_groups
        .iter()
        .map(|rg| rg.num_rows() as u64)
        .collect())
}

/// Rows decoded at a time by default: a typical production row group (Spark and pyarrow
/// write 1M-row groups), ~100 MiB of this history decoded.
pub const WINDOW_ROWS: u64 = 1024 * 1024;

/// The row ranges (offset, length) a file is read in, one query each, so that memory follows
/// one window rather than the writer's row-group size: whole row groups, consecutive small ones
/// merged up to `window` rows, and a row group larger than `window` in slices of half a window.
/// Polars decodes only the rows of a slice, but a slice of a row group at once rather than in
/// morsels; measured, a slice took about twice the memory of a whole group of its size
/// (bench/RESULTS.md).
pub fn windows(row_groups: &[u64], window: u64) -> Vec<(u64, u64)> {
    let window = window.max(1);
    let slice = (window / 2).max(1);
    let mut ranges = Vec::new();
    let mut offset = 0;
    let mut pending: Option<(u64, u64)> = None;
    for &rows in row_groups {
        if rows > window {
            ranges.extend(pending.take());
            let mut start = 0;
            while start < rows {
                let len = slice.min(rows - start);
                ranges.push((offset + start, len));
                start += len;
            }
        } else {
            pending = match pending {
                Some((first, len)) if len + rows <= window => Some((first, len + rows)),
                full => {
                    ranges.extend(full);
                    Some((offset, rows))
                }
            };
        }
        offset += rows;
    }
    ranges.extend(pending);
    ranges.retain(|&(_, len)| len > 0);
    ranges
}

/// Applies the drop rules and tallies amounts per segment for the selected countries, one
/// query per window (see [`windows`]).
pub fn tally(
    history: LazyFrame,
    windows: &[(u64, u64)],
    countries: &Countries,
    segments: &SegmentSet,
    input: &Input,
) -> Result<Tally, EtlError> {
    let mut tally = Tally::default();
    for &(offset, len) in windows {
        let window = history.clone().slice(offset as i64, len as IdxSize);
        let part = grouped(window, countries, segments)
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .and_then(|groups| Tally::from_groups(&groups, segments))
            .map_err(|source| EtlError::Read {
                file: input.name.clone(),
                source,
            })?;
        tally.merge(part);
    }
    Ok(tally)
}

/// The condition under which `rule` drops a row, on the parsed columns. Conditions are
/// checked in rule order, so each may assume the earlier ones passed.
fn drops(rule: DropRule) -> Expr {
    let last = col(LAST_ORDER_TS.name);
    match rule {
        DropRule::VoucherAmount => col(VOUCHER_AMOUNT.name).is_null(),
        DropRule::TotalOrders => col(TOTAL_ORDERS.name).is_null(),
        DropRule::Timestamp => col(TIMESTAMP.name).is_null(),
        DropRule::LastOrderTs => last.is_null(),
        DropRule::Recency => col(TIMESTAMP.name).lt(last),
        // A null first order compares as null, which `when` treats as false: the row passes.
        DropRule::FirstAfterLast => col(FIRST_ORDER_TS.name).gt(last),
    }
}

/// The code of the first rule a row fails (its index + 1), or 0 when it passes them all.
fn reason() -> Expr {
    DropRule::ALL
        .into_iter()
        .rev()
        .fold(lit(0i32), |otherwise, rule| {
            when(drops(rule))
                .then(lit(rule.index() as i32 + 1))
                .otherwise(otherwise)
        })
        .alias(REASON)
}

/// The streaming query: one row per (country, drop reason, segments, amount) with its count.
fn grouped(history: LazyFrame, countries: &Countries, segments: &SegmentSet) -> LazyFrame {
    let country = || col(COUNTRY_CODE.name);
    let selected = match countries {
        Countries::All => country().is_not_null(),
        Countries::Only(list) => list
            .iter()
            .map(|c| country().eq(lit(c.as_str())))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false)),
    };
    let days = col(TIMESTAMP.name) - col(LAST_ORDER_TS.name);
    let segment_of = |segment_type: SegmentType, value: Expr| {
        segment_index(segments.get(segment_type).unwrap_or(&[]), value).alias(segment_type.name())
    };
    let int64 = |_: &Schema, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64));

    history
        .filter(selected)
        .select([
            country(),
            col(VOUCHER_AMOUNT.name).map(amount_udf, int64),
            col(TOTAL_ORDERS.name).map(count_udf, int64),
            col(TIMESTAMP.name).map(days_udf, days_field),
            col(LAST_ORDER_TS.name).map(days_udf, days_field),
            col(FIRST_ORDER_TS.name).map(days_udf, days_field),
        ])
        .select([
            country(),
            reason(),
            segment_of(SegmentType::Frequent, col(TOTAL_ORDERS.name)),
            segment_of(SegmentType::Recency, days),
            col(VOUCHER_AMOUNT.name),
        ])
        .group_by([
            country(),
            col(REASON),
            col(SegmentType::Frequent.name()),
            col(SegmentType::Recency.name()),
            col(VOUCHER_AMOUNT.name),
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
    /// Adds `other`'s counts to these: tallies of parts of the history add up to the tally of
    /// the whole, whatever the split.
    pub fn merge(&mut self, other: Tally) {
        self.dropped += other.dropped;
        self.rows_kept += other.rows_kept;
        for (key, part) in other.segments {
            match self.segments.entry(key) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(part);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    for (amount, n) in part.amounts {
                        *slot.get_mut().amounts.entry(amount).or_default() += n;
                    }
                }
            }
        }
    }

    /// Folds the grouped query result into drop counts and per-segment amount counts.
    fn from_groups(groups: &DataFrame, segments: &SegmentSet) -> PolarsResult<Tally> {
        let country = groups.column(COUNTRY_CODE.name)?.str()?;
        let reason = groups.column(REASON)?.i32()?;
        let frequent = groups.column(SegmentType::Frequent.name())?.i32()?;
        let recency = groups.column(SegmentType::Recency.name())?.i32()?;
        let amount = groups.column(VOUCHER_AMOUNT.name)?.i64()?;
        let rows = groups.column(ROWS)?.cast(&DataType::UInt64)?;
        let rows = rows.u64()?;

        let mut tally = Tally::default();
        for i in 0..groups.height() {
            let n = rows.get(i).unwrap_or(0);
            let rule = reason
                .get(i)
                .and_then(|code| usize::try_from(code).ok()?.checked_sub(1))
                .and_then(|index| DropRule::ALL.get(index));
            if let Some(rule) = rule {
                tally.dropped[*rule] += n;
                continue;
            }
            tally.rows_kept += n;
            let (Some(country), Some(amount)) = (country.get(i), amount.get(i)) else {
                continue;
            };
            for (segment_type, index) in [
                (SegmentType::Frequent, frequent.get(i)),
                (SegmentType::Recency, recency.get(i)),
            ] {
                let Some(index) = index.and_then(|ix| usize::try_from(ix).ok()) else {
                    continue;
                };
                tally.add(country, segment_type, index, segments, amount, n);
            }
        }
        Ok(tally)
    }

    /// Counts `n` kept rows of `amount` in segment `index` of `segment_type`.
    fn add(
        &mut self,
        country: &str,
        segment_type: SegmentType,
        index: usize,
        segments: &SegmentSet,
        amount: i64,
        n: u64,
    ) {
        let Some(segment) = segments.get(segment_type).and_then(|s| s.get(index)) else {
            return;
        };
        let entry = self
            .segments
            .entry((country.to_owned(), segment_type, index))
            .or_insert_with(|| SegmentTally {
                segment: segment.clone(),
                amounts: BTreeMap::new(),
            });
        *entry.amounts.entry(amount).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_small_row_groups_whole_and_slice_big_ones() {
        const M: u64 = 1 << 20;
        // Spark's 1M-row groups: one window each, never a slice.
        assert_eq!(windows(&[M, M, 5], M), vec![(0, M), (M, M), (2 * M, 5)]);
        // Small groups are merged up to a window.
        assert_eq!(windows(&[M / 4; 6], M), vec![(0, M), (M, M / 2)],);
        // A group over a window is read in half-window slices; neighbours stay whole.
        assert_eq!(
            windows(&[10, 2 * M + 1, 10], M),
            vec![
                (0, 10),
                (10, M / 2),
                (10 + M / 2, M / 2),
                (10 + M, M / 2),
                (10 + 3 * M / 2, M / 2),
                (10 + 2 * M, 1),
                (11 + 2 * M, 10),
            ],
        );
        // Every row is read exactly once, whatever the window.
        for window in [1, 2, 3, 1000, M] {
            let groups = [7, 0, 1500, 3, 3, 2 * M];
            let ranges = windows(&groups, window);
            let mut next = 0;
            for &(offset, len) in &ranges {
                assert_eq!(offset, next, "window {window}");
                assert!(len > 0 && len <= window.max(1), "window {window}");
                next += len;
            }
            assert_eq!(next, groups.iter().sum::<u64>());
        }
        assert!(windows(&[], M).is_empty());
    }

    fn segments() -> SegmentSet {
        SegmentSet::builtin()
    }

    /// Kept rows per amount in a Peru segment, found by its label.
    fn amounts<'t>(
        t: &'t Tally,
        segment_type: SegmentType,
        label: &str,
    ) -> Option<&'t BTreeMap<i64, u64>> {
        t.segments
            .iter()
            .find(|((country, st, _), s)| {
                country == "Peru" && *st == segment_type && s.segment.label == label
            })
            .map(|(_, s)| &s.amounts)
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
            TIMESTAMP.name => vec!["2021-05-01 10:00:00.123456"; n],
            COUNTRY_CODE.name => vec!["Peru"; n],
            LAST_ORDER_TS.name => vec!["2021-03-01"; n],
            FIRST_ORDER_TS.name => vec![Some("2020-01-01 00:00:00+00:00"); n],
            TOTAL_ORDERS.name => vec![Some("14.0"); n],
            VOUCHER_AMOUNT.name => vec![Some(2640.0); n],
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
        df.with_column(Series::new(VOUCHER_AMOUNT.name.into(), values).into())
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
            TOTAL_ORDERS.name,
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
        assert_eq!(t.dropped[DropRule::VoucherAmount], 4);
        assert_eq!(t.dropped[DropRule::TotalOrders], 4);
        assert_eq!(t.rows_kept, 0);
    }

    #[test]
    fn time_recency_and_first_order_rules() {
        let df = history(6);
        let df = with_strings(
            df,
            TIMESTAMP.name,
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
            LAST_ORDER_TS.name,
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
            FIRST_ORDER_TS.name,
            vec![None, None, None, None, Some("2021-05-02 00:00:00"), None],
        );
        let t = run(df, &Countries::All);
        assert_eq!(t.dropped[DropRule::Timestamp], 2);
        assert_eq!(t.dropped[DropRule::LastOrderTs], 1);
        // Last order the day after the voucher.
        assert_eq!(t.dropped[DropRule::Recency], 1);
        // First order after the last one; a null first order passes (the last row).
        assert_eq!(t.dropped[DropRule::FirstAfterLast], 1);
        assert_eq!(t.rows_kept, 1);
    }

    #[test]
    fn an_offset_crossing_midnight_moves_the_date() {
        // 23:30 at UTC-5 is the next day in UTC: 2021-04-01 -> 2021-03-02 is 30 days, in 30-60;
        // read naively it would be 29 days and in no recency segment.
        let df = history(1);
        let df = with_strings(df, TIMESTAMP.name, vec![Some("2021-03-31 23:30:00-05:00")]);
        let df = with_strings(
            df,
            LAST_ORDER_TS.name,
            vec![Some("2021-03-02 00:00:00+00:00")],
        );
        let t = run(df, &Countries::All);
        assert_eq!(
            amounts(&t, SegmentType::Recency, "30-60").and_then(|m| m.get(&2640)),
            Some(&1),
            "{t:?}"
        );
    }

    #[test]
    fn segments_are_assigned_at_their_bounds() {
        let orders = ["4.0", "5", "13.0", "14", "37.0", "38.0"];
        let df = with_strings(
            history(6),
            TOTAL_ORDERS.name,
            orders.iter().map(|s| Some(*s)).collect(),
        );
        let t = run(df, &Countries::All);
        let count = |label: &str| {
            amounts(&t, SegmentType::Frequent, label).map_or(0, |m| m.values().sum::<u64>())
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
            LAST_ORDER_TS.name,
            last.iter().map(|s| Some(*s)).collect(),
        );
        let df = with_strings(df, TIMESTAMP.name, vec![Some("2021-05-01"); 10]);
        let t = run(df, &Countries::All);
        let count = |label: &str| {
            amounts(&t, SegmentType::Recency, label).map_or(0, |m| m.values().sum::<u64>())
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
            COUNTRY_CODE.name,
            vec![Some("Peru"), Some("Chile"), None],
        );
        let df = with_amounts(df, vec![Some(2640.0), None, None]);
        let t = run(df.clone(), &Countries::Only(vec!["Peru".into()]));
        assert_eq!((t.rows_kept, t.dropped.total()), (1, 0));
        let t = run(df, &Countries::All);
        assert_eq!(
            (t.rows_kept, t.dropped[DropRule::VoucherAmount]),
            (1, 1),
            "null country is skipped"
        );
    }

    #[test]
    fn typed_time_columns_are_read_as_utc_dates() {
        let df = history(2);
        let ts = Series::new(
            TIMESTAMP.name.into(),
            [1_619_913_600_000i64, 1_619_913_600_000],
        )
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
        .expect("datetime");
        let last = Series::new(LAST_ORDER_TS.name.into(), [18_687i32, 18_718])
            .cast(&DataType::Date)
            .expect("date");
        let mut df = df;
        df.with_column(ts.into()).expect("ts");
        df.with_column(last.into()).expect("last");
        // 2021-05-02 (1619913600 s) minus 2021-03-01 (day 18687) is 62 days: 61-90; minus
        // 2021-04-01 (day 18718) is 31 days: 30-60.
        let t = run(df, &Countries::All);
        for label in ["61-90", "30-60"] {
            let n = amounts(&t, SegmentType::Recency, label).and_then(|m| m.get(&2640));
            assert_eq!(n, Some(&1), "{label}");
        }
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
