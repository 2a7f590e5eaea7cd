//! `GET /api/v1/segments` and `GET /api/v1/table`: the live version described as JSON. Both
//! only change with the version, so they are rendered on the first request for a version and
//! kept until another version is live.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use voucher_serve::live::LiveTable;
use voucher_shared::publish::Version;
use voucher_shared::rules::DropRule;

use crate::http::model::{
    DropRuleCount, SegmentEntry, SegmentsResponse, TableManifest, TableResponse,
};

/// The two bodies of one version.
#[derive(Debug)]
pub struct Listing {
    version: Version,
    pub segments: Bytes,
    pub table: Bytes,
}

/// The listing of the version last asked about.
#[derive(Debug, Default)]
pub struct Listings(Mutex<Option<Arc<Listing>>>);

impl Listings {
    /// The listing of `live`, rendered now if it is not the one kept.
    pub fn of(&self, live: &LiveTable) -> Result<Arc<Listing>, serde_json::Error> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(listing) = kept.as_ref().filter(|l| l.version == live.version()) {
            return Ok(Arc::clone(listing));
        }
        let listing = Arc::new(render(live)?);
        *kept = Some(Arc::clone(&listing));
        Ok(listing)
    }
}

fn render(live: &LiveTable) -> Result<Listing, serde_json::Error> {
    let version = live.version();
    let created_at = version
        .time()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let segments = serde_json::to_vec(&SegmentsResponse {
        version: version.to_string(),
        created_at: created_at.clone(),
        countries: segments(live),
    })?;
    let table = serde_json::to_vec(&describe(live, created_at))?;
    Ok(Listing {
        version,
        segments: segments.into(),
        table: table.into(),
    })
}

/// Country → segment type → segments, ordered by lower bound.
fn segments(live: &LiveTable) -> BTreeMap<String, BTreeMap<String, Vec<SegmentEntry>>> {
    let mut listing: BTreeMap<String, BTreeMap<String, Vec<SegmentEntry>>> = BTreeMap::new();
    for row in live.table().rows() {
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
    listing
}

/// What `/api/v1/table` says about a version.
fn describe(live: &LiveTable, created_at: String) -> TableResponse {
    let manifest = live.manifest();
    TableResponse {
        version: live.version_name().to_owned(),
        created_at,
        rows: live.rows(),
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
mod tests {
    use voucher_serve::fixtures::sample_live;

    use super::*;

    #[test]
    fn lists_the_table_as_json_ordered_by_bound() {
        let live = sample_live();
        let listing = Listings::default().of(&live).expect("render");
        let json: serde_json::Value = serde_json::from_slice(&listing.segments).expect("json");
        assert_eq!(json["version"], "20261123T101000Z");
        assert_eq!(json["created_at"], "2026-11-23T10:10:00Z");
        let peru = &json["countries"]["Peru"]["frequent_segment"];
        assert_eq!(peru[0]["segment"], "0-4");
        assert_eq!(peru[2]["voucher"], 2640);
        assert_eq!(
            json["countries"]["Peru"]["recency_segment"][4]["upper"],
            serde_json::Value::Null
        );
        let table: serde_json::Value = serde_json::from_slice(&listing.table).expect("json");
        assert_eq!(table["rows"], 9);
        assert_eq!(table["manifest"], serde_json::Value::Null);
        assert_eq!(
            table["drop_rules"].as_array().map(Vec::len),
            Some(DropRule::ALL.len())
        );
    }

    #[test]
    fn a_version_is_rendered_once_and_a_new_one_replaces_it() {
        let listings = Listings::default();
        let first = sample_live();
        let a = listings.of(&first).expect("render");
        let b = listings.of(&first).expect("kept");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same version is not rendered again"
        );

        let version = Version::parse("20261124T000000Z").expect("version");
        let second = LiveTable::new(version, first.table().clone(), None);
        let c = listings.of(&second).expect("render");
        assert!(!Arc::ptr_eq(&a, &c));
        let json: serde_json::Value = serde_json::from_slice(&c.segments).expect("json");
        assert_eq!(json["version"], "20261124T000000Z");
    }
}
