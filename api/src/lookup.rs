//! The live table decoded for requests: segments keyed by country and segment type.
//!
//! Built once per version, off the request path, so that a request costs one hash lookup and a
//! scan of a handful of segments.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bytes::Bytes;
use voucher_shared::manifest::Manifest;
use voucher_shared::publish::Version;
use voucher_shared::segments::{Segment, SegmentType};
use voucher_shared::table::VoucherTable;

use crate::model::{SegmentEntry, SegmentsResponse};

/// One segment with its voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub segment: Segment,
    pub voucher: i64,
}

/// The segments of one country, one list per segment type, each ordered by lower bound.
#[derive(Debug, Default)]
struct Country {
    by_type: [Vec<Entry>; SegmentType::ALL.len()],
}

/// Why no voucher was found for a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSegment {
    pub message: String,
}

/// A loaded table version, ready to answer requests.
#[derive(Debug)]
pub struct LiveTable {
    version: Version,
    version_name: Box<str>,
    countries: HashMap<Box<str>, Country>,
    types: Vec<SegmentType>,
    rows: usize,
    /// `/api/v1/segments` answers with these bytes; they only change with the version.
    segments_json: Bytes,
    /// What produced the version, when its `manifest.json` could be read.
    manifest: Option<Manifest>,
}

/// The index of a segment type in [`Country::by_type`].
fn slot(segment_type: SegmentType) -> usize {
    match segment_type {
        SegmentType::Frequent => 0,
        SegmentType::Recency => 1,
    }
}

impl LiveTable {
    pub fn new(
        version: Version,
        table: &VoucherTable,
        manifest: Option<Manifest>,
    ) -> Result<Self, serde_json::Error> {
        let mut countries: HashMap<Box<str>, Country> = HashMap::new();
        let mut listing: BTreeMap<String, BTreeMap<String, Vec<SegmentEntry>>> = BTreeMap::new();
        let mut types = Vec::new();
        for row in table.rows() {
            countries
                .entry(row.country_code.as_str().into())
                .or_default()
                .by_type[slot(row.segment_name)]
            .push(Entry {
                segment: row.segment(),
                voucher: row.voucher_amount,
            });
            if !types.contains(&row.segment_name) {
                types.push(row.segment_name);
            }
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
        for country in countries.values_mut() {
            for entries in &mut country.by_type {
                entries.sort_by_key(|e| e.segment.lower);
            }
        }
        for types in listing.values_mut() {
            for entries in types.values_mut() {
                entries.sort_by_key(|e| e.lower);
            }
        }
        types.sort();
        let segments_json = serde_json::to_vec(&SegmentsResponse {
            version: version.to_string(),
            created_at: version
                .time()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            countries: listing,
        })?;
        Ok(LiveTable {
            version,
            version_name: version.to_string().into(),
            countries,
            types,
            rows: table.rows().len(),
            segments_json: segments_json.into(),
            manifest,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn version_name(&self) -> &str {
        &self.version_name
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The segment types present in the table, in table order.
    pub fn segment_types(&self) -> &[SegmentType] {
        &self.types
    }

    /// The countries of the table, sorted.
    pub fn countries(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.countries.keys().map(AsRef::as_ref).collect();
        names.sort_unstable();
        names
    }

    pub fn has_country(&self, country: &str) -> bool {
        self.countries.contains_key(country)
    }

    pub fn segments_json(&self) -> Bytes {
        self.segments_json.clone()
    }

    /// The segments of a country and type, ordered by lower bound; empty when there are none.
    pub fn segments(&self, country: &str, segment_type: SegmentType) -> &[Entry] {
        self.countries
            .get(country)
            .map_or(&[], |c| c.by_type[slot(segment_type)].as_slice())
    }

    /// The entry whose segment covers `value`, or a message naming the value and the segments
    /// that exist.
    pub fn find(
        &self,
        country: &str,
        segment_type: SegmentType,
        value: i64,
    ) -> Result<&Entry, NoSegment> {
        let entries = self.segments(country, segment_type);
        if let Some(entry) = entries.iter().find(|e| e.segment.contains(value)) {
            return Ok(entry);
        }
        let mut message = format!(
            "no {segment_type} segment of {country} covers {} = {value}; ",
            segment_type.measure()
        );
        if entries.is_empty() {
            let _ = write!(
                message,
                "{country} has no {segment_type} segments in table {}",
                self.version_name
            );
        } else {
            let _ = write!(message, "the {segment_type} segments of {country} are ");
            for (i, e) in entries.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(message, "{sep}{}", e.segment);
            }
        }
        Err(NoSegment { message })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The contract's segments for Peru, and only frequent segments for Latvia.
    pub(crate) fn sample_table() -> VoucherTable {
        VoucherTable::new(voucher_shared::fixtures::contract_rows(2640))
            .expect("valid sample table")
    }

    pub(crate) fn sample_live() -> LiveTable {
        let version = Version::parse("20261123T101000Z").expect("version");
        LiveTable::new(version, &sample_table(), None).expect("live table")
    }

    #[test]
    fn finds_the_covering_segment_at_every_bound() {
        let live = sample_live();
        let f = SegmentType::Frequent;
        for (value, label, amount) in [
            (0, "0-4", 1760),
            (4, "0-4", 1760),
            (5, "5-13", 3520),
            (14, "14-37", 2640),
            (37, "14-37", 2640),
        ] {
            let e = live.find("Peru", f, value).expect("covered");
            assert_eq!(
                (e.segment.label.as_str(), e.voucher),
                (label, amount),
                "{value}"
            );
        }
        let e = live
            .find("Peru", SegmentType::Recency, 10_000)
            .expect("open-ended");
        assert_eq!(e.segment.label, "180+");
    }

    #[test]
    fn an_uncovered_value_names_itself_and_the_segments() {
        let live = sample_live();
        let err = live.find("Peru", SegmentType::Frequent, 50).unwrap_err();
        assert!(err.message.contains("total_orders = 50"), "{}", err.message);
        assert!(
            err.message
                .contains("0-4 [0, 4], 5-13 [5, 13], 14-37 [14, 37]"),
            "{}",
            err.message
        );
        let err = live.find("Latvia", SegmentType::Recency, 40).unwrap_err();
        assert!(
            err.message
                .contains("Latvia has no recency_segment segments"),
            "{}",
            err.message
        );
    }

    #[test]
    fn lists_countries_types_and_the_table_as_json() {
        let live = sample_live();
        assert_eq!(live.countries(), ["Latvia", "Peru"]);
        assert_eq!(
            live.segment_types(),
            [SegmentType::Frequent, SegmentType::Recency]
        );
        assert_eq!(live.rows(), 9);
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
    }
}
