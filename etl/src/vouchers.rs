//! The choice of amount: per (country, segment type, segment), the most used one.

use std::cmp::Reverse;

use voucher_shared::table::VoucherRow;

use crate::clean::{CountOverflow, Tally, add_rows};

/// One table row per segment with kept rows: the amount with the most rows, the smaller
/// amount on a tie. Rows come out ordered by country, segment type and lower bound (the
/// tally's order). A segment whose rows the table cannot count is an error, not a row left
/// out.
pub fn choose(tally: &Tally) -> Result<Vec<VoucherRow>, CountOverflow> {
    let mut rows = Vec::with_capacity(tally.segments.len());
    for ((country, segment_type, _), tallied) in &tally.segments {
        let Some((&voucher_amount, &occurrences)) = tallied
            .amounts
            .iter()
            .max_by_key(|(amount, count)| (**count, Reverse(**amount)))
        else {
            continue;
        };
        let segment_rows = tallied
            .amounts
            .values()
            .try_fold(0, |sum, n| add_rows(sum, *n))?;
        let segment = &tallied.segment;
        rows.push(VoucherRow {
            country_code: country.clone(),
            segment_name: *segment_type,
            segment: segment.label.clone(),
            lower: segment.lower,
            upper: segment.upper,
            voucher_amount,
            occurrences: i64::try_from(occurrences).map_err(|_| CountOverflow)?,
            segment_rows: i64::try_from(segment_rows).map_err(|_| CountOverflow)?,
        });
    }
    Ok(rows)
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
        let rows = choose(&t).expect("counts fit");
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
        let rows = choose(&t).expect("counts fit");
        assert_eq!((rows[0].voucher_amount, rows[0].occurrences), (2640, 6));
        assert_eq!((rows[0].lower, rows[0].upper), (181, None));
    }

    #[test]
    fn counts_near_the_limit_are_kept_and_beyond_it_refused() {
        let max = crate::clean::MAX_ROWS;
        let t = tally(&[(
            "Peru",
            SegmentType::Frequent,
            "0-4",
            &[(2640, max - 1), (3520, 1)],
        )]);
        let rows = choose(&t).expect("counts fit");
        assert_eq!(
            (rows[0].occurrences, rows[0].segment_rows),
            (i64::MAX - 1, i64::MAX)
        );
        let t = tally(&[(
            "Peru",
            SegmentType::Frequent,
            "0-4",
            &[(2640, max), (3520, 1)],
        )]);
        assert_eq!(choose(&t), Err(CountOverflow));
        let t = tally(&[("Peru", SegmentType::Frequent, "0-4", &[(2640, max + 1)])]);
        assert_eq!(choose(&t), Err(CountOverflow));
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
            .expect("counts fit")
            .into_iter()
            .map(|r| format!("{} {}", r.country_code, r.segment))
            .collect();
        assert_eq!(
            labels,
            ["Chile 30-60", "Peru 0-4", "Peru 5-13", "Peru 14-37"]
        );
    }
}
