//! What the API's `GET /api/v1/versions` and the page's "what changed" section show: every
//! version with its state and gate outcome, what the live version changed against the one it
//! replaced, the held versions with the checks they failed, and the canary with what the diff
//! predicts it changes.
//!
//! Built from the same listing, diff and gate reports as `voucher-etl versions` and `diff`, so
//! that the operator's terminal and the served page never disagree.

use serde::Serialize;

use crate::canary::CanaryRecord;
use crate::diff::{self, Diff};
use crate::gate::{self, Check};
use crate::publish::{TablesDir, Version};
use crate::versions::{self, State, VersionError, VersionInfo};

/// At most this many held versions are shown with their checks (the newest).
pub const HELD_SHOWN: usize = 5;

/// The versions of a tables directory, for people deciding what to serve.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The version `CURRENT` names (what every door serves), if any.
    pub live: Option<Version>,
    /// Every version, newest first.
    pub versions: Vec<VersionInfo>,
    /// The live version against the one a roll-back would return to; absent when there is
    /// none, or when either cannot be read (see `problems`).
    pub changes: Option<Diff>,
    /// Held versions newer than the live one (the newest [`HELD_SHOWN`]), each with the checks
    /// it failed.
    pub held: Vec<Held>,
    /// The canary, if one is set.
    pub canary: Option<CanaryRecord>,
    /// The live version against the canary's (what the history predicts the canary changes);
    /// absent without a canary, or when either cannot be read (see `problems`).
    pub canary_changes: Option<Diff>,
    /// What could not be read, in words (a version's manifest, table or gate report, an
    /// unreadable `CANARY`), and junk named like versions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A held version and why.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub version: Version,
    pub created_at: Option<String>,
    /// The live version it was compared with.
    pub baseline: Option<Version>,
    /// The checks it failed (empty when its report cannot be read).
    pub failed: Vec<Check>,
}

/// Reads the overview of `tables`. Fails only when the directory itself cannot be listed;
/// an unreadable version, junk and an unreadable `CANARY` are reported in
/// [`Overview::problems`].
pub fn read(tables: &TablesDir) -> Result<Overview, VersionError> {
    let listing = versions::list(tables)?;
    let mut problems = Vec::new();
    let changes = match (
        listing.live,
        listing.versions.iter().find(|v| v.rollback_target),
    ) {
        (Some(live), Some(before)) => match diff::between(tables, before.version, live) {
            Ok(diff) => Some(diff),
            Err(e) => {
                problems.push(format!(
                    "cannot compare {} with {live}: {}",
                    before.version,
                    crate::errors::Chain(&e)
                ));
                None
            }
        },
        _ => None,
    };
    // An unreadable CANARY is in the listing's problems.
    let canary = tables.canary().ok().flatten();
    let canary_changes = match (listing.live, &canary) {
        (Some(live), Some(c)) => match diff::between(tables, live, c.version) {
            Ok(diff) => Some(diff),
            Err(e) => {
                problems.push(format!(
                    "cannot compare the canary {} with {live}: {}",
                    c.version,
                    crate::errors::Chain(&e)
                ));
                None
            }
        },
        _ => None,
    };
    let held = listing
        .versions
        .iter()
        .filter(|v| v.state == State::Held && listing.live.is_none_or(|live| v.version > live))
        .take(HELD_SHOWN)
        .map(|v| {
            let report = gate::read_report(tables, v.version);
            if report.is_none() {
                problems.push(format!("version {}: no readable gate report", v.version));
            }
            Held {
                version: v.version,
                created_at: v.created_at.clone(),
                baseline: report.as_ref().and_then(|r| r.baseline),
                failed: report
                    .map(|r| r.failed().cloned().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    problems.extend(listing.problems.iter().cloned());
    problems.extend(listing.versions.iter().filter_map(|v| {
        v.problem
            .as_ref()
            .map(|p| format!("version {}: {p}", v.version))
    }));
    Ok(Overview {
        live: listing.live,
        versions: listing.versions,
        changes,
        held,
        canary,
        canary_changes,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{Bounds, CheckKind, GATE_FILE, GateReport};
    use crate::manifest::GateOutcome;
    use crate::versions::tests::version;

    fn hold_with_report(tables: &TablesDir, minute: u32, baseline: Version) -> Version {
        let held = version(tables, minute, 9000, GateOutcome::Held);
        let check = |subject: &str, observed: f64, passed| Check {
            check: CheckKind::AmountChange,
            subject: subject.into(),
            observed,
            bound: 2.0,
            passed,
            detail: String::new(),
        };
        let report = GateReport {
            version: held,
            baseline: Some(baseline),
            outcome: GateOutcome::Held,
            bounds: Bounds::default(),
            checks: vec![
                check("Peru frequent_segment 1-4", 3.4, false),
                check("Latvia frequent_segment 1-4", 1.0, true),
            ],
            notes: Vec::new(),
        };
        std::fs::write(
            tables.version_dir(held).join(GATE_FILE),
            serde_json::to_vec(&report).expect("json"),
        )
        .expect("write report");
        held
    }

    #[test]
    fn shows_the_live_version_s_changes_and_the_held_version_s_failed_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let first = version(&tables, 0, 2640, GateOutcome::Passed);
        let live = version(&tables, 1, 3000, GateOutcome::Passed);
        let held = hold_with_report(&tables, 2, live);

        let overview = read(&tables).expect("overview");
        assert_eq!(overview.live, Some(live));
        let listed: Vec<_> = overview
            .versions
            .iter()
            .map(|v| (v.version, v.state))
            .collect();
        assert_eq!(
            listed,
            [
                (held, State::Held),
                (live, State::Live),
                (first, State::Previous)
            ]
        );
        let changes = overview.changes.expect("a diff against the version before");
        assert_eq!((changes.from, changes.to), (first, live));
        // Every Peru amount moved with the base; Latvia's fixed one did not.
        let peru = crate::fixtures::contract_rows(0)
            .iter()
            .filter(|r| r.country_code == "Peru")
            .count();
        assert_eq!(changes.summary.changed, peru);
        assert_eq!(changes.summary.unchanged, 1);
        assert_eq!(overview.held.len(), 1);
        let shown = &overview.held[0];
        assert_eq!((shown.version, shown.baseline), (held, Some(live)));
        let failed: Vec<_> = shown.failed.iter().map(|c| c.subject.as_str()).collect();
        assert_eq!(failed, ["Peru frequent_segment 1-4"]);
        assert!(overview.problems.is_empty(), "{:?}", overview.problems);
    }

    #[test]
    fn a_single_version_has_no_changes_and_an_older_held_one_is_not_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let first = version(&tables, 0, 2640, GateOutcome::Passed);
        let overview = read(&tables).expect("overview");
        assert_eq!(overview.live, Some(first));
        assert!(overview.changes.is_none() && overview.held.is_empty());

        // Held, then overtaken by a newer live version: no longer a pending decision.
        hold_with_report(&tables, 1, first);
        let live = version(&tables, 2, 2700, GateOutcome::Passed);
        let overview = read(&tables).expect("overview");
        assert_eq!(overview.live, Some(live));
        assert!(overview.held.is_empty(), "{:?}", overview.held);
        assert_eq!(overview.changes.map(|d| d.from), Some(first));
    }

    #[test]
    fn an_unreadable_manifest_is_a_problem_not_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        version(&tables, 0, 2640, GateOutcome::Passed);
        let live = version(&tables, 1, 3000, GateOutcome::Passed);
        std::fs::write(
            tables.version_dir(live).join(crate::publish::MANIFEST_FILE),
            b"{ not json",
        )
        .expect("break the manifest");
        let overview = read(&tables).expect("overview");
        assert_eq!(overview.live, Some(live));
        assert!(
            overview
                .problems
                .iter()
                .any(|p| p.contains(&live.to_string())),
            "{:?}",
            overview.problems
        );
    }
}
