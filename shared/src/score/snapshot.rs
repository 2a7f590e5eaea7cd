//! One table version decoded for scoring: segments keyed by country and segment type.
//!
//! Built once per version, off the request path, so that scoring costs one hash lookup and a
//! scan of a handful of segments.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::echo::{Plain, few};
use crate::manifest::Manifest;
use crate::publish::Version;
use crate::score::VoucherResponse;
use crate::segments::{Segment, SegmentType};
use crate::table::VoucherTable;

/// One segment with its voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub segment: Segment,
    pub voucher: i64,
    /// The answer to a request this entry covers, as JSON: what [`VoucherResponse`]
    /// serializes to, with the snapshot's version and the country as the table spells it.
    pub json: Box<str>,
}

impl Entry {
    /// The answer this entry gives to a request of `country` and `segment_type` in version
    /// `version` (with its JSON once [`Snapshot::new`] has rendered it).
    pub(crate) fn answer<'a>(
        &'a self,
        country: &'a str,
        segment_type: SegmentType,
        version: &'a str,
    ) -> VoucherResponse<'a> {
        VoucherResponse {
            voucher: self.voucher,
            country_code: country,
            segment_name: segment_type.name(),
            segment: &self.segment.label,
            version,
            json: &self.json,
        }
    }
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
    countries: HashMap<Box<str>, Country, foldhash::fast::RandomState>,
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
        let mut countries: HashMap<Box<str>, Country, _> = HashMap::default();
        let mut types = Vec::new();
        for row in table.rows() {
            countries
                .entry(row.country_code.as_str().into())
                .or_default()
                .by_type[slot(row.segment_name)]
            .push(Entry {
                segment: row.segment(),
                voucher: row.voucher_amount,
                json: Box::default(),
            });
            if !types.contains(&row.segment_name) {
                types.push(row.segment_name);
            }
        }
        let version_name: Box<str> = version.to_string().into();
        for (name, country) in &mut countries {
            for segment_type in SegmentType::ALL {
                let entries = &mut country.by_type[slot(segment_type)];
                entries.sort_by_key(|e| e.segment.lower);
                for entry in entries {
                    let json = entry.answer(name, segment_type, &version_name).to_json();
                    entry.json = json.into();
                }
            }
        }
        types.sort();
        Snapshot {
            version,
            version_name,
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

    /// The segments of a country and type, ordered by lower bound; empty when there are none.
    pub fn segments(&self, country: &str, segment_type: SegmentType) -> &[Entry] {
        self.countries
            .get(country)
            .map_or(&[], |c| c.by_type[slot(segment_type)].as_slice())
    }

    /// The segments of one country, for doors that look many values up: resolving the name
    /// once saves a hash lookup per value.
    pub fn country(&self, name: &str) -> Option<CountrySegments<'_>> {
        self.countries
            .get_key_value(name)
            .map(|(name, country)| CountrySegments { name, country })
    }

    /// The entry whose segment covers `value`, with the country's name as the table spells it,
    /// or a message naming the value and the segments that exist.
    pub fn find(
        &self,
        country: &str,
        segment_type: SegmentType,
        value: i64,
    ) -> Result<(&str, &Entry), NoSegment> {
        match self.country(country) {
            Some(c) => self
                .find_in(c, segment_type, value)
                .map(|entry| (c.name, entry)),
            None => Err(self.no_segment(country, &[], segment_type, value)),
        }
    }

    /// [`Snapshot::find`] in a country that this snapshot's [`Snapshot::country`] returned.
    pub fn find_in<'s>(
        &'s self,
        country: CountrySegments<'s>,
        segment_type: SegmentType,
        value: i64,
    ) -> Result<&'s Entry, NoSegment> {
        country.covering(segment_type, value).ok_or_else(|| {
            self.no_segment(
                country.name,
                country.segments(segment_type),
                segment_type,
                value,
            )
        })
    }

    fn no_segment(
        &self,
        country: &str,
        entries: &[Entry],
        segment_type: SegmentType,
        value: i64,
    ) -> NoSegment {
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
        NoSegment { message }
    }
}

/// The segments of one country of a [`Snapshot`] (see [`Snapshot::country`]).
#[derive(Debug, Clone, Copy)]
pub struct CountrySegments<'s> {
    name: &'s str,
    country: &'s Country,
}

/// One country of one snapshot: the same name in the same table.
impl PartialEq for CountrySegments<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.country, other.country) && self.name == other.name
    }
}

impl Eq for CountrySegments<'_> {}

impl<'s> CountrySegments<'s> {
    /// The country's name, as the table spells it.
    pub fn name(&self) -> &'s str {
        self.name
    }

    /// The segments of a type, ordered by lower bound.
    pub fn segments(&self, segment_type: SegmentType) -> &'s [Entry] {
        &self.country.by_type[slot(segment_type)]
    }

    /// The entry whose segment covers `value`: a search of the sorted bounds (a table's
    /// segments of one country and type never overlap; see `VoucherTable::new`).
    pub fn covering(&self, segment_type: SegmentType, value: i64) -> Option<&'s Entry> {
        let entries = self.segments(segment_type);
        let above = entries.partition_point(|e| e.segment.lower <= value);
        let entry = entries.get(above.checked_sub(1)?)?;
        entry.segment.contains(value).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::contract_snapshot as sample_live;
    use crate::table::VoucherRow;

    #[test]
    fn every_entry_holds_its_answer_as_json() {
        use crate::fixtures::{CONTRACT_VERSION, contract_rows};
        use crate::segments::SegmentSet;
        let odd = "Côte \"d'Ivoire\" \\ 東京";
        let mut rows = contract_rows(2640);
        let segments = SegmentSet::builtin();
        let recency = segments
            .get(SegmentType::Recency)
            .expect("recency segments");
        rows.push(VoucherRow::of_segment(
            odd,
            SegmentType::Recency,
            &recency[0],
            7,
            4,
            10,
        ));
        let table = VoucherTable::new(rows).expect("a valid table");
        let version = Version::parse(CONTRACT_VERSION).expect("version");
        let snapshot = Snapshot::new(version, &table, None);
        let mut seen = 0;
        for country in snapshot.countries() {
            for segment_type in SegmentType::ALL {
                for entry in snapshot.segments(country, segment_type) {
                    let answer: serde_json::Value =
                        serde_json::from_str(&entry.json).expect("JSON");
                    assert_eq!(
                        answer,
                        serde_json::json!({
                            "voucher": entry.voucher,
                            "country_code": country,
                            "segment_name": segment_type.name(),
                            "segment": entry.segment.label,
                            "version": CONTRACT_VERSION,
                        })
                    );
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, table.rows().len());
        let (name, entry) = snapshot
            .find(odd, SegmentType::Recency, 40)
            .expect("covered");
        assert_eq!(name, odd);
        assert!(
            entry
                .json
                .contains(r#""country_code":"Côte \"d'Ivoire\" \\ 東京""#),
            "{}",
            entry.json
        );
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
    fn the_bounds_search_agrees_with_a_scan_of_every_segment() {
        let live = sample_live();
        for country in ["Peru", "Latvia"] {
            let segments = live.country(country).expect("a country of the table");
            assert_eq!(segments.name(), country);
            for t in SegmentType::ALL {
                let entries = segments.segments(t);
                for value in -2..250 {
                    let scanned = entries.iter().find(|e| e.segment.contains(value));
                    assert_eq!(
                        segments.covering(t, value),
                        scanned,
                        "{country} {t} {value}"
                    );
                }
            }
        }
        assert!(live.country("Atlantis").is_none());
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
