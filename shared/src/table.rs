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
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::{Field, Row, RowAccessor};
use parquet::schema::types::{SchemaDescriptor, Type as SchemaType};
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

/// Where a column's values come from in a [`VoucherRow`], and so its Parquet type.
#[derive(Clone, Copy)]
enum Values {
    /// UTF-8 strings (`BYTE_ARRAY (STRING)`).
    Text(fn(&VoucherRow) -> &str),
    /// `INT64`; `None` is a null, in a nullable column only.
    Int(fn(&VoucherRow) -> Option<i64>),
}

/// One column of `vouchers.parquet`.
struct Column {
    name: &'static str,
    values: Values,
    nullable: bool,
}

/// The columns of `vouchers.parquet`, in file order: the schema, the writer and the reader all
/// follow this one list.
const COLUMNS: [Column; 8] = [
    Column {
        name: COUNTRY_CODE,
        values: Values::Text(|r| &r.country_code),
        nullable: false,
    },
    Column {
        name: SEGMENT_NAME,
        values: Values::Text(|r| r.segment_name.name()),
        nullable: false,
    },
    Column {
        name: SEGMENT,
        values: Values::Text(|r| &r.segment),
        nullable: false,
    },
    Column {
        name: LOWER,
        values: Values::Int(|r| Some(r.lower)),
        nullable: false,
    },
    // No upper bound: an open-ended segment (`180+`).
    Column {
        name: UPPER,
        values: Values::Int(|r| r.upper),
        nullable: true,
    },
    Column {
        name: VOUCHER_AMOUNT,
        values: Values::Int(|r| Some(r.voucher_amount)),
        nullable: false,
    },
    Column {
        name: OCCURRENCES,
        values: Values::Int(|r| Some(r.occurrences)),
        nullable: false,
    },
    Column {
        name: SEGMENT_ROWS,
        values: Values::Int(|r| Some(r.segment_rows)),
        nullable: false,
    },
];

impl Column {
    fn parquet_type(&self) -> Result<SchemaType, ParquetError> {
        let (physical, logical) = match self.values {
            Values::Text(_) => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            Values::Int(_) => (PhysicalType::INT64, None),
        };
        let repetition = if self.nullable {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        };
        SchemaType::primitive_type_builder(self.name, physical)
            .with_logical_type(logical)
            .with_repetition(repetition)
            .build()
    }
}

/// The Parquet schema of `vouchers.parquet`.
fn schema() -> Result<SchemaType, ParquetError> {
    let fields = COLUMNS
        .iter()
        .map(|c| c.parquet_type().map(Arc::new))
        .collect::<Result<_, _>>()?;
    SchemaType::group_type_builder("voucher_table")
        .with_fields(fields)
        .build()
}

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
    Parquet(#[from] ParquetError),
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
    #[error("row {row}: cannot read column `{column}`")]
    BadValue {
        row: usize,
        column: &'static str,
        // Boxed: errors are rare and the rows' `Result`s stay small.
        source: Box<ValueError>,
    },
    #[error("the {segment_name} segments of {country_code} are not valid")]
    BadSegments {
        country_code: String,
        segment_name: SegmentType,
        source: Box<SegmentsError>,
    },
    #[error("the table has no rows")]
    Empty,
}

/// Why one value of a table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error(transparent)]
    SegmentType(#[from] SegmentsError),
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
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build(),
        );
        let mut writer = SerializedFileWriter::new(out, Arc::new(schema()?), props)?;
        let mut group = writer.next_row_group()?;
        let rows = &self.rows;
        for column in &COLUMNS {
            let mut col = group
                .next_column()?
                .ok_or(TableError::MissingColumn(column.name))?;
            match column.values {
                Values::Text(get) => {
                    let values: Vec<ByteArray> = rows.iter().map(|r| get(r).into()).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, None, None)?;
                }
                Values::Int(get) => {
                    let values: Vec<i64> = rows.iter().filter_map(get).collect();
                    // The definition levels of a nullable column mark its nulls.
                    let defs: Option<Vec<i16>> = column
                        .nullable
                        .then(|| rows.iter().map(|r| i16::from(get(r).is_some())).collect());
                    col.typed::<Int64Type>()
                        .write_batch(&values, defs.as_deref(), None)?;
                }
            }
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
        let positions = column_positions(&reader.metadata().file_metadata().schema_descr_ptr())?;
        let mut rows = Vec::new();
        for (n, row) in reader.get_row_iter(None)?.enumerate() {
            let row = row?;
            let cells = Cells {
                row: &row,
                positions: &positions,
                number: n,
            };
            rows.push(VoucherRow {
                country_code: cells.text(COUNTRY_CODE)?.clone(),
                segment_name: cells
                    .text(SEGMENT_NAME)?
                    .parse()
                    .map_err(|e: SegmentsError| cells.bad(SEGMENT_NAME, e.into()))?,
                segment: cells.text(SEGMENT)?.clone(),
                lower: cells.int(LOWER)?,
                upper: cells.optional_int(UPPER)?,
                voucher_amount: cells.int(VOUCHER_AMOUNT)?,
                occurrences: cells.int(OCCURRENCES)?,
                segment_rows: cells.int(SEGMENT_ROWS)?,
            });
        }
        Self::new(rows)
    }
}

/// Where each of [`COLUMNS`] is in a file (by name, so the file's column order is free), after
/// checking its type. A required column stored as OPTIONAL is accepted: a null in it fails its
/// row when read.
fn column_positions(
    schema: &SchemaDescriptor,
) -> Result<BTreeMap<&'static str, usize>, TableError> {
    let mut positions = BTreeMap::new();
    for column in &COLUMNS {
        let (i, col) = schema
            .columns()
            .iter()
            .enumerate()
            .find(|(_, c)| c.name() == column.name)
            .ok_or(TableError::MissingColumn(column.name))?;
        let physical = col.physical_type();
        let (ok, expected) = match column.values {
            Values::Text(_) => (
                physical == PhysicalType::BYTE_ARRAY
                    && matches!(col.logical_type_ref(), Some(LogicalType::String)),
                "UTF-8 string",
            ),
            Values::Int(_) => (
                physical == PhysicalType::INT64
                    && matches!(
                        col.logical_type_ref(),
                        None | Some(LogicalType::Integer { .. })
                    ),
                "Int64",
            ),
        };
        let repetition = col.self_type().get_basic_info().repetition();
        if !ok || repetition == Repetition::REPEATED {
            return Err(TableError::WrongType {
                column: column.name,
                found: format!("{physical} {:?} {repetition}", col.logical_type_ref()),
                expected,
            });
        }
        positions.insert(column.name, i);
    }
    Ok(positions)
}

/// One row of a table file, read by column name.
struct Cells<'a> {
    row: &'a Row,
    positions: &'a BTreeMap<&'static str, usize>,
    /// The row's number in the file, for errors.
    number: usize,
}

impl<'a> Cells<'a> {
    fn position(&self, column: &'static str) -> Result<usize, TableError> {
        self.positions
            .get(column)
            .copied()
            .ok_or(TableError::MissingColumn(column))
    }

    fn bad(&self, column: &'static str, source: ValueError) -> TableError {
        TableError::BadValue {
            row: self.number,
            column,
            source: Box::new(source),
        }
    }

    fn text(&self, column: &'static str) -> Result<&'a String, TableError> {
        self.row
            .get_string(self.position(column)?)
            .map_err(|e| self.bad(column, e.into()))
    }

    fn int(&self, column: &'static str) -> Result<i64, TableError> {
        self.row
            .get_long(self.position(column)?)
            .map_err(|e| self.bad(column, e.into()))
    }

    fn optional_int(&self, column: &'static str) -> Result<Option<i64>, TableError> {
        let position = self.position(column)?;
        match self.row.get_column_iter().nth(position) {
            Some((_, Field::Null)) => Ok(None),
            _ => self.int(column).map(Some),
        }
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

    /// A one-row table file with the columns of `order`, in that order: Peru, `segment_name`,
    /// segment `4` with every number 4.
    fn write_raw(order: &[&'static str], segment_name: &str) -> Vec<u8> {
        let columns: Vec<&Column> = order
            .iter()
            .filter_map(|name| COLUMNS.iter().find(|c| c.name == *name))
            .collect();
        let fields = columns
            .iter()
            .map(|c| c.parquet_type().map(Arc::new))
            .collect::<Result<_, _>>()
            .expect("column types");
        let schema = SchemaType::group_type_builder("t")
            .with_fields(fields)
            .build()
            .expect("schema");
        let mut buf = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut buf, Arc::new(schema), Default::default())
            .expect("writer");
        let mut group = writer.next_row_group().expect("row group");
        for column in columns {
            let mut col = group.next_column().expect("column").expect("a column");
            match column.values {
                Values::Text(_) => {
                    let value = match column.name {
                        SEGMENT_NAME => segment_name,
                        COUNTRY_CODE => "Peru",
                        _ => "4",
                    };
                    col.typed::<ByteArrayType>()
                        .write_batch(&[value.into()], None, None)
                        .expect("write");
                }
                Values::Int(_) => {
                    let defs = column.nullable.then_some(&[1i16][..]);
                    col.typed::<Int64Type>()
                        .write_batch(&[4], defs, None)
                        .expect("write");
                }
            }
            col.close().expect("close column");
        }
        group.close().expect("close group");
        writer.close().expect("close");
        buf
    }

    #[test]
    fn columns_are_read_by_name_in_any_order() {
        let mut order: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        order.reverse();
        let table = VoucherTable::read(Bytes::from(write_raw(&order, "frequent_segment")))
            .expect("a valid table");
        let row = &table.rows()[0];
        assert_eq!(
            (
                row.country_code.as_str(),
                row.segment_name,
                row.segment.as_str()
            ),
            ("Peru", SegmentType::Frequent, "4")
        );
        assert_eq!((row.lower, row.upper, row.voucher_amount), (4, Some(4), 4));
    }

    #[test]
    fn a_bad_value_names_its_row_and_column_and_keeps_its_cause() {
        let order: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let err = VoucherTable::read(Bytes::from(write_raw(&order, "loyalty_segment")))
            .expect_err("an unknown segment type");
        assert!(
            matches!(
                &err,
                TableError::BadValue { row: 0, column: SEGMENT_NAME, source }
                    if matches!(**source, ValueError::SegmentType(SegmentsError::UnknownType(_)))
            ),
            "{err:?}"
        );
        let msg = crate::errors::Chain(&err).to_string();
        assert!(
            msg.starts_with(
                "row 0: cannot read column `segment_name`: unknown segment type `loyalty_segment`"
            ),
            "{msg}"
        );
        let missing: Vec<&str> = order.into_iter().filter(|n| *n != LOWER).collect();
        let err = VoucherTable::read(Bytes::from(write_raw(&missing, "frequent_segment")))
            .expect_err("no lower column");
        assert!(matches!(err, TableError::MissingColumn(LOWER)), "{err:?}");
    }

    #[test]
    fn a_table_with_a_wrong_column_type_is_refused() {
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type("message t { REQUIRED BYTE_ARRAY country_code (STRING); REQUIRED BYTE_ARRAY segment_name (STRING); REQUIRED BYTE_ARRAY segment (STRING); REQUIRED INT64 lower; OPTIONAL INT64 upper; REQUIRED DOUBLE voucher_amount; REQUIRED INT64 occurrences; REQUIRED INT64 segment_rows; }")
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
