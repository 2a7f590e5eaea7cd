//! Checking a tally file before it is merged. A tally comes from outside the run (another
//! machine, a copy an operator made), and one that does not add up would publish a wrong table
//! with exit 0: a group of a segment the tally was not made with, counts that disagree with
//! their totals, counts a table cannot hold.
//!
//! Sums are taken in `u128`, which no list of `u64` counts overflows, and compared with the
//! totals; every total is at most `rows_read`, which is at most [`MAX_ROWS`].

use std::collections::{BTreeMap, BTreeSet};

use voucher_shared::country::{COUNTRY_CODE_RULE, CountryCodeError, check_country_code};
use voucher_shared::numbers::whole_amount;
use voucher_shared::rules::{DropCounts, DropRule};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType, SegmentsError};

use super::{Group, TallyFile};
use crate::clean::{CountOverflow, MAX_ROWS};
use crate::shown::{Bounded, shown};

/// What is wrong with a tally file. Values from the file are shown within bounds.
#[derive(Debug, thiserror::Error)]
pub enum TallyProblem {
    #[error("its segments are not segment definitions")]
    SegmentsJson(#[source] Bounded<serde_json::Error>),
    #[error("its segments are not valid")]
    Segments(#[source] Bounded<SegmentsError>),
    #[error("its country list is empty; it is [\"all\"] or the countries tallied")]
    NoCountries,
    #[error(
        "it names the country {country}, which is not a country code ({why}); a country code is {COUNTRY_CODE_RULE}"
    )]
    Country {
        country: String,
        why: CountryCodeError,
    },
    #[error("it has kept rows of {country}, which is not one of the countries it was made for")]
    OtherCountry { country: String },
    #[error("rows_read is {0}; a count is at most {MAX_ROWS} rows")]
    TooLarge(u64),
    #[error("its counts do not add up: {0}")]
    Totals(String),
    #[error("group {group}: {what}")]
    Group { group: String, what: String },
    #[error("it lists input {input} twice")]
    InputTwice { input: String },
    #[error(
        "input {input} is counted by {other} too; each input is tallied once (a tally copied or made twice?)"
    )]
    InputInTwoTallies { input: String, other: String },
    #[error("its counts and the earlier tallies' cannot be added up")]
    Overflow(#[source] CountOverflow),
}

/// Checks that `file` adds up; returns the segments it was made with.
pub(super) fn check(file: &TallyFile) -> Result<SegmentSet, TallyProblem> {
    let types: BTreeMap<SegmentType, Vec<Segment>> = serde_json::from_value(file.segments.clone())
        .map_err(|e| TallyProblem::SegmentsJson(Bounded(e)))?;
    let segments = SegmentSet::new(types).map_err(|e| TallyProblem::Segments(Bounded(e)))?;
    let listed = countries(file)?;
    totals(file)?;
    inputs(file)?;
    groups(file, &segments, listed.as_ref())?;
    Ok(segments)
}

/// The countries the tally was made for (`None` for all); every country it names is a
/// country code.
fn countries(file: &TallyFile) -> Result<Option<BTreeSet<&str>>, TallyProblem> {
    let valid = |country: &str| {
        check_country_code(country).map_err(|why| TallyProblem::Country {
            country: shown(country),
            why,
        })
    };
    let listed = match file.countries.as_slice() {
        [] => return Err(TallyProblem::NoCountries),
        [all] if all == "all" => None,
        list => {
            for country in list {
                valid(country)?;
            }
            Some(list.iter().map(String::as_str).collect::<BTreeSet<_>>())
        }
    };
    for country in file.rows_kept_by_country.keys() {
        valid(country)?;
        if listed
            .as_ref()
            .is_some_and(|l| !l.contains(country.as_str()))
        {
            return Err(TallyProblem::OtherCountry {
                country: shown(country),
            });
        }
    }
    Ok(listed)
}

fn sum(counts: impl IntoIterator<Item = u64>) -> u128 {
    counts.into_iter().map(u128::from).sum()
}

fn dropped(counts: &DropCounts) -> u128 {
    sum(counts.iter().map(|(_, n)| n))
}

/// Rows read bound every other count: kept and dropped rows are rows read, and the kept rows of
/// the countries are the kept rows.
fn totals(file: &TallyFile) -> Result<(), TallyProblem> {
    if file.rows_read > MAX_ROWS {
        return Err(TallyProblem::TooLarge(file.rows_read));
    }
    let drops = dropped(&file.dropped);
    if u128::from(file.rows_kept) + drops > u128::from(file.rows_read) {
        return Err(TallyProblem::Totals(format!(
            "rows_kept ({}) and the rows dropped ({drops}) are more than rows_read ({})",
            file.rows_kept, file.rows_read
        )));
    }
    // Absent in tallies written before it existed.
    let by_country = sum(file.rows_kept_by_country.values().copied());
    if !file.rows_kept_by_country.is_empty() && by_country != u128::from(file.rows_kept) {
        return Err(TallyProblem::Totals(format!(
            "rows_kept_by_country adds up to {by_country}, not to rows_kept ({})",
            file.rows_kept
        )));
    }
    // Every row of the selected countries is hashed, kept or dropped.
    if let Some(d) = &file.duplicates
        && u128::from(d.rows) != u128::from(file.rows_kept) + drops
    {
        return Err(TallyProblem::Totals(format!(
            "duplicates.rows ({}) is not rows_kept ({}) plus the rows dropped ({drops})",
            d.rows, file.rows_kept
        )));
    }
    Ok(())
}

/// Each input once, each within its rows read, and together they make the tally's totals.
fn inputs(file: &TallyFile) -> Result<(), TallyProblem> {
    let mut seen = BTreeSet::new();
    for input in &file.inputs {
        if !seen.insert((&input.file, &input.query)) {
            return Err(TallyProblem::InputTwice {
                input: shown(&input.file),
            });
        }
        if u128::from(input.rows_kept) + dropped(&input.dropped) > u128::from(input.rows_read) {
            return Err(TallyProblem::Totals(format!(
                "input {}: its rows kept and dropped are more than its rows_read ({})",
                shown(&input.file),
                input.rows_read
            )));
        }
    }
    let read = sum(file.inputs.iter().map(|i| i.rows_read));
    let kept = sum(file.inputs.iter().map(|i| i.rows_kept));
    if (read, kept) != (file.rows_read.into(), file.rows_kept.into()) {
        return Err(TallyProblem::Totals(format!(
            "its inputs' rows_read and rows_kept add up to {read} and {kept}, not to its rows_read ({}) and rows_kept ({})",
            file.rows_read, file.rows_kept
        )));
    }
    for rule in DropRule::ALL {
        let drops = sum(file.inputs.iter().map(|i| i.dropped[rule]));
        if drops != u128::from(file.dropped[rule]) {
            return Err(TallyProblem::Totals(format!(
                "its inputs' `{rule}` drops add up to {drops}, not to its own ({})",
                file.dropped[rule]
            )));
        }
    }
    Ok(())
}

/// Each group is one of the tally's segments, of a country it was made for, listed once, with
/// voucher amounts in order; a country's groups of one type count at most its kept rows.
fn groups(
    file: &TallyFile,
    segments: &SegmentSet,
    listed: Option<&BTreeSet<&str>>,
) -> Result<(), TallyProblem> {
    let mut seen = BTreeSet::new();
    let mut per_type: BTreeMap<(&str, SegmentType), u128> = BTreeMap::new();
    for g in &file.groups {
        let bad = |what: String| TallyProblem::Group {
            group: name(g),
            what,
        };
        if let Err(why) = check_country_code(&g.country) {
            return Err(TallyProblem::Country {
                country: shown(&g.country),
                why,
            });
        }
        if listed.is_some_and(|l| !l.contains(g.country.as_str())) {
            return Err(TallyProblem::OtherCountry {
                country: shown(&g.country),
            });
        }
        match segments.get(g.segment_name).and_then(|l| l.get(g.index)) {
            None => {
                return Err(bad(format!(
                    "the tally's segments have no {} number {}",
                    g.segment_name, g.index
                )));
            }
            Some(s) if *s != g.segment => {
                return Err(bad(format!(
                    "the tally's {} number {} is {s}, not this group's segment",
                    g.segment_name, g.index
                )));
            }
            Some(_) => {}
        }
        if !seen.insert((&g.country, g.segment_name, g.index)) {
            return Err(bad("the group is listed twice".into()));
        }
        *per_type.entry((&g.country, g.segment_name)).or_default() += amounts(g).map_err(bad)?;
    }
    for ((country, segment_type), rows) in per_type {
        let kept = if file.rows_kept_by_country.is_empty() {
            file.rows_kept
        } else {
            file.rows_kept_by_country.get(country).copied().unwrap_or(0)
        };
        if rows > u128::from(kept) {
            return Err(TallyProblem::Totals(format!(
                "its {segment_type} groups of {} count {rows} rows, more than the {kept} rows kept of it",
                shown(country)
            )));
        }
    }
    Ok(())
}

/// A group as an error names it: country, segment type, number and label.
fn name(g: &Group) -> String {
    format!(
        "{} {} number {} ({})",
        shown(&g.country),
        g.segment_name,
        g.index,
        shown(&g.segment.label)
    )
}

/// The rows of a group's amounts: each a voucher amount with rows, in increasing order.
fn amounts(g: &Group) -> Result<u128, String> {
    let mut previous = None;
    for &(amount, rows) in &g.amounts {
        // The table stores amounts as doubles: whole and exact, and > 0.
        if whole_amount(amount as f64) != Some(amount) {
            return Err(format!(
                "{amount} is not a voucher amount (a whole number > 0, at most 2^53)"
            ));
        }
        if previous.is_some_and(|p| p >= amount) {
            return Err(format!(
                "amount {amount} is out of order or listed twice; amounts are listed once each, in increasing order"
            ));
        }
        if rows == 0 {
            return Err(format!("amount {amount} has 0 rows"));
        }
        previous = Some(amount);
    }
    Ok(sum(g.amounts.iter().map(|(_, rows)| *rows)))
}

#[cfg(test)]
mod tests {
    use voucher_shared::manifest::InputFile;

    use super::*;
    use crate::tally::FORMAT;

    /// A tally that adds up: one input of 20 Peru rows, 18 kept (10 in frequent 0-4 at 2640,
    /// 6 in 5-13 at 3520 and 2 at 4400), 2 dropped by `recency`.
    fn good() -> TallyFile {
        let segments = SegmentSet::builtin();
        let frequent = segments.get(SegmentType::Frequent).expect("frequent");
        let mut dropped = DropCounts::default();
        dropped[DropRule::Recency] = 2;
        let group = |index: usize, amounts: Vec<(i64, u64)>| Group {
            country: "Peru".into(),
            segment_name: SegmentType::Frequent,
            index,
            segment: frequent[index].clone(),
            amounts,
        };
        TallyFile {
            format: FORMAT.into(),
            countries: vec!["Peru".into()],
            segments: serde_json::to_value(&segments).expect("json"),
            rows_read: 20,
            rows_kept: 18,
            rows_kept_by_country: [("Peru".to_owned(), 18)].into_iter().collect(),
            dropped,
            inputs: vec![InputFile {
                file: "a.parquet".into(),
                query: None,
                rows_read: 20,
                rows_kept: 18,
                dropped,
            }],
            groups: vec![
                group(0, vec![(2640, 10)]),
                group(1, vec![(3520, 6), (4400, 2)]),
            ],
            duplicates: None,
        }
    }

    /// The message of the problem `change` makes.
    fn problem(change: impl FnOnce(&mut TallyFile)) -> String {
        let mut file = good();
        change(&mut file);
        let err = check(&file).expect_err("a problem");
        voucher_shared::errors::Chain(&err).to_string()
    }

    #[test]
    fn a_tally_that_adds_up_passes_with_its_segments() {
        assert_eq!(check(&good()).expect("adds up"), SegmentSet::builtin());
        let mut old = good();
        // Tallies written before rows_kept_by_country existed.
        old.rows_kept_by_country.clear();
        check(&old).expect("adds up");
    }

    #[test]
    fn groups_must_be_the_tally_s_own_segments_listed_once() {
        let msg = problem(|f| f.groups[0].index = 9);
        assert!(
            msg.starts_with("group \"Peru\" frequent_segment number 9 (\"0-4\"): the tally's segments have no frequent_segment number 9"),
            "{msg}"
        );
        let msg = problem(|f| f.groups[0].segment.upper = Some(5));
        assert!(
            msg.contains("is 0-4 [0, 4], not this group's segment"),
            "{msg}"
        );
        let msg = problem(|f| f.groups[0].segment_name = SegmentType::Recency);
        assert!(
            msg.contains("is 30-60 [30, 60], not this group's segment"),
            "{msg}"
        );
        let msg = problem(|f| {
            let again = f.groups[0].amounts.clone();
            f.groups.push(Group {
                amounts: again,
                ..f.groups[0].clone()
            });
        });
        assert!(msg.ends_with("the group is listed twice"), "{msg}");
        let msg = problem(|f| f.groups[0].country = "Chile".into());
        assert!(
            msg.contains("kept rows of \"Chile\", which is not one of the countries"),
            "{msg}"
        );
        let msg = problem(|f| f.groups[0].country = " ".into());
        assert!(
            msg.contains("\" \", which is not a country code (it starts or ends with whitespace)"),
            "{msg}"
        );
    }

    #[test]
    fn amounts_are_voucher_amounts_in_order_with_rows() {
        for (amounts, want) in [
            (vec![(0, 10)], "0 is not a voucher amount"),
            (vec![(-5, 10)], "-5 is not a voucher amount"),
            (vec![(1 << 60, 10)], "is not a voucher amount"),
            (
                vec![(2640, 5), (2640, 5)],
                "amount 2640 is out of order or listed twice",
            ),
            (vec![(3520, 5), (2640, 5)], "amount 2640 is out of order"),
            (vec![(2640, 10), (3520, 0)], "amount 3520 has 0 rows"),
        ] {
            let msg = problem(|f| f.groups[0].amounts = amounts.clone());
            assert!(msg.contains(want), "{amounts:?}: {msg}");
        }
    }

    #[test]
    fn counts_must_add_up_to_the_totals() {
        let msg = problem(|f| f.rows_kept = 19);
        assert!(
            msg.contains("rows_kept (19) and the rows dropped (2) are more than rows_read (20)"),
            "{msg}"
        );
        let msg = problem(|f| f.rows_read = MAX_ROWS + 1);
        assert_eq!(
            msg,
            "rows_read is 9223372036854775808; a count is at most 9223372036854775807 rows"
        );
        let msg = problem(|f| {
            f.rows_kept_by_country.insert("Peru".into(), 17);
        });
        assert!(
            msg.contains("rows_kept_by_country adds up to 17, not to rows_kept (18)"),
            "{msg}"
        );
        let msg = problem(|f| {
            f.duplicates = Some(crate::duplicates::DuplicatesFile {
                rows: 19,
                level: 0,
                hashes: vec![1, 2],
            });
        });
        assert!(
            msg.contains("duplicates.rows (19) is not rows_kept (18) plus the rows dropped (2)"),
            "{msg}"
        );
        let msg = problem(|f| f.groups[0].amounts = vec![(2640, 11)]);
        assert!(
            msg.contains("its frequent_segment groups of \"Peru\" count 19 rows, more than the 18 rows kept of it"),
            "{msg}"
        );
        let msg = problem(|f| f.inputs[0].rows_read = 25);
        assert!(
            msg.contains("its inputs' rows_read and rows_kept add up to 25 and 18"),
            "{msg}"
        );
        let msg = problem(|f| f.inputs[0].dropped[DropRule::Recency] = 1);
        assert!(
            msg.contains("its inputs' `recency` drops add up to 1, not to its own (2)"),
            "{msg}"
        );
        let msg = problem(|f| {
            f.inputs[0].rows_kept = 0;
            f.inputs[0].rows_read = 0;
            f.inputs[0].dropped = DropCounts::default();
            f.inputs.push(f.inputs[0].clone());
        });
        assert!(msg.contains("it lists input \"a.parquet\" twice"), "{msg}");
        // Huge counts are compared without overflowing.
        let msg = problem(|f| {
            f.dropped[DropRule::Recency] = u64::MAX;
            f.dropped[DropRule::Timestamp] = u64::MAX;
        });
        assert!(msg.contains("are more than rows_read (20)"), "{msg}");
    }

    #[test]
    fn countries_and_segments_are_valid() {
        assert_eq!(
            problem(|f| f.countries.clear()),
            "its country list is empty; it is [\"all\"] or the countries tallied"
        );
        let msg = problem(|f| f.countries = vec!["x".repeat(1000)]);
        assert!(
            msg.contains("… (1000 bytes), which is not a country code (it is 1000 bytes long)"),
            "{msg}"
        );
        assert!(msg.len() < 300, "{msg}");
        let msg = problem(|f| f.segments = serde_json::json!({"frequent_segment": 3}));
        assert!(
            msg.starts_with("its segments are not segment definitions: invalid type"),
            "{msg}"
        );
        let msg = problem(|f| f.segments["frequent_segment"][1]["lower"] = 3.into());
        assert!(
            msg.starts_with("its segments are not valid: frequent_segment: segments"),
            "{msg}"
        );
        let mut all = good();
        all.countries = vec!["all".into()];
        check(&all).expect("every country");
    }
}
