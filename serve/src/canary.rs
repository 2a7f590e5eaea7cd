//! A canary as served: a second loaded version that answers the customers of its buckets
//! ([`voucher_shared::canary`]), and the shadow comparison of every request against the
//! version that did not answer it.
//!
//! While a canary is loaded, [`crate::live::Served::score`] answers each request from the
//! version its customer's bucket picks and also scores it against the other one. The two
//! answers are the same when both give the same voucher in the same segment, or both refuse in
//! the same way. Requests that neither version answers with a voucher (invalid, or uncovered in
//! both) are not compared: their labels would come from unchecked input.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use voucher_shared::canary::{Bucket, CanaryRecord};
use voucher_shared::score::{Outcome, Scored, VoucherRequest};
use voucher_shared::segments::SegmentType;

use crate::live::LiveTable;
use crate::metrics::{Arm, CanaryMetrics};

/// Differing requests logged (at debug level) at the start of each canary; after these, one
/// in [`SAMPLE_EVERY`].
const SAMPLE_FIRST: u64 = 20;
const SAMPLE_EVERY: u64 = 1000;

/// The canary's version, loaded, with its record and what it has answered so far.
#[derive(Debug)]
pub struct Canary {
    table: Arc<LiveTable>,
    record: CanaryRecord,
    tally: Tally,
    metrics: CanaryMetrics,
}

/// What a canary has answered since this process loaded it.
#[derive(Debug, Default)]
struct Tally {
    /// Answers by [`Arm`].
    answers: [AtomicU64; 2],
    /// Per segment type (in [`SegmentType::ALL`] order): requests compared, and those whose two
    /// answers differ.
    compared: [AtomicU64; SegmentType::ALL.len()],
    different: [AtomicU64; SegmentType::ALL.len()],
}

/// A snapshot of [`Canary`]'s counts, for the API and the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryCounts {
    /// Requests answered by the live version.
    pub live_answers: u64,
    /// Requests answered by the canary's version.
    pub canary_answers: u64,
    /// Per segment type: requests scored by both versions, and those answered differently.
    pub by_segment_type: Vec<Compared>,
}

/// The shadow comparison of one segment type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    pub segment_name: SegmentType,
    pub compared: u64,
    pub different: u64,
    /// `different / compared`, or `None` before any request.
    pub different_share: Option<f64>,
}

impl Canary {
    pub fn new(table: Arc<LiveTable>, record: CanaryRecord, metrics: CanaryMetrics) -> Canary {
        Canary {
            table,
            record,
            tally: Tally::default(),
            metrics,
        }
    }

    /// The canary's version, loaded.
    pub fn table(&self) -> &Arc<LiveTable> {
        &self.table
    }

    pub fn record(&self) -> &CanaryRecord {
        &self.record
    }

    /// Whether the canary answers this request: the one rule, shared with every other scorer.
    pub(crate) fn answers(&self, request: &VoucherRequest<'_>) -> bool {
        self.record.answers(request)
    }

    /// Counts one answer and its shadow: `answered` came from the version `arm` picked,
    /// `shadow` from the other one.
    pub(crate) fn observe(
        &self,
        arm: Arm,
        request: &VoucherRequest<'_>,
        answered: &Scored<'_>,
        shadow: &Scored<'_>,
    ) {
        self.tally.answers[arm as usize].fetch_add(1, Ordering::Relaxed);
        self.metrics.answered(arm);
        let Some(labels) = answered.as_ref().ok().or(shadow.as_ref().ok()) else {
            return;
        };
        let Ok(segment_type) = labels.segment_name.parse::<SegmentType>() else {
            return;
        };
        let same = match (answered, shadow) {
            (Ok(a), Ok(b)) => a.voucher == b.voucher && a.segment == b.segment,
            _ => Outcome::of(answered) == Outcome::of(shadow),
        };
        let slot = SegmentType::ALL
            .iter()
            .position(|t| *t == segment_type)
            .unwrap_or(0);
        self.tally.compared[slot].fetch_add(1, Ordering::Relaxed);
        self.metrics
            .compared(labels.country_code, labels.segment_name, same);
        if same {
            return;
        }
        let n = self.tally.different[slot].fetch_add(1, Ordering::Relaxed);
        if n < SAMPLE_FIRST || (n + 1).is_multiple_of(SAMPLE_EVERY) {
            self.log_difference(arm, request, answered, shadow, n + 1);
        }
    }

    fn log_difference(
        &self,
        arm: Arm,
        request: &VoucherRequest<'_>,
        answered: &Scored<'_>,
        shadow: &Scored<'_>,
        count: u64,
    ) {
        let (by, other) = match arm {
            Arm::Canary => ("canary", "live"),
            Arm::Live => ("live", "canary"),
        };
        let customer: String = request
            .customer_key()
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect();
        log::debug!(
            "shadow difference #{count} of canary {}: customer {customer} (bucket {}) answered by the {by} version: {}; the {other} version would answer: {}",
            self.record.version,
            Bucket::of(&customer).value(),
            describe(answered),
            describe(shadow)
        );
    }

    /// What this canary has answered so far in this process.
    pub fn counts(&self) -> CanaryCounts {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        CanaryCounts {
            live_answers: load(&self.tally.answers[Arm::Live as usize]),
            canary_answers: load(&self.tally.answers[Arm::Canary as usize]),
            by_segment_type: SegmentType::ALL
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let (compared, different) = (
                        load(&self.tally.compared[i]),
                        load(&self.tally.different[i]),
                    );
                    Compared {
                        segment_name: *t,
                        compared,
                        different,
                        different_share: (compared > 0).then(|| different as f64 / compared as f64),
                    }
                })
                .collect(),
        }
    }
}

fn describe(scored: &Scored<'_>) -> String {
    match scored {
        Ok(a) => format!(
            "{} {} {} -> {} (version {})",
            a.country_code, a.segment_name, a.segment, a.voucher, a.version
        ),
        Err(refusal) => Outcome::of_refusal(refusal).label().to_owned(),
    }
}
