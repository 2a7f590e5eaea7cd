//! The choice of amount: per (country, segment type, segment), the most used one.

use std::cmp::Reverse;

use voucher_shared::table::VoucherRow;

use crate::clean::Tally;

/// One table row per segment with kept rows: the amount with the most rows, the smaller
/// amount on a tie. Rows come out ordered by country, segment type and lower bound (the
/// tally's order).
pub fn choose(tally: &Tally) -> Vec<VoucherRow> {
    tally
        .segments
        .iter()
        .filter_map(|((country, segment_type, _), tallied)| {
            let (&voucher_amount, &occurrences) = tallied
                .amounts
                .iter()
                .max_by_key(|(amount, count)| (**count, Reverse(**amount)))?;
            let segment = &tallied.segment;
            Some(VoucherRow {
                country_code: country.clone(),
                segment_name: *segment_type,
                segment: segment.label.clone(),
                lower: segment.lower,
                upper: segment.upper,
                voucher_amount,
                occurrences: i64::try_from(occurrences).ok()?,
                segment_rows: i64::try_from(tallied.amounts.values().sum::<u64>()).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::SegmentTally;
    use voucher_shared::segments::{SegmentSet, SegmentType};

    /// (country, segment type, label, [(amount, rows)]).
    type Entry<'a> = (&'a str, SegmentType, &'a str, &'a [(i64, u64)]);

    fn tally(entries: &[Entry<'_>]) -> Tally {
        let segments = SegmentSet::builtin();
        let mut t = Tally::default();
        for (country, st, label, amounts) in entries {
            let list = segments.get(*st).expect("configured type");
            let index = list
                .iter()
                .position(|s| s.label == *label)
                .expect("known label");
            t.segments.insert(
                (country.to_string(), *st, index),
                SegmentTally {
                    segment: list[index].clone(),
                    amounts: amounts.iter().copied().collect(),
                },
            );
        }
        t
    }

    #[test]
    fn the_most_used_amount_wins() {
        let t = tally(&[(
            "Peru",
            SegmentType::Frequent,
            "14-37",
            &[(2640, 3), (3520, 7), (4400, 5)],
        )]);
        let rows = choose(&t);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.voucher_amount, r.occurrences, r.segment_rows),
            (3520, 7, 15)
        );
        assert_eq!((r.lower, r.upper), (14, Some(37)));
    }

    #[test]
    fn a_tie_goes_to_the_smaller_amount() {
        let t = tally(&[(
            "Peru",
            SegmentType::Recency,
            "180+",
            &[(4400, 6), (2640, 6), (3520, 2)],
        )]);
        let rows = choose(&t);
        assert_eq!((rows[0].voucher_amount, rows[0].occurrences), (2640, 6));
        assert_eq!((rows[0].lower, rows[0].upper), (181, None));
    }

    #[test]
    fn rows_are_ordered_by_country_type_and_bound() {
        let t = tally(&[
            ("Peru", SegmentType::Frequent, "5-13", &[(1, 1)]),
            ("Chile", SegmentType::Recency, "30-60", &[(1, 1)]),
            ("Peru", SegmentType::Frequent, "14-37", &[(1, 1)]),
            ("Peru", SegmentType::Frequent, "0-4", &[(1, 1)]),
        ]);
        let labels: Vec<_> = choose(&t)
            .into_iter()
            .map(|r| format!("{} {}", r.country_code, r.segment))
            .collect();
        assert_eq!(
            labels,
            ["Chile 30-60", "Peru 0-4", "Peru 5-13", "Peru 14-37"]
        );
    }
}
