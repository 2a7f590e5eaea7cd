//! Scoring one window of a customer list: every row answered as the API answers it.
//!
//! Each row first goes through a fast path that calls the core's field checks
//! ([`fields`]) on the row's values, remembering the answer for a text it has already seen
//! (countries and segment types repeat), and looks the segment up in the country's sorted
//! bounds ([`CountrySegments::covering`]). A row that passes every check gets the segment's
//! voucher, or, when no segment covers it, the core's message for that (country, segment
//! type, value) from [`Snapshot::find`], built once per window. Any other row is scored by
//! [`score::score`] itself, which gives the refusal with its detail. Either way the rules are
//! the core's. While a canary runs, a row whose customer is in the canary's share (the
//! API's bucket rule, [`CanaryRecord::answers`]) is scored against the canary's version.
//! With a customer store, the rows that give only `customer_id` and `segment_name` are looked
//! up together first, and scored by the core with their profiles ([`score::score_with`]).

use std::collections::HashMap;

use polars::prelude::*;
use voucher_shared::canary::CanaryRecord;
use voucher_shared::score::{
    self, CountrySegments, Entry, Profiles, Query, RequestFields, Snapshot, VoucherRequest, fields,
};
use voucher_shared::segments::SegmentType;

use super::cells::{Cells, FieldColumn};
use super::results::{Dictionaries, Results};
use super::store::CustomerStore;
use super::{Errors, ScoreError};

/// How many rows of each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub ok: u64,
    pub invalid: u64,
    pub no_segment: u64,
    /// Rows by id whose customer the store does not hold.
    pub unknown_customer: u64,
    /// Rows the canary's version scored.
    pub canary: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.ok += other.ok;
        self.invalid += other.invalid;
        self.no_segment += other.no_segment;
        self.unknown_customer += other.unknown_customer;
        self.canary += other.canary;
    }
}

/// What every window is scored with.
#[derive(Clone, Copy)]
pub(super) struct Scorer<'s> {
    pub snapshot: &'s Snapshot,
    /// The canary, if one is set, and its version.
    pub canary: Option<(&'s CanaryRecord, &'s Snapshot)>,
    /// The values of the result columns, from the snapshot.
    pub dictionaries: &'s Dictionaries<'s>,
    /// Seconds since the epoch: recency is measured from it, later times are refused.
    pub now: i64,
    /// Whether the list's strings are CSV cells (JSON scalars without quotes).
    pub cells: bool,
    /// Where rows by id are looked up; without it, they miss their fields.
    pub store: Option<&'s CustomerStore>,
}

impl<'s> Scorer<'s> {
    /// The results of `window`'s rows.
    pub(super) fn score(
        &self,
        window: &DataFrame,
        errors: Errors<'_>,
    ) -> Result<Results, ScoreError> {
        let columns =
            RequestFields::try_from_fn(|name| FieldColumn::read(window, name, self.cells))
                .map_err(|e| errors.read(e))?;
        let cells = columns
            .as_ref()
            .try_map(FieldColumn::cells)
            .map_err(|e| errors.read(e))?;
        let rows = window.height();
        // With a store, the rows by id (each request is built once here, the others never
        // again) and their customers, looked up together.
        let mut by_id = vec![false; if self.store.is_some() { rows } else { 0 }];
        let profiles = match self.store {
            Some(store) => {
                let mut ids = Vec::new();
                for (i, flag) in by_id.iter_mut().enumerate() {
                    let request = VoucherRequest::from(cells.map(|c| c.json(i)));
                    *flag = request.is_by_id();
                    ids.extend(request.lookup_id());
                }
                store.profiles(ids)?
            }
            None => Profiles::no_store(),
        };
        let mut results = Results::with_capacity(rows);
        let mut live = FastPath::new(self.snapshot, self.now);
        let mut canary = self
            .canary
            .map(|(record, snapshot)| (record, FastPath::new(snapshot, self.now)));
        for i in 0..rows {
            let (fast, arm) = match &mut canary {
                Some((record, fast)) if in_canary(record, &cells, i) => (fast, Arm::Canary),
                _ => (&mut live, Arm::Live),
            };
            if by_id.get(i) == Some(&true) {
                let request = VoucherRequest::from(cells.map(|c| c.json(i)));
                let scored = score::score_with(&request, &profiles, fast.snapshot, self.now);
                results.push(self.dictionaries, scored, arm);
                continue;
            }
            match fast.answer(&cells, i) {
                Fast::Voucher(entry) => results.answer(self.dictionaries, entry, arm),
                Fast::Uncovered(message) => results.uncovered(message, arm),
                Fast::Core => {
                    let request = VoucherRequest::from(cells.map(|c| c.json(i)));
                    let scored = score::score(&request, fast.snapshot, self.now);
                    results.push(self.dictionaries, scored, arm);
                }
            }
        }
        Ok(results)
    }
}

/// Which version scores a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arm {
    Live,
    Canary,
}

/// Whether row `i`'s customer is the canary's: the API's rule, on the request's `customer_id`.
fn in_canary(record: &CanaryRecord, cells: &RequestFields<Cells<'_>>, i: usize) -> bool {
    let request = VoucherRequest {
        customer_id: cells.customer_id.json(i),
        ..VoucherRequest::default()
    };
    record.answers(&request)
}

/// What the fast path made of a row.
enum Fast<'s, 'f> {
    /// Valid, and this entry's segment covers it.
    Voucher(&'s Entry),
    /// Valid, but no segment covers it: the core's message.
    Uncovered(&'f str),
    /// Anything else: for the core to score.
    Core,
}

/// The answers of rows that pass every check, with checks of repeated texts remembered.
struct FastPath<'s> {
    snapshot: &'s Snapshot,
    now: i64,
    countries: Memo<Option<CountrySegments<'s>>>,
    segment_types: Memo<Option<SegmentType>>,
    last_orders: Memo<Option<i64>>,
    first_orders: Memo<Option<i64>>,
    /// The core's message for a valid query no segment covers, by query.
    uncovered: HashMap<(&'s str, SegmentType, i64), Option<String>, foldhash::fast::RandomState>,
}

impl<'s> FastPath<'s> {
    fn new(snapshot: &'s Snapshot, now: i64) -> Self {
        FastPath {
            snapshot,
            now,
            countries: Memo::default(),
            segment_types: Memo::default(),
            last_orders: Memo::default(),
            first_orders: Memo::default(),
            uncovered: HashMap::default(),
        }
    }

    /// The answer to row `i`.
    fn answer(&mut self, c: &RequestFields<Cells<'_>>, i: usize) -> Fast<'s, '_> {
        let Some(query) = self.query(c, i) else {
            return Fast::Core;
        };
        if let Some(entry) = query.country.covering(query.segment_type, query.value) {
            return Fast::Voucher(entry);
        }
        let snapshot = self.snapshot;
        let key = (query.country.name(), query.segment_type, query.value);
        let message = self.uncovered.entry(key).or_insert_with(|| {
            snapshot
                .find_in(query.country, query.segment_type, query.value)
                .err()
                .map(|none| none.message)
        });
        match message {
            Some(message) => Fast::Uncovered(message),
            None => Fast::Core,
        }
    }

    /// What row `i` looks up, when it passes every check.
    fn query(&mut self, c: &RequestFields<Cells<'_>>, i: usize) -> Option<Query<'s>> {
        let (snapshot, now) = (self.snapshot, self.now);
        fields::customer_id(&c.customer_id.json(i)).ok()?;
        let country = self.countries.get(c.country_code.text_key(i), || {
            fields::country_code(&c.country_code.json(i), snapshot).ok()
        })?;
        let last = order_time(&mut self.last_orders, &c.last_order_ts, i, now)?;
        let first = order_time(&mut self.first_orders, &c.first_order_ts, i, now)?;
        fields::first_order_ts(first, Some(last)).ok()?;
        let total_orders = fields::total_orders(&c.total_orders.json(i)).ok()?;
        let segment_type = self.segment_types.get(c.segment_name.text_key(i), || {
            fields::segment_name(&c.segment_name.json(i), snapshot).ok()
        })?;
        Some(Query::new(country, segment_type, total_orders, last, now))
    }
}

/// Row `i` as an accepted order time, by the typed shortcut or the core's check of its text.
fn order_time(memo: &mut Memo<Option<i64>>, cells: &Cells<'_>, i: usize, now: i64) -> Option<i64> {
    match cells {
        Cells::Date(_) | Cells::Datetime { .. } => cells.typed_time(i, now),
        _ => memo.get(cells.text_key(i), || {
            fields::order_time(&cells.json(i), now).ok()
        }),
    }
}

/// Checks remembered by the key of their text (see [`Cells::text_key`]) within a window,
/// while that pays: after [`Memo::TRIAL`] lookups that mostly missed (texts that rarely
/// repeat, such as times to the second), checks are computed every time.
struct Memo<T> {
    known: HashMap<u128, T, foldhash::fast::RandomState>,
    lookups: u32,
    hits: u32,
    off: bool,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            known: HashMap::default(),
            lookups: 0,
            hits: 0,
            off: false,
        }
    }
}

impl<T: Copy> Memo<T> {
    const TRIAL: u32 = 4096;

    fn get(&mut self, key: Option<u128>, check: impl FnOnce() -> T) -> T {
        let Some(key) = key.filter(|_| !self.off) else {
            return check();
        };
        self.lookups += 1;
        if let Some(known) = self.known.get(&key) {
            self.hits += 1;
            return *known;
        }
        if self.lookups == Self::TRIAL && self.hits < Self::TRIAL / 2 {
            self.off = true;
            self.known = HashMap::default();
            return check();
        }
        let value = check();
        self.known.insert(key, value);
        value
    }
}
