//! The voucher table: one row per (country, segment type, segment) with the chosen amount.
//!
//! The ETL writes it and the API reads it, both through this module, so the Parquet layout
//! (column names, physical types, nullability) is defined once. `docs/voucher-tables.md`
//! describes the contract.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::RowAccessor;
use parquet::schema::parser::parse_message_type;
use serde::Serialize;

use crate::segments::{Segment, SegmentSet, SegmentType, SegmentsError};

pub const COUNTRY_CODE: &str = "country_code";
pub const SEGMENT_NAME: &str = "segment_name";
pub const SEGMENT: &str = "segment";
pub const LOWER: &str = "lower";
pub const UPPER: &str = "upper";
pub const VOUCHER_AMOUNT: &str = "voucher_amount";
pub const OCCURRENCES: &str = "occurrences";
pub const SEGMENT_ROWS: &str = "segment_rows";

/// The Parquet schema of `vouchers.parquet`, in column order.
const SCHEMA: &str = "
message voucher_table {
  REQUIRED BYTE_ARRAY country_code (STRING);
  REQUIRED BYTE_ARRAY segment_name (STRING);
  REQUIRED BYTE_ARRAY segment (STRING);
  REQUIRED INT64 lower;
  OPTIONAL INT64 upper;
  REQUIRED INT64 voucher_amount;
  REQUIRED INT64 occurrences;
  REQUIRED INT64 segment_rows;
}";

/// Column names with whether each is text (else Int64) and nullable, in table order.
const COLUMNS: [(&str, bool, bool); 8] = [
    (COUNTRY_CODE, true, false),
    (SEGMENT_NAME, true, false),
    (SEGMENT, true, false),
    (LOWER, false, false),
    (UPPER, false, true),
    (VOUCHER_AMOUNT, false, false),
    (OCCURRENCES, false, false),
    (SEGMENT_ROWS, false, false),
];

/// One row of the voucher table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoucherRow {
    pub country_code: String,
    pub segment_name: SegmentType,
    pub segment: String,
    pub lower: i64,
    pub upper: Option<i64>,
    pub voucher_amount: i64,
    pub occurrences: i64,
    pub segment_rows: i64,
}

/// Why a table could not be written, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("not a readable Parquet file")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    #[error("column `{0}` is missing")]
    MissingColumn(&'static str),
    #[error("column `{column}` has type {found}; expected {expected}")]
    WrongType {
        column: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("row {row}: {message}")]
    BadRow { row: usize, message: String },
    #[error("the {segment_name} segments of {country_code} are not valid")]
    BadSegments {
        country_code: String,
        segment_name: SegmentType,
        source: Box<SegmentsError>,
    },
    #[error("the table has no rows")]
    Empty,
}

/// A validated voucher table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherTable {
    rows: Vec<VoucherRow>,
}

impl VoucherTable {
    /// Validates rows: known segment types, unique keys, consistent counts, and per country
    /// and type a set of segments that [`SegmentSet`] accepts (no overlaps or inversions).
    pub fn new(rows: Vec<VoucherRow>) -> Result<Self, TableError> {
        if rows.is_empty() {
            return Err(TableError::Empty);
        }
        let mut keys = HashSet::new();
        let mut groups: BTreeMap<(&str, SegmentType), Vec<Segment>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            let bad = |message: String| TableError::BadRow { row: i, message };
            if r.country_code.is_empty() {
                return Err(bad("empty country_code".into()));
            }
            if !keys.insert((&r.country_code, r.segment_name, &r.segment)) {
                return Err(bad(format!(
                    "{} {} {} appears twice",
                    r.country_code, r.segment_name, r.segment
                )));
            }
            if r.voucher_amount <= 0 {
                return Err(bad(format!(
                    "voucher_amount {} is not > 0",
                    r.voucher_amount
                )));
            }
            if r.occurrences < 1 || r.segment_rows < r.occurrences {
                return Err(bad(format!(
                    "occurrences {} and segment_rows {} must satisfy 1 <= occurrences <= segment_rows",
                    r.occurrences, r.segment_rows
                )));
            }
            groups
                .entry((&r.country_code, r.segment_name))
                .or_default()
                .push(r.segment());
        }
        for ((country, segment_type), segments) in groups {
            SegmentSet::new([(segment_type, segments)]).map_err(|source| {
                TableError::BadSegments {
                    country_code: country.to_owned(),
                    segment_name: segment_type,
                    source: Box::new(source),
                }
            })?;
        }
        Ok(VoucherTable { rows })
    }

    pub fn rows(&self) -> &[VoucherRow] {
        &self.rows
    }

    /// Writes the table as Parquet (zstd) to `out`.
    pub fn write<W: Write + Send>(&self, out: W) -> Result<(), TableError> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build(),
        );
        let mut writer = SerializedFileWriter::new(out, schema, props)?;
        let mut group = writer.next_row_group()?;
        let rows = &self.rows;
        let text: [fn(&VoucherRow) -> &str; 3] = [
            |r| &r.country_code,
            |r| r.segment_name.name(),
            |r| &r.segment,
        ];
        for get in text {
            let values: Vec<ByteArray> = rows.iter().map(|r| get(r).into()).collect();
            let mut col = group
                .next_column()?
                .ok_or(TableError::MissingColumn(SEGMENT))?;
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)?;
            col.close()?;
        }
        let ints: [fn(&VoucherRow) -> Option<i64>; 5] = [
            |r| Some(r.lower),
            |r| r.upper,
            |r| Some(r.voucher_amount),
            |r| Some(r.occurrences),
            |r| Some(r.segment_rows),
        ];
        for (i, get) in ints.into_iter().enumerate() {
            let values: Vec<i64> = rows.iter().filter_map(get).collect();
            // Only `upper` is optional; its definition levels mark the nulls.
            let defs: Option<Vec<i16>> =
                (i == 1).then(|| rows.iter().map(|r| i16::from(get(r).is_some())).collect());
            let mut col = group
                .next_column()?
                .ok_or(TableError::MissingColumn(UPPER))?;
            col.typed::<Int64Type>()
                .write_batch(&values, defs.as_deref(), None)?;
            col.close()?;
        }
        group.close()?;
        writer.close()?;
        Ok(())
    }

    /// Reads and validates a table from Parquet bytes (a memory map wrapped in [`Bytes`] works
    /// without a copy).
    pub fn read(bytes: Bytes) -> Result<Self, TableError> {
        let reader = SerializedFileReader::new(bytes)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let mut index = [0usize; COLUMNS.len()];
        // A required column stored as OPTIONAL is accepted: a null in it fails its row below.
        for (slot, (name, text, _)) in index.iter_mut().zip(COLUMNS) {
            let (i, col) = schema
                .columns()
                .iter()
                .enumerate()
                .find(|(_, c)| c.name() == name)
                .ok_or(TableError::MissingColumn(name))?;
            let physical = col.physical_type();
            let is_string = physical == PhysicalType::BYTE_ARRAY
                && matches!(col.logical_type_ref(), Some(LogicalType::String));
            let ok = if text {
                is_string
            } else {
                physical == PhysicalType::INT64
                    && matches!(
                        col.logical_type_ref(),
                        None | Some(LogicalType::Integer { .. })
                    )
            };
            let repetition = col.self_type().get_basic_info().repetition();
            if !ok || repetition == Repetition::REPEATED {
                return Err(TableError::WrongType {
                    column: name,
                    found: format!("{physical} {:?} {repetition}", col.logical_type_ref()),
                    expected: if text { "UTF-8 string" } else { "Int64" },
                });
            }
            *slot = i;
        }

        let mut rows = Vec::new();
        for (n, row) in reader.get_row_iter(None)?.enumerate() {
            let row = row?;
            let bad = |column: &str, e: parquet::errors::ParquetError| TableError::BadRow {
                row: n,
                message: format!("{column}: {e}"),
            };
            let text = |k: usize| row.get_string(index[k]).map_err(|e| bad(COLUMNS[k].0, e));
            let int = |k: usize| row.get_long(index[k]).map_err(|e| bad(COLUMNS[k].0, e));
            let segment_name = text(1)?;
            let segment_name =
                segment_name
                    .parse()
                    .map_err(|e: SegmentsError| TableError::BadRow {
                        row: n,
                        message: e.to_string(),
                    })?;
            let upper = match row.get_column_iter().nth(index[4]) {
                Some((_, parquet::record::Field::Null)) => None,
                _ => Some(int(4)?),
            };
            rows.push(VoucherRow {
                country_code: text(0)?.clone(),
                segment_name,
                segment: text(2)?.clone(),
                lower: int(3)?,
                upper,
                voucher_amount: int(5)?,
                occurrences: int(6)?,
                segment_rows: int(7)?,
            });
        }
        Self::new(rows)
    }
}

impl VoucherRow {
    /// The segment this row is for, with its bounds.
    pub fn segment(&self) -> Segment {
        Segment {
            label: self.segment.clone(),
            lower: self.lower,
            upper: self.upper,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_rows() -> Vec<VoucherRow> {
        let row = |t, seg: &str, lower, upper, amount, occ, n| VoucherRow {
            country_code: "Peru".into(),
            segment_name: t,
            segment: seg.into(),
            lower,
            upper,
            voucher_amount: amount,
            occurrences: occ,
            segment_rows: n,
        };
        vec![
            row(SegmentType::Frequent, "0-4", 0, Some(4), 2640, 10, 17),
            row(SegmentType::Frequent, "5-13", 5, Some(13), 3520, 4, 5),
            row(SegmentType::Recency, "180+", 181, None, 4400, 3, 3),
        ]
    }

    #[test]
    fn a_written_table_reads_back_identically() {
        let table = VoucherTable::new(sample_rows()).expect("valid rows");
        let mut buf = Vec::new();
        table.write(&mut buf).expect("write");
        let back = VoucherTable::read(Bytes::from(buf)).expect("read");
        assert_eq!(back, table);
    }

    #[test]
    fn truncated_bytes_are_refused() {
        let mut buf = Vec::new();
        VoucherTable::new(sample_rows())
            .expect("valid")
            .write(&mut buf)
            .expect("write");
        buf.truncate(buf.len() / 2);
        assert!(matches!(
            VoucherTable::read(Bytes::from(buf)),
            Err(TableError::Parquet(_))
        ));
    }

    #[test]
    fn overlapping_segments_in_a_table_are_refused() {
        let mut rows = sample_rows();
        rows[1].lower = 3;
        let err = VoucherTable::new(rows).unwrap_err();
        let msg = crate::errors::Chain(&err).to_string();
        assert!(msg.contains("Peru") && msg.contains("overlap"), "{msg}");
    }

    #[test]
    fn duplicate_keys_and_bad_counts_are_refused() {
        let mut rows = sample_rows();
        rows.push(rows[0].clone());
        assert!(matches!(
            VoucherTable::new(rows),
            Err(TableError::BadRow { .. })
        ));
        let mut rows = sample_rows();
        rows[0].occurrences = 99;
        assert!(matches!(
            VoucherTable::new(rows),
            Err(TableError::BadRow { .. })
        ));
        assert!(matches!(VoucherTable::new(vec![]), Err(TableError::Empty)));
    }

    #[test]
    fn a_table_with_a_wrong_column_type_is_refused() {
        let schema = Arc::new(
            parse_message_type("message t { REQUIRED BYTE_ARRAY country_code (STRING); REQUIRED BYTE_ARRAY segment_name (STRING); REQUIRED BYTE_ARRAY segment (STRING); REQUIRED INT64 lower; OPTIONAL INT64 upper; REQUIRED DOUBLE voucher_amount; REQUIRED INT64 occurrences; REQUIRED INT64 segment_rows; }")
                .expect("schema"),
        );
        let mut buf = Vec::new();
        let writer = SerializedFileWriter::new(&mut buf, schema, Default::default()).expect("w");
        writer.close().expect("close");
        let err = VoucherTable::read(Bytes::from(buf)).unwrap_err();
        assert!(
            matches!(
                err,
                TableError::WrongType {
                    column: VOUCHER_AMOUNT,
                    ..
                }
            ),
            "{err}"
        );
    }
}
