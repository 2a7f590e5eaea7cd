//! The quality gate: before a new version goes live, its profile is compared with the live
//! version's, and a version that breaks a bound is held (written complete, not made live).
//!
//! The checks, each against a bound that a TOML file may override ([`Bounds::load`]):
//!
//! | check | per | observed | fails when |
//! |---|---|---|---|
//! | `drop_share` | drop rule | the rise of the rule's share of rows, in percentage points | above `max_drop_share_rise_points` (5) |
//! | `rows_kept` | all countries, and each country of the live version | the fall of the rows kept, in percent | above `max_rows_kept_fall_percent` (50) |
//! | `missing_segments` | the version | the live version's (country, segment type, segment) absent from the new one | more than `max_missing_segments` (0) |
//! | `amount_change` | segment in both | how many times larger or smaller the amount is | above `max_amount_factor` (2) |
//! | `changed_share` | country in both | the share of its segments (of those in both) whose amount changed, in percent | above `max_changed_share_percent` (50) |
//! | `changed_lead` | segment whose amount changed | how far the live amount led its runner-up, in points of the segment's rows | above `max_changed_lead_points` (10) |
//! | `added_segment` | segment the live version lacks | the rows behind its amount | below `min_added_segment_rows` (30) |
//! | `duplicate_share` | the version | the rise of the share of rows repeating an earlier row exactly, in percentage points | above `max_duplicate_share_rise_points` (2) |
//!
//! The gate reads manifests only, never history. A live version written before profiles
//! existed is profiled from its table ([`Profile::from_table`]): its rows kept per country and
//! its duplicate rows are then unknown and not checked. When nothing is live, the first version
//! passes. Added countries and segments are always listed in the report's notes.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{GateOutcome, GateRecord, Manifest, Profile};
use crate::publish::{TablesDir, Version};
use crate::rules::DropRule;

mod changes;

/// The gate's report, saved as `<version>/gate.json`.
pub const GATE_FILE: &str = "gate.json";

/// The bounds of the checks. A TOML file sets any of them; the others keep their built-in
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounds {
    /// Most a drop rule's share of the rows may rise, in percentage points.
    pub max_drop_share_rise_points: f64,
    /// Most the rows kept (all countries, and each country) may fall, in percent.
    pub max_rows_kept_fall_percent: f64,
    /// Most (country, segment type, segment) of the live version that may be missing.
    pub max_missing_segments: u64,
    /// Most a segment's amount may grow or shrink, as a factor (2: from half to double).
    pub max_amount_factor: f64,
    /// Most of a country's segments (of those in both versions) whose amount may change in one
    /// version, in percent: a whole country moving at once is a unit or a source gone wrong.
    pub max_changed_share_percent: f64,
    /// Most the live amount of a segment whose amount changes may have led the runner-up by,
    /// in percentage points of the segment's rows (the `won` shares the page shows): a close
    /// race may turn on a day's rows, a clear winner does not lose overnight.
    pub max_changed_lead_points: f64,
    /// Fewest rows behind the amount of a segment the live version does not have (a new
    /// country's, or a segment's first rows): an amount chosen from a handful of rows is noise.
    pub min_added_segment_rows: u64,
    /// Most the share of rows repeating an earlier row exactly may rise, in percentage points.
    pub max_duplicate_share_rise_points: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_drop_share_rise_points: 5.0,
            max_rows_kept_fall_percent: 50.0,
            max_missing_segments: 0,
            max_amount_factor: 2.0,
            max_changed_share_percent: 50.0,
            max_changed_lead_points: 10.0,
            min_added_segment_rows: 30,
            max_duplicate_share_rise_points: 2.0,
        }
    }
}

/// A gate file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot read gate file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "gate file {} is not valid; accepted keys: {ACCEPTED_KEYS}",
        path.display()
    )]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("gate file {}: {key} = {value} is out of range; accepted: {accepted}", path.display())]
    Range {
        path: PathBuf,
        key: &'static str,
        value: f64,
        accepted: &'static str,
    },
}

/// The keys of a gate file, for messages.
const ACCEPTED_KEYS: &str = "max_drop_share_rise_points, max_rows_kept_fall_percent, max_missing_segments, max_amount_factor, max_changed_share_percent, max_changed_lead_points, min_added_segment_rows, max_duplicate_share_rise_points (numbers; the ones named max_missing_ and min_ whole numbers)";

impl Bounds {
    /// The bounds of a TOML file, or the built-in ones for `None`.
    pub fn load(path: Option<&Path>) -> Result<Bounds, GateError> {
        let Some(path) = path else {
            return Ok(Bounds::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| GateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bounds: Bounds = toml::from_str(&text).map_err(|source| GateError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        bounds.validate(path)?;
        Ok(bounds)
    }

    fn validate(&self, path: &Path) -> Result<(), GateError> {
        let percent = |key, value: f64| (key, value, (0.0..=100.0).contains(&value), "0 to 100");
        let checks = [
            percent(
                "max_drop_share_rise_points",
                self.max_drop_share_rise_points,
            ),
            percent(
                "max_rows_kept_fall_percent",
                self.max_rows_kept_fall_percent,
            ),
            (
                "max_amount_factor",
                self.max_amount_factor,
                self.max_amount_factor.is_finite() && self.max_amount_factor >= 1.0,
                "a finite number >= 1",
            ),
            percent("max_changed_share_percent", self.max_changed_share_percent),
            percent("max_changed_lead_points", self.max_changed_lead_points),
            percent(
                "max_duplicate_share_rise_points",
                self.max_duplicate_share_rise_points,
            ),
        ];
        for (key, value, ok, accepted) in checks {
            if !ok {
                return Err(GateError::Range {
                    path: path.to_owned(),
                    key,
                    value,
                    accepted,
                });
            }
        }
        Ok(())
    }
}

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    DropShare,
    RowsKept,
    MissingSegments,
    AmountChange,
    ChangedShare,
    ChangedLead,
    AddedSegment,
    DuplicateShare,
}

impl CheckKind {
    pub const ALL: [CheckKind; 8] = [
        CheckKind::DropShare,
        CheckKind::RowsKept,
        CheckKind::MissingSegments,
        CheckKind::AmountChange,
        CheckKind::ChangedShare,
        CheckKind::ChangedLead,
        CheckKind::AddedSegment,
        CheckKind::DuplicateShare,
    ];

    /// Whether the bound is the least `observed` may be (else the most).
    pub fn is_minimum(self) -> bool {
        self == CheckKind::AddedSegment
    }

    /// The name in reports, `gate.json` and the metrics' `check` label.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::DropShare => "drop_share",
            CheckKind::RowsKept => "rows_kept",
            CheckKind::MissingSegments => "missing_segments",
            CheckKind::AmountChange => "amount_change",
            CheckKind::ChangedShare => "changed_share",
            CheckKind::ChangedLead => "changed_lead",
            CheckKind::AddedSegment => "added_segment",
            CheckKind::DuplicateShare => "duplicate_share",
        }
    }

    /// A value of this check with its unit.
    pub fn show(self, value: f64) -> String {
        match self {
            CheckKind::DropShare | CheckKind::DuplicateShare => format!("{value:+.2} pp"),
            CheckKind::RowsKept | CheckKind::ChangedShare => format!("{value:.1} %"),
            CheckKind::MissingSegments => format!("{value:.0}"),
            CheckKind::AmountChange => format!("x{value:.2}"),
            CheckKind::ChangedLead => format!("{value:.1} pp"),
            CheckKind::AddedSegment => format!("{value:.0} rows"),
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One check: what was observed, the bound it is held to, and whether it passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub check: CheckKind,
    /// What was checked: a drop rule, `all` or a country, `segments`, or
    /// `<country> <segment type> <segment>`.
    pub subject: String,
    /// In the check's unit (see [`CheckKind::show`]).
    pub observed: f64,
    /// The most `observed` may be (the least, for a [`CheckKind::is_minimum`] check).
    pub bound: f64,
    pub passed: bool,
    /// The values behind `observed`, in words (e.g. `2640 -> 26400`).
    pub detail: String,
}

/// The gate's report on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub version: Version,
    /// The live version compared with; `None` when nothing was live.
    pub baseline: Option<Version>,
    pub outcome: GateOutcome,
    pub bounds: Bounds,
    pub checks: Vec<Check>,
    /// Anything that limited the comparison, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The live version a new one is compared with.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub version: Version,
    pub manifest: Manifest,
    /// The manifest's profile, or one made from the table for an older manifest.
    pub profile: Profile,
}

impl Baseline {
    /// The live version of `tables` with its profile, or `None` when nothing is live.
    pub fn live(tables: &TablesDir) -> Result<Option<Baseline>, crate::versions::VersionError> {
        let Some(version) = tables.current()? else {
            return Ok(None);
        };
        let manifest = crate::versions::read_manifest(tables, version)?;
        let profile = if manifest.profile.is_empty() {
            let table = crate::versions::read_table(tables, version)?;
            Profile::from_table(&table, &manifest)
        } else {
            manifest.profile.clone()
        };
        Ok(Some(Baseline {
            version,
            manifest,
            profile,
        }))
    }
}

impl GateReport {
    /// Compares `new` (its manifest's profile filled in) with `baseline`. With `enforce`
    /// false (`--no-gate`) the checks are made and reported but the outcome is `skipped`.
    pub fn evaluate(
        bounds: &Bounds,
        new: &Manifest,
        version: Version,
        baseline: Option<&Baseline>,
        enforce: bool,
    ) -> GateReport {
        let mut notes = Vec::new();
        let checks = match baseline {
            None => {
                notes.push("nothing is live: the first version passes".to_owned());
                Vec::new()
            }
            Some(live) => {
                if live.manifest.profile.is_empty() {
                    notes.push(format!(
                        "the live version {} was written before profiles: compared with its table; rows kept per country not checked",
                        live.version
                    ));
                }
                let mut checks = drop_share_checks(bounds, &new.profile, &live.profile);
                checks.extend(rows_kept_checks(bounds, new, &live.manifest, &live.profile));
                checks.push(missing_segments_check(bounds, &new.profile, &live.profile));
                checks.extend(amount_checks(bounds, &new.profile, &live.profile));
                checks.extend(changes::checks(bounds, new, live, &mut notes));
                checks
            }
        };
        let failed = checks.iter().any(|c| !c.passed);
        let outcome = match (enforce, failed) {
            (false, _) => GateOutcome::Skipped,
            (true, true) => GateOutcome::Held,
            (true, false) => GateOutcome::Passed,
        };
        GateReport {
            version,
            baseline: baseline.map(|b| b.version),
            outcome,
            bounds: *bounds,
            checks,
            notes,
        }
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// What the manifest records of this report.
    pub fn record(&self) -> GateRecord {
        GateRecord {
            outcome: self.outcome,
            baseline: self.baseline.map(|v| v.to_string()),
            failed: self.failed().count(),
        }
    }

    /// The failed checks (and how many segments were added) in a few words, for logs and the
    /// publish log.
    pub fn summary(&self) -> String {
        let added = self
            .checks
            .iter()
            .filter(|c| c.check == CheckKind::AddedSegment)
            .count();
        let mut summary = self.outcome_summary();
        if added > 0 {
            summary.push_str(&format!("; {added} segment(s) added"));
        }
        summary
    }

    fn outcome_summary(&self) -> String {
        let failed: Vec<String> = self
            .failed()
            .map(|c| format!("{} {} {}", c.check, c.subject, c.check.show(c.observed)))
            .collect();
        match (self.outcome, failed.len()) {
            (GateOutcome::Passed, _) if self.baseline.is_none() => {
                "gate passed: nothing was live".into()
            }
            (GateOutcome::Passed, _) => format!(
                "gate passed: {} checks against {}",
                self.checks.len(),
                self.baseline.map(|v| v.to_string()).unwrap_or_default()
            ),
            (GateOutcome::Skipped, 0) => "gate skipped (--no-gate); every check passed".into(),
            (GateOutcome::Skipped, n) => format!(
                "gate skipped (--no-gate); {n} check(s) would have held it: {}",
                shorten(&failed)
            ),
            (GateOutcome::Held, n) => format!("held: {n} check(s) failed: {}", shorten(&failed)),
        }
    }
}

fn shorten(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    text
}

/// A small tolerance, so that a value equal to its bound (after float arithmetic) passes.
const EPSILON: f64 = 1e-9;

fn check(kind: CheckKind, subject: String, observed: f64, bound: f64, detail: String) -> Check {
    let passed = if kind.is_minimum() {
        observed >= bound - EPSILON
    } else {
        observed <= bound + EPSILON
    };
    Check {
        check: kind,
        subject,
        observed,
        bound,
        passed,
        detail,
    }
}

fn drop_share_checks(bounds: &Bounds, new: &Profile, live: &Profile) -> Vec<Check> {
    DropRule::ALL
        .into_iter()
        .map(|rule| {
            let (was, is) = (live.drop_share.get(rule), new.drop_share.get(rule));
            check(
                CheckKind::DropShare,
                rule.name().to_owned(),
                (is - was) * 100.0,
                bounds.max_drop_share_rise_points,
                format!("{:.2} % -> {:.2} % of rows", was * 100.0, is * 100.0),
            )
        })
        .collect()
}

fn rows_kept_checks(
    bounds: &Bounds,
    new: &Manifest,
    live: &Manifest,
    live_profile: &Profile,
) -> Vec<Check> {
    let fall = |subject: String, was: u64, is: u64| {
        let observed = if was == 0 {
            0.0
        } else {
            (1.0 - is as f64 / was as f64) * 100.0
        };
        check(
            CheckKind::RowsKept,
            subject,
            observed,
            bounds.max_rows_kept_fall_percent,
            format!("{was} -> {is} rows"),
        )
    };
    let mut checks = vec![fall("all".into(), live.rows_kept, new.rows_kept)];
    for (country, &was) in &live_profile.rows_kept_by_country {
        let is = new
            .profile
            .rows_kept_by_country
            .get(country)
            .copied()
            .unwrap_or(0);
        checks.push(fall(country.clone(), was, is));
    }
    checks
}

fn segment_key(s: &crate::manifest::SegmentProfile) -> String {
    format!("{} {} {}", s.country_code, s.segment_name, s.segment)
}

fn missing_segments_check(bounds: &Bounds, new: &Profile, live: &Profile) -> Check {
    let missing: Vec<String> = live
        .segments
        .iter()
        .filter(|s| {
            new.segment(&s.country_code, s.segment_name, &s.segment)
                .is_none()
        })
        .map(segment_key)
        .collect();
    let detail = if missing.is_empty() {
        format!("all {} live segments present", live.segments.len())
    } else {
        format!("missing: {}", shorten(&missing))
    };
    check(
        CheckKind::MissingSegments,
        "segments".into(),
        missing.len() as f64,
        bounds.max_missing_segments as f64,
        detail,
    )
}

fn amount_checks(bounds: &Bounds, new: &Profile, live: &Profile) -> Vec<Check> {
    live.segments
        .iter()
        .filter_map(|was| {
            let is = new.segment(&was.country_code, was.segment_name, &was.segment)?;
            let (a, b) = (was.amount as f64, is.amount as f64);
            let factor = if a > 0.0 && b > 0.0 {
                (b / a).max(a / b)
            } else {
                f64::INFINITY
            };
            Some(check(
                CheckKind::AmountChange,
                segment_key(was),
                factor,
                bounds.max_amount_factor,
                format!("{} -> {}", was.amount, is.amount),
            ))
        })
        .collect()
}

/// The gate report saved in a version's directory, if it has one.
pub fn read_report(tables: &TablesDir, version: Version) -> Option<GateReport> {
    let path = tables.version_dir(version).join(GATE_FILE);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(report) => Some(report),
        Err(e) => {
            log::warn!("{}: not a gate report: {e}", path.display());
            None
        }
    }
}

/// The report as printed: the outcome, every failed check, and for each kind of check that
/// passed everywhere, how many and the value nearest its bound.
impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.baseline {
            Some(live) => writeln!(
                f,
                "gate: version {} against live {live}: {}",
                self.version,
                self.outcome.name().to_uppercase()
            )?,
            None => writeln!(
                f,
                "gate: version {}: {}",
                self.version,
                self.outcome.name().to_uppercase()
            )?,
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        if self.checks.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "  {:<6} {:<17} {:<44} {:>10} {:>10}  detail",
            "result", "check", "subject", "observed", "bound"
        )?;
        for c in self.failed() {
            write_check(f, c, &c.subject, "FAIL")?;
        }
        for kind in CheckKind::ALL {
            let passed: Vec<&Check> = self
                .checks
                .iter()
                .filter(|c| c.check == kind && c.passed)
                .collect();
            // Nearest the bound: the largest value, or the smallest for a minimum.
            let nearest = passed.iter().max_by(|a, b| {
                let order = a.observed.total_cmp(&b.observed);
                if kind.is_minimum() {
                    order.reverse()
                } else {
                    order
                }
            });
            if let Some(c) = nearest {
                let subject = if passed.len() == 1 {
                    c.subject.clone()
                } else {
                    format!("{} (nearest of {})", c.subject, passed.len())
                };
                write_check(f, c, &subject, "pass")?;
            }
        }
        Ok(())
    }
}

fn write_check(f: &mut fmt::Formatter<'_>, c: &Check, subject: &str, result: &str) -> fmt::Result {
    writeln!(
        f,
        "  {:<6} {:<17} {:<44} {:>10} {:>10}  {}",
        result,
        c.check.name(),
        subject,
        c.check.show(c.observed),
        c.check.show(c.bound),
        c.detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SegmentProfile;
    use crate::rules::DropCounts;
    use crate::segments::SegmentType;

    fn segment(country: &str, label: &str, amount: i64, rows: u64) -> SegmentProfile {
        SegmentProfile {
            country_code: country.into(),
            segment_name: SegmentType::Frequent,
            segment: label.into(),
            rows,
            amount,
            amount_rows: rows / 2,
            runner_up_rows: Some(rows / 4),
        }
    }

    /// A manifest with `kept` rows per country, `dropped` rows of the amount rule, segments.
    fn manifest(kept: &[(&str, u64)], dropped: u64, segments: Vec<SegmentProfile>) -> Manifest {
        let mut counts = DropCounts::default();
        counts[DropRule::VoucherAmount] = dropped;
        let rows_kept = kept.iter().map(|(_, n)| n).sum();
        Manifest {
            rows_kept,
            dropped: counts,
            profile: Profile {
                rows_kept_by_country: kept.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
                segments,
                drop_share: crate::manifest::DropShares::of(&counts, rows_kept),
                duplicate_rows: Some(0),
                table_sha256: None,
            },
            ..Manifest::default()
        }
    }

    fn live(m: Manifest) -> Baseline {
        Baseline {
            version: Version::parse("20261123T030000Z").expect("version"),
            profile: m.profile.clone(),
            manifest: m,
        }
    }

    fn v2() -> Version {
        Version::parse("20261124T030000Z").expect("version")
    }

    fn usual() -> Manifest {
        manifest(
            &[("Peru", 1000), ("Chile", 500)],
            30,
            vec![
                segment("Peru", "0-4", 2640, 600),
                segment("Chile", "0-4", 3000, 500),
            ],
        )
    }

    fn failed(report: &GateReport) -> Vec<(CheckKind, &str)> {
        report
            .failed()
            .map(|c| (c.check, c.subject.as_str()))
            .collect()
    }

    #[test]
    fn the_same_profile_passes_and_nothing_live_passes() {
        let report = GateReport::evaluate(
            &Bounds::default(),
            &usual(),
            v2(),
            Some(&live(usual())),
            true,
        );
        assert_eq!(report.outcome, GateOutcome::Passed);
        assert_eq!(failed(&report), vec![]);
        // Each rule, rows kept (all + 2 countries), missing segments, 2 amounts, the changed
        // share of 2 countries, duplicates; no amount changed, nothing added.
        assert_eq!(report.checks.len(), DropRule::ALL.len() + 3 + 1 + 2 + 2 + 1);
        let first = GateReport::evaluate(&Bounds::default(), &usual(), v2(), None, true);
        assert_eq!(
            (first.outcome, first.checks.len()),
            (GateOutcome::Passed, 0)
        );
        assert_eq!(first.record().baseline, None);
    }

    #[test]
    fn each_bound_holds_what_breaks_it_and_not_what_stays_within() {
        let b = Bounds::default();
        // Amounts: double passes (at the bound), more than double is held (with the checks on
        // changed amounts out of the way).
        let mut new = usual();
        new.profile.segments[0].amount = 5280;
        new.profile.segments[1].amount = 6001;
        let lax = Bounds {
            max_changed_share_percent: 100.0,
            max_changed_lead_points: 100.0,
            ..b
        };
        let r = GateReport::evaluate(&lax, &new, v2(), Some(&live(usual())), true);
        assert_eq!(
            failed(&r),
            vec![(CheckKind::AmountChange, "Chile frequent_segment 0-4")]
        );
        assert_eq!(r.outcome, GateOutcome::Held);

        // Drops: from 30 of 1530 (2.0 %) to 120 of 1530 (7.8 %): +5.9 pp.
        let new = manifest(
            &[("Peru", 910), ("Chile", 500)],
            120,
            usual().profile.segments,
        );
        let r = GateReport::evaluate(&b, &new, v2(), Some(&live(usual())), true);
        assert_eq!(failed(&r), vec![(CheckKind::DropShare, "voucher_amount")]);

        // Rows kept: Chile falls by 60 %, the total by 20 %.
        let new = manifest(
            &[("Peru", 1000), ("Chile", 200)],
            30,
            usual().profile.segments,
        );
        let r = GateReport::evaluate(&b, &new, v2(), Some(&live(usual())), true);
        assert_eq!(failed(&r), vec![(CheckKind::RowsKept, "Chile")]);
        let chile = r
            .checks
            .iter()
            .find(|c| c.subject == "Chile")
            .expect("check");
        assert!((chile.observed - 60.0).abs() < 1e-9, "{chile:?}");

        // A segment of the live version missing.
        let new = manifest(
            &[("Peru", 1000), ("Chile", 500)],
            30,
            vec![segment("Peru", "0-4", 2640, 600)],
        );
        let r = GateReport::evaluate(&b, &new, v2(), Some(&live(usual())), true);
        assert_eq!(failed(&r), vec![(CheckKind::MissingSegments, "segments")]);
        assert!(
            r.failed()
                .all(|c| c.detail.contains("Chile frequent_segment 0-4"))
        );
    }

    #[test]
    fn no_gate_reports_the_checks_but_skips_the_hold() {
        let mut new = usual();
        new.profile.segments[1].amount = 30_000;
        let r = GateReport::evaluate(&Bounds::default(), &new, v2(), Some(&live(usual())), false);
        assert_eq!(r.outcome, GateOutcome::Skipped);
        // The amount's factor, Chile's changed share and the changed amount's lead.
        assert_eq!(r.record().failed, 3);
        assert!(
            r.summary().contains("would have held it"),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn a_live_version_without_a_profile_is_compared_through_its_table() {
        let table = crate::fixtures::contract_table();
        let old = Manifest {
            rows_kept: 100,
            table_rows: table.rows().len() as u64,
            ..Manifest::default()
        };
        let profile = Profile::from_table(&table, &old);
        let mut new = old.clone();
        new.profile = profile.clone();
        new.profile.rows_kept_by_country.insert("Peru".into(), 100);
        new.profile.segments.retain(|s| s.country_code == "Peru");
        let baseline = Baseline {
            version: Version::parse("20261123T030000Z").expect("version"),
            manifest: old,
            profile,
        };
        let r = GateReport::evaluate(&Bounds::default(), &new, v2(), Some(&baseline), true);
        assert_eq!(
            failed(&r),
            vec![(CheckKind::MissingSegments, "segments")],
            "Latvia's segment"
        );
        assert!(
            r.notes[0].contains("written before profiles"),
            "{:?}",
            r.notes
        );
        assert!(
            !r.checks
                .iter()
                .any(|c| c.subject == "Peru" && c.check == CheckKind::RowsKept)
        );
    }

    #[test]
    fn a_gate_file_overrides_some_bounds_and_refuses_nonsense() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gate.toml");
        std::fs::write(
            &path,
            "max_amount_factor = 3.5\nmax_missing_segments = 2\nmin_added_segment_rows = 5\n\
             max_changed_lead_points = 20\n",
        )
        .expect("write");
        let b = Bounds::load(Some(&path)).expect("load");
        assert_eq!((b.max_amount_factor, b.max_missing_segments), (3.5, 2));
        assert_eq!(
            (b.min_added_segment_rows, b.max_changed_lead_points),
            (5, 20.0)
        );
        assert_eq!(b.max_changed_share_percent, 50.0);
        assert_eq!(b.max_drop_share_rise_points, 5.0);
        for (text, expected) in [
            (
                "max_amount_factor = 0.9\n",
                "max_amount_factor = 0.9 is out of range",
            ),
            (
                "max_rows_kept_fall_percent = 120.0\n",
                "max_rows_kept_fall_percent = 120",
            ),
            ("max_amont_factor = 3.0\n", "accepted keys"),
            ("max_amount_factor = \"3\"\n", "accepted keys"),
            (
                "max_changed_share_percent = 101.0\n",
                "max_changed_share_percent = 101 is out of range; accepted: 0 to 100",
            ),
            (
                "max_changed_lead_points = -1.0\n",
                "max_changed_lead_points = -1 is out of range",
            ),
            (
                "max_duplicate_share_rise_points = nan\n",
                "max_duplicate_share_rise_points = NaN is out of range",
            ),
            ("min_added_segment_rows = -3\n", "min_added_segment_rows"),
            ("min_added_segment_rows = 2.5\n", "accepted keys"),
        ] {
            std::fs::write(&path, text).expect("write");
            let e = Bounds::load(Some(&path)).expect_err(text);
            assert!(
                crate::errors::Chain(&e).to_string().contains(expected),
                "{text}: {e}"
            );
        }
        let missing = Bounds::load(Some(&dir.path().join("nope.toml"))).expect_err("missing");
        assert!(missing.to_string().contains("nope.toml"));
    }

    /// Peru's four segments: (label, amount, rows, amount rows, runner-up rows).
    fn peru(segments: &[(&str, i64, u64, u64, u64)]) -> Manifest {
        let segments = segments
            .iter()
            .map(
                |&(label, amount, rows, amount_rows, runner_up)| SegmentProfile {
                    amount_rows,
                    runner_up_rows: Some(runner_up),
                    ..segment("Peru", label, amount, rows)
                },
            )
            .collect();
        manifest(&[("Peru", 970)], 30, segments)
    }

    const FOUR: [(&str, i64, u64, u64, u64); 4] = [
        ("0-4", 2640, 100, 55, 45),
        ("5-13", 2640, 100, 56, 44),
        ("14-37", 3520, 100, 90, 10),
        ("38+", 4400, 100, 90, 10),
    ];

    /// FOUR with the amounts of the first `n` segments changed to 3520 (or 2640).
    fn changed(n: usize) -> Manifest {
        let mut m = peru(&FOUR);
        for s in m.profile.segments.iter_mut().take(n) {
            s.amount = if s.amount == 3520 { 2640 } else { 3520 };
        }
        m
    }

    #[test]
    fn a_country_changing_more_than_half_its_amounts_at_once_is_held() {
        let b = Bounds {
            max_changed_lead_points: 100.0,
            ..Bounds::default()
        };
        let was = live(peru(&FOUR));
        let r = GateReport::evaluate(&b, &changed(2), v2(), Some(&was), true);
        let share = |r: &GateReport| {
            r.checks
                .iter()
                .find(|c| c.check == CheckKind::ChangedShare)
                .cloned()
                .expect("a changed share check")
        };
        let at_bound = share(&r);
        assert_eq!(
            (at_bound.subject.as_str(), at_bound.observed),
            ("Peru", 50.0)
        );
        assert!(at_bound.passed && at_bound.detail == "2 of 4 segments changed amount");
        let r = GateReport::evaluate(&b, &changed(3), v2(), Some(&was), true);
        assert_eq!(failed(&r), vec![(CheckKind::ChangedShare, "Peru")]);
        assert_eq!(share(&r).observed, 75.0);
    }

    #[test]
    fn a_changed_amount_that_had_won_clearly_is_held_and_a_close_race_is_not() {
        let b = Bounds::default();
        let was = live(peru(&FOUR));
        // 0-4 led by 10 points of its rows (55 % to 45 %): at the bound.
        let r = GateReport::evaluate(&b, &changed(1), v2(), Some(&was), true);
        let lead: Vec<&Check> = r
            .checks
            .iter()
            .filter(|c| c.check == CheckKind::ChangedLead)
            .collect();
        assert_eq!(lead.len(), 1, "only changed amounts are checked");
        assert!(
            (lead[0].observed - 10.0).abs() < 1e-9 && lead[0].passed,
            "{lead:?}"
        );
        assert_eq!(
            lead[0].detail,
            "2640 won 55.0 % (runner-up 45.0 %) -> 3520 won 55.0 %"
        );
        assert_eq!(r.outcome, GateOutcome::Passed);
        // 5-13 led by 12 points.
        let r = GateReport::evaluate(&b, &changed(2), v2(), Some(&was), true);
        assert_eq!(
            failed(&r),
            vec![(CheckKind::ChangedLead, "Peru frequent_segment 5-13")]
        );
    }

    #[test]
    fn added_segments_are_always_noted_and_held_when_thin() {
        let b = Bounds::default();
        let was = live(peru(&FOUR));
        let mut new = peru(&FOUR);
        new.profile.segments.push(SegmentProfile {
            amount_rows: 30,
            ..segment("PERU", "0-4", 999_999, 31)
        });
        new.profile.rows_kept_by_country.insert("PERU".into(), 31);
        let r = GateReport::evaluate(&b, &new, v2(), Some(&was), true);
        assert_eq!(r.outcome, GateOutcome::Passed, "30 rows: at the bound");
        assert_eq!(
            r.notes,
            vec![
                "added 1 segment(s) the live version lacks (new countries: PERU): PERU frequent_segment 0-4"
            ]
        );
        assert!(
            r.summary().ends_with("; 1 segment(s) added"),
            "{}",
            r.summary()
        );
        assert!(r.to_string().contains("new countries: PERU"), "{r}");
        let added = r
            .checks
            .iter()
            .find(|c| c.check == CheckKind::AddedSegment)
            .expect("an added segment check");
        assert_eq!(
            (added.check, added.detail.as_str()),
            (
                CheckKind::AddedSegment,
                "new country: amount 999999 from 30 of 31 rows"
            )
        );

        // 29 rows behind the amount, and a new segment of a known country.
        new.profile.segments.last_mut().expect("added").amount_rows = 29;
        new.profile.segments.push(SegmentProfile {
            amount_rows: 2,
            ..segment("Peru", "50+", 2640, 2)
        });
        let r = GateReport::evaluate(&b, &new, v2(), Some(&was), true);
        assert_eq!(
            failed(&r),
            vec![
                (CheckKind::AddedSegment, "PERU frequent_segment 0-4"),
                (CheckKind::AddedSegment, "Peru frequent_segment 50+")
            ]
        );
        assert!(r.failed().any(|c| c.detail.starts_with("new segment:")));
        let text = r.to_string();
        assert!(
            text.contains("2 rows") && text.contains("30 rows"),
            "{text}"
        );
    }

    #[test]
    fn a_rise_in_duplicate_rows_is_held_and_unknown_counts_are_noted() {
        let b = Bounds::default();
        // 1,000 rows of Peru (970 kept, 30 dropped), none duplicated.
        let was = live(peru(&FOUR));
        let mut new = peru(&FOUR);
        new.profile.duplicate_rows = Some(20);
        let r = GateReport::evaluate(&b, &new, v2(), Some(&was), true);
        let dup = r
            .checks
            .iter()
            .find(|c| c.check == CheckKind::DuplicateShare)
            .expect("a duplicate check");
        assert!((dup.observed - 2.0).abs() < 1e-9 && dup.passed, "{dup:?}");
        assert_eq!(dup.detail, "0.00 % -> 2.00 % of rows (0 -> 20 rows)");
        new.profile.duplicate_rows = Some(21);
        let r = GateReport::evaluate(&b, &new, v2(), Some(&was), true);
        assert_eq!(failed(&r), vec![(CheckKind::DuplicateShare, "all")]);

        new.profile.duplicate_rows = None;
        let r = GateReport::evaluate(&b, &new, v2(), Some(&was), true);
        assert!(
            !r.checks
                .iter()
                .any(|c| c.check == CheckKind::DuplicateShare)
        );
        assert!(
            r.notes[0].contains("this version's were not counted"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn the_report_round_trips_through_json_and_prints_failures_first() {
        let mut new = usual();
        new.profile.segments[1].amount = 30_000;
        let r = GateReport::evaluate(&Bounds::default(), &new, v2(), Some(&live(usual())), true);
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains(r#""check":"amount_change""#), "{json}");
        let back: GateReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("HELD"), "{text}");
        assert!(
            lines[2].contains("FAIL")
                && lines[2].contains("x10.00")
                && lines[2].contains("3000 -> 30000"),
            "{text}"
        );
    }
}
