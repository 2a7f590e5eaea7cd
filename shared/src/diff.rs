//! What changes between two versions: per (country, segment type, segment) in either, both
//! amounts and how clearly each won, and how many customers like those of the history would
//! get another answer.
//!
//! Amounts come from the two tables; how clearly an amount won comes from the tables
//! (`occurrences / segment_rows`) and, for the runner-up, from the manifests' profiles (unknown
//! for versions written before profiles).
//!
//! The share of answers that change is measured on the kept rows of the history: a kept row of
//! a segment whose amount differs (or that one version lacks) is a customer whose answer
//! changes. Each segment weighs its rows in the `to` version, or in `from` for a segment `to`
//! lacks. It is given per segment type (a request names one) and over both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::Profile;
use crate::publish::{TablesDir, Version};
use crate::segments::SegmentType;
use crate::table::{VoucherRow, VoucherTable};
use crate::versions::{self, VersionError};

/// How a segment differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in `to`.
    Added,
    /// Only in `from`.
    Removed,
    /// In both, with other amounts.
    Changed,
    Unchanged,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One (country, segment type, segment) in either version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDiff {
    pub country_code: String,
    pub segment_name: SegmentType,
    pub segment: String,
    pub change: Change,
    pub from_amount: Option<i64>,
    pub to_amount: Option<i64>,
    /// Kept rows of the segment.
    pub from_rows: Option<u64>,
    pub to_rows: Option<u64>,
    /// The share of the segment's rows that had the chosen amount.
    pub from_share: Option<f64>,
    pub to_share: Option<f64>,
    /// The share that had the next most used amount (null when unknown).
    pub from_runner_up_share: Option<f64>,
    pub to_runner_up_share: Option<f64>,
}

impl SegmentDiff {
    /// The rows this segment weighs in the share of changed answers.
    fn weight(&self) -> u64 {
        self.to_rows.or(self.from_rows).unwrap_or(0)
    }
}

/// Rows (customers like those of the history) and how many would get another answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Answers {
    pub rows: u64,
    pub changed_rows: u64,
    /// `changed_rows / rows` (0 without rows).
    pub changed_share: f64,
}

impl Answers {
    fn add(&mut self, segment: &SegmentDiff) {
        let rows = segment.weight();
        self.rows += rows;
        if segment.change != Change::Unchanged {
            self.changed_rows += rows;
        }
        self.changed_share = if self.rows == 0 {
            0.0
        } else {
            self.changed_rows as f64 / self.rows as f64
        };
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Segments in either version.
    pub segments: usize,
    /// Added, removed or changed.
    pub segments_changed: usize,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Over both segment types.
    pub answers: Answers,
    /// Per segment type (`frequent_segment`, `recency_segment`).
    pub by_segment_type: BTreeMap<SegmentType, Answers>,
}

/// The difference between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub from: Version,
    pub to: Version,
    pub summary: Summary,
    /// Ordered by country, segment type and lower bound.
    pub segments: Vec<SegmentDiff>,
}

/// One version's side of a diff.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub version: Version,
    pub table: &'a VoucherTable,
    /// The manifest's profile, when it has one.
    pub profile: Option<&'a Profile>,
}

/// The versions a diff compares when not named: `from` defaults to the live version and `to`
/// to the newest.
pub fn resolve(
    tables: &TablesDir,
    from: Option<Version>,
    to: Option<Version>,
) -> Result<(Version, Version), VersionError> {
    let from = match from {
        Some(v) => v,
        None => tables.current()?.ok_or_else(|| VersionError::NothingLive {
            dir: tables.root().to_owned(),
        })?,
    };
    let to = match to {
        Some(v) => v,
        None => *tables
            .versions()?
            .last()
            .ok_or_else(|| VersionError::NoVersions {
                dir: tables.root().to_owned(),
            })?,
    };
    Ok((from, to))
}

/// Reads both versions and compares them.
pub fn between(tables: &TablesDir, from: Version, to: Version) -> Result<Diff, VersionError> {
    let read = |v| -> Result<(VoucherTable, Option<Profile>), VersionError> {
        let table = versions::read_table(tables, v)?;
        // The manifest only adds the runners-up: a table without one still compares.
        let profile = versions::read_manifest(tables, v)
            .ok()
            .map(|m| m.profile)
            .filter(|p| !p.is_empty());
        Ok((table, profile))
    };
    let (from_table, from_profile) = read(from)?;
    let (to_table, to_profile) = read(to)?;
    Ok(compare(
        Side {
            version: from,
            table: &from_table,
            profile: from_profile.as_ref(),
        },
        Side {
            version: to,
            table: &to_table,
            profile: to_profile.as_ref(),
        },
    ))
}

type Key<'a> = (&'a str, SegmentType, i64, &'a str);

fn key(r: &VoucherRow) -> Key<'_> {
    (&r.country_code, r.segment_name, r.lower, &r.segment)
}

/// A table's rows by (country, segment type, segment label).
fn index(table: &VoucherTable) -> BTreeMap<(&str, SegmentType, &str), &VoucherRow> {
    table
        .rows()
        .iter()
        .map(|r| {
            (
                (r.country_code.as_str(), r.segment_name, r.segment.as_str()),
                r,
            )
        })
        .collect()
}

/// Compares two tables.
pub fn compare(from: Side<'_>, to: Side<'_>) -> Diff {
    let (from_rows, to_rows) = (index(from.table), index(to.table));
    // Union of both, ordered by country, type and lower bound (`to`'s bound when in both).
    type Pair<'r> = (
        &'r VoucherRow,
        Option<&'r VoucherRow>,
        Option<&'r VoucherRow>,
    );
    let mut keys: BTreeMap<Key<'_>, Pair<'_>> = BTreeMap::new();
    for (k, r) in &to_rows {
        keys.insert(key(r), (*r, from_rows.get(k).copied(), Some(*r)));
    }
    for (k, r) in &from_rows {
        if !to_rows.contains_key(k) {
            keys.insert(key(r), (*r, Some(*r), None));
        }
    }
    let mut summary = Summary::default();
    let segments: Vec<SegmentDiff> = keys
        .into_values()
        .map(|(row, a, b)| segment_diff(row, a, b, from.profile, to.profile))
        .collect();
    for s in &segments {
        summary.segments += 1;
        match s.change {
            Change::Added => summary.added += 1,
            Change::Removed => summary.removed += 1,
            Change::Changed => summary.changed += 1,
            Change::Unchanged => summary.unchanged += 1,
        }
        summary.answers.add(s);
        summary
            .by_segment_type
            .entry(s.segment_name)
            .or_default()
            .add(s);
    }
    summary.segments_changed = summary.added + summary.removed + summary.changed;
    Diff {
        from: from.version,
        to: to.version,
        summary,
        segments,
    }
}

/// `row` is either of the two, whichever is present: it names the segment.
fn segment_diff(
    row: &VoucherRow,
    from: Option<&VoucherRow>,
    to: Option<&VoucherRow>,
    from_profile: Option<&Profile>,
    to_profile: Option<&Profile>,
) -> SegmentDiff {
    let change = match (from, to) {
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        (Some(a), Some(b)) if a.voucher_amount != b.voucher_amount => Change::Changed,
        _ => Change::Unchanged,
    };
    let share = |r: Option<&VoucherRow>| {
        r.filter(|r| r.segment_rows > 0)
            .map(|r| r.occurrences as f64 / r.segment_rows as f64)
    };
    let runner_up = |r: Option<&VoucherRow>, p: Option<&Profile>| {
        let r = r?;
        let s = p?.segment(&r.country_code, r.segment_name, &r.segment)?;
        let n = s.runner_up_rows?;
        (r.segment_rows > 0).then(|| n as f64 / r.segment_rows as f64)
    };
    SegmentDiff {
        country_code: row.country_code.clone(),
        segment_name: row.segment_name,
        segment: row.segment.clone(),
        change,
        from_amount: from.map(|r| r.voucher_amount),
        to_amount: to.map(|r| r.voucher_amount),
        from_rows: from.and_then(|r| u64::try_from(r.segment_rows).ok()),
        to_rows: to.and_then(|r| u64::try_from(r.segment_rows).ok()),
        from_share: share(from),
        to_share: share(to),
        from_runner_up_share: runner_up(from, from_profile),
        to_runner_up_share: runner_up(to, to_profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::contract_rows;
    use crate::manifest::SegmentProfile;

    fn v(name: &str) -> Version {
        Version::parse(name).expect("version")
    }

    /// The contract table, against one where Peru's 14-37 pays more (with a profile), Latvia
    /// is gone and Chile is new.
    fn sample_diff() -> Diff {
        let from = VoucherTable::new(contract_rows(2640)).expect("table");
        // `to`: Peru's 14-37 pays more, Latvia is gone, Chile is new.
        let mut rows = contract_rows(2640);
        rows.retain(|r| r.country_code != "Latvia");
        let peru_14 = rows.iter_mut().find(|r| r.segment == "14-37").expect("row");
        peru_14.voucher_amount = 3520;
        peru_14.segment_rows = 30;
        let mut chile = rows[0].clone();
        chile.country_code = "Chile".into();
        rows.push(chile);
        let to = VoucherTable::new(rows).expect("table");
        let to_profile = Profile {
            segments: vec![SegmentProfile {
                country_code: "Peru".into(),
                segment_name: SegmentType::Frequent,
                segment: "14-37".into(),
                rows: 30,
                amount: 3520,
                amount_rows: 4,
                runner_up_rows: Some(3),
            }],
            ..Profile::default()
        };
        compare(
            Side {
                version: v("20261123T030000Z"),
                table: &from,
                profile: None,
            },
            Side {
                version: v("20261124T030000Z"),
                table: &to,
                profile: Some(&to_profile),
            },
        )
    }

    #[test]
    fn segments_are_added_removed_changed_or_unchanged_with_both_amounts() {
        let d = sample_diff();
        let find = |country: &str, segment: &str| {
            d.segments
                .iter()
                .find(|s| s.country_code == country && s.segment == segment)
                .expect("segment listed")
        };
        let changed = find("Peru", "14-37");
        assert_eq!(
            (changed.change, changed.from_amount, changed.to_amount),
            (Change::Changed, Some(2640), Some(3520))
        );
        assert_eq!(
            (changed.from_share, changed.to_share),
            (Some(0.4), Some(4.0 / 30.0))
        );
        assert_eq!(changed.from_runner_up_share, None, "no profile: unknown");
        assert_eq!(changed.to_runner_up_share, Some(0.1));
        let removed = find("Latvia", "0-4");
        assert_eq!((removed.change, removed.to_amount), (Change::Removed, None));
        let added = find("Chile", "0-4");
        assert_eq!((added.change, added.from_amount), (Change::Added, None));
        assert_eq!(find("Peru", "5-13").change, Change::Unchanged);
    }

    #[test]
    fn the_summary_counts_changed_segments_and_the_rows_whose_answer_changes() {
        let d = sample_diff();
        let s = &d.summary;
        assert_eq!((s.segments, s.added, s.removed, s.changed), (10, 1, 1, 1));
        assert_eq!(s.segments_changed, 3);
        // Frequent: Peru 10 + 10 + 30 (changed), Latvia 10 (removed), Chile 10 (added).
        let frequent = s.by_segment_type[&SegmentType::Frequent];
        assert_eq!((frequent.rows, frequent.changed_rows), (70, 50));
        let recency = s.by_segment_type[&SegmentType::Recency];
        assert_eq!(
            (recency.rows, recency.changed_rows, recency.changed_share),
            (50, 0, 0.0)
        );
        assert_eq!((s.answers.rows, s.answers.changed_rows), (120, 50));

        // Ordered by country, type and lower bound.
        let order: Vec<_> = d
            .segments
            .iter()
            .map(|s| format!("{} {} {}", s.country_code, s.segment_name, s.segment))
            .collect();
        assert_eq!(order[0], "Chile frequent_segment 0-4");
        assert_eq!(order[1], "Latvia frequent_segment 0-4");
        assert_eq!(
            order[2..5],
            [
                "Peru frequent_segment 0-4",
                "Peru frequent_segment 5-13",
                "Peru frequent_segment 14-37"
            ]
        );
        let json = serde_json::to_value(&d).expect("json");
        assert_eq!(json["segments"][1]["to_amount"], serde_json::Value::Null);
        assert_eq!(
            json["summary"]["by_segment_type"]["frequent_segment"]["changed_rows"],
            50
        );
    }
}
