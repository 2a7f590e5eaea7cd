//! Segment definitions: which customers count as "similar".
//!
//! Segment *types* are code (each is measured on a different quantity); the segments of a type
//! are data. The ETL reads them from a TOML file and copies the bounds into the table, so the
//! API only ever sees the bounds the table was built with.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of segmentation, each measured on its own quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SegmentType {
    /// Measured on the customer's `total_orders`.
    #[serde(rename = "frequent_segment")]
    Frequent,
    /// Measured on the days between the customer's last order and the voucher (or today).
    #[serde(rename = "recency_segment")]
    Recency,
}

impl SegmentType {
    /// Every segment type, in table order.
    pub const ALL: [SegmentType; 2] = [SegmentType::Frequent, SegmentType::Recency];

    /// The name used in config files, tables and requests.
    pub fn name(self) -> &'static str {
        match self {
            SegmentType::Frequent => "frequent_segment",
            SegmentType::Recency => "recency_segment",
        }
    }

    /// What the segment bounds are compared with, for messages.
    pub fn measure(self) -> &'static str {
        match self {
            SegmentType::Frequent => "total_orders",
            SegmentType::Recency => "days since last order",
        }
    }
}

impl fmt::Display for SegmentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SegmentType {
    type Err = SegmentsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SegmentType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SegmentsError::UnknownType(s.to_owned()))
    }
}

/// One segment: a label and inclusive bounds; no upper bound means open-ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub label: String,
    pub lower: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<i64>,
}

impl Segment {
    pub fn contains(&self, value: i64) -> bool {
        value >= self.lower && self.upper.is_none_or(|upper| value <= upper)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.upper {
            Some(upper) => write!(f, "{} [{}, {}]", self.label, self.lower, upper),
            None => write!(f, "{} [{}, ∞)", self.label, self.lower),
        }
    }
}

/// Why a set of segments was refused.
#[derive(Debug, thiserror::Error)]
pub enum SegmentsError {
    #[error("cannot read segments file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("segments file {path} is not valid{}", Location::text(*.at))]
    Parse {
        path: String,
        /// Where the error is, when the parser could tell.
        at: Option<Location>,
        source: TomlError,
    },
    #[error(
        "unknown segment type `{0}`; the known types are `frequent_segment` (total_orders) and `recency_segment` (days since last order)"
    )]
    UnknownType(String),
    #[error("{segment_type}: segment `{label}` has an empty label or one with surrounding spaces")]
    BadLabel {
        segment_type: SegmentType,
        label: String,
    },
    #[error("{segment_type}: the label `{label}` is used twice")]
    DuplicateLabel {
        segment_type: SegmentType,
        label: String,
    },
    #[error("{segment_type}: segment {segment} has a negative lower bound; bounds are counts >= 0")]
    NegativeBound {
        segment_type: SegmentType,
        segment: Segment,
    },
    #[error("{segment_type}: segment {segment} is inverted; lower must be <= upper")]
    Inverted {
        segment_type: SegmentType,
        segment: Segment,
    },
    #[error(
        "{segment_type}: segments {first} and {second} overlap; a value may belong to one segment only"
    )]
    Overlap {
        segment_type: SegmentType,
        first: Segment,
        second: Segment,
    },
    #[error(
        "no segments are defined; at least one segment of `frequent_segment` or `recency_segment` is needed"
    )]
    Empty,
}

/// A place in a text file, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text` (columns count characters).
    fn of(text: &str, offset: usize) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    fn text(at: Option<Location>) -> String {
        at.map(|at| format!(" at line {}, column {}", at.line, at.column))
            .unwrap_or_default()
    }
}

/// toml's error, said on one line: its own `Display` draws the offending line with a caret
/// under it, over several lines, which a log line cannot hold. The whole error stays inside.
#[derive(Debug)]
pub struct TomlError(pub Box<toml::de::Error>);

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self
            .0
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, "; {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TomlError {}

/// The validated segments of every configured type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentSet {
    #[serde(flatten)]
    types: BTreeMap<SegmentType, Vec<Segment>>,
}

/// The built-in segment definitions (TOML).
pub const BUILTIN: &str = include_str!("../../data/segments.toml");

/// The on-disk form of a segments file: one array of tables per segment type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsFile {
    frequent_segment: Option<Vec<Segment>>,
    recency_segment: Option<Vec<Segment>>,
}

impl SegmentSet {
    /// Validates segments: labels unique and clean, bounds >= 0, not inverted, no overlaps.
    /// Segments are kept in ascending order of their lower bound.
    pub fn new(
        types: impl IntoIterator<Item = (SegmentType, Vec<Segment>)>,
    ) -> Result<Self, SegmentsError> {
        let mut map = BTreeMap::new();
        for (segment_type, mut segments) in types {
            if segments.is_empty() {
                continue;
            }
            segments.sort_by_key(|s| s.lower);
            validate(segment_type, &segments)?;
            map.insert(segment_type, segments);
        }
        if map.is_empty() {
            return Err(SegmentsError::Empty);
        }
        Ok(SegmentSet { types: map })
    }

    /// The segments compiled into the programs: the Peru segments of `data/segments.toml`.
    pub fn builtin() -> Self {
        // The shipped file is checked by `the_shipped_config_has_the_contract_bounds`.
        Self::from_toml(BUILTIN)
            .unwrap_or_else(|e| unreachable!("the built-in segments are invalid: {e}"))
    }

    /// The segments of `file` if given, else the built-in ones.
    pub fn load(file: Option<&Path>) -> Result<Self, SegmentsError> {
        file.map_or_else(|| Ok(Self::builtin()), Self::from_file)
    }

    /// Reads and validates a segments file (TOML).
    pub fn from_file(path: &Path) -> Result<Self, SegmentsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SegmentsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates segments from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SegmentsError> {
        Self::parse(text, "<text>")
    }

    /// [`Self::from_toml`] of the text of file `path`.
    fn parse(text: &str, path: &str) -> Result<Self, SegmentsError> {
        let file: SegmentsFile = toml::from_str(text).map_err(|e| SegmentsError::Parse {
            path: path.to_owned(),
            at: e.span().map(|span| Location::of(text, span.start)),
            source: TomlError(Box::new(e)),
        })?;
        Self::new([
            (
                SegmentType::Frequent,
                file.frequent_segment.unwrap_or_default(),
            ),
            (
                SegmentType::Recency,
                file.recency_segment.unwrap_or_default(),
            ),
        ])
    }

    /// The configured types with their segments, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (SegmentType, &[Segment])> {
        self.types.iter().map(|(t, s)| (*t, s.as_slice()))
    }

    /// The segments of one type, if that type is configured.
    pub fn get(&self, segment_type: SegmentType) -> Option<&[Segment]> {
        self.types.get(&segment_type).map(Vec::as_slice)
    }

    /// The segment of `segment_type` that holds `value`, if any.
    pub fn find(&self, segment_type: SegmentType, value: i64) -> Option<&Segment> {
        self.get(segment_type)?.iter().find(|s| s.contains(value))
    }
}

fn validate(segment_type: SegmentType, sorted: &[Segment]) -> Result<(), SegmentsError> {
    for (i, s) in sorted.iter().enumerate() {
        if s.label.is_empty() || s.label.trim() != s.label {
            return Err(SegmentsError::BadLabel {
                segment_type,
                label: s.label.clone(),
            });
        }
        if sorted[..i].iter().any(|p| p.label == s.label) {
            return Err(SegmentsError::DuplicateLabel {
                segment_type,
                label: s.label.clone(),
            });
        }
        if s.lower < 0 {
            return Err(SegmentsError::NegativeBound {
                segment_type,
                segment: s.clone(),
            });
        }
        if s.upper.is_some_and(|upper| upper < s.lower) {
            return Err(SegmentsError::Inverted {
                segment_type,
                segment: s.clone(),
            });
        }
        if let Some(prev) = i.checked_sub(1).map(|p| &sorted[p])
            && prev.upper.is_none_or(|upper| upper >= s.lower)
        {
            return Err(SegmentsError::Overlap {
                segment_type,
                first: prev.clone(),
                second: s.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(set: &SegmentSet, t: SegmentType, v: i64) -> Option<&str> {
        set.find(t, v).map(|s| s.label.as_str())
    }

    #[test]
    fn the_shipped_config_has_the_contract_bounds() {
        let set = SegmentSet::from_toml(BUILTIN).expect("shipped segments are valid");
        assert_eq!(SegmentSet::builtin(), set);
        assert_eq!(SegmentSet::load(None).expect("built-in"), set);
        let f = SegmentType::Frequent;
        for (v, want) in [
            (0, Some("0-4")),
            (4, Some("0-4")),
            (5, Some("5-13")),
            (13, Some("5-13")),
            (14, Some("14-37")),
            (37, Some("14-37")),
            (38, None),
        ] {
            assert_eq!(label(&set, f, v), want, "total_orders {v}");
        }
        let r = SegmentType::Recency;
        for (v, want) in [
            (29, None),
            (30, Some("30-60")),
            (60, Some("30-60")),
            (61, Some("61-90")),
            (90, Some("61-90")),
            (91, Some("91-120")),
            (120, Some("91-120")),
            (121, Some("121-180")),
            (180, Some("121-180")),
            (181, Some("180+")),
            (100_000, Some("180+")),
        ] {
            assert_eq!(label(&set, r, v), want, "days {v}");
        }
    }

    #[test]
    fn overlapping_bounds_are_refused() {
        let err = SegmentSet::from_toml(
            "[[frequent_segment]]\nlabel='a'\nlower=0\nupper=5\n[[frequent_segment]]\nlabel='b'\nlower=5\nupper=9\n",
        )
        .unwrap_err();
        assert!(matches!(err, SegmentsError::Overlap { .. }), "{err}");
        assert!(err.to_string().contains("overlap"), "{err}");
    }

    #[test]
    fn an_open_segment_overlaps_everything_above_it() {
        let err = SegmentSet::from_toml(
            "[[recency_segment]]\nlabel='a+'\nlower=10\n[[recency_segment]]\nlabel='b'\nlower=20\nupper=30\n",
        )
        .unwrap_err();
        assert!(matches!(err, SegmentsError::Overlap { .. }), "{err}");
    }

    #[test]
    fn inverted_bounds_are_refused() {
        let err = SegmentSet::from_toml("[[frequent_segment]]\nlabel='x'\nlower=9\nupper=3\n")
            .unwrap_err();
        assert!(matches!(err, SegmentsError::Inverted { .. }), "{err}");
    }

    #[test]
    fn unknown_segment_types_are_named() {
        let err = SegmentSet::from_toml("[[loyalty_segment]]\nlabel='x'\nlower=0\nupper=3\n")
            .unwrap_err();
        let msg = crate::errors::Chain(&err).to_string();
        assert!(msg.contains("loyalty_segment"), "{msg}");
        assert!(msg.contains("frequent_segment"), "{msg}");
    }

    #[test]
    fn a_toml_error_names_the_file_and_the_place_and_keeps_toml_s_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segments.toml");
        std::fs::write(
            &path,
            "[[frequent_segment]]\nlabel = 'a'\nlower = 0\n  uper = 4\n",
        )
        .expect("write");
        let err = SegmentSet::from_file(&path).expect_err("a misspelt field");
        let SegmentsError::Parse { at, source, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*at, Some(Location { line: 4, column: 3 }));
        assert!(
            source.0.message().contains("unknown field `uper`"),
            "{source:?}"
        );
        let msg = crate::errors::Chain(&err).to_string();
        assert!(
            msg.starts_with(&format!(
                "segments file {} is not valid at line 4, column 3: unknown field `uper`",
                path.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");

        let err = SegmentSet::from_toml("[[frequent_segment]\n").expect_err("a broken header");
        let msg = crate::errors::Chain(&err).to_string();
        assert!(
            msg.starts_with("segments file <text> is not valid at line 1, column "),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_labels_and_negative_bounds_are_refused() {
        let dup = "[[frequent_segment]]\nlabel='x'\nlower=0\nupper=3\n[[frequent_segment]]\nlabel='x'\nlower=4\nupper=5\n";
        assert!(matches!(
            SegmentSet::from_toml(dup),
            Err(SegmentsError::DuplicateLabel { .. })
        ));
        let neg = "[[frequent_segment]]\nlabel='x'\nlower=-1\nupper=3\n";
        assert!(matches!(
            SegmentSet::from_toml(neg),
            Err(SegmentsError::NegativeBound { .. })
        ));
        assert!(matches!(
            SegmentSet::from_toml(""),
            Err(SegmentsError::Empty)
        ));
    }

    #[test]
    fn type_names_round_trip() {
        for t in SegmentType::ALL {
            assert_eq!(t.name().parse::<SegmentType>().ok(), Some(t));
        }
        assert!("frequent".parse::<SegmentType>().is_err());
    }
}
