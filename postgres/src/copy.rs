//! The binary COPY format (`COPY ... TO STDOUT (FORMAT binary)`), decoded value by value into
//! the type families the voucher history accepts.
//!
//! The format: a header (`PGCOPY\n\xff\r\n\0`, flags, an extension area), then per row a
//! 16-bit field count and, per field, a 32-bit length (-1 for NULL) and the value in the
//! type's binary form (big-endian), then a trailer (field count -1). The server sends rows in
//! messages of its choosing: [`CopyDecoder`] takes any split and hands out whole rows only.

use tokio_postgres::types::{Kind, Type};

/// The kinds of column types read, each decoded to one [`Value`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `text`, `varchar`, `char(n)`, `name`: [`Value::Text`].
    Text,
    /// `smallint`, `integer`, `bigint`: [`Value::Int`].
    Integer,
    /// `real`, `double precision`: [`Value::Float`].
    Float,
    /// `numeric`: [`Value::Float`], the nearest double (NaN and the infinities included).
    Numeric,
    /// `date`: [`Value::Date`].
    Date,
    /// `timestamp` (without time zone): [`Value::Timestamp`], read as UTC.
    Timestamp,
    /// `timestamptz`: [`Value::Timestamp`], an instant in UTC.
    TimestampTz,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 7] = [
        Family::Text,
        Family::Integer,
        Family::Float,
        Family::Numeric,
        Family::Date,
        Family::Timestamp,
        Family::TimestampTz,
    ];

    /// The PostgreSQL types of the family, for messages.
    pub fn type_names(self) -> &'static [&'static str] {
        match self {
            Family::Text => &["text", "varchar", "char", "name"],
            Family::Integer => &["smallint", "integer", "bigint"],
            Family::Float => &["real", "double precision"],
            Family::Numeric => &["numeric"],
            Family::Date => &["date"],
            Family::Timestamp => &["timestamp"],
            Family::TimestampTz => &["timestamptz"],
        }
    }

    /// The family of a column type (a domain counts as its base type), or `None` for a type
    /// that is not read (boolean, json, bytea, arrays, ...).
    pub fn of(ty: &Type) -> Option<Family> {
        if let Kind::Domain(base) = ty.kind() {
            return Family::of(base);
        }
        Some(match *ty {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Family::Text,
            Type::INT2 | Type::INT4 | Type::INT8 => Family::Integer,
            Type::FLOAT4 | Type::FLOAT8 => Family::Float,
            Type::NUMERIC => Family::Numeric,
            Type::DATE => Family::Date,
            Type::TIMESTAMP => Family::Timestamp,
            Type::TIMESTAMPTZ => Family::TimestampTz,
            _ => return None,
        })
    }
}

/// The types of `families`, for messages: `text, varchar, ... or timestamptz`.
pub fn type_list(families: impl IntoIterator<Item = Family>) -> String {
    let names: Vec<&str> = families
        .into_iter()
        .flat_map(Family::type_names)
        .copied()
        .collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// One decoded value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// NULL, and the dates and times beyond what microseconds since 1970 hold in 64 bits.
    Null,
    /// The dates and times `infinity` and `-infinity`: no day of the calendar. A history row's
    /// is null (its drop rule counts it); a stored profile's is named in its error.
    Infinite {
        negative: bool,
    },
    Text(&'a str),
    Int(i64),
    Float(f64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
}

/// Where decoded rows go, one value at a time, column by column in order.
pub trait RowSink {
    fn value(&mut self, column: usize, value: Value<'_>);
    /// Called after the last value of each row.
    fn end_row(&mut self);
}

/// Why COPY data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the data does not start with the binary COPY signature")]
    Signature,
    #[error("row {row} has {found} fields; the query has {expected} columns")]
    FieldCount {
        row: u64,
        found: i16,
        expected: usize,
    },
    #[error("row {row}, column {column}: a {family:?} value of {len} bytes is malformed")]
    Malformed {
        row: u64,
        column: usize,
        family: Family,
        len: usize,
    },
    #[error("row {row}, column {column}: the text is not valid UTF-8")]
    Utf8 { row: u64, column: usize },
    #[error("the data ended in the middle of a row or before the trailer")]
    Truncated,
    #[error("data follows the trailer")]
    AfterTrailer,
}

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = EPOCH_DAYS as i64 * 86_400 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Rows,
    Done,
}

/// Decodes a binary COPY stream of rows whose columns have the given families.
#[derive(Debug)]
pub struct CopyDecoder {
    families: Vec<Family>,
    state: State,
    /// The start of a unit (header or row) split across chunks.
    pending: Vec<u8>,
    rows: u64,
}

impl CopyDecoder {
    pub fn new(families: Vec<Family>) -> Self {
        CopyDecoder {
            families,
            state: State::Header,
            pending: Vec::new(),
            rows: 0,
        }
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Decodes the whole rows `chunk` completes, keeping a partial one for the next chunk.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl RowSink) -> Result<(), DecodeError> {
        if self.pending.is_empty() {
            let used = self.decode(chunk, sink)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.decode(&pending, sink)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// Checks that the stream ended where it may: after the trailer.
    pub fn finish(&self) -> Result<u64, DecodeError> {
        if self.state != State::Done || !self.pending.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.rows)
    }

    /// Decodes what `buf` holds whole; returns the bytes used.
    fn decode(&mut self, buf: &[u8], sink: &mut impl RowSink) -> Result<usize, DecodeError> {
        let mut at = 0;
        if self.state == State::Header {
            match header_len(buf)? {
                Some(len) => {
                    at = len;
                    self.state = State::Rows;
                }
                None => return Ok(0),
            }
        }
        while at < buf.len() {
            if self.state == State::Done {
                return Err(DecodeError::AfterTrailer);
            }
            match self.row(&buf[at..], sink)? {
                Some(len) => at += len,
                None => break,
            }
        }
        Ok(at)
    }

    /// Decodes one row (or the trailer) at the start of `buf`, if it is all there; returns
    /// its length.
    fn row(&mut self, buf: &[u8], sink: &mut impl RowSink) -> Result<Option<usize>, DecodeError> {
        let Some(count) = buf.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
            return Ok(None);
        };
        if count == -1 {
            self.state = State::Done;
            return Ok(Some(2));
        }
        if usize::try_from(count).ok() != Some(self.families.len()) {
            return Err(DecodeError::FieldCount {
                row: self.rows + 1,
                found: count,
                expected: self.families.len(),
            });
        }
        // Find the row's end first, so that a row split across chunks is decoded once, whole.
        let mut end = 2;
        for _ in 0..self.families.len() {
            let Some(len) = read_i32(buf, end) else {
                return Ok(None);
            };
            end += 4 + usize::try_from(len).unwrap_or(0);
            if end > buf.len() {
                return Ok(None);
            }
        }
        let mut at = 2;
        for (column, &family) in self.families.iter().enumerate() {
            let len = read_i32(buf, at).unwrap_or(-1);
            at += 4;
            let value = match usize::try_from(len) {
                Err(_) => Value::Null,
                Ok(len) => {
                    let bytes = &buf[at..at + len];
                    at += len;
                    decode_value(family, bytes).map_err(|e| e.at(self.rows + 1, column, family))?
                }
            };
            sink.value(column, value);
        }
        sink.end_row();
        self.rows += 1;
        Ok(Some(end))
    }
}

/// The header's length, once `buf` holds all of it.
fn header_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let fixed = SIGNATURE.len() + 8;
    let head = &buf[..buf.len().min(SIGNATURE.len())];
    if head != &SIGNATURE[..head.len()] {
        return Err(DecodeError::Signature);
    }
    if buf.len() < fixed {
        return Ok(None);
    }
    let extension = read_i32(buf, SIGNATURE.len() + 4).unwrap_or(0);
    let len = fixed + usize::try_from(extension).unwrap_or(0);
    Ok((buf.len() >= len).then_some(len))
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A value that does not fit its type's binary form; placed by [`Bad::at`].
pub(crate) struct Bad {
    utf8: bool,
    len: usize,
}

impl Bad {
    pub(crate) fn at(self, row: u64, column: usize, family: Family) -> DecodeError {
        if self.utf8 {
            DecodeError::Utf8 { row, column }
        } else {
            DecodeError::Malformed {
                row,
                column,
                family,
                len: self.len,
            }
        }
    }
}

pub(crate) fn decode_value(family: Family, b: &[u8]) -> Result<Value<'_>, Bad> {
    let bad = Bad {
        utf8: false,
        len: b.len(),
    };
    Ok(match (family, b.len()) {
        (Family::Text, _) => Value::Text(std::str::from_utf8(b).map_err(|_| Bad {
            utf8: true,
            len: b.len(),
        })?),
        (Family::Integer, 2) => Value::Int(i16::from_be_bytes([b[0], b[1]]).into()),
        (Family::Integer, 4) => Value::Int(i32::from_be_bytes([b[0], b[1], b[2], b[3]]).into()),
        (Family::Integer, 8) => Value::Int(i64::from_be_bytes(eight(b))),
        (Family::Float, 4) => Value::Float(f32::from_be_bytes([b[0], b[1], b[2], b[3]]).into()),
        (Family::Float, 8) => Value::Float(f64::from_be_bytes(eight(b))),
        (Family::Numeric, _) => Value::Float(numeric(b).ok_or(bad)?),
        (Family::Date, 4) => match i32::from_be_bytes([b[0], b[1], b[2], b[3]]) {
            i32::MAX => Value::Infinite { negative: false },
            i32::MIN => Value::Infinite { negative: true },
            days => days
                .checked_add(EPOCH_DAYS)
                .map_or(Value::Null, Value::Date),
        },
        (Family::Timestamp | Family::TimestampTz, 8) => match i64::from_be_bytes(eight(b)) {
            i64::MAX => Value::Infinite { negative: false },
            i64::MIN => Value::Infinite { negative: true },
            micros => micros
                .checked_add(EPOCH_MICROS)
                .map_or(Value::Null, Value::Timestamp),
        },
        _ => return Err(bad),
    })
}

fn eight(b: &[u8]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A `numeric` as the nearest double: its base-10000 digits written out in decimal and parsed,
/// which rounds correctly.
fn numeric(b: &[u8]) -> Option<f64> {
    let word = |i: usize| {
        b.get(2 * i..2 * i + 2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0xC000 => return Some(f64::NAN),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if ndigits == 0 {
        return Some(0.0);
    }
    // digits[i] counts 10000^(weight - i): write them as one integer and scale by a power of
    // ten, in the exponent of the text form.
    let mut text = String::with_capacity(4 * ndigits + 8);
    if sign == 0x4000 {
        text.push('-');
    }
    for i in 0..ndigits {
        let digit = word(4 + i)?;
        if digit > 9999 {
            return None;
        }
        text.push_str(&format!("{digit:04}"));
    }
    let exponent = 4 * (weight + 1 - ndigits as i64);
    text.push_str(&format!("e{exponent}"));
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects rows as owned values.
    #[derive(Default)]
    struct Rows {
        rows: Vec<Vec<String>>,
        current: Vec<String>,
    }

    impl RowSink for Rows {
        fn value(&mut self, column: usize, value: Value<'_>) {
            assert_eq!(column, self.current.len());
            self.current.push(format!("{value:?}"));
        }
        fn end_row(&mut self) {
            self.rows.push(std::mem::take(&mut self.current));
        }
    }

    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    /// A stream of two rows (text, bigint, date, timestamp), as the server writes it.
    fn stream() -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        out.extend_from_slice(&4i16.to_be_bytes());
        field(&mut out, Some(b"Peru"));
        field(&mut out, Some(&14i64.to_be_bytes()));
        // 2021-03-01 is day 7730 after 2000-01-01.
        field(&mut out, Some(&7730i32.to_be_bytes()));
        field(&mut out, Some(&0i64.to_be_bytes()));
        out.extend_from_slice(&4i16.to_be_bytes());
        field(&mut out, None);
        field(&mut out, None);
        field(&mut out, Some(&i32::MAX.to_be_bytes()));
        field(&mut out, Some(&i64::MIN.to_be_bytes()));
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn families() -> Vec<Family> {
        vec![
            Family::Text,
            Family::Integer,
            Family::Date,
            Family::TimestampTz,
        ]
    }

    #[test]
    fn rows_decode_whatever_the_chunks() {
        let data = stream();
        let want = vec![
            vec![
                "Text(\"Peru\")".to_owned(),
                "Int(14)".into(),
                "Date(18687)".into(),
                format!("Timestamp({EPOCH_MICROS})"),
            ],
            vec![
                "Null".into(),
                "Null".into(),
                "Infinite { negative: false }".into(),
                "Infinite { negative: true }".into(),
            ],
        ];
        for size in [1, 2, 3, 7, 19, 1000] {
            let mut decoder = CopyDecoder::new(families());
            let mut rows = Rows::default();
            for chunk in data.chunks(size) {
                decoder.feed(chunk, &mut rows).expect("decodes");
            }
            assert_eq!(decoder.finish(), Ok(2), "chunks of {size}");
            assert_eq!(rows.rows, want, "chunks of {size}");
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let data = stream();
        let mut decoder = CopyDecoder::new(families());
        decoder
            .feed(&data[..data.len() - 5], &mut Rows::default())
            .expect("a prefix is fine");
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated));

        let mut decoder = CopyDecoder::new(families()[..3].to_vec());
        let err = decoder.feed(&data, &mut Rows::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::FieldCount { found: 4, .. }),
            "{err}"
        );

        let mut decoder = CopyDecoder::new(families());
        let err = decoder.feed(b"COPY", &mut Rows::default()).unwrap_err();
        assert_eq!(err, DecodeError::Signature);

        let mut data = stream();
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let mut decoder = CopyDecoder::new(families());
        let err = decoder.feed(&data, &mut Rows::default()).unwrap_err();
        assert_eq!(err, DecodeError::AfterTrailer);
    }

    #[test]
    fn values_of_the_wrong_size_or_encoding_are_errors() {
        assert!(decode_value(Family::Integer, &[0, 0, 1]).is_err());
        assert!(decode_value(Family::Date, &[0; 8]).is_err());
        assert!(decode_value(Family::Text, &[0xff, 0xfe]).is_err_and(|b| b.utf8));
        assert_eq!(
            decode_value(Family::Float, &2.5f32.to_be_bytes()).ok(),
            Some(Value::Float(2.5))
        );
    }

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn type_lists_read_as_prose() {
        assert_eq!(type_list([Family::Date]), "date");
        assert_eq!(
            type_list([Family::Float, Family::Timestamp]),
            "real, double precision or timestamp"
        );
    }

    #[test]
    fn numerics_become_the_nearest_double() {
        // 2640 = [2640] at weight 0; 12345.678 = [1, 2345, 6780] at weight 1;
        // -0.0005 = [5] at weight -1 (0.0005 = 5 * 10000^-1).
        for (bytes, want) in [
            (numeric_bytes(0, 0, 0, &[2640]), 2640.0),
            (numeric_bytes(1, 0, 3, &[1, 2345, 6780]), 12345.678),
            (numeric_bytes(-1, 0x4000, 4, &[5]), -0.0005),
            (numeric_bytes(2, 0, 0, &[14]), 1.4e9),
            (numeric_bytes(0, 0, 0, &[]), 0.0),
        ] {
            assert_eq!(numeric(&bytes), Some(want), "{want}");
        }
        assert!(numeric(&numeric_bytes(0, 0xC000, 0, &[])).is_some_and(f64::is_nan));
        assert_eq!(
            numeric(&numeric_bytes(0, 0xD000, 0, &[])),
            Some(f64::INFINITY)
        );
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[10_000])), None);
        assert_eq!(numeric(&numeric_bytes(0, 0x1234, 0, &[1])), None);
    }
}
