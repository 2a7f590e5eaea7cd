//! The columns of a Parquet file as polars reads them, told apart without letting polars
//! convert a type it cannot hold: polars (as built here, without its decimal and float16
//! features) panics on a decimal or float16 column anywhere in a file's schema, even one that
//! is never read. So a file's types are read from its footer as Arrow types first: the ones
//! polars holds are read by polars; decimals and float16, which warehouses and pandas write
//! for numbers, are decoded here with polars' own Parquet decoder and become the numbers they
//! are; other types are named in a clear error if the job needs them, and never decoded if
//! it does not.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use polars::io::parquet::metadata::FileMetadataRef;
use polars::prelude::*;
use polars_arrow::array::{Array, FixedSizeBinaryArray, PrimitiveArray};
use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
use polars_buffer::Buffer;
use polars_parquet::parquet::metadata::FileMetadata;
use polars_parquet::parquet::read::deserialize_metadata;
use polars_parquet::read::{BasicDecompressor, Filter, PageReader, column_iter_to_arrays};

/// The footer of the Parquet file at `path` as polars decodes it, and whether it had to be
/// mended first: polars 0.55 refuses a footer that declares the column order parquet-format's
/// newest writers (the Rust `parquet` crate) give INT96 columns, `INT96_TIMESTAMP_ORDER`; such
/// an order is read as the type-defined one (it only ranks statistics, which nothing here
/// compares). A mended footer is only in memory: polars' own scans cannot read the file.
pub fn footer(path: &Path) -> PolarsResult<(FileMetadataRef, bool)> {
    let mut file = File::open(path)?;
    let length = file.seek(SeekFrom::End(0))?;
    let mut tail = [0u8; 8];
    if length < 12 {
        polars_bail!(ComputeError: "the file is too short to be Parquet");
    }
    file.seek(SeekFrom::Start(length - 8))?;
    file.read_exact(&mut tail)?;
    let size = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if size + 12 > length {
        polars_bail!(ComputeError: "the footer's length ({size} bytes) is beyond the file");
    }
    let mut bytes = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
    file.seek(SeekFrom::Start(length - 8 - size))?;
    file.read_exact(&mut bytes)?;
    match deserialize_metadata(Buffer::from(bytes.clone())) {
        Ok(metadata) => Ok((Arc::new(metadata), false)),
        Err(error) => match int96_orders_as_type_defined(&bytes) {
            Some(mended) => Ok((Arc::new(deserialize_metadata(Buffer::from(mended))?), true)),
            None => Err(error.into()),
        },
    }
}

/// `footer` (Thrift compact bytes of a `FileMetaData`) with each `INT96_TIMESTAMP_ORDER` (union
/// field 3) of its `column_orders` made `TYPE_ORDER` (field 1), both empty structs, so the
/// bytes keep their length; `None` unless the footer ends with such a list (field 7, the last
/// field but encryption's, which are then absent) holding one.
fn int96_orders_as_type_defined(footer: &[u8]) -> Option<Vec<u8>> {
    // From the end: the struct's stop byte, then the list's elements, each three bytes
    // (`id << 4 | struct`, the empty struct's stop, the union's stop).
    let mut end = footer.len().checked_sub(1)?;
    if footer[end] != 0 {
        return None;
    }
    let mut count = 0usize;
    while end >= 3 && matches!(&footer[end - 3..end], [0x1c | 0x2c | 0x3c, 0, 0]) {
        end -= 3;
        count += 1;
    }
    // The list header: size and element type (struct) in one byte, or 0xfc and a varint.
    let mut header = Vec::new();
    if count < 15 {
        header.push(u8::try_from(count << 4).ok()? | 0x0c);
    } else {
        header.push(0xfc);
        let mut n = count;
        while n >= 0x80 {
            header.push(u8::try_from(n & 0x7f).ok()? | 0x80);
            n >>= 7;
        }
        header.push(u8::try_from(n).ok()?);
    }
    let start = end.checked_sub(header.len())?;
    let field = *footer.get(start.checked_sub(1)?)?;
    // A list field in the short form (a delta from the field before).
    if footer[start..end] != header[..] || field & 0x0f != 0x09 || field >> 4 == 0 {
        return None;
    }
    let mut mended = footer.to_vec();
    let mut changed = false;
    for at in (end..footer.len() - 1).step_by(3) {
        if mended[at] == 0x3c {
            mended[at] = 0x1c;
            changed = true;
        }
    }
    changed.then_some(mended)
}

/// How polars gets a column of a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Polars reads it as this type.
    Direct(DataType),
    /// Decoded here and converted (see [`Conversion`]).
    Converted(Conversion),
    /// Neither: polars cannot hold it, and it is not a number to convert.
    Unreadable,
}

/// A column type polars cannot hold, read as the number it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// A decimal of up to 18 digits and no fraction: every value is an `i64`, exactly.
    DecimalToInt,
    /// Any other decimal (up to 38 digits): the nearest `f64` of each value.
    DecimalToFloat { scale: usize },
    /// IEEE half precision: `f32` holds every value exactly.
    Float16,
}

impl Conversion {
    /// The polars type the column becomes.
    pub fn dtype(self) -> DataType {
        match self {
            Conversion::DecimalToInt => DataType::Int64,
            Conversion::DecimalToFloat { .. } => DataType::Float64,
            Conversion::Float16 => DataType::Float32,
        }
    }

    /// The Arrow type the column is decoded as before the conversion.
    fn decoded(self, field: &ArrowField) -> ArrowField {
        match self {
            Conversion::Float16 => {
                ArrowField::new(field.name.clone(), ArrowDataType::FixedSizeBinary(2), true)
            }
            _ => field.clone(),
        }
    }
}

/// How a column of Arrow type `dtype` is read.
pub fn reading(field: &ArrowField) -> Reading {
    use ArrowDataType as A;
    match &field.dtype {
        A::Decimal(precision, scale)
        | A::Decimal32(precision, scale)
        | A::Decimal64(precision, scale) => {
            if *scale == 0 && *precision <= 18 {
                Reading::Converted(Conversion::DecimalToInt)
            } else if *precision <= 38 {
                Reading::Converted(Conversion::DecimalToFloat { scale: *scale })
            } else {
                Reading::Unreadable
            }
        }
        A::Float16 => Reading::Converted(Conversion::Float16),
        dtype if holds(dtype) => Reading::Direct(DataType::from_arrow_field(field)),
        _ => Reading::Unreadable,
    }
}

/// Whether polars, as built here, converts `dtype` without panicking: the plain types, strings
/// and binary, dictionaries of strings (pandas categoricals, polars' Categorical and Enum), and
/// lists of these. A whitelist: a type not named here is not handed to polars.
fn holds(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    match dtype {
        A::Null
        | A::Boolean
        | A::Int8
        | A::Int16
        | A::Int32
        | A::Int64
        | A::UInt8
        | A::UInt16
        | A::UInt32
        | A::UInt64
        | A::Float32
        | A::Float64
        | A::Date32
        | A::Date64
        | A::Timestamp(..)
        | A::Duration(_)
        | A::Time32(_)
        | A::Time64(_)
        | A::Utf8
        | A::LargeUtf8
        | A::Utf8View
        | A::Binary
        | A::LargeBinary
        | A::BinaryView
        | A::FixedSizeBinary(_) => true,
        A::Dictionary(_, values, _) => {
            matches!(values.as_ref(), A::Utf8 | A::LargeUtf8 | A::Utf8View)
        }
        A::List(inner) | A::LargeList(inner) => holds(&inner.dtype),
        _ => false,
    }
}

/// The columns of a file's Arrow schema as polars reads them.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// Every column polars reads, directly or converted, in the file's order, as the type it
    /// is read as.
    pub schema: Schema,
    /// The columns that need [`read_row_group`] (converted), by name.
    pub converted: Vec<(PlSmallStr, Conversion)>,
    /// The columns nothing here reads: name and Arrow type.
    pub unreadable: Vec<(PlSmallStr, String)>,
}

impl Columns {
    pub fn of(arrow: &ArrowSchema) -> Columns {
        let mut columns = Columns::default();
        for field in arrow.iter_values() {
            match reading(field) {
                Reading::Direct(dtype) => {
                    columns.schema.insert(field.name.clone(), dtype);
                }
                Reading::Converted(conversion) => {
                    columns
                        .schema
                        .insert(field.name.clone(), conversion.dtype());
                    columns.converted.push((field.name.clone(), conversion));
                }
                Reading::Unreadable => columns
                    .unreadable
                    .push((field.name.clone(), arrow_type_name(&field.dtype))),
            }
        }
        columns
    }

    /// Whether polars can be given the whole file as it is.
    pub fn all_direct(&self) -> bool {
        self.converted.is_empty() && self.unreadable.is_empty()
    }

    /// The conversion of column `name`, if it has one.
    pub fn conversion(&self, name: &str) -> Option<Conversion> {
        self.converted
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
    }

    /// The type of column `name` for a message, when nothing reads it.
    pub fn unreadable(&self, name: &str) -> Option<&str> {
        self.unreadable
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// An Arrow type as a reader of the message knows it (`decimal(22, 2)`, `float16`).
pub fn arrow_type_name(dtype: &ArrowDataType) -> String {
    use ArrowDataType as A;
    match dtype {
        A::Decimal(p, s) | A::Decimal32(p, s) | A::Decimal64(p, s) | A::Decimal256(p, s) => {
            format!("decimal({p}, {s})")
        }
        A::Float16 => "float16".to_owned(),
        A::Struct(_) => "struct".to_owned(),
        A::Map(..) => "map".to_owned(),
        A::Interval(_) => "interval".to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// Decodes the columns `names` (each read as `arrow` and [`reading`] say: columns polars holds
/// as polars would, converted ones as their number type) of row group `group` of the file at
/// `path`, rows `rows` of the group (all when `None`). Only these columns' bytes are read.
pub fn read_row_group(
    path: &Path,
    metadata: &FileMetadata,
    arrow: &ArrowSchema,
    group: usize,
    names: &[&str],
    rows: Option<(usize, usize)>,
) -> PolarsResult<DataFrame> {
    let row_group = metadata
        .row_groups
        .get(group)
        .ok_or_else(|| polars_err!(ComputeError: "row group {group} is not in the footer"))?;
    let mut file = File::open(path)?;
    let mut columns = Vec::with_capacity(names.len());
    let mut height = row_group.num_rows();
    for &name in names {
        let field = arrow
            .get(name)
            .ok_or_else(|| polars_err!(ColumnNotFound: "column `{name}` is not in the file"))?;
        let mut chunks = row_group
            .columns_under_root_iter(name)
            .ok_or_else(|| polars_err!(ColumnNotFound: "column `{name}` is not in the file"))?;
        let (Some(chunk), None) = (chunks.next(), chunks.next()) else {
            polars_bail!(ComputeError: "column `{name}` is nested, which is not read here");
        };
        let range = chunk.byte_range();
        let mut bytes = vec![0; usize::try_from(range.end - range.start).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(range.start))?;
        file.read_exact(&mut bytes)?;
        let pages = PageReader::new(
            Cursor::new(Buffer::from(bytes)),
            chunk,
            Vec::new(),
            usize::MAX,
        );
        let conversion = match reading(field) {
            Reading::Converted(conversion) => Some(conversion),
            Reading::Direct(_) => None,
            Reading::Unreadable => polars_bail!(
                SchemaMismatch: "column `{name}` has type {}, which is not read", arrow_type_name(&field.dtype)
            ),
        };
        let decoded = match conversion {
            Some(conversion) => conversion.decoded(field),
            None => plain(field),
        };
        let filter = rows.map(|(start, len)| Filter::new_ranged(start, start + len));
        let (arrays, _) = column_iter_to_arrays(
            vec![BasicDecompressor::new(pages, Vec::new())],
            vec![&chunk.descriptor().descriptor.primitive_type],
            decoded,
            filter,
        )?;
        let arrays = match conversion {
            Some(conversion) => arrays
                .iter()
                .map(|array| convert(array.as_ref(), conversion))
                .collect::<PolarsResult<Vec<_>>>()?,
            None => arrays,
        };
        let series = Series::from_arrow_chunks(name.into(), arrays)?;
        height = series.len();
        columns.push(series.into_column());
    }
    DataFrame::new(height, columns)
}

/// `field` as decoded here: strings and binary as views, whatever the file's Arrow schema
/// says (a dictionary of strings is read as the strings: its categories mean nothing here).
fn plain(field: &ArrowField) -> ArrowField {
    use ArrowDataType as A;
    let dtype = match &field.dtype {
        A::Utf8 | A::LargeUtf8 | A::Dictionary(..) => A::Utf8View,
        A::Binary | A::LargeBinary => A::BinaryView,
        other => other.clone(),
    };
    ArrowField::new(field.name.clone(), dtype, true)
}

/// One decoded array of a converted column, as its number type.
fn convert(array: &dyn Array, conversion: Conversion) -> PolarsResult<Box<dyn Array>> {
    let any = array.as_any();
    Ok(match conversion {
        Conversion::DecimalToInt | Conversion::DecimalToFloat { .. } => {
            let decimals = any.downcast_ref::<PrimitiveArray<i128>>().ok_or_else(
                || polars_err!(ComputeError: "a decimal column decoded as {:?}", array.dtype()),
            )?;
            match conversion {
                Conversion::DecimalToInt => Box::new(PrimitiveArray::<i64>::from_trusted_len_iter(
                    decimals
                        .iter()
                        .map(|v| v.and_then(|&v| i64::try_from(v).ok())),
                )),
                Conversion::DecimalToFloat { scale } => {
                    let divisor = 10f64.powi(i32::try_from(scale).unwrap_or(i32::MAX));
                    Box::new(PrimitiveArray::<f64>::from_trusted_len_iter(
                        decimals.iter().map(|v| v.map(|&v| v as f64 / divisor)),
                    ))
                }
                Conversion::Float16 => unreachable!("matched above"),
            }
        }
        Conversion::Float16 => {
            let halves = any.downcast_ref::<FixedSizeBinaryArray>().ok_or_else(
                || polars_err!(ComputeError: "a float16 column decoded as {:?}", array.dtype()),
            )?;
            Box::new(PrimitiveArray::<f32>::from_trusted_len_iter(
                halves
                    .iter()
                    .map(|v| v.map(|b| half_to_f32(u16::from_le_bytes([b[0], b[1]])))),
            ))
        }
    })
}

/// An IEEE 754 half-precision float (as Parquet stores it: little-endian bits) as an `f32`,
/// which holds every one exactly.
fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_int96_orders_at_the_end_of_a_footer_are_mended() {
        // ..., field 7 (a list of two structs): TYPE_ORDER, INT96_TIMESTAMP_ORDER; stop.
        let footer = [0x15, 0x04, 0x19, 0x2c, 0x1c, 0, 0, 0x3c, 0, 0, 0];
        let mended = int96_orders_as_type_defined(&footer).expect("mended");
        assert_eq!(mended, [0x15, 0x04, 0x19, 0x2c, 0x1c, 0, 0, 0x1c, 0, 0, 0]);
        // Nothing to mend, a list header that does not fit, no list field: left alone.
        assert_eq!(int96_orders_as_type_defined(&mended), None);
        assert_eq!(
            int96_orders_as_type_defined(&[0x19, 0x3c, 0x3c, 0, 0, 0]),
            None
        );
        assert_eq!(
            int96_orders_as_type_defined(&[0x15, 0x1c, 0x3c, 0, 0, 0]),
            None
        );
        assert_eq!(int96_orders_as_type_defined(&[]), None);
    }

    #[test]
    fn half_precision_floats_are_read_exactly() {
        assert_eq!(half_to_f32(0x0000), 0.0);
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert_eq!(half_to_f32(0x7bff), 65504.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(half_to_f32(0x7c00), f32::INFINITY);
        assert!(half_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn decimals_and_halves_are_numbers_and_unknown_types_are_not_given_to_polars() {
        let field = |dtype| ArrowField::new("x".into(), dtype, true);
        assert_eq!(
            reading(&field(ArrowDataType::Decimal(12, 2))),
            Reading::Converted(Conversion::DecimalToFloat { scale: 2 })
        );
        assert_eq!(
            reading(&field(ArrowDataType::Decimal(18, 0))),
            Reading::Converted(Conversion::DecimalToInt)
        );
        assert_eq!(
            reading(&field(ArrowDataType::Decimal(38, 0))),
            Reading::Converted(Conversion::DecimalToFloat { scale: 0 })
        );
        assert_eq!(
            reading(&field(ArrowDataType::Float16)),
            Reading::Converted(Conversion::Float16)
        );
        assert_eq!(
            reading(&field(ArrowDataType::Decimal256(50, 0))),
            Reading::Unreadable
        );
        assert_eq!(
            reading(&field(ArrowDataType::Struct(vec![]))),
            Reading::Unreadable
        );
        assert_eq!(
            reading(&field(ArrowDataType::LargeUtf8)),
            Reading::Direct(DataType::String)
        );
    }
}
