//! A loaded table version: the scoring [`Snapshot`] every door answers from, plus what the
//! HTTP door serves about the table, rendered once per version off the request path.

use std::collections::BTreeMap;

use bytes::Bytes;
use voucher_shared::manifest::Manifest;
use voucher_shared::publish::Version;
use voucher_shared::score::Snapshot;
use voucher_shared::table::VoucherTable;

use crate::http::model::{
    DropRuleCount, SegmentEntry, SegmentsResponse, TableManifest, TableResponse,
};
use voucher_shared::rules::DropRule;

/// A loaded table version, ready to answer requests.
#[derive(Debug)]
pub struct LiveTable {
    snapshot: Snapshot,
    /// `/api/v1/segments` answers with these bytes; they only change with the version.
    segments_json: Bytes,
    /// `/api/v1/table` answers with these.
    table_json: Bytes,
}

impl LiveTable {
    pub fn new(
        version: Version,
        table: &VoucherTable,
        manifest: Option<Manifest>,
    ) -> Result<Self, serde_json::Error> {
        let mut listing: BTreeMap<String, BTreeMap<String, Vec<SegmentEntry>>> = BTreeMap::new();
        for row in table.rows() {
            listing
                .entry(row.country_code.clone())
                .or_default()
                .entry(row.segment_name.name().to_owned())
                .or_default()
                .push(SegmentEntry {
                    segment: row.segment.clone(),
                    lower: row.lower,
                    upper: row.upper,
                    voucher: row.voucher_amount,
                    occurrences: row.occurrences,
                    segment_rows: row.segment_rows,
                });
        }
        for types in listing.values_mut() {
            for entries in types.values_mut() {
                entries.sort_by_key(|e| e.lower);
            }
        }
        let created_at = version
            .time()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let segments_json = serde_json::to_vec(&SegmentsResponse {
            version: version.to_string(),
            created_at: created_at.clone(),
            countries: listing,
        })?;
        let table_json = serde_json::to_vec(&describe(
            version,
            created_at,
            table.rows().len(),
            manifest.as_ref(),
        ))?;
        Ok(LiveTable {
            snapshot: Snapshot::new(version, table, manifest),
            segments_json: segments_json.into(),
            table_json: table_json.into(),
        })
    }

    /// What scoring reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn version(&self) -> Version {
        self.snapshot.version()
    }

    pub fn version_name(&self) -> &str {
        self.snapshot.version_name()
    }

    pub fn rows(&self) -> usize {
        self.snapshot.rows()
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.snapshot.manifest()
    }

    pub fn segments_json(&self) -> Bytes {
        self.segments_json.clone()
    }

    pub fn table_json(&self) -> Bytes {
        self.table_json.clone()
    }
}

/// What `/api/v1/table` says about a version.
fn describe(
    version: Version,
    created_at: String,
    rows: usize,
    manifest: Option<&Manifest>,
) -> TableResponse {
    TableResponse {
        version: version.to_string(),
        created_at,
        rows,
        manifest: manifest.map(|m| TableManifest {
            created_at: m.created_at.clone(),
            input: m.input.clone(),
            rows_read: m.rows_read,
            rows_kept: m.rows_kept,
            countries: m.countries.clone(),
            duration_ms: m.duration_ms,
            producer: format!("{} {}", m.producer.name, m.producer.version),
        }),
        drop_rules: DropRule::ALL
            .iter()
            .map(|rule| DropRuleCount {
                rule: rule.name(),
                description: rule.description(),
                dropped: manifest.map(|m| m.dropped[*rule]),
            })
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use voucher_shared::fixtures::{CONTRACT_VERSION, contract_table};

    use super::*;

    pub(crate) fn sample_live() -> LiveTable {
        let version = Version::parse(CONTRACT_VERSION).expect("version");
        LiveTable::new(version, &contract_table(), None).expect("live table")
    }

    #[test]
    fn lists_the_table_as_json_ordered_by_bound() {
        let live = sample_live();
        let json: serde_json::Value = serde_json::from_slice(&live.segments_json()).expect("json");
        assert_eq!(json["version"], "20261123T101000Z");
        assert_eq!(json["created_at"], "2026-11-23T10:10:00Z");
        let peru = &json["countries"]["Peru"]["frequent_segment"];
        assert_eq!(peru[0]["segment"], "0-4");
        assert_eq!(peru[2]["voucher"], 2640);
        assert_eq!(
            json["countries"]["Peru"]["recency_segment"][4]["upper"],
            serde_json::Value::Null
        );
        assert_eq!(live.rows(), 9);
    }
}
