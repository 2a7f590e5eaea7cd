//! A small voucher table for tests of both programs (feature `fixtures`): the built-in
//! segments for Peru, and only the frequent segment `0-4` for Latvia.

use crate::publish::Version;
use crate::score::Snapshot;
use crate::segments::{SegmentSet, SegmentType};
use crate::table::{VoucherRow, VoucherTable};

/// The version name of [`contract_snapshot`].
pub const CONTRACT_VERSION: &str = "20261123T101000Z";

/// [`contract_rows`] with base 2640, as a table.
pub fn contract_table() -> VoucherTable {
    VoucherTable::new(contract_rows(2640)).expect("the contract rows make a valid table")
}

/// [`contract_table`] as version [`CONTRACT_VERSION`], without a manifest.
pub fn contract_snapshot() -> Snapshot {
    let version = Version::parse(CONTRACT_VERSION).expect("a valid version name");
    Snapshot::new(version, &contract_table(), None)
}

/// Peru's `frequent_segment` `14-37` pays `base` (the contract's example answers 2640 with
/// `base` 2640), `0-4` pays `base - 880` and `5-13` `base + 880`; the recency segments pay
/// `base + 1` to `base + 5` in bound order; Latvia's `0-4` pays 1000.
pub fn contract_rows(base: i64) -> Vec<VoucherRow> {
    let row =
        |country: &str, segment_type, segment: &crate::segments::Segment, amount| VoucherRow {
            country_code: country.into(),
            segment_name: segment_type,
            segment: segment.label.clone(),
            lower: segment.lower,
            upper: segment.upper,
            voucher_amount: amount,
            occurrences: 4,
            segment_rows: 10,
        };
    let segments = SegmentSet::builtin();
    let frequent = segments.get(SegmentType::Frequent).unwrap_or(&[]);
    let recency = segments.get(SegmentType::Recency).unwrap_or(&[]);
    let mut rows = Vec::new();
    for (segment, amount) in frequent.iter().zip([base - 880, base + 880, base]) {
        rows.push(row("Peru", SegmentType::Frequent, segment, amount));
    }
    for (segment, amount) in recency.iter().zip(1..) {
        rows.push(row("Peru", SegmentType::Recency, segment, base + amount));
    }
    if let Some(first) = frequent.first() {
        rows.push(row("Latvia", SegmentType::Frequent, first, 1000));
    }
    rows
}
