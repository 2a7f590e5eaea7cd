//! `manifest.json`: what produced a table version, what its table holds (the profile the gate
//! and the diffs compare) and what the gate decided about it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::rules::DropCounts;
use crate::rules::{DropRule, deserialize_per_rule, serialize_per_rule};
use crate::segments::SegmentType;
use crate::table::VoucherTable;

/// The program that wrote a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

/// One input file of a run (or of a tally), with what the cleaning made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// The file or URL as given or found; a database URL without its password.
    pub file: String,
    /// The query read from a database input (absent for files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Rows in the file, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    /// Rows dropped per rule.
    pub dropped: DropCounts,
}

/// The contents of `<version>/manifest.json`.
///
/// Fields added after the first release carry `#[serde(default)]`, so older manifests still
/// parse; code outside this crate can build one with `..Default::default()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version directory's name.
    pub version: String,
    /// When the version was published, RFC 3339 UTC.
    pub created_at: String,
    /// The history the table was computed from, as given (a file, directory, glob or URL, or
    /// the directory of tallies merged).
    pub input: String,
    /// Every file read, in order, with its rows read, kept and dropped (absent in manifests
    /// written before this field existed).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Rows in the input, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    /// Rows dropped per rule, in rule order.
    pub dropped: DropCounts,
    /// The countries asked for (`["all"]` for every country).
    pub countries: Vec<String>,
    /// The segment definitions the table was built with.
    pub segments: serde_json::Value,
    /// Rows in `vouchers.parquet`.
    pub table_rows: u64,
    pub duration_ms: u64,
    pub producer: Producer,
    /// What the table holds, for the gate and for diffs (empty in manifests written before
    /// profiles existed: see [`Profile::is_empty`]).
    #[serde(default)]
    pub profile: Profile,
    /// What the gate decided when the version was written (absent before the gate existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
}

/// What a table holds, summed up so that two versions compare without their history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Kept rows per country.
    #[serde(default)]
    pub rows_kept_by_country: BTreeMap<String, u64>,
    /// One entry per table row, in table order: how many rows are behind each segment's amount
    /// and how narrowly it won.
    #[serde(default)]
    pub segments: Vec<SegmentProfile>,
    /// Per drop rule, the share of the selected countries' rows (kept or dropped) it dropped.
    #[serde(default)]
    pub drop_share: DropShares,
    /// Rows of the selected countries (kept or dropped) that repeat an earlier row in every
    /// column the job reads: exact up to 131,072 distinct rows, estimated beyond (within about
    /// 0.4 % of them). Absent when unknown (versions written before it was counted, or merged
    /// from tallies without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_rows: Option<u64>,
    /// The SHA-256 of `vouchers.parquet` (lower-case hex), recorded when the version was
    /// written, so that a changed table is refused rather than served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_sha256: Option<String>,
}

impl Profile {
    /// True for the profile of a manifest written before profiles existed.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.rows_kept_by_country.is_empty()
    }

    /// What can be known of a version without a profile: its table's segments (without
    /// runners-up) and its manifest's drop counts; rows kept per country stay unknown.
    pub fn from_table(table: &VoucherTable, manifest: &Manifest) -> Profile {
        Profile {
            rows_kept_by_country: BTreeMap::new(),
            segments: table
                .rows()
                .iter()
                .map(|r| SegmentProfile {
                    country_code: r.country_code.clone(),
                    segment_name: r.segment_name,
                    segment: r.segment.clone(),
                    rows: u64::try_from(r.segment_rows).unwrap_or(0),
                    amount: r.voucher_amount,
                    amount_rows: u64::try_from(r.occurrences).unwrap_or(0),
                    runner_up_rows: None,
                })
                .collect(),
            drop_share: DropShares::of(&manifest.dropped, manifest.rows_kept),
            duplicate_rows: None,
            table_sha256: None,
        }
    }

    /// The profile of one segment.
    pub fn segment(
        &self,
        country_code: &str,
        segment_name: SegmentType,
        segment: &str,
    ) -> Option<&SegmentProfile> {
        self.segments.iter().find(|s| {
            s.country_code == country_code && s.segment_name == segment_name && s.segment == segment
        })
    }
}

/// One (country, segment type, segment) of a table: its rows and how clearly its amount won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentProfile {
    pub country_code: String,
    pub segment_name: SegmentType,
    pub segment: String,
    /// Kept rows of the segment.
    pub rows: u64,
    /// The chosen amount.
    pub amount: i64,
    /// Kept rows with the chosen amount.
    pub amount_rows: u64,
    /// Kept rows with the next most used amount (0 when every row had the chosen one; absent
    /// when unknown, for versions written before profiles).
    #[serde(default)]
    pub runner_up_rows: Option<u64>,
}

/// Per drop rule, a share of rows between 0 and 1. Serialized as an object from rule name to
/// share, in rule order, like [`DropCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DropShares([f64; DropRule::ALL.len()]);

impl DropShares {
    /// Each rule's drops over every row of the selected countries (`kept` plus all drops).
    pub fn of(dropped: &DropCounts, kept: u64) -> DropShares {
        let total = kept + dropped.total();
        let mut shares = DropShares::default();
        if total > 0 {
            for (rule, n) in dropped.iter() {
                shares.0[rule.index()] = n as f64 / total as f64;
            }
        }
        shares
    }

    pub fn get(&self, rule: DropRule) -> f64 {
        self.0[rule.index()]
    }

    /// The rules with their shares, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (DropRule, f64)> + '_ {
        DropRule::ALL.into_iter().map(|rule| (rule, self.get(rule)))
    }
}

impl Serialize for DropShares {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_per_rule(self.iter(), serializer)
    }
}

impl<'de> Deserialize<'de> for DropShares {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_per_rule(deserializer, "a share of rows").map(DropShares)
    }
}

/// The gate's decision about a version, as its manifest records it. The checks themselves are
/// in the version's `gate.json` ([`crate::gate::GateReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    pub outcome: GateOutcome,
    /// The live version the new one was compared with; absent when nothing was live.
    #[serde(default)]
    pub baseline: Option<String>,
    /// How many checks failed (with `skipped`: how many would have held it).
    #[serde(default)]
    pub failed: usize,
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateOutcome {
    /// Every check passed (or nothing was live to compare with): published.
    Passed,
    /// A check failed: written complete, `CURRENT` not moved.
    Held,
    /// `--no-gate`: published whatever the checks said.
    Skipped,
}

impl GateOutcome {
    pub const ALL: [GateOutcome; 3] =
        [GateOutcome::Passed, GateOutcome::Held, GateOutcome::Skipped];

    pub fn name(self) -> &'static str {
        match self {
            GateOutcome::Passed => "passed",
            GateOutcome::Held => "held",
            GateOutcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for GateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest as written before profiles and the gate existed.
    const OLD: &str = r#"{"version":"20261123T101000Z","created_at":"2026-11-23T10:10:00Z",
        "input":"h.parquet","rows_read":10,"rows_kept":8,
        "dropped":{"voucher_amount":2},"countries":["Peru"],"segments":{},
        "table_rows":3,"duration_ms":5,"producer":{"name":"voucher-etl","version":"0.1.0"}}"#;

    #[test]
    fn an_old_manifest_parses_with_an_empty_profile_and_no_gate() {
        let m: Manifest = serde_json::from_str(OLD).expect("old manifest");
        assert!(m.profile.is_empty());
        assert_eq!(m.gate, None);
        assert_eq!(m.dropped[DropRule::VoucherAmount], 2);
    }

    #[test]
    fn drop_shares_are_over_every_row_of_the_selected_countries_in_rule_order() {
        let mut dropped = DropCounts::default();
        dropped[DropRule::Recency] = 1;
        dropped[DropRule::VoucherAmount] = 3;
        let shares = DropShares::of(&dropped, 6);
        assert_eq!(shares.get(DropRule::VoucherAmount), 0.3);
        assert_eq!(shares.get(DropRule::Recency), 0.1);
        let json = serde_json::to_string(&shares).expect("json");
        assert!(
            json.starts_with(r#"{"country_code":0.0,"voucher_amount":0.3,"total_orders":0.0"#),
            "{json}"
        );
        let back: DropShares = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, shares);
        assert_eq!(
            DropShares::of(&DropCounts::default(), 0),
            DropShares::default()
        );
    }

    #[test]
    fn a_manifest_with_a_profile_and_a_gate_round_trips() {
        let mut m: Manifest = serde_json::from_str(OLD).expect("old manifest");
        m.profile.rows_kept_by_country.insert("Peru".into(), 8);
        m.profile.segments.push(SegmentProfile {
            country_code: "Peru".into(),
            segment_name: SegmentType::Frequent,
            segment: "0-4".into(),
            rows: 8,
            amount: 2640,
            amount_rows: 5,
            runner_up_rows: Some(3),
        });
        m.profile.table_sha256 = Some("ab".repeat(32));
        m.gate = Some(GateRecord {
            outcome: GateOutcome::Held,
            baseline: Some("20261122T101000Z".into()),
            failed: 2,
        });
        let json = serde_json::to_string(&m).expect("json");
        assert!(json.contains(r#""outcome":"held""#), "{json}");
        let back: Manifest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, m);
    }
}
