//! The profile of a new version ([`Profile`]), from the run's tally: what the gate and diffs
//! compare, so that they never re-read history.

use std::cmp::Reverse;

use voucher_shared::manifest::{DropShares, Profile, SegmentProfile};
use voucher_shared::table::VoucherTable;
use voucher_shared::versions::sha256_hex;

use crate::clean::Tally;

/// The profile of `table`, chosen from `tally`, whose Parquet bytes are `table_bytes`.
pub fn profile(tally: &Tally, table: &VoucherTable, table_bytes: &[u8]) -> Profile {
    let segments = tally
        .segments
        .iter()
        .filter_map(|((country, segment_type, _), t)| {
            // The chosen amount is the table's (see `vouchers::choose`); the runner-up is the
            // most used of the others.
            let row = table.rows().iter().find(|r| {
                &r.country_code == country
                    && r.segment_name == *segment_type
                    && r.segment == t.segment.label
            })?;
            let runner_up = t
                .amounts
                .iter()
                .filter(|(amount, _)| **amount != row.voucher_amount)
                .map(|(amount, n)| (*n, Reverse(*amount)))
                .max()
                .map_or(0, |(n, _)| n);
            Some(SegmentProfile {
                country_code: country.clone(),
                segment_name: *segment_type,
                segment: t.segment.label.clone(),
                rows: t.amounts.values().sum(),
                amount: row.voucher_amount,
                amount_rows: t.amounts.get(&row.voucher_amount).copied().unwrap_or(0),
                runner_up_rows: Some(runner_up),
            })
        })
        .collect();
    Profile {
        rows_kept_by_country: tally.rows_kept_by_country.clone(),
        segments,
        drop_share: DropShares::of(&tally.dropped, tally.rows_kept),
        duplicate_rows: tally.duplicates.duplicate_rows(),
        table_sha256: Some(sha256_hex(table_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::SegmentTally;
    use crate::vouchers;
    use voucher_shared::rules::DropRule;
    use voucher_shared::segments::{SegmentSet, SegmentType};

    #[test]
    fn the_profile_names_the_winner_and_how_close_the_runner_up_came() {
        let segments = SegmentSet::builtin();
        let frequent = segments.get(SegmentType::Frequent).expect("frequent");
        let mut tally = Tally::default();
        tally.segments.insert(
            ("Peru".into(), SegmentType::Frequent, 0),
            SegmentTally {
                segment: frequent[0].clone(),
                amounts: [(2640, 7), (3520, 5), (4400, 1)].into_iter().collect(),
            },
        );
        tally.segments.insert(
            ("Peru".into(), SegmentType::Frequent, 1),
            SegmentTally {
                segment: frequent[1].clone(),
                amounts: [(1760, 4)].into_iter().collect(),
            },
        );
        tally.rows_kept = 17;
        tally.rows_kept_by_country.insert("Peru".into(), 17);
        tally.dropped[DropRule::TotalOrders] = 3;
        let table =
            VoucherTable::new(vouchers::choose(&tally).expect("counts fit")).expect("table");

        let p = profile(&tally, &table, b"bytes");
        assert_eq!(p.rows_kept_by_country["Peru"], 17);
        assert_eq!(p.drop_share.get(DropRule::TotalOrders), 0.15);
        let first = p
            .segment("Peru", SegmentType::Frequent, &frequent[0].label)
            .expect("segment");
        assert_eq!(
            (
                first.rows,
                first.amount,
                first.amount_rows,
                first.runner_up_rows
            ),
            (13, 2640, 7, Some(5))
        );
        let alone = p
            .segment("Peru", SegmentType::Frequent, &frequent[1].label)
            .expect("segment");
        assert_eq!((alone.amount, alone.runner_up_rows), (1760, Some(0)));
        assert_eq!(
            p.table_sha256.as_deref(),
            Some(sha256_hex(b"bytes").as_str())
        );
        assert_eq!(p.duplicate_rows, Some(0), "no row hashed twice");
        tally.duplicates = crate::duplicates::Duplicates::unknown();
        assert_eq!(profile(&tally, &table, b"bytes").duplicate_rows, None);
    }
}
