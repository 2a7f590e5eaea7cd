//! Realistic synthetic voucher history, in the source's messy format.
//!
//! Each country has its own amounts and, per segment, a favourite amount that the table should
//! end up choosing. Each row gets at most one defect (a blank `total_orders`, a null amount,
//! an impossible date, a last order after the voucher, ...), so the generator knows exactly
//! which rule drops it. It returns that knowledge as [`Truth`]: the drop counts and the kept
//! amounts per segment that a correct ETL must find, computed from how each row was built and
//! not by parsing it back.
//!
//! Output is generated in chunks of [`CHUNK_ROWS`], each from its own seed, so memory stays
//! bounded whatever the row count and the rows depend only on `--seed`. Row groups hold
//! [`CHUNK_ROWS`] rows unless `--row-group-size` asks for others (production files written by
//! Spark or pyarrow have 1M-row groups, which is what the memory benchmark needs to read).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use voucher_shared::rules::{DropCounts, DropRule};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};

use crate::history::{
    COUNTRY_CODE, FIRST_ORDER_TS, LAST_ORDER_TS, TIMESTAMP, TOTAL_ORDERS, VOUCHER_AMOUNT,
};
use crate::output;
use crate::progress::Progress;

/// Rows per generated chunk (and per Parquet row group by default).
pub const CHUNK_ROWS: usize = 256 * 1024;

/// Countries generated when none are named.
pub const DEFAULT_COUNTRIES: &str = "Peru,Chile,Colombia,Mexico";

/// A generation failure.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the history for {}", path.display())]
    Encode { path: PathBuf, source: PolarsError },
    #[error("--rows must be at least 1")]
    NoRows,
    #[error("--row-group-size must be at least 1")]
    NoRowGroupRows,
    #[error("--countries must name at least one country (`all` is not a country list here)")]
    NoCountries,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub rows: u64,
    pub seed: u64,
    pub countries: Vec<String>,
    pub segments: SegmentSet,
    pub output: PathBuf,
    /// Rows per Parquet row group; `None` writes one group per generated chunk.
    pub row_group_size: Option<usize>,
}

/// What a correct ETL must find in one country's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountryTruth {
    pub rows: u64,
    pub dropped: DropCounts,
    pub kept: u64,
    /// (segment type, label) → amount → kept rows.
    pub amounts: BTreeMap<(SegmentType, String), BTreeMap<i64, u64>>,
    /// (segment type, label) → the amount the generator favoured for that segment.
    pub favourites: BTreeMap<(SegmentType, String), i64>,
}

/// The generator's knowledge of the file it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    pub rows: u64,
    pub countries: BTreeMap<String, CountryTruth>,
    /// Rows whose `country_code` is not a country code (null, blank, padded, too long, with a
    /// control character): of no country, so dropped by the `country_code` rule when every
    /// country is read and skipped when a list of countries is.
    pub no_country: u64,
}

impl Truth {
    fn merge(&mut self, other: Truth) {
        self.rows += other.rows;
        self.no_country += other.no_country;
        for (country, t) in other.countries {
            let mine = self.countries.entry(country).or_default();
            mine.rows += t.rows;
            mine.kept += t.kept;
            mine.dropped += t.dropped;
            for (key, amounts) in t.amounts {
                let slot = mine.amounts.entry(key).or_default();
                for (amount, n) in amounts {
                    *slot.entry(amount).or_default() += n;
                }
            }
            mine.favourites.extend(t.favourites);
        }
    }
}

/// One line per country, and one for the rows of no country.
impl std::fmt::Display for Truth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (country, t) in &self.countries {
            writeln!(
                f,
                "  {country:<12} {:>10} rows, {:>10} clean, {:>9} built to be dropped",
                t.rows,
                t.kept,
                t.dropped.total()
            )?;
        }
        writeln!(
            f,
            "  {:<12} {:>10} rows, built with a country_code that is no country code",
            "(none)", self.no_country
        )
    }
}

/// A country's amounts; known countries look like their real markets.
fn amounts_of(country: &str) -> Vec<i64> {
    match country {
        "Peru" => vec![2640, 3520, 4400],
        "Chile" => vec![2000, 3000, 4000, 5000],
        "Colombia" => vec![10_000, 15_000, 20_000],
        "Mexico" => vec![100, 150, 200, 250],
        other => {
            let h = other
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            let base = 1000 + (h % 9) as i64 * 500;
            vec![base, 2 * base, 3 * base]
        }
    }
}

/// Per country: its amounts and each segment's favourite, spread so that no one amount is
/// the favourite of most segments of a type (which keeps every segment's mode clear).
struct Profile {
    country: String,
    weight: u32,
    amounts: Vec<i64>,
    favourites: [Vec<i64>; 2],
}

impl Profile {
    fn new(index: usize, country: &str, segments: &SegmentSet) -> Self {
        let amounts = amounts_of(country);
        let k = amounts.len();
        let favourite = |segment_type: SegmentType, step: usize, shift: usize| -> Vec<i64> {
            let n = segments.get(segment_type).map_or(0, <[Segment]>::len);
            (0..n)
                .map(|i| amounts[(i * step + shift + index) % k])
                .collect()
        };
        Profile {
            country: country.to_owned(),
            weight: if country == "Peru" { 2 } else { 1 },
            favourites: [
                favourite(SegmentType::Frequent, 1, 0),
                favourite(SegmentType::Recency, 2, 1),
            ],
            amounts,
        }
    }

    /// (segment type, label) → the amount this country favours in that segment.
    fn favourite_labels(
        &self,
        segments: &SegmentSet,
    ) -> impl Iterator<Item = ((SegmentType, String), i64)> {
        SegmentType::ALL.into_iter().zip(&self.favourites).flat_map(
            move |(segment_type, favourites)| {
                segments
                    .get(segment_type)
                    .unwrap_or(&[])
                    .iter()
                    .zip(favourites)
                    .map(move |(s, fav)| ((segment_type, s.label.clone()), *fav))
            },
        )
    }
}

/// Draws values inside a chosen segment of a type, or (rarely) outside every segment.
struct Drawer<'a> {
    segments: &'a [Segment],
    outside: Vec<(i64, i64)>,
}

impl<'a> Drawer<'a> {
    fn new(segments: &'a [Segment]) -> Self {
        let mut outside = Vec::new();
        if let Some(first) = segments.first()
            && first.lower > 0
        {
            outside.push((0, first.lower - 1));
        }
        if let Some(upper) = segments.last().and_then(|s| s.upper) {
            outside.push((upper + 1, upper + 150));
        }
        Drawer { segments, outside }
    }

    /// A value and the index of its segment, if any.
    fn draw(&self, rng: &mut SmallRng, fallback: (i64, i64)) -> (i64, Option<usize>) {
        if self.segments.is_empty() || (!self.outside.is_empty() && rng.random_bool(0.12)) {
            let (lo, hi) = if self.outside.is_empty() {
                fallback
            } else {
                self.outside[rng.random_range(0..self.outside.len())]
            };
            let v = rng.random_range(lo..=hi);
            return (v, self.segments.iter().position(|s| s.contains(v)));
        }
        let i = rng.random_range(0..self.segments.len());
        let s = &self.segments[i];
        let hi = s.upper.unwrap_or(s.lower + 200);
        (rng.random_range(s.lower..=hi), Some(i))
    }
}

/// One chunk of columns being built; country names are borrowed from the profiles.
#[derive(Default)]
struct Chunk<'p> {
    index: Vec<i64>,
    timestamp: Vec<String>,
    country: Vec<Option<&'p str>>,
    last_order: Vec<String>,
    first_order: Vec<Option<i64>>,
    total_orders: Vec<String>,
    amount: Vec<Option<f64>>,
}

/// Which rule a row is built to fail, if any, with the rules' real-world frequencies.
fn pick_defect(rng: &mut SmallRng) -> Option<DropRule> {
    let x: f64 = rng.random();
    match x {
        x if x < 0.075 => Some(DropRule::VoucherAmount),
        x if x < 0.130 => Some(DropRule::TotalOrders),
        x if x < 0.134 => Some(DropRule::Timestamp),
        x if x < 0.138 => Some(DropRule::LastOrderTs),
        x if x < 0.158 => Some(DropRule::Recency),
        x if x < 0.168 => Some(DropRule::FirstAfterLast),
        x if x < 0.170 => Some(DropRule::CountryCode),
        _ => None,
    }
}

/// 2019-01-01 .. 2021-12-31, the span of the voucher history, in days since the epoch.
const FIRST_DAY: i64 = 17_897;
const LAST_DAY: i64 = 18_992;
const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

fn ymd(days: i64) -> (i32, u32, u32) {
    let date = NaiveDate::from_num_days_from_ce_opt(days as i32 + 719_163).unwrap_or_default();
    (date.year(), date.month(), date.day())
}

fn push_date(s: &mut String, days: i64) {
    let (y, m, d) = ymd(days);
    let _ = write!(s, "{y:04}-{m:02}-{d:02}");
}

/// Writes the history; returns what a correct ETL must find in it.
///
/// The file is written under a temporary name beside `output`, fsynced, and renamed over it
/// (then the directory is fsynced), so `output` is either the old file or the whole new one.
pub fn generate(opts: &GenerateOptions) -> Result<Truth, GenerateError> {
    if opts.rows == 0 {
        return Err(GenerateError::NoRows);
    }
    if opts.row_group_size == Some(0) {
        return Err(GenerateError::NoRowGroupRows);
    }
    if opts.countries.is_empty() {
        return Err(GenerateError::NoCountries);
    }
    let write_err = |source| GenerateError::Write {
        path: opts.output.clone(),
        source,
    };
    let mut truth = Truth::default();
    output::write_atomically(&opts.output, write_err, |file| {
        truth = write_chunks(opts, file)?;
        Ok(())
    })?;
    Ok(truth)
}

/// Generates and writes every chunk; returns the merged truth.
fn write_chunks(opts: &GenerateOptions, file: &mut std::fs::File) -> Result<Truth, GenerateError> {
    let encode_err = |source| GenerateError::Encode {
        path: opts.output.clone(),
        source,
    };
    let profiles: Vec<Profile> = opts
        .countries
        .iter()
        .enumerate()
        .map(|(i, c)| Profile::new(i, c, &opts.segments))
        .collect();
    let writer = ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .batched(&schema())
        .map_err(encode_err)?;
    let mut groups = RowGroups::new(writer, opts.row_group_size.unwrap_or(CHUNK_ROWS));
    let progress = Progress::rows("generating", opts.rows);
    let mut truth = Truth::default();
    let mut done = 0u64;
    let mut chunk_no = 0u64;
    while done < opts.rows {
        let n = (opts.rows - done).min(CHUNK_ROWS as u64) as usize;
        let (df, chunk_truth) = chunk(opts, &profiles, chunk_no, done, n).map_err(encode_err)?;
        groups.push(df).map_err(encode_err)?;
        truth.merge(chunk_truth);
        done += n as u64;
        chunk_no += 1;
        progress.set(done);
    }
    groups.finish().map_err(encode_err)?;
    progress.finish();
    Ok(truth)
}

/// Regroups generated chunks into row groups of a chosen size: the Parquet writer makes one
/// row group per contiguous chunk of the frame it is given.
struct RowGroups<'f> {
    writer: polars::io::parquet::write::BatchedWriter<&'f mut std::fs::File>,
    rows: usize,
    pending: Option<DataFrame>,
}

impl<'f> RowGroups<'f> {
    fn new(
        writer: polars::io::parquet::write::BatchedWriter<&'f mut std::fs::File>,
        rows: usize,
    ) -> Self {
        Self {
            writer,
            rows: rows.max(1),
            pending: None,
        }
    }

    fn push(&mut self, df: DataFrame) -> PolarsResult<()> {
        let mut pending = match self.pending.take() {
            Some(mut pending) => {
                pending.vstack_mut_owned(df)?;
                pending
            }
            None => df,
        };
        while pending.height() >= self.rows {
            let rest = pending.split_at(self.rows as i64).1;
            let mut group = pending.slice(0, self.rows);
            group.rechunk_mut();
            self.writer.write_batch(&group)?;
            pending = rest;
        }
        self.pending = (pending.height() > 0).then_some(pending);
        Ok(())
    }

    fn finish(mut self) -> PolarsResult<()> {
        if let Some(mut last) = self.pending.take() {
            last.rechunk_mut();
            self.writer.write_batch(&last)?;
        }
        self.writer.finish().map(drop)
    }
}

fn schema() -> Schema {
    Schema::from_iter([
        Field::new("index".into(), DataType::Int64),
        Field::new(TIMESTAMP.name.into(), DataType::String),
        Field::new(COUNTRY_CODE.name.into(), DataType::String),
        Field::new(LAST_ORDER_TS.name.into(), DataType::String),
        Field::new(
            FIRST_ORDER_TS.name.into(),
            DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
        ),
        Field::new(TOTAL_ORDERS.name.into(), DataType::String),
        Field::new(VOUCHER_AMOUNT.name.into(), DataType::Float64),
    ])
}

/// What one row is made of, before it is written in the source's messy format.
struct RowSpec {
    country: usize,
    defect: Option<DropRule>,
    orders: i64,
    /// The row's segment of each type (in [`SegmentType::ALL`] order), if any.
    segments: [Option<usize>; 2],
    amount: i64,
    /// The voucher's instant, as UTC seconds.
    ts_secs: i64,
    micros: u32,
    last_day: i64,
    first_day: Option<i64>,
}

/// The state shared by the rows of one chunk.
struct Rows<'a> {
    profiles: &'a [Profile],
    total_weight: u32,
    drawers: [Drawer<'a>; 2],
}

impl<'a> Rows<'a> {
    fn new(profiles: &'a [Profile], segments: &'a SegmentSet) -> Self {
        let drawer = |t| Drawer::new(segments.get(t).unwrap_or(&[]));
        Rows {
            profiles,
            total_weight: profiles.iter().map(|p| p.weight).sum(),
            drawers: [drawer(SegmentType::Frequent), drawer(SegmentType::Recency)],
        }
    }

    /// Draws a row's facts. The order of the draws fixes the file a seed gives: keep it.
    fn draw(&self, rng: &mut SmallRng) -> RowSpec {
        let mut w = rng.random_range(0..self.total_weight);
        let country = self
            .profiles
            .iter()
            .position(|p| {
                let hit = w < p.weight;
                w = w.saturating_sub(p.weight);
                hit
            })
            .unwrap_or(0);
        let p = &self.profiles[country];
        let defect = pick_defect(rng);
        let (orders, f_seg) = self.drawers[0].draw(rng, (38, 200));
        let (mut days, r_seg) = self.drawers[1].draw(rng, (0, 29));
        if defect == Some(DropRule::Recency) {
            days = -rng.random_range(1..=60);
        }
        let amount = {
            let favs: Vec<i64> = [(0, f_seg), (1, r_seg)]
                .into_iter()
                .filter_map(|(t, seg)| seg.map(|i| p.favourites[t][i]))
                .collect();
            if favs.is_empty() || rng.random_bool(0.1) {
                p.amounts[rng.random_range(0..p.amounts.len())]
            } else {
                favs[rng.random_range(0..favs.len())]
            }
        };
        let ts_day = rng.random_range(FIRST_DAY..=LAST_DAY);
        let ts_secs = ts_day * 86_400 + rng.random_range(0..86_400);
        let micros: u32 = rng.random_range(0..1_000_000);
        let last_day = ts_day - days;
        let first_day = if defect == Some(DropRule::FirstAfterLast) {
            Some(last_day + rng.random_range(1..=100))
        } else if rng.random_bool(0.03) {
            None
        } else {
            Some(last_day - rng.random_range(0..=900))
        };
        RowSpec {
            country,
            defect,
            orders,
            segments: [f_seg, r_seg],
            amount,
            ts_secs,
            micros,
            last_day,
            first_day,
        }
    }
}

impl<'p> Chunk<'p> {
    /// Writes a row in the source's messy format; its defect, if any, is the only one.
    fn push(&mut self, row: &RowSpec, country: &'p str, index: i64, rng: &mut SmallRng) {
        let defect = row.defect;
        let mut s = String::with_capacity(40);
        push_timestamp(&mut s, row, rng);
        self.timestamp.push(s.clone());

        s.clear();
        if defect == Some(DropRule::LastOrderTs) {
            s.push_str(
                ["", "2019-02-29", "unknown", "2019-11-31 00:00:00+00:00"][rng.random_range(0..4)],
            );
        } else {
            push_date(&mut s, row.last_day);
            if rng.random_bool(0.5) {
                s.push_str(" 00:00:00+00:00");
            }
        }
        self.last_order.push(s.clone());

        s.clear();
        if defect == Some(DropRule::TotalOrders) {
            s.push_str(["", "", "", " ", "abc", "-3.0", "2.5", "n/a"][rng.random_range(0..8)]);
        } else if rng.random_bool(0.02) {
            let _ = write!(s, " {}.0 ", row.orders);
        } else {
            let _ = write!(s, "{}.0", row.orders);
        }
        self.total_orders.push(s);

        let amount = row.amount as f64;
        self.amount
            .push(if defect == Some(DropRule::VoucherAmount) {
                [
                    None,
                    None,
                    None,
                    None,
                    Some(f64::NAN),
                    Some(-amount),
                    Some(amount + 0.5),
                    Some(0.0),
                ][rng.random_range(0..8)]
            } else {
                Some(amount)
            });
        self.first_order.push(row.first_day.map(|d| d * NS_PER_DAY));
        self.country.push(if defect == Some(DropRule::CountryCode) {
            BAD_COUNTRIES[rng.random_range(0..BAD_COUNTRIES.len())]
        } else {
            Some(country)
        });
        self.index.push(index);
    }

    fn into_frame(self) -> PolarsResult<DataFrame> {
        let n = self.index.len();
        let first_order = Series::new(FIRST_ORDER_TS.name.into(), self.first_order).cast(
            &DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
        )?;
        DataFrame::new(
            n,
            vec![
                Series::new("index".into(), self.index).into_column(),
                Series::new(TIMESTAMP.name.into(), self.timestamp).into_column(),
                Series::new(COUNTRY_CODE.name.into(), self.country).into_column(),
                Series::new(LAST_ORDER_TS.name.into(), self.last_order).into_column(),
                first_order.into_column(),
                Series::new(TOTAL_ORDERS.name.into(), self.total_orders).into_column(),
                Series::new(VOUCHER_AMOUNT.name.into(), self.amount).into_column(),
            ],
        )
    }
}

/// `country_code`s that are no country code, each failing another part of the rule.
const BAD_COUNTRIES: [Option<&str>; 6] = [
    None,
    Some(""),
    Some(" "),
    Some("Peru "),
    Some("Pe\tru"),
    Some("The Federal Republic of a Country Whose Name Is Longer Than Sixty-Four Bytes"),
];

/// `timestamp`: naive UTC, `+00:00`, or a local time at `-05:00` (whose date may differ);
/// or, for a row built to fail the rule, something that is not a time.
fn push_timestamp(s: &mut String, row: &RowSpec, rng: &mut SmallRng) {
    if row.defect == Some(DropRule::Timestamp) {
        s.push_str(
            [
                "",
                "2020-02-30 10:00:00.000000",
                "not a time",
                "2020-13-01 00:00:00",
            ][rng.random_range(0..4)],
        );
        return;
    }
    let form = rng.random_range(0..20);
    let local = if form == 0 {
        row.ts_secs - 5 * 3600
    } else {
        row.ts_secs
    };
    push_date(s, local.div_euclid(86_400));
    let t = local.rem_euclid(86_400);
    let _ = write!(
        s,
        " {:02}:{:02}:{:02}.{:06}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        row.micros
    );
    match form {
        0 => s.push_str("-05:00"),
        1..=9 => s.push_str("+00:00"),
        _ => {}
    }
}

impl CountryTruth {
    /// Records what a correct ETL must do with `row`.
    fn record(&mut self, row: &RowSpec, segments: &SegmentSet) {
        self.rows += 1;
        if let Some(rule) = row.defect {
            self.dropped[rule] += 1;
            return;
        }
        self.kept += 1;
        for (segment_type, seg) in SegmentType::ALL.into_iter().zip(row.segments) {
            let label = seg.and_then(|i| Some(segments.get(segment_type)?.get(i)?.label.clone()));
            if let Some(label) = label {
                *self
                    .amounts
                    .entry((segment_type, label))
                    .or_default()
                    .entry(row.amount)
                    .or_default() += 1;
            }
        }
    }
}

/// Generates rows `first_row .. first_row + n` from their own seed.
fn chunk(
    opts: &GenerateOptions,
    profiles: &[Profile],
    chunk_no: u64,
    first_row: u64,
    n: usize,
) -> PolarsResult<(DataFrame, Truth)> {
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ chunk_no.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let rows = Rows::new(profiles, &opts.segments);
    let mut c = Chunk::default();
    let mut truth = Truth::default();
    for i in 0..n {
        let row = rows.draw(&mut rng);
        let p = &profiles[row.country];
        c.push(&row, &p.country, (first_row + i as u64) as i64, &mut rng);
        if row.defect == Some(DropRule::CountryCode) {
            truth.no_country += 1;
        } else {
            truth
                .countries
                .entry(p.country.clone())
                .or_default()
                .record(&row, &opts.segments);
        }
    }
    truth.rows = n as u64;
    for p in profiles {
        if let Some(t) = truth.countries.get_mut(&p.country) {
            t.favourites.extend(p.favourite_labels(&opts.segments));
        }
    }
    Ok((c.into_frame()?, truth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_shared::time::days_from_civil;

    #[test]
    fn the_history_span_is_what_the_constants_say() {
        assert_eq!(days_from_civil(2019, 1, 1), FIRST_DAY);
        assert_eq!(days_from_civil(2021, 12, 31), LAST_DAY);
        assert_eq!(ymd(FIRST_DAY), (2019, 1, 1));
    }

    #[test]
    fn favourites_differ_between_segments_and_countries() {
        let segments = SegmentSet::builtin();
        let peru = Profile::new(0, "Peru", &segments);
        let chile = Profile::new(1, "Chile", &segments);
        assert_eq!(peru.favourites[0].len(), 3);
        let distinct: std::collections::BTreeSet<_> = peru.favourites[0].iter().collect();
        assert_eq!(
            distinct.len(),
            3,
            "each frequent segment of Peru favours another amount"
        );
        assert_ne!(peru.favourites[1], chile.favourites[1]);
    }

    fn row_groups(path: &std::path::Path) -> (Vec<usize>, DataFrame) {
        let file = std::fs::File::open(path).expect("open");
        let mut reader = ParquetReader::new(file);
        let sizes = reader
            .get_metadata()
            .expect("metadata")
            .row_groups
            .iter()
            .map(|rg| rg.num_rows())
            .collect();
        (sizes, reader.finish().expect("read"))
    }

    #[test]
    fn row_group_size_regroups_the_same_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = CHUNK_ROWS as u64 + 1_000;
        let write = |name: &str, row_group_size| {
            let output = dir.path().join(name);
            let truth = generate(&GenerateOptions {
                rows,
                seed: 7,
                countries: vec!["Peru".into(), "Chile".into()],
                segments: SegmentSet::builtin(),
                output: output.clone(),
                row_group_size,
            })
            .expect("generate");
            (row_groups(&output), truth)
        };
        let ((default_groups, default_rows), default_truth) = write("default.parquet", None);
        let ((groups, regrouped), truth) = write("regrouped.parquet", Some(100_000));
        assert_eq!(default_groups, vec![CHUNK_ROWS, 1_000]);
        assert_eq!(groups, vec![100_000, 100_000, 63_144]);
        assert!(regrouped.equals_missing(&default_rows));
        assert_eq!(truth, default_truth);
    }

    #[test]
    fn the_bad_countries_break_the_country_rule_each_in_its_own_way() {
        use voucher_shared::country::check_country_code;
        let mut ways: Vec<_> = BAD_COUNTRIES
            .iter()
            .flatten()
            .map(|c| format!("{:?}", check_country_code(c).expect_err(c)))
            .collect();
        ways.sort();
        ways.dedup();
        assert_eq!(ways.len(), 4, "{ways:?}");
        assert!(BAD_COUNTRIES.contains(&None));
    }

    #[test]
    fn a_zero_row_group_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = generate(&GenerateOptions {
            rows: 10,
            seed: 1,
            countries: vec!["Peru".into()],
            segments: SegmentSet::builtin(),
            output: dir.path().join("h.parquet"),
            row_group_size: Some(0),
        })
        .expect_err("zero rows per group");
        assert_eq!(err.to_string(), "--row-group-size must be at least 1");
    }
}
