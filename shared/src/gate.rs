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
//!
//! The gate reads manifests only, never history. A live version written before profiles
//! existed is profiled from its table ([`Profile::from_table`]): its rows kept per country are
//! then unknown and not checked. When nothing is live, the first version passes.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{GateOutcome, GateRecord, Manifest, Profile};
use crate::publish::{TablesDir, Version};
use crate::rules::DropRule;

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
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_drop_share_rise_points: 5.0,
            max_rows_kept_fall_percent: 50.0,
            max_missing_segments: 0,
            max_amount_factor: 2.0,
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
        "gate file {} is not valid; accepted keys: max_drop_share_rise_points, max_rows_kept_fall_percent, max_missing_segments, max_amount_factor",
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
        let checks = [
            (
                "max_drop_share_rise_points",
                self.max_drop_share_rise_points,
                (0.0..=100.0).contains(&self.max_drop_share_rise_points),
                "0 to 100",
            ),
            (
                "max_rows_kept_fall_percent",
                self.max_rows_kept_fall_percent,
                (0.0..=100.0).contains(&self.max_rows_kept_fall_percent),
                "0 to 100",
            ),
            (
                "max_amount_factor",
                self.max_amount_factor,
                self.max_amount_factor.is_finite() && self.max_amount_factor >= 1.0,
                "a finite number >= 1",
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
}

impl CheckKind {
    pub const ALL: [CheckKind; 4] = [
        CheckKind::DropShare,
        CheckKind::RowsKept,
        CheckKind::MissingSegments,
        CheckKind::AmountChange,
    ];

    /// The name in reports, `gate.json` and the metrics' `check` label.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::DropShare => "drop_share",
            CheckKind::RowsKept => "rows_kept",
            CheckKind::MissingSegments => "missing_segments",
            CheckKind::AmountChange => "amount_change",
        }
    }

    /// A value of this check with its unit.
    pub fn show(self, value: f64) -> String {
        match self {
            CheckKind::DropShare => format!("{value:+.2} pp"),
            CheckKind::RowsKept => format!("{value:.1} %"),
            CheckKind::MissingSegments => format!("{value:.0}"),
            CheckKind::AmountChange => format!("x{value:.2}"),
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
    /// The most `observed` may be.
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

    /// The failed checks in a few words, for logs and the publish log.
    pub fn summary(&self) -> String {
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
    Check {
        check: kind,
        subject,
        observed,
        bound,
        passed: observed <= bound + EPSILON,
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
            let nearest = passed
                .iter()
                .max_by(|a, b| a.observed.total_cmp(&b.observed));
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
        // Each rule, rows kept (all + 2 countries), missing segments, 2 amounts.
        assert_eq!(report.checks.len(), DropRule::ALL.len() + 3 + 1 + 2);
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
        // Amounts: double passes (at the bound), more than double is held.
        let mut new = usual();
        new.profile.segments[0].amount = 5280;
        new.profile.segments[1].amount = 6001;
        let r = GateReport::evaluate(&b, &new, v2(), Some(&live(usual())), true);
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
        assert_eq!(r.record().failed, 1);
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
        std::fs::write(&path, "max_amount_factor = 3.5\nmax_missing_segments = 2\n")
            .expect("write");
        let b = Bounds::load(Some(&path)).expect("load");
        assert_eq!((b.max_amount_factor, b.max_missing_segments), (3.5, 2));
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
