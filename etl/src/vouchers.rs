//! The choice of amount: per (country, segment type, segment), the most used one.

use std::cmp::Reverse;

use voucher_shared::segments::SegmentSet;
use voucher_shared::table::VoucherRow;

use crate::clean::Tally;

/// One table row per segment with kept rows: the amount with the most rows, the smaller
/// amount on a tie. Rows come out ordered by country, segment type and lower bound.
pub fn choose(tally: &Tally, segments: &SegmentSet) -> Vec<VoucherRow> {
    let mut rows: Vec<VoucherRow> = tally
        .amounts
        .iter()
        .filter_map(|((country, segment_type, label), amounts)| {
            let segment = segments
                .get(*segment_type)?
                .iter()
                .find(|s| &s.label == label)?;
            let (&voucher_amount, &occurrences) = amounts
                .iter()
                .max_by_key(|(amount, count)| (**count, Reverse(**amount)))?;
            Some(VoucherRow {
                country_code: country.clone(),
                segment_name: *segment_type,
                segment: label.clone(),
                lower: segment.lower,
                upper: segment.upper,
                voucher_amount,
                occurrences: i64::try_from(occurrences).ok()?,
                segment_rows: i64::try_from(amounts.values().sum::<u64>()).ok()?,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.country_code, a.segment_name, a.lower).cmp(&(&b.country_code, b.segment_name, b.lower))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_shared::segments::SegmentType;

    fn segments() -> SegmentSet {
        SegmentSet::from_toml(include_str!("../../data/segments.toml")).expect("segments")
    }

    /// (country, segment type, label, [(amount, rows)]).
    type Entry<'a> = (&'a str, SegmentType, &'a str, &'a [(i64, u64)]);

    fn tally(entries: &[Entry]) -> Tally {
        let mut t = Tally::default();
        for (country, st, label, amounts) in entries {
            t.amounts.insert(
                (country.to_string(), *st, label.to_string()),
                amounts.iter().copied().collect(),
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
        let rows = choose(&t, &segments());
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
        let rows = choose(&t, &segments());
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
        let labels: Vec<_> = choose(&t, &segments())
            .into_iter()
            .map(|r| format!("{} {}", r.country_code, r.segment))
            .collect();
        assert_eq!(
            labels,
            ["Chile 30-60", "Peru 0-4", "Peru 5-13", "Peru 14-37"]
        );
    }
}
