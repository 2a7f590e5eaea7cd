//! One table version decoded for scoring: segments keyed by country and segment type.
//!
//! Built once per version, off the request path, so that scoring costs one hash lookup and a
//! scan of a handful of segments.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::echo::{Plain, few};
use crate::manifest::Manifest;
use crate::publish::Version;
use crate::segments::{Segment, SegmentType};
use crate::table::VoucherTable;

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

/// A table version, ready to score requests. Every door answers from one of these, so that a
/// request (or a batch, or a stream) is answered by one version even if a reload swaps it.
#[derive(Debug)]
pub struct Snapshot {
    version: Version,
    version_name: Box<str>,
    countries: HashMap<Box<str>, Country>,
    types: Vec<SegmentType>,
    rows: usize,
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

impl Snapshot {
    pub fn new(version: Version, table: &VoucherTable, manifest: Option<Manifest>) -> Self {
        let mut countries: HashMap<Box<str>, Country> = HashMap::new();
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
        }
        for country in countries.values_mut() {
            for entries in &mut country.by_type {
                entries.sort_by_key(|e| e.segment.lower);
            }
        }
        types.sort();
        Snapshot {
            version,
            version_name: version.to_string().into(),
            countries,
            types,
            rows: table.rows().len(),
            manifest,
        }
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

    /// The segments of a country and type, ordered by lower bound; empty when there are none.
    pub fn segments(&self, country: &str, segment_type: SegmentType) -> &[Entry] {
        self.countries
            .get(country)
            .map_or(&[], |c| c.by_type[slot(segment_type)].as_slice())
    }

    /// The entry whose segment covers `value`, with the country's name as the table spells it,
    /// or a message naming the value and the segments that exist.
    pub fn find(
        &self,
        country: &str,
        segment_type: SegmentType,
        value: i64,
    ) -> Result<(&str, &Entry), NoSegment> {
        let found = self.countries.get_key_value(country);
        let entries = found.map_or(&[][..], |(_, c)| c.by_type[slot(segment_type)].as_slice());
        if let (Some((name, _)), Some(entry)) =
            (found, entries.iter().find(|e| e.segment.contains(value)))
        {
            return Ok((name, entry));
        }
        // The country is the request's, checked against the table, and the segments the
        // table's: both are bounded all the same (see `crate::echo`).
        let country = Plain(country);
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
            let _ = write!(
                message,
                "the {segment_type} segments of {country} are {}",
                few(entries.iter().map(|e| &e.segment))
            );
        }
        Err(NoSegment { message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::contract_snapshot as sample_live;

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
            let (_, e) = live.find("Peru", f, value).expect("covered");
            assert_eq!(
                (e.segment.label.as_str(), e.voucher),
                (label, amount),
                "{value}"
            );
        }
        let (_, e) = live
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
    fn a_no_segment_message_is_bounded_however_long_the_tables_names() {
        let long = "p".repeat(1 << 20);
        let rows = crate::fixtures::contract_rows(2640)
            .into_iter()
            .filter(|row| row.country_code == "Peru")
            .map(|mut row| {
                row.country_code.clone_from(&long);
                row
            })
            .collect();
        let table = VoucherTable::new(rows).expect("table");
        let version = Version::parse("20261123T101000Z").expect("v");
        let live = Snapshot::new(version, &table, None);
        let err = live.find(&long, SegmentType::Frequent, 50).unwrap_err();
        assert!(err.message.len() < 600, "{} bytes", err.message.len());
        assert!(err.message.contains("(1048576 bytes)"), "{}", err.message);
        assert!(err.message.contains("14-37 [14, 37]"), "{}", err.message);
    }

    #[test]
    fn lists_countries_and_types() {
        let live = sample_live();
        assert_eq!(live.countries(), ["Latvia", "Peru"]);
        assert_eq!(
            live.segment_types(),
            [SegmentType::Frequent, SegmentType::Recency]
        );
        assert_eq!(live.rows(), 9);
        assert_eq!(live.version_name(), "20261123T101000Z");
    }
}
