//! The checks on how the new version's segments differ from the live one's, beyond each
//! amount's factor: how many of a country's amounts change at once, how clearly a changed
//! amount had won, how many rows stand behind an added segment, and a rise in rows that repeat
//! an earlier row exactly.

use std::collections::{BTreeMap, BTreeSet};

use super::{Baseline, Bounds, Check, CheckKind, check, segment_key, shorten};
use crate::manifest::{Manifest, Profile, SegmentProfile};

/// The checks of this module, in report order; `notes` gets the added countries and segments
/// (always), and what could not be compared.
pub(super) fn checks(
    bounds: &Bounds,
    new: &Manifest,
    live: &Baseline,
    notes: &mut Vec<String>,
) -> Vec<Check> {
    let mut checks = changed_share_checks(bounds, &new.profile, &live.profile);
    checks.extend(changed_lead_checks(bounds, &new.profile, &live.profile));
    checks.extend(added_checks(bounds, &new.profile, &live.profile, notes));
    checks.extend(duplicate_check(bounds, new, live, notes));
    checks
}

/// Per country of the live version: the share of its segments (of those in both versions)
/// whose amount changed.
fn changed_share_checks(bounds: &Bounds, new: &Profile, live: &Profile) -> Vec<Check> {
    // Country -> (segments in both, of which changed).
    let mut per_country: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for was in &live.segments {
        let Some(is) = new.segment(&was.country_code, was.segment_name, &was.segment) else {
            continue;
        };
        let entry = per_country.entry(&was.country_code).or_default();
        entry.0 += 1;
        entry.1 += usize::from(is.amount != was.amount);
    }
    per_country
        .into_iter()
        .map(|(country, (both, changed))| {
            check(
                CheckKind::ChangedShare,
                country.to_owned(),
                changed as f64 / both as f64 * 100.0,
                bounds.max_changed_share_percent,
                format!("{changed} of {both} segments changed amount"),
            )
        })
        .collect()
}

/// A segment's rows as a percentage of its rows (0 for a segment without rows).
fn percent(rows: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        rows as f64 / of as f64 * 100.0
    }
}

/// How far a segment's amount led the next most used one, in points of its rows; its whole
/// `won` share when the runner-up is unknown (a version written before profiles).
pub(super) fn lead_points(s: &SegmentProfile) -> f64 {
    let runner_up = s.runner_up_rows.unwrap_or(0);
    percent(s.amount_rows.saturating_sub(runner_up), s.rows)
}

/// Per segment whose amount changed: how clearly the live amount had won.
fn changed_lead_checks(bounds: &Bounds, new: &Profile, live: &Profile) -> Vec<Check> {
    live.segments
        .iter()
        .filter_map(|was| {
            let is = new.segment(&was.country_code, was.segment_name, &was.segment)?;
            if is.amount == was.amount {
                return None;
            }
            let runner_up = was.runner_up_rows.map_or_else(
                || "runner-up unknown".to_owned(),
                |n| format!("runner-up {:.1} %", percent(n, was.rows)),
            );
            Some(check(
                CheckKind::ChangedLead,
                segment_key(was),
                lead_points(was),
                bounds.max_changed_lead_points,
                format!(
                    "{} won {:.1} % ({runner_up}) -> {} won {:.1} %",
                    was.amount,
                    percent(was.amount_rows, was.rows),
                    is.amount,
                    percent(is.amount_rows, is.rows)
                ),
            ))
        })
        .collect()
}

/// Per segment the live version lacks: the rows behind its amount. The added countries and
/// segments are noted whether or not they pass.
fn added_checks(
    bounds: &Bounds,
    new: &Profile,
    live: &Profile,
    notes: &mut Vec<String>,
) -> Vec<Check> {
    let added: Vec<&SegmentProfile> = new
        .segments
        .iter()
        .filter(|s| {
            live.segment(&s.country_code, s.segment_name, &s.segment)
                .is_none()
        })
        .collect();
    if added.is_empty() {
        return Vec::new();
    }
    let live_countries: BTreeSet<&str> = live
        .segments
        .iter()
        .map(|s| s.country_code.as_str())
        .chain(live.rows_kept_by_country.keys().map(String::as_str))
        .collect();
    let is_new_country = |s: &SegmentProfile| !live_countries.contains(s.country_code.as_str());
    let new_countries: BTreeSet<&str> = added
        .iter()
        .filter(|s| is_new_country(s))
        .map(|s| s.country_code.as_str())
        .collect();
    let keys: Vec<String> = added.iter().map(|s| segment_key(s)).collect();
    let countries = if new_countries.is_empty() {
        String::new()
    } else {
        let list: Vec<&str> = new_countries.into_iter().collect();
        format!(" (new countries: {})", list.join(", "))
    };
    notes.push(format!(
        "added {} segment(s) the live version lacks{countries}: {}",
        added.len(),
        shorten(&keys)
    ));
    added
        .into_iter()
        .map(|s| {
            let what = if is_new_country(s) {
                "new country"
            } else {
                "new segment"
            };
            check(
                CheckKind::AddedSegment,
                segment_key(s),
                s.amount_rows as f64,
                bounds.min_added_segment_rows as f64,
                format!(
                    "{what}: amount {} from {} of {} rows",
                    s.amount, s.amount_rows, s.rows
                ),
            )
        })
        .collect()
}

/// The duplicate rows of a version and the rows they are a share of (the selected countries'
/// rows, kept or dropped), if they were counted.
fn duplicates(manifest: &Manifest, profile: &Profile) -> Option<(u64, u64)> {
    let rows = manifest.rows_kept.saturating_add(manifest.dropped.total());
    Some((profile.duplicate_rows?, rows))
}

/// The rise of the share of rows repeating an earlier row exactly, when both versions counted
/// them.
fn duplicate_check(
    bounds: &Bounds,
    new: &Manifest,
    live: &Baseline,
    notes: &mut Vec<String>,
) -> Option<Check> {
    let is = duplicates(new, &new.profile);
    let was = duplicates(&live.manifest, &live.profile);
    let (Some((is, is_rows)), Some((was, was_rows))) = (is, was) else {
        let whose = if was.is_none() {
            format!("the live version {}'s", live.version)
        } else {
            "this version's".to_owned()
        };
        notes.push(format!(
            "duplicate rows not compared: {whose} were not counted (written before they were, or merged from tallies without them)"
        ));
        return None;
    };
    let (was_share, is_share) = (percent(was, was_rows), percent(is, is_rows));
    Some(check(
        CheckKind::DuplicateShare,
        "all".into(),
        is_share - was_share,
        bounds.max_duplicate_share_rise_points,
        format!("{was_share:.2} % -> {is_share:.2} % of rows ({was} -> {is} rows)"),
    ))
}
