//! The result columns of a window: status, voucher, segment, detail and table_version.
//!
//! All but `detail` take few values, all known from the table before the first row (its
//! statuses, amounts, labels and version), so each row keeps only a key into those values.
//! Written as Parquet, the keys are the column's dictionary-encoded pages against a dictionary
//! that every window shares; as a polars frame, they are looked up.

use std::collections::HashMap;

use polars::prelude::*;
use polars_arrow::array::{Array, DictionaryArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::bitmap::MutableBitmap;
use polars_arrow::datatypes::ArrowDataType;
use voucher_shared::score::{Entry, Outcome, Refusal, Scored, Snapshot, ValidationError};
use voucher_shared::segments::SegmentType;

use super::window::{Arm, Counts};
use super::{DETAIL, SEGMENT, STATUS, TABLE_VERSION, VOUCHER};

/// The outcomes a row can have; a row's status key is its place here, and the `status` column
/// holds the HTTP status [`Outcome::http_status`] gives it (the single route's).
const OUTCOMES: [Outcome; 5] = [
    Outcome::Ok,
    Outcome::NoSegment,
    Outcome::Invalid,
    Outcome::UnknownCustomer,
    Outcome::CustomersUnavailable,
];
const OK: u32 = 0;
const NO_SEGMENT: u32 = 1;
const INVALID: u32 = 2;
const UNKNOWN_CUSTOMER: u32 = 3;
const CUSTOMERS_UNAVAILABLE: u32 = 4;

/// The `status` column's values, by status key.
fn statuses() -> [i32; 5] {
    OUTCOMES.map(|outcome| i32::from(outcome.http_status()))
}

/// A row without a voucher (and so without a segment).
const NONE: u32 = u32::MAX;

/// The values of the keyed columns, from one table version.
pub(super) struct Dictionaries<'s> {
    labels: Vec<&'s str>,
    amounts: Vec<i64>,
    /// The live version, then the canary's if one is set (a row's version key is its arm).
    versions: Vec<&'s str>,
    /// An entry's label and amount keys, by the entry's address in the snapshot.
    by_entry: HashMap<usize, (u32, u32), foldhash::fast::RandomState>,
}

impl<'s> Dictionaries<'s> {
    pub(super) fn new(snapshot: &'s Snapshot, canary: Option<&'s Snapshot>) -> Self {
        let mut labels: Vec<&'s str> = Vec::new();
        let mut amounts: Vec<i64> = Vec::new();
        let mut by_entry = HashMap::default();
        fn key<T: PartialEq>(values: &mut Vec<T>, value: T) -> u32 {
            match values.iter().position(|v| *v == value) {
                Some(at) => at as u32,
                None => {
                    values.push(value);
                    values.len() as u32 - 1
                }
            }
        }
        let snapshots: Vec<&'s Snapshot> = std::iter::once(snapshot).chain(canary).collect();
        for snapshot in &snapshots {
            for country in snapshot.countries() {
                let Some(segments) = snapshot.country(country) else {
                    continue;
                };
                for segment_type in SegmentType::ALL {
                    for entry in segments.segments(segment_type) {
                        let keys = (
                            key(&mut labels, entry.segment.label.as_str()),
                            key(&mut amounts, entry.voucher),
                        );
                        by_entry.insert(address(entry), keys);
                    }
                }
            }
        }
        Dictionaries {
            labels,
            amounts,
            versions: snapshots.iter().map(|s| s.version_name()).collect(),
            by_entry,
        }
    }

    fn keys(&self, entry: &Entry) -> (u32, u32) {
        self.by_entry
            .get(&address(entry))
            .copied()
            .unwrap_or((NONE, NONE))
    }

    /// The keys of an answer the core gave (a row the fast path left to it): by value.
    fn keys_of(&self, label: &str, amount: i64) -> (u32, u32) {
        let label = self.labels.iter().position(|l| *l == label);
        let amount = self.amounts.iter().position(|a| *a == amount);
        match (label, amount) {
            (Some(label), Some(amount)) => (label as u32, amount as u32),
            _ => (NONE, NONE),
        }
    }
}

fn address(entry: &Entry) -> usize {
    std::ptr::from_ref(entry) as usize
}

/// The results of a window, built row by row.
pub(super) struct Results {
    status: Vec<u32>,
    label: Vec<u32>,
    amount: Vec<u32>,
    /// The version key of each row (see [`Dictionaries`]).
    version: Vec<u32>,
    detail: StringChunkedBuilder,
    pub counts: Counts,
}

impl Results {
    pub(super) fn with_capacity(rows: usize) -> Self {
        Results {
            status: Vec::with_capacity(rows),
            label: Vec::with_capacity(rows),
            amount: Vec::with_capacity(rows),
            version: Vec::with_capacity(rows),
            detail: StringChunkedBuilder::new(DETAIL.into(), rows),
            counts: Counts::default(),
        }
    }

    fn push_keys(
        &mut self,
        status: u32,
        (label, amount): (u32, u32),
        detail: Option<&str>,
        arm: Arm,
    ) {
        self.counts.canary += u64::from(arm == Arm::Canary);
        self.version.push(match arm {
            Arm::Live => 0,
            Arm::Canary => 1,
        });
        self.status.push(status);
        self.label.push(label);
        self.amount.push(amount);
        self.detail.append_option(detail);
    }

    /// A row the table answers with `entry`.
    pub(super) fn answer(&mut self, dictionaries: &Dictionaries<'_>, entry: &Entry, arm: Arm) {
        self.counts.ok += 1;
        self.push_keys(OK, dictionaries.keys(entry), None, arm);
    }

    /// A valid row no segment covers, with the core's message.
    pub(super) fn uncovered(&mut self, message: &str, arm: Arm) {
        self.counts.no_segment += 1;
        self.push_keys(NO_SEGMENT, (NONE, NONE), Some(message), arm);
    }

    /// A row as the core scored it, recorded as the HTTP API answers it (see [`Outcome`]): the
    /// voucher, the `detail` list of bad fields (as JSON), or the message of no segment.
    pub(super) fn push(&mut self, dictionaries: &Dictionaries<'_>, scored: Scored<'_>, arm: Arm) {
        match scored {
            Ok(answer) => {
                self.counts.ok += 1;
                let keys = dictionaries.keys_of(answer.segment, answer.voucher);
                self.push_keys(OK, keys, None, arm);
            }
            Err(Refusal::Invalid(errors)) => {
                self.counts.invalid += 1;
                self.push_keys(INVALID, (NONE, NONE), Some(&detail_json(&errors)), arm);
            }
            Err(Refusal::NoSegment(no_segment)) => self.uncovered(&no_segment.message, arm),
            Err(refusal @ Refusal::UnknownCustomer(_)) => {
                self.counts.unknown_customer += 1;
                self.push_keys(
                    UNKNOWN_CUSTOMER,
                    (NONE, NONE),
                    Some(&refusal.message()),
                    arm,
                );
            }
            // Never from a store that answered: every id of a window is answered, or the
            // lookup fails the run. Recorded as the API would, should that ever change.
            Err(refusal @ Refusal::CustomersUnavailable(_)) => {
                let detail = refusal.message();
                self.push_keys(CUSTOMERS_UNAVAILABLE, (NONE, NONE), Some(&detail), arm);
            }
        }
    }

    /// The result columns as polars columns.
    pub(super) fn into_columns(self, dictionaries: &Dictionaries<'_>) -> [Column; 5] {
        let lookup = |keys: &[u32], values: &[i64]| -> Vec<Option<i64>> {
            keys.iter()
                .map(|k| values.get(*k as usize).copied())
                .collect()
        };
        let texts = |keys: &[u32], values: &[&'_ str]| -> Vec<Option<String>> {
            keys.iter()
                .map(|k| values.get(*k as usize).map(|v| (*v).to_owned()))
                .collect()
        };
        let statuses = statuses();
        let status: Vec<i32> = self.status.iter().map(|k| statuses[*k as usize]).collect();
        [
            Column::new(STATUS.into(), status),
            Column::new(VOUCHER.into(), lookup(&self.amount, &dictionaries.amounts)),
            Column::new(SEGMENT.into(), texts(&self.label, &dictionaries.labels)),
            self.detail.finish().into_column(),
            Column::new(
                TABLE_VERSION.into(),
                texts(&self.version, &dictionaries.versions),
            ),
        ]
    }

    /// The result columns as Arrow arrays: dictionary arrays against [`Dictionaries`] for all
    /// but `detail`.
    pub(super) fn into_arrays(
        self,
        dictionaries: &Dictionaries<'_>,
    ) -> PolarsResult<[ArrayRef; 5]> {
        let statuses = PrimitiveArray::from_slice(statuses()).boxed();
        let amounts = PrimitiveArray::from_slice(&dictionaries.amounts).boxed();
        let labels = Utf8ViewArray::from_slice_values(&dictionaries.labels).boxed();
        let versions = Utf8ViewArray::from_slice_values(&dictionaries.versions).boxed();
        let detail = self
            .detail
            .finish()
            .rechunk()
            .downcast_as_array()
            .clone()
            .boxed();
        Ok([
            keyed(self.status, statuses)?,
            keyed(self.amount, amounts)?,
            keyed(self.label, labels)?,
            detail,
            keyed(self.version, versions)?,
        ])
    }
}

/// A dictionary array of `keys` into `values`; [`NONE`] is a null.
fn keyed(mut keys: Vec<u32>, values: Box<dyn Array>) -> PolarsResult<ArrayRef> {
    let mut validity = MutableBitmap::with_capacity(keys.len());
    for key in &mut keys {
        validity.push(*key != NONE);
        if *key == NONE {
            *key = 0;
        }
    }
    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), validity.into());
    Ok(DictionaryArray::try_from_keys(keys, values, false)?.boxed())
}

/// The 422 `detail` list as the API writes it.
fn detail_json(errors: &[ValidationError]) -> String {
    // Serializing strings into memory cannot fail; the fallback keeps the cell readable.
    serde_json::to_string(errors).unwrap_or_else(|e| format!("{errors:?} ({e})"))
}
