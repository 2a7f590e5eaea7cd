//! Reading and cleaning the voucher history with polars, down to a small tally.
//!
//! The history can hold hundreds of millions of rows, so nothing row-sized is ever collected.
//! A file is read in windows of rows, a few at once; for each, a streaming polars query skips
//! the countries not asked for and parses the columns (in parallel, morsel by morsel), and
//! [`Counter`] folds the parsed morsels it hands over into drop counts and, per segment, rows
//! per amount. The per-value rules (what is a valid time, count or amount) live in
//! `voucher_shared` so the API applies exactly the same ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use polars::io::parquet::metadata::FileMetadataRef;
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray, View};
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::types::NativeType;
use voucher_shared::country::{COUNTRY_CODE_RULE, check_country_code, is_country_code};
use voucher_shared::numbers::{parse_count, whole_amount, whole_count};
use voucher_shared::rules::{DropCounts, DropRule};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};
use voucher_shared::time::{SECONDS_PER_DAY, parse_utc_date};

use crate::EtlError;
use crate::duplicates::{self, Duplicates};
use crate::history::{
    COLUMNS, COUNTRY_CODE, FIRST_ORDER_TS, LAST_ORDER_TS, TIMESTAMP, TOTAL_ORDERS, VOUCHER_AMOUNT,
    dictionary_text,
};
use crate::memory::{self, LimitSource, MemoryLimit, Planned, WindowPlan};
use crate::shown::shown;
use crate::source::Input;

/// Which countries to build tables for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Countries {
    All,
    Only(Vec<String>),
}

impl Countries {
    /// `all`, or a comma-separated list of country codes (`Peru`, `Peru,Chile`); spaces
    /// around a comma are ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("all") {
            return Ok(Countries::All);
        }
        let list: Vec<String> = text.split(',').map(|c| c.trim().to_owned()).collect();
        if list.iter().any(String::is_empty) {
            return Err(format!(
                "{} is not a country list; use `all` or country codes separated by commas, e.g. `Peru,Chile`",
                shown(text)
            ));
        }
        for country in &list {
            if let Err(why) = check_country_code(country) {
                return Err(format!(
                    "{} is not a country code ({why}); a country code is {COUNTRY_CODE_RULE}",
                    shown(country)
                ));
            }
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

/// The most rows a count may hold: the table stores counts as signed 64-bit integers.
pub const MAX_ROWS: u64 = i64::MAX as u64;

/// Counts that do not add up within [`MAX_ROWS`]: refused rather than wrapped or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the counts add up to more than {MAX_ROWS} rows, the most a count can hold")]
pub struct CountOverflow;

/// `a + b`, if it is at most [`MAX_ROWS`].
pub fn add_rows(a: u64, b: u64) -> Result<u64, CountOverflow> {
    a.checked_add(b)
        .filter(|sum| *sum <= MAX_ROWS)
        .ok_or(CountOverflow)
}

/// What the cleaning found: drop counts and, for kept rows, how often each amount occurs in
/// each segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub dropped: DropCounts,
    pub rows_kept: u64,
    /// `rows_kept` per country.
    pub rows_kept_by_country: BTreeMap<String, u64>,
    pub segments: BTreeMap<SegmentKey, SegmentTally>,
    /// The rows counted (kept or dropped) by the hash of their columns, for exact duplicates.
    pub duplicates: Duplicates,
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
    // Dictionary-encoded strings are read as the strings: the cleaning reads text.
    let dictionaries: Vec<Expr> = COLUMNS
        .iter()
        .filter(|c| schema.get(c.name).is_some_and(dictionary_text))
        .map(|c| col(c.name).cast(DataType::String))
        .collect();
    if !dictionaries.is_empty() {
        lf = lf.with_columns(dictionaries);
    }
    Ok(lf)
}

/// The footer of a history file: its metadata, and its columns' types.
fn footer(input: &Input) -> Result<(FileMetadataRef, Schema), EtlError> {
    let read_err = |source| EtlError::Read {
        file: input.name.clone(),
        source,
    };
    let file = std::fs::File::open(input.path()).map_err(|source| EtlError::Open {
        file: input.name.clone(),
        source,
    })?;
    let mut reader = ParquetReader::new(file);
    let metadata = reader.get_metadata().map_err(read_err)?.clone();
    let schema = Schema::from_arrow_schema(reader.schema().map_err(read_err)?.as_ref());
    Ok((metadata, schema))
}

/// The rows of each row group of a history file, from its Parquet footer.
pub fn row_groups(input: &Input) -> Result<Vec<u64>, EtlError> {
    let (metadata, _) = footer(input)?;
    Ok(metadata
        .row_groups
        .iter()
        .map(|rg| rg.num_rows() as u64)
        .collect())
}

/// How a history file is read: its windows (see [`windows`]) and how many at once, planned
/// under the memory limit from the sizes its footer gives for the columns a run reads.
pub fn plan_reading(
    input: &Input,
    limit: (MemoryLimit, LimitSource),
    wanted: WindowPlan,
) -> Result<(Vec<(u64, u64)>, Planned), EtlError> {
    let (metadata, schema) = footer(input)?;
    let rows: Vec<u64> = metadata
        .row_groups
        .iter()
        .map(|rg| rg.num_rows() as u64)
        .collect();
    let names = COLUMNS.map(|c| c.name);
    let decoded = memory::decoded_bytes(&metadata, &schema, &names);
    // A window holds whole row groups up to its size, or a slice of a larger one, which takes
    // about twice a whole group's share (see [`windows`]): either way, about `window` rows (or
    // the whole file, if smaller) at the file's densest.
    let per_row = rows
        .iter()
        .zip(&decoded)
        .filter(|(rows, _)| **rows > 0)
        .map(|(rows, bytes)| bytes.div_ceil(*rows))
        .max()
        .unwrap_or(0);
    let total: u64 = rows.iter().sum();
    let cost = |window: u64| per_row * window.min(total) * WINDOW_BYTES_PER_DECODED_BYTE;
    let planned = memory::plan(limit, wanted, Some(&cost));
    Ok((windows(&rows, planned.plan.window_rows), planned))
}

/// Resident bytes of a window in flight per decoded byte the footer gives for its columns:
/// the decoded columns, and the parsed ones and polars' buffers beside them. An estimate,
/// not yet measured: `make bench-etl` (pyarrow files with 1M-row groups, every country) is
/// what should confirm or change it.
const WINDOW_BYTES_PER_DECODED_BYTE: u64 = 1;

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

/// Windows read at once by default: while one window's rows are parsed and counted, the next
/// is decoded, which keeps two cores busy for about twice one window's memory.
pub const WINDOWS_IN_FLIGHT: u16 = 2;

/// Applies the drop rules and tallies amounts per segment for the selected countries, one
/// query per window (see [`windows`]), up to `in_flight` windows at once.
pub fn tally(
    history: LazyFrame,
    windows: &[(u64, u64)],
    in_flight: u16,
    countries: &Countries,
    segments: &SegmentSet,
    input: &Input,
) -> Result<Tally, EtlError> {
    let read_err = |source| EtlError::Read {
        file: input.name.clone(),
        source,
    };
    let overflow = |source| EtlError::Overflow {
        input: input.name.clone(),
        source,
    };
    let next = AtomicUsize::new(0);
    // Each worker takes the next window until none is left; tallies add up in any order.
    let worker = || -> Result<Tally, EtlError> {
        let mut tally = Tally::default();
        while let Some(&(offset, len)) = windows.get(next.fetch_add(1, Ordering::Relaxed)) {
            let window = history.clone().slice(offset as i64, len as IdxSize);
            let counted = count_window(window, countries, segments).map_err(read_err);
            if let Err(e) = counted.and_then(|part| tally.merge(part).map_err(overflow)) {
                // The run fails anyway: the other workers need not read on.
                next.store(windows.len(), Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(tally)
    };
    let parts: Vec<Result<Tally, EtlError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..usize::from(in_flight).clamp(1, windows.len().max(1)))
            .map(|_| scope.spawn(worker))
            .collect();
        let mut parts = vec![worker()];
        parts.extend(workers.into_iter().map(|w| {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        parts
    });
    let mut tally = Tally::default();
    for part in parts {
        tally.merge(part?).map_err(overflow)?;
    }
    Ok(tally)
}

/// Counts one window's rows.
pub(crate) fn count_window(
    window: LazyFrame,
    countries: &Countries,
    segments: &SegmentSet,
) -> PolarsResult<Tally> {
    match countries {
        Countries::All => count_by_column(window, segments),
        Countries::Only(_) => count_streaming(window, countries, segments),
    }
}

/// Every country's rows, parsed a column at a time: each time column is decoded and parsed to
/// days in a query of its own, so that a window holds the text of one column at once rather
/// than of all six. With every country (nothing filtered before decoding), the text of two
/// 1M-row windows was most of the run's memory (bench/RESULTS.md).
fn count_by_column(window: LazyFrame, segments: &SegmentSet) -> PolarsResult<Tally> {
    let int64 = |_: &Schema, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64));
    let parts = [
        vec![
            col(COUNTRY_CODE.name),
            col(VOUCHER_AMOUNT.name).map(amount_udf, int64),
            col(TOTAL_ORDERS.name).map(count_udf, int64),
            row_hash(0),
        ],
        vec![col(TIMESTAMP.name).map(days_udf, days_field), row_hash(1)],
        vec![
            col(LAST_ORDER_TS.name).map(days_udf, days_field),
            row_hash(2),
        ],
        vec![
            col(FIRST_ORDER_TS.name).map(days_udf, days_field),
            row_hash(3),
        ],
    ];
    let mut columns = Vec::with_capacity(7);
    // Each part's hashes are folded in as it comes, rather than kept a column per part.
    let mut hashes: Vec<u64> = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let mut frame = window.clone().select(part).collect()?;
        let part_hashes = frame.drop_in_place(&row_hash_name(i))?;
        let part_hashes = part_hashes.u64()?;
        if i == 0 {
            hashes = part_hashes.into_no_null_iter().collect();
        } else {
            for (h, next) in hashes.iter_mut().zip(part_hashes.into_no_null_iter()) {
                *h = duplicates::combine(*h, next);
            }
        }
        columns.extend(frame.into_columns());
    }
    columns.push(UInt64Chunked::from_vec(row_hash_name(0).into(), hashes).into_column());
    let mut counter = Counter::new(segments);
    counter.add(&DataFrame::new_infer_height(columns)?)?;
    Ok(counter.into_tally())
}

/// The selected countries' rows, counted as the morsels of one query arrive: rows of other
/// countries are skipped before their other columns are decoded.
fn count_streaming(
    window: LazyFrame,
    countries: &Countries,
    segments: &SegmentSet,
) -> PolarsResult<Tally> {
    let counter = Arc::new(Mutex::new(Counter::new(segments)));
    let sink = Arc::clone(&counter);
    parsed(window, countries)
        .sink_batches(
            PlanCallback::new(move |morsel: DataFrame| {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .add(&morsel)?;
                // Never stop early: every row counts.
                Ok(false)
            }),
            false,
            None,
        )?
        .collect_with_engine(Engine::Streaming)?;
    let counter = std::mem::replace(
        &mut *counter.lock().unwrap_or_else(PoisonError::into_inner),
        Counter::new(segments),
    );
    Ok(counter.into_tally())
}

/// The selected countries' rows with every column parsed: `voucher_amount` and `total_orders`
/// as whole numbers, the times as UTC dates (days since 1970-01-01); null where a value is not
/// valid. With `all`, every row, null countries too: the country rule counts them.
fn parsed(history: LazyFrame, countries: &Countries) -> LazyFrame {
    let country = || col(COUNTRY_CODE.name);
    let history = match countries {
        Countries::All => history,
        Countries::Only(list) => history.filter(
            list.iter()
                .map(|c| country().eq(lit(c.as_str())))
                .reduce(|a, b| a.or(b))
                .unwrap_or(lit(false)),
        ),
    };
    let int64 = |_: &Schema, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64));
    history.select([
        country(),
        col(VOUCHER_AMOUNT.name).map(amount_udf, int64),
        col(TOTAL_ORDERS.name).map(count_udf, int64),
        col(TIMESTAMP.name).map(days_udf, days_field),
        col(LAST_ORDER_TS.name).map(days_udf, days_field),
        col(FIRST_ORDER_TS.name).map(days_udf, days_field),
        row_hash(0),
        row_hash(1),
        row_hash(2),
        row_hash(3),
    ])
}

/// The history's columns in the groups the row hash is made of: one group per query of
/// [`count_by_column`], so that each hashes the columns it decodes anyway.
const HASHED: [&[&str]; 4] = [
    &[COUNTRY_CODE.name, VOUCHER_AMOUNT.name, TOTAL_ORDERS.name],
    &[TIMESTAMP.name],
    &[LAST_ORDER_TS.name],
    &[FIRST_ORDER_TS.name],
];

/// The prefix of the row hash columns: [`row_hash_name`].
const ROW_HASH: &str = "__voucher_row_hash";

fn row_hash_name(group: usize) -> String {
    format!("{ROW_HASH}_{group}")
}

/// The hash of each row's values in the columns of `HASHED[group]`, as read (before parsing):
/// rows with equal hashes in every group are exact duplicates, bar a 64-bit collision.
fn row_hash(group: usize) -> Expr {
    let columns: Vec<Expr> = HASHED[group].iter().map(|name| col(*name)).collect();
    let uint64 = |_: &Schema, f: &[Field]| {
        let name = f.first().map(|f| f.name().clone()).unwrap_or_default();
        Ok(Field::new(name, DataType::UInt64))
    };
    columns[0]
        .clone()
        .map_many(row_hash_udf, &columns[1..], uint64)
        .alias(row_hash_name(group))
}

fn row_hash_udf(columns: &mut [Column]) -> PolarsResult<Column> {
    let Some((first, rest)) = columns.split_first() else {
        polars_bail!(ComputeError: "a row hash of no columns");
    };
    // Fixed seeds: tallies of one history made by different processes must agree.
    let state = foldhash::quality::SeedableRandomState::fixed();
    let mut hashes = Vec::with_capacity(first.len());
    first.vec_hash(state.clone(), &mut hashes)?;
    for column in rest {
        column.vec_hash_combine(state.clone(), &mut hashes)?;
    }
    Ok(UInt64Chunked::from_vec(first.name().clone(), hashes).into_column())
}

/// Each row's hash over every group of [`HASHED`]: a frame holds the groups' hash columns
/// (one per group, in order), or one column with them folded already.
fn row_hashes(df: &DataFrame) -> PolarsResult<Vec<u64>> {
    let mut hashes: Option<Vec<u64>> = None;
    for column in df
        .columns()
        .iter()
        .filter(|c| c.name().starts_with(ROW_HASH))
    {
        let values = column.u64()?.into_no_null_iter();
        match &mut hashes {
            None => hashes = Some(values.collect()),
            Some(so_far) => {
                for (h, next) in so_far.iter_mut().zip(values) {
                    *h = duplicates::combine(*h, next);
                }
            }
        }
    }
    hashes.ok_or_else(|| polars_err!(ColumnNotFound: "{ROW_HASH}"))
}

/// One history row, parsed.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Whether `country_code` is a country code (see [`voucher_shared::country`]).
    country: bool,
    amount: Option<i64>,
    orders: Option<i64>,
    /// The dates, in days since 1970-01-01.
    timestamp: Option<i32>,
    last_order: Option<i32>,
    first_order: Option<i32>,
}

impl Row {
    /// Whether `rule` drops the row. A comparison with a missing value does not drop: the
    /// earlier rules have dropped such rows already.
    fn fails(&self, rule: DropRule) -> bool {
        match rule {
            DropRule::CountryCode => !self.country,
            DropRule::VoucherAmount => self.amount.is_none(),
            DropRule::TotalOrders => self.orders.is_none(),
            DropRule::Timestamp => self.timestamp.is_none(),
            DropRule::LastOrderTs => self.last_order.is_none(),
            DropRule::Recency => {
                matches!((self.timestamp, self.last_order), (Some(t), Some(l)) if t < l)
            }
            // A null first order passes.
            DropRule::FirstAfterLast => {
                matches!((self.first_order, self.last_order), (Some(f), Some(l)) if f > l)
            }
        }
    }

    /// The first rule the row fails, if any.
    fn dropped_by(&self) -> Option<DropRule> {
        DropRule::ALL.into_iter().find(|rule| self.fails(*rule))
    }
}

/// Counts parsed rows. A kept row's group is (country, frequent segment, recency segment),
/// numbered densely so its amounts are found by index (see [`Amounts`]).
struct Counter {
    frequent: SegmentIndex,
    recency: SegmentIndex,
    countries: Vec<String>,
    /// Each country's number: its place in `countries`.
    ids: HashMap<String, usize>,
    dropped: DropCounts,
    rows_kept: u64,
    /// Rows per amount, by group number (see [`Counter::group`]).
    groups: Vec<Amounts>,
    duplicates: Duplicates,
}

impl Counter {
    fn new(segments: &SegmentSet) -> Self {
        let index = |t| SegmentIndex::new(segments.get(t).unwrap_or(&[]).to_vec());
        Counter {
            frequent: index(SegmentType::Frequent),
            recency: index(SegmentType::Recency),
            countries: Vec::new(),
            ids: HashMap::new(),
            dropped: DropCounts::default(),
            rows_kept: 0,
            groups: Vec::new(),
            duplicates: Duplicates::default(),
        }
    }

    /// Groups per country: each type's segments, plus "in none of them".
    fn groups_per_country(&self) -> usize {
        (self.frequent.segments.len() + 1) * (self.recency.segments.len() + 1)
    }

    /// The number of a group; a segment index equal to its list's length means none.
    fn group(&self, country: usize, frequent: usize, recency: usize) -> usize {
        country * self.groups_per_country() + frequent * (self.recency.segments.len() + 1) + recency
    }

    /// Counts the rows of a frame shaped like [`parsed`]'s output.
    fn add(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let country = df.column(COUNTRY_CODE.name)?.str()?.rechunk();
        let amount = df.column(VOUCHER_AMOUNT.name)?.i64()?.rechunk();
        let orders = df.column(TOTAL_ORDERS.name)?.i64()?.rechunk();
        let timestamp = df.column(TIMESTAMP.name)?.i32()?.rechunk();
        let last_order = df.column(LAST_ORDER_TS.name)?.i32()?.rechunk();
        let first_order = df.column(FIRST_ORDER_TS.name)?.i32()?.rechunk();
        let (amount, orders) = (Values::of(&amount), Values::of(&orders));
        let (timestamp, last_order) = (Values::of(&timestamp), Values::of(&last_order));
        let first_order = Values::of(&first_order);
        let hashes = row_hashes(df)?;
        // Rows by index, not a zip of six iterators: the zip was not inlined and passed each
        // row through the stack, and that cost more than the counting (perf, 2026-12-01).
        let country = country.downcast_as_array();
        let mut seen = SeenCountries::default();
        for i in 0..country.len() {
            if let Some(&h) = hashes.get(i) {
                self.duplicates.add(h);
            }
            let known = country.is_valid(i).then(|| seen.find(country, i));
            let country_ok = known.is_some_and(|k| seen.entries[k].valid);
            let row = Row {
                country: country_ok,
                amount: amount.get(i),
                orders: orders.get(i),
                timestamp: timestamp.get(i),
                last_order: last_order.get(i),
                first_order: first_order.get(i),
            };
            if let Some(rule) = row.dropped_by() {
                self.dropped[rule] += 1;
                continue;
            }
            // The country rule has dropped a null country.
            let Some(known) = known else { continue };
            self.rows_kept += 1;
            let country = match seen.entries[known].id {
                Some(id) => id,
                None => {
                    let id = self.country_id(country.value(i));
                    seen.entries[known].id = Some(id);
                    id
                }
            };
            // Both are set for a kept row; the defaults are never used.
            let (orders, amount) = (row.orders.unwrap_or(-1), row.amount.unwrap_or(0));
            let days =
                i64::from(row.timestamp.unwrap_or(0)) - i64::from(row.last_order.unwrap_or(0));
            let frequent = self.frequent.of(orders);
            let recency = self.recency.of(days);
            let group = self.group(country, frequent, recency);
            self.groups[group].add(amount);
        }
        Ok(())
    }

    fn country_id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.ids.insert(name.to_owned(), self.countries.len());
        self.countries.push(name.to_owned());
        let groups = self.groups.len() + self.groups_per_country();
        self.groups.resize_with(groups, Amounts::default);
        self.countries.len() - 1
    }

    fn into_tally(mut self) -> Tally {
        let mut tally = Tally {
            dropped: self.dropped,
            rows_kept: self.rows_kept,
            rows_kept_by_country: BTreeMap::new(),
            segments: BTreeMap::new(),
            duplicates: std::mem::take(&mut self.duplicates),
        };
        for (country_id, country) in self.countries.iter().enumerate() {
            let per_country = self.groups_per_country();
            let kept = self.groups[country_id * per_country..(country_id + 1) * per_country]
                .iter()
                .flat_map(Amounts::iter)
                .map(|(_, n)| n)
                .sum();
            tally.rows_kept_by_country.insert(country.clone(), kept);
            for (frequent, recency) in (0..=self.frequent.segments.len())
                .flat_map(|f| (0..=self.recency.segments.len()).map(move |r| (f, r)))
            {
                let amounts = &self.groups[self.group(country_id, frequent, recency)];
                for (amount, n) in amounts.iter() {
                    // Kept rows of no segment count only in `rows_kept`.
                    for (segment_type, list, index) in [
                        (SegmentType::Frequent, &self.frequent.segments, frequent),
                        (SegmentType::Recency, &self.recency.segments, recency),
                    ] {
                        if let Some(segment) = list.get(index) {
                            tally.add(country, segment_type, index, segment, amount, n);
                        }
                    }
                }
            }
        }
        tally
    }
}

/// Rows per amount of one group. A group sees a handful of amounts, so the first few are kept
/// in slots that a row finds by comparing, and only the rest in a map: hashing every kept
/// row's amount was a twentieth of a run with every country (perf).
#[derive(Debug, Default)]
struct Amounts {
    slots: [(i64, u64); AMOUNT_SLOTS],
    /// Slots in use, from the first.
    used: usize,
    more: HashMap<i64, u64, foldhash::fast::RandomState>,
}

const AMOUNT_SLOTS: usize = 8;

impl Amounts {
    fn add(&mut self, amount: i64) {
        let used = &mut self.slots[..self.used];
        if let Some(slot) = used.iter_mut().find(|(a, _)| *a == amount) {
            slot.1 += 1;
        } else if self.used < AMOUNT_SLOTS {
            self.slots[self.used] = (amount, 1);
            self.used += 1;
        } else {
            *self.more.entry(amount).or_default() += 1;
        }
    }

    /// Each amount once, with its rows.
    fn iter(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.slots[..self.used]
            .iter()
            .copied()
            .chain(self.more.iter().map(|(a, n)| (*a, *n)))
    }
}

/// The country strings of one frame, by their views: rows of a few countries come in any order,
/// and comparing a view (16 bytes, which hold a short string itself) is cheaper than checking
/// the string and looking its country up again. Equal views are equal strings; a long string
/// (whose view holds its place) is also compared by value, so one country is one entry.
#[derive(Default)]
struct SeenCountries {
    entries: Vec<SeenCountry>,
}

struct SeenCountry {
    view: View,
    /// A row holding the string.
    row: usize,
    /// Whether it is a country code (see [`voucher_shared::country`]).
    valid: bool,
    /// The country's number in the [`Counter`], once a row of it is kept.
    id: Option<usize>,
}

impl SeenCountries {
    /// Distinct strings remembered at most: a column of many (a hostile file) is read
    /// correctly, its strings past these checked row by row in a bounded scan.
    const MAX: usize = 64;

    /// The entry of row `i`'s string (not null), added if new.
    fn find(&mut self, strings: &Utf8ViewArray, i: usize) -> usize {
        let view = strings.views()[i];
        if let Some(at) = self.entries.iter().position(|e| e.view == view) {
            return at;
        }
        let text = strings.value(i);
        if view.length > View::MAX_INLINE_SIZE
            && let Some(at) = self
                .entries
                .iter()
                .position(|e| strings.value(e.row) == text)
        {
            return at;
        }
        let entry = SeenCountry {
            view,
            row: i,
            valid: is_country_code(text),
            id: None,
        };
        if self.entries.len() == Self::MAX {
            // The last slot is reused by each new string past the others.
            self.entries.pop();
        }
        self.entries.push(entry);
        self.entries.len() - 1
    }
}

/// A numeric column of one chunk, read by row index.
struct Values<'a, T> {
    values: &'a [T],
    validity: Option<&'a Bitmap>,
}

impl<'a, T: NativeType> Values<'a, T> {
    fn of<P: PolarsNumericType<Native = T>>(ca: &'a ChunkedArray<P>) -> Self {
        let array = ca.downcast_as_array();
        Values {
            values: array.values().as_slice(),
            validity: array.validity(),
        }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> Option<T> {
        if self.validity.is_some_and(|v| !v.get_bit(i)) {
            return None;
        }
        self.values.get(i).copied()
    }
}

/// A list of segments of one type, and the index of the segment holding a value (the list's
/// length when none does): from a table for the small values that most rows have (orders,
/// days), by a scan beyond it. A scan for every row was a tenth of a run's time.
struct SegmentIndex {
    segments: Vec<Segment>,
    /// By value, from 0 up to [`SegmentIndex::TABLE`].
    table: Vec<usize>,
}

impl SegmentIndex {
    const TABLE: usize = 4096;

    fn new(segments: Vec<Segment>) -> SegmentIndex {
        let mut index = SegmentIndex {
            segments,
            table: Vec::new(),
        };
        index.table = (0..Self::TABLE as i64).map(|v| index.scan(v)).collect();
        index
    }

    #[inline(always)]
    fn of(&self, value: i64) -> usize {
        match usize::try_from(value).ok().and_then(|v| self.table.get(v)) {
            Some(&at) => at,
            None => self.scan(value),
        }
    }

    fn scan(&self, value: i64) -> usize {
        self.segments
            .iter()
            .position(|s| s.contains(value))
            .unwrap_or(self.segments.len())
    }
}

fn days_field(_: &Schema, f: &Field) -> PolarsResult<Field> {
    Ok(Field::new(f.name().clone(), DataType::Int32))
}

/// A time column as its UTC date in days since 1970-01-01; null where it does not parse.
fn days_udf(c: Column) -> PolarsResult<Column> {
    let name = c.name().clone();
    let days: Int32Chunked = match c.dtype() {
        DataType::String => parse_strings(c.str()?, parse_utc_date),
        DataType::Date => c.to_physical_repr().i32()?.clone(),
        DataType::Datetime(unit, _) => {
            // Datetimes are stored as UTC instants whatever their zone, so the UTC date is a
            // floor division of the physical value.
            let per_day = match unit {
                TimeUnit::Nanoseconds => 1_000_000_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Milliseconds => 1_000,
            } * SECONDS_PER_DAY;
            arity::unary_elementwise(c.to_physical_repr().i64()?, |v: Option<i64>| {
                v.and_then(|v| i32::try_from(v.div_euclid(per_day)).ok())
            })
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
        DataType::String => parse_strings(c.str()?, parse_count),
        _ => arity::unary_elementwise(c.cast(&DataType::Float64)?.f64()?, |v: Option<f64>| {
            v.and_then(whole_count)
        }),
    };
    Ok(counts.with_name(name).into_column())
}

/// `parse` of each string of `strings`; null where it gives nothing. Each chunk's strings are
/// looked up in a [`ViewMemo`] first: order dates and order counts repeat a few thousand
/// strings over millions of rows (their Parquet columns are dictionary-encoded), and parsing
/// each row's string again was a sixth of a run with every country (perf).
fn parse_strings<T>(
    strings: &StringChunked,
    parse: fn(&str) -> Option<T::Native>,
) -> ChunkedArray<T>
where
    T: PolarsNumericType,
    T::Native: Into<i64> + TryFrom<i64>,
{
    let chunks = strings.downcast_iter().map(|array| {
        VIEW_MEMO.with_borrow_mut(|memo| {
            memo.start();
            let mut values = Vec::with_capacity(array.len());
            let mut validity = MutableBitmap::with_capacity(array.len());
            for (i, view) in array.views().iter().enumerate() {
                let parsed = if array.is_valid(i) {
                    memo.get(*view, || parse(array.value(i)).map(Into::into))
                        .and_then(|v| T::Native::try_from(v).ok())
                } else {
                    None
                };
                values.push(parsed.unwrap_or_default());
                validity.push(parsed.is_some());
            }
            PrimitiveArray::from_vec(values).with_validity(Some(validity.into()))
        })
    });
    ChunkedArray::from_chunk_iter(strings.name().clone(), chunks)
}

thread_local! {
    /// Each thread's memo, reused from chunk to chunk (see [`ViewMemo::start`]).
    static VIEW_MEMO: std::cell::RefCell<ViewMemo> = std::cell::RefCell::new(ViewMemo::default());
}

/// What a parse gave for each string of one array, by the string's view: in one array, equal
/// views are equal strings (a short string is in its view; a long one's view says where it
/// is), and a dictionary-encoded column's rows of one string share one view. Direct-mapped:
/// a slot holds the last string hashed to it. A column of mostly distinct strings (event
/// times) stops using it after a trial, so that it costs those no more than the trial.
struct ViewMemo {
    slots: Vec<MemoSlot>,
    /// The array being read: slots of other arrays are empty for it.
    array: u32,
    lookups: usize,
    misses: usize,
}

#[derive(Clone, Copy, Default)]
struct MemoSlot {
    view: u128,
    value: i64,
    array: u32,
    parsed: bool,
}

impl Default for ViewMemo {
    fn default() -> Self {
        ViewMemo {
            slots: vec![MemoSlot::default(); ViewMemo::SLOTS],
            array: 0,
            lookups: 0,
            misses: 0,
        }
    }
}

impl ViewMemo {
    /// Room for the few thousand distinct order dates of a chunk of a large file, with few of
    /// them evicting each other.
    const SLOTS: usize = 8192;
    /// Lookups before deciding whether the memo pays for an array: enough for a column of a
    /// few thousand strings to show that it repeats them.
    const TRIAL: usize = 16_384;

    /// Starts on a new array: its views mean nothing for the last one's strings.
    fn start(&mut self) {
        self.array = self.array.wrapping_add(1);
        if self.array == 0 {
            // Numbers start at 1 so that no slot belongs to an array before it is written.
            self.slots.fill(MemoSlot::default());
            self.array = 1;
        }
        self.lookups = 0;
        self.misses = 0;
    }

    #[inline]
    fn get(&mut self, view: View, parse: impl FnOnce() -> Option<i64>) -> Option<i64> {
        if self.lookups == Self::TRIAL {
            // Most strings were new: parse the rest of this array directly.
            if self.misses * 2 > Self::TRIAL {
                return parse();
            }
        } else {
            self.lookups += 1;
        }
        let key = view.as_u128();
        let mixed = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(mixed >> (64 - Self::SLOTS.trailing_zeros())) as usize];
        if slot.array == self.array && slot.view == key {
            return slot.parsed.then_some(slot.value);
        }
        self.misses += 1;
        let value = parse();
        *slot = MemoSlot {
            view: key,
            value: value.unwrap_or_default(),
            array: self.array,
            parsed: value.is_some(),
        };
        value
    }
}

/// `voucher_amount` as a whole number > 0; null where it is not one.
fn amount_udf(c: Column) -> PolarsResult<Column> {
    let name = c.name().clone();
    let amounts: Int64Chunked =
        arity::unary_elementwise(c.cast(&DataType::Float64)?.f64()?, |v: Option<f64>| {
            v.and_then(whole_amount)
        });
    Ok(amounts.with_name(name).into_column())
}

impl Tally {
    /// Adds `other`'s counts to these: tallies of parts of the history add up to the tally of
    /// the whole, whatever the split. A count that would pass [`MAX_ROWS`] is an error, never
    /// wrapped; after an error these counts are partly merged and must be discarded.
    pub fn merge(&mut self, other: Tally) -> Result<(), CountOverflow> {
        self.dropped = self
            .dropped
            .checked_add(&other.dropped)
            .filter(|sum| sum.iter().all(|(_, n)| n <= MAX_ROWS))
            .ok_or(CountOverflow)?;
        self.rows_kept = add_rows(self.rows_kept, other.rows_kept)?;
        self.duplicates.merge(other.duplicates);
        for (country, n) in other.rows_kept_by_country {
            let kept = self.rows_kept_by_country.entry(country).or_default();
            *kept = add_rows(*kept, n)?;
        }
        for (key, part) in other.segments {
            match self.segments.entry(key) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(part);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    for (amount, n) in part.amounts {
                        let rows = slot.get_mut().amounts.entry(amount).or_default();
                        *rows = add_rows(*rows, n)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts `n` kept rows of `amount` in `segment`, the `index`th of `segment_type`.
    fn add(
        &mut self,
        country: &str,
        segment_type: SegmentType,
        index: usize,
        segment: &Segment,
        amount: i64,
        n: u64,
    ) {
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

    /// `parse_strings` of `chunks` against parsing each string on its own.
    fn parses_as_each_row(chunks: &[Vec<Option<String>>], parse: fn(&str) -> Option<i64>) {
        let arrays = chunks.iter().map(Utf8ViewArray::from_slice);
        let strings = StringChunked::from_chunk_iter("s".into(), arrays);
        let parsed: Int64Chunked = parse_strings(&strings, parse);
        let expected: Vec<Option<i64>> = chunks
            .iter()
            .flatten()
            .map(|s| s.as_deref().and_then(parse))
            .collect();
        assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn memoised_parsing_equals_parsing_each_row() {
        let days = |s: &str| parse_utc_date(s).map(i64::from);
        let repeated: Vec<Option<String>> = (0..40_000)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some(format!("2021-06-{:02} 00:00:00+00:00", i % 30 + 1)),
                2 => Some(format!("2020-01-{:02}", i % 31 + 1)),
                3 => Some("2021-02-30".into()),
                4 => Some(String::new()),
                5 => Some(format!("2021-06-{:02} 23:59:59-05:00", i % 30 + 1)),
                _ => Some("not a date, and longer than a view holds".into()),
            })
            .collect();
        // Past the memo's trial, where a column of new strings is parsed row by row.
        let distinct: Vec<Option<String>> = (0..40_000)
            .map(|i| {
                Some(format!(
                    "2021-01-01 {:02}:{:02}:{:02}.{i}",
                    i / 3600 % 24,
                    i / 60 % 60,
                    i % 60
                ))
            })
            .collect();
        parses_as_each_row(&[repeated.clone(), distinct, repeated], days);
        let counts: Vec<Option<String>> = (0..20_000)
            .map(|i| Some(format!("{}.0", i % 40)).filter(|_| i % 11 != 0))
            .chain(["-1", "1e3", " 7 ", "3.5", "abc"].map(|s| Some(s.into())))
            .collect();
        parses_as_each_row(&[counts], parse_count);
    }

    #[test]
    fn memoised_parsing_never_answers_for_another_chunks_string() {
        // Each chunk's one long string is at offset 0 of its first buffer with the same length
        // and first bytes: equal views, different strings.
        let chunk = |s: &str| vec![Some(s.to_owned()); 3];
        let days = |s: &str| parse_utc_date(s).map(i64::from);
        parses_as_each_row(
            &[
                chunk("2021-06-30 00:00:00+00:00"),
                chunk("2021-07-01 00:00:00+00:00"),
            ],
            days,
        );
    }

    #[test]
    fn the_memo_forgets_every_slot_when_its_array_numbers_wrap() {
        let view = View::new_from_bytes(b"2021-06-30 00:00:00+00:00", 0, 0);
        let mut memo = ViewMemo {
            array: u32::MAX - 1,
            ..ViewMemo::default()
        };
        memo.start();
        assert_eq!(memo.get(view, || Some(1)), Some(1));
        assert_eq!(memo.get(view, || Some(2)), Some(1), "found again");
        memo.start();
        assert_eq!(memo.array, 1);
        // Had the slot been kept, the array numbered as it was would find it.
        memo.array = u32::MAX;
        assert_eq!(
            memo.get(view, || Some(3)),
            Some(3),
            "not the wrapped array's"
        );
    }

    #[test]
    fn the_segment_index_finds_what_a_scan_of_the_segments_finds() {
        let segment = |lower, upper| Segment {
            label: format!("{lower}"),
            lower,
            upper,
        };
        // Gaps, a negative lower bound, one segment across the table's end, an open end.
        let list = vec![
            segment(-5, Some(-1)),
            segment(2, Some(4)),
            segment(10, Some(4100)),
            segment(5000, None),
        ];
        let index = SegmentIndex::new(list.clone());
        let table = SegmentIndex::TABLE as i64;
        let values = (-10..20).chain(table - 5..table + 5).chain([
            4100,
            4101,
            4999,
            5000,
            i64::MAX,
            i64::MIN,
        ]);
        for value in values {
            let scanned = list
                .iter()
                .position(|s| s.contains(value))
                .unwrap_or(list.len());
            assert_eq!(index.of(value), scanned, "value {value}");
        }
        assert_eq!(SegmentIndex::new(Vec::new()).of(3), 0);
    }

    #[test]
    fn a_countrys_strings_are_one_entry_whatever_their_views() {
        // Long strings are stored out of line: two rows of one long name have two views.
        let long = "Republica Dominicana";
        let strings =
            Utf8ViewArray::from_slice([Some(long), Some("Peru"), Some(long), None, Some(" Peru")]);
        assert_ne!(strings.views()[0], strings.views()[2]);
        let mut seen = SeenCountries::default();
        let entries: Vec<usize> = [0, 1, 2, 4, 1].map(|i| seen.find(&strings, i)).to_vec();
        assert_eq!(entries, [0, 1, 0, 2, 1]);
        let valid: Vec<bool> = seen.entries.iter().map(|e| e.valid).collect();
        assert_eq!(valid, [true, true, false]);
    }

    #[test]
    fn many_distinct_country_strings_are_each_checked_and_counted() {
        let names: Vec<String> = (0..SeenCountries::MAX + 10)
            .map(|i| format!("C{i}"))
            .collect();
        let mut seen = SeenCountries::default();
        let strings =
            Utf8ViewArray::from_slice(names.iter().map(|n| Some(n.as_str())).collect::<Vec<_>>());
        for (i, name) in names.iter().enumerate() {
            let at = seen.find(&strings, i);
            assert_eq!(strings.value(seen.entries[at].row), name);
        }
        assert_eq!(seen.entries.len(), SeenCountries::MAX);
    }

    #[test]
    fn a_groups_amounts_count_alike_in_slots_and_beyond_them() {
        let mut amounts = Amounts::default();
        let mut expected = BTreeMap::new();
        // More amounts than slots, in an order that sends later ones to the map and keeps
        // coming back to earlier ones.
        for i in 0..1_000i64 {
            let amount = (i * 7) % (AMOUNT_SLOTS as i64 * 3) * 100;
            amounts.add(amount);
            *expected.entry(amount).or_insert(0u64) += 1;
        }
        let counted: BTreeMap<i64, u64> = amounts.iter().collect();
        assert_eq!(amounts.iter().count(), counted.len(), "each amount once");
        assert_eq!(counted, expected);
    }

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
        let rows = parsed(df.lazy(), countries).collect().expect("query");
        let mut counter = Counter::new(&segments());
        counter.add(&rows).expect("count");
        counter.into_tally()
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
    fn exact_duplicates_are_counted_alike_by_both_queries_and_across_windows() {
        // Rows 0-5 alike; 6-10 each differ from them in one column as read (the same date, the
        // same count, a null, an amount dropped, another country); 11 repeats 6.
        let mut timestamps = vec![Some("2021-05-01 10:00:00.123456"); 12];
        timestamps[6] = Some("2021-05-01 10:00:00.123457");
        timestamps[11] = timestamps[6];
        let df = with_strings(history(12), TIMESTAMP.name, timestamps);
        let mut orders = vec![Some("14.0"); 12];
        orders[7] = Some("14");
        let mut first = vec![Some("2020-01-01 00:00:00+00:00"); 12];
        first[8] = None;
        let mut amounts = vec![Some(2640.0); 12];
        amounts[9] = Some(2640.5);
        let mut countries = vec![Some("Peru"); 12];
        countries[10] = Some("Chile");
        let df = with_strings(df, TOTAL_ORDERS.name, orders);
        let df = with_strings(df, FIRST_ORDER_TS.name, first);
        let df = with_strings(with_amounts(df, amounts), COUNTRY_CODE.name, countries);

        let by_column = count_window(df.clone().lazy(), &Countries::All, &segments());
        let by_column = by_column.expect("query").duplicates;
        assert_eq!(
            (by_column.rows(), by_column.duplicate_rows()),
            (12, Some(6))
        );
        let both = Countries::parse("Peru,Chile").expect("countries");
        let streaming = count_window(df.clone().lazy(), &both, &segments()).expect("query");
        assert_eq!(
            streaming.duplicates, by_column,
            "the same hashes either way"
        );
        assert_eq!(run(df.clone(), &both).duplicates, by_column);
        let peru = Countries::parse("Peru").expect("countries");
        let peru = run(df.clone(), &peru).duplicates;
        assert_eq!((peru.rows(), peru.duplicate_rows()), (11, Some(6)));

        // Windows of 5 rows: copies in other windows count when the tallies merge.
        let mut merged = Tally::default();
        for offset in [0, 5, 10] {
            let window = df.clone().lazy().slice(offset, 5);
            let part = count_window(window, &Countries::All, &segments()).expect("query");
            merged.merge(part).expect("fits");
        }
        assert_eq!(merged.duplicates, by_column);
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
            (
                t.rows_kept,
                t.dropped[DropRule::VoucherAmount],
                t.dropped[DropRule::CountryCode]
            ),
            (1, 1, 1),
            "a null country is of no country: dropped by the first rule"
        );
    }

    #[test]
    fn rows_of_no_country_code_are_dropped_under_the_country_rule_and_counted() {
        let huge = "P".repeat(100 << 20);
        let countries = [
            None,
            Some(""),
            Some(" "),
            Some("Peru "),
            Some("Pe\u{7}ru"),
            Some(huge.as_str()),
            Some("Peru"),
            Some("Peru"),
            Some("Côte d'Ivoire"),
        ];
        let df = with_strings(
            history(countries.len()),
            COUNTRY_CODE.name,
            countries.to_vec(),
        );
        // Rule 1 comes first: a row of no country with a bad amount counts under it.
        let df = with_amounts(
            df,
            vec![None; 1]
                .into_iter()
                .chain(vec![Some(2640.0); 8])
                .collect(),
        );
        let t = run(df.clone(), &Countries::All);
        assert_eq!(t.dropped[DropRule::CountryCode], 6);
        assert_eq!(t.dropped.total(), 6);
        assert_eq!(t.rows_kept, 3);
        let kept: Vec<_> = t.rows_kept_by_country.keys().map(String::as_str).collect();
        assert_eq!(kept, ["Côte d'Ivoire", "Peru"]);
        // With a list, a row of no country code is of none of its countries: skipped.
        let t = run(df, &Countries::Only(vec!["Peru".into()]));
        assert_eq!((t.rows_kept, t.dropped.total()), (2, 0));
    }

    #[test]
    fn rows_of_alternating_countries_count_in_their_own_segments() {
        let df = with_strings(
            history(5),
            COUNTRY_CODE.name,
            ["Peru", "Chile", "Chile", "Peru", "Mexico"]
                .map(Some)
                .to_vec(),
        );
        let df = with_strings(
            df,
            TOTAL_ORDERS.name,
            ["1", "1", "20", "20", "1"].map(Some).to_vec(),
        );
        let t = run(df, &Countries::All);
        let rows = |country: &str, label: &str| {
            t.segments
                .iter()
                .filter(|((c, st, _), s)| {
                    c == country && *st == SegmentType::Frequent && s.segment.label == label
                })
                .map(|(_, s)| s.amounts.values().sum::<u64>())
                .sum::<u64>()
        };
        assert_eq!(
            [
                rows("Peru", "0-4"),
                rows("Peru", "14-37"),
                rows("Chile", "0-4"),
                rows("Chile", "14-37"),
                rows("Mexico", "0-4"),
            ],
            [1, 1, 1, 1, 1]
        );
        assert_eq!(t.rows_kept, 5);
    }

    #[test]
    fn more_countries_than_remembered_each_count_their_rows() {
        // Twice over, interleaved: short and long names, and strings that are no country code.
        let names: Vec<String> = (0..SeenCountries::MAX + 20)
            .map(|i| match i % 3 {
                0 => format!("C{i}"),
                1 => format!("A country with a long name {i}"),
                _ => format!(" bad {i}"),
            })
            .collect();
        let column: Vec<Option<&str>> = names
            .iter()
            .chain(&names)
            .map(|n| Some(n.as_str()))
            .collect();
        let df = with_strings(history(column.len()), COUNTRY_CODE.name, column);
        let t = run(df, &Countries::All);
        let bad = names.iter().filter(|n| n.starts_with(' ')).count() as u64;
        assert_eq!(t.dropped[DropRule::CountryCode], 2 * bad);
        assert_eq!(t.rows_kept, 2 * (names.len() as u64 - bad));
        for name in names.iter().filter(|n| !n.starts_with(' ')) {
            assert_eq!(t.rows_kept_by_country.get(name), Some(&2), "{name}");
        }
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
        let long = "x".repeat(1 << 20);
        let err = Countries::parse(&format!("Peru,{long}")).expect_err("too long");
        assert!(err.starts_with("\"xxxx"), "{err}");
        assert!(
            err.contains("is not a country code (it is 1048576 bytes long)"),
            "{err}"
        );
        assert!(err.len() < 300, "bounded: {} bytes", err.len());
        let err = Countries::parse("Pe\u{7}ru").expect_err("control character");
        assert!(err.contains("it holds a control character"), "{err}");
    }
}
