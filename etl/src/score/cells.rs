//! The values of one request field in a window of a customer list, read as the API reads the
//! field of a JSON body.
//!
//! A typed Parquet column gives its values' JSON kinds (an integer, a string...); a CSV cell is
//! a JSON scalar written without quotes (`14` is a number, `Peru` a string); a date or datetime
//! is the text a JSON client would send. A null cell, or a column that is not there, is a field
//! left out.

use std::borrow::Cow;

use chrono::DateTime;
use polars::prelude::*;
use voucher_shared::score::{Json, fields};
use voucher_shared::time::SECONDS_PER_DAY;

use crate::history::dictionary_text;

/// The arrays of a column of polars type `T`.
type ArrayOf<T> = <T as PolarsDataType>::Array;

/// A request field's column in a window, in the one physical type read for its kind.
pub(super) struct FieldColumn {
    series: Option<Series>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Absent,
    /// Strings that are JSON strings (Parquet).
    Text,
    /// Strings that are JSON scalars without quotes (CSV).
    Cell,
    Bool,
    Int,
    UInt,
    Float,
    /// Days since 1970-01-01.
    Date,
    /// A datetime's ticks per second (its physical value is ticks since the epoch, UTC).
    Datetime(i64),
}

/// Whether a column of this type can hold a request field.
pub(super) fn readable(dtype: &DataType) -> bool {
    kind_of(dtype, false).is_some()
}

fn kind_of(dtype: &DataType, cells: bool) -> Option<Kind> {
    Some(match dtype {
        DataType::String if cells => Kind::Cell,
        DataType::String => Kind::Text,
        // Dictionary-encoded strings (pandas categoricals, polars' Categorical and Enum).
        t if dictionary_text(t) => Kind::Text,
        DataType::Boolean => Kind::Bool,
        DataType::UInt64 => Kind::UInt,
        t if t.is_integer() => Kind::Int,
        t if t.is_float() => Kind::Float,
        DataType::Date => Kind::Date,
        DataType::Datetime(unit, _) => Kind::Datetime(match unit {
            TimeUnit::Nanoseconds => 1_000_000_000,
            TimeUnit::Microseconds => 1_000_000,
            TimeUnit::Milliseconds => 1_000,
        }),
        // Columns that only hold nulls: the field is left out in every row.
        DataType::Null => Kind::Absent,
        _ => return None,
    })
}

impl FieldColumn {
    /// The column `name` of `window` (absent when the list has no such column); `cells` when
    /// its strings are CSV cells.
    pub(super) fn read(window: &DataFrame, name: &str, cells: bool) -> PolarsResult<Self> {
        let Ok(column) = window.column(name) else {
            return Ok(FieldColumn {
                series: None,
                kind: Kind::Absent,
            });
        };
        let kind = kind_of(column.dtype(), cells).ok_or_else(
            || polars_err!(SchemaMismatch: "column `{name}` has type {}", column.dtype()),
        )?;
        let series = column.as_materialized_series();
        let physical = match kind {
            Kind::Absent => None,
            Kind::Text if dictionary_text(series.dtype()) => {
                Some(series.cast(&DataType::String)?.rechunk())
            }
            Kind::Text | Kind::Cell | Kind::Bool | Kind::UInt => Some(series.rechunk()),
            Kind::Int | Kind::Datetime(_) => Some(series.cast(&DataType::Int64)?.rechunk()),
            Kind::Float => Some(series.cast(&DataType::Float64)?.rechunk()),
            Kind::Date => Some(series.cast(&DataType::Int32)?.rechunk()),
        };
        Ok(FieldColumn {
            series: physical,
            kind,
        })
    }

    /// The values, ready to be read row by row.
    pub(super) fn cells(&self) -> PolarsResult<Cells<'_>> {
        let Some(series) = &self.series else {
            return Ok(Cells::Absent);
        };
        Ok(match self.kind {
            Kind::Absent => Cells::Absent,
            Kind::Text => Cells::Text(series.str()?.downcast_as_array()),
            Kind::Cell => Cells::Cell(series.str()?.downcast_as_array()),
            Kind::Bool => Cells::Bool(series.bool()?.downcast_as_array()),
            Kind::Int => Cells::Int(series.i64()?.downcast_as_array()),
            Kind::UInt => Cells::UInt(series.u64()?.downcast_as_array()),
            Kind::Float => Cells::Float(series.f64()?.downcast_as_array()),
            Kind::Date => Cells::Date(series.i32()?.downcast_as_array()),
            Kind::Datetime(per_second) => Cells::Datetime {
                ticks: series.i64()?.downcast_as_array(),
                per_second,
            },
        })
    }
}

/// A request field's values in a window.
#[derive(Clone, Copy)]
pub(super) enum Cells<'w> {
    Absent,
    Text(&'w ArrayOf<StringType>),
    Cell(&'w ArrayOf<StringType>),
    Bool(&'w ArrayOf<BooleanType>),
    Int(&'w ArrayOf<Int64Type>),
    UInt(&'w ArrayOf<UInt64Type>),
    Float(&'w ArrayOf<Float64Type>),
    Date(&'w ArrayOf<Int32Type>),
    Datetime {
        ticks: &'w ArrayOf<Int64Type>,
        per_second: i64,
    },
}

impl<'w> Cells<'w> {
    /// Row `i` as the API would have read it from a JSON body.
    pub(super) fn json(&self, i: usize) -> Json<'w> {
        let value = match *self {
            Cells::Absent => None,
            Cells::Text(a) => a.get(i).map(|s| Json::Str(Cow::Borrowed(s))),
            Cells::Cell(a) => a.get(i).map(text_cell),
            Cells::Bool(a) => a.get(i).map(Json::Bool),
            Cells::Int(a) => a.get(i).map(Json::Int),
            Cells::UInt(a) => a
                .get(i)
                .map(|n| i64::try_from(n).map_or(Json::UInt(n), Json::Int)),
            Cells::Float(a) => a.get(i).map(Json::Float),
            Cells::Date(a) => a.get(i).and_then(date_text).map(Json::Str),
            Cells::Datetime { ticks, per_second } => ticks
                .get(i)
                .and_then(|t| datetime_text(t, per_second))
                .map(Json::Str),
        };
        value.unwrap_or(Json::Missing)
    }

    /// A key for row `i`'s text, when the column holds text (Parquet strings or CSV cells),
    /// under which a check of the value can be remembered: the string's 16-byte view, which
    /// is the string itself up to 12 bytes, and otherwise its place in the column's buffers
    /// (shared by the rows of a dictionary-encoded page). Equal keys are equal texts within a
    /// column; equal texts may have different keys.
    pub(super) fn text_key(&self, i: usize) -> Option<u128> {
        match *self {
            Cells::Text(a) | Cells::Cell(a) => a
                .get(i)
                .and_then(|_| a.views().get(i))
                .map(|view| view.as_u128()),
            _ => None,
        }
    }

    /// Row `i` as an order time that [`fields::order_time`] accepts at `now`, in seconds since
    /// the epoch; `None` when it does not, or when only the text's check can tell.
    ///
    /// A typed time is checked without writing it out: its text (see [`Cells::json`]) parses
    /// back to the whole second below it, so only the check against `now` remains, within
    /// the years that text can spell.
    pub(super) fn typed_time(&self, i: usize, now: i64) -> Option<i64> {
        let secs = match *self {
            Cells::Date(a) => i64::from(a.get(i)?) * SECONDS_PER_DAY,
            Cells::Datetime { ticks, per_second } => ticks.get(i)?.div_euclid(per_second),
            _ => return None,
        };
        (TEXT_SECONDS.contains(&secs) && fields::not_in_future(secs, now)).then_some(secs)
    }
}

/// The seconds of the times whose text has a four-digit year (0000-01-01 to 9999-12-31), the
/// only ones the time parser reads.
const TEXT_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// A CSV cell as a JSON scalar without quotes: a number when it reads as one, else text.
pub(super) fn text_cell(cell: &str) -> Json<'_> {
    let trimmed = cell.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Json::Int(n);
    }
    if let Ok(n) = trimmed.parse::<u64>() {
        return Json::UInt(n);
    }
    // Only plain decimal numbers: "nan", "inf" and the like stay text, as JSON has no such
    // numbers.
    let numeric = !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match trimmed.parse::<f64>() {
        Ok(f) if numeric && f.is_finite() => Json::Float(f),
        _ => Json::Str(Cow::Borrowed(cell)),
    }
}

/// A date as a JSON client would send it: `YYYY-MM-DD`.
fn date_text(days: i32) -> Option<Cow<'static, str>> {
    DateTime::from_timestamp(i64::from(days) * SECONDS_PER_DAY, 0)
        .map(|t| Cow::Owned(t.date_naive().format("%Y-%m-%d").to_string()))
}

/// A datetime as a JSON client would send it: `YYYY-MM-DD HH:MM:SS[.fraction]` in UTC.
fn datetime_text(ticks: i64, per_second: i64) -> Option<Cow<'static, str>> {
    let nanos = ticks.rem_euclid(per_second) * (1_000_000_000 / per_second);
    DateTime::from_timestamp(ticks.div_euclid(per_second), nanos as u32)
        .map(|t| Cow::Owned(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_json_scalars_without_quotes() {
        assert_eq!(text_cell("14"), Json::Int(14));
        assert_eq!(text_cell(" 14 "), Json::Int(14));
        assert_eq!(text_cell("14.0"), Json::Float(14.0));
        assert_eq!(text_cell("-2.5"), Json::Float(-2.5));
        assert_eq!(text_cell("18446744073709551615"), Json::UInt(u64::MAX));
        for text in ["Peru", "2021-10-26", "nan", "inf", "1e", "frequent_segment"] {
            assert_eq!(text_cell(text), Json::Str(Cow::Borrowed(text)), "{text}");
        }
    }

    #[test]
    fn the_years_text_can_spell_are_0000_to_9999() {
        use voucher_shared::time::days_from_civil;
        assert_eq!(
            *TEXT_SECONDS.start(),
            days_from_civil(0, 1, 1) * SECONDS_PER_DAY
        );
        assert_eq!(
            *TEXT_SECONDS.end() + 1,
            days_from_civil(10_000, 1, 1) * SECONDS_PER_DAY
        );
    }

    /// The typed shortcut gives what the core's check of the written-out text gives, at the
    /// edges of what the text can spell and around `now`.
    #[test]
    fn typed_times_are_checked_as_their_text_would_be() {
        const NOW: i64 = 1_795_435_200;
        let micros: Vec<i64> = [
            0,
            -1,
            -500_000,
            1_500_000,
            NOW * 1_000_000,
            NOW * 1_000_000 + 999_999,
            (NOW + 1) * 1_000_000,
            *TEXT_SECONDS.start() * 1_000_000,
            *TEXT_SECONDS.start() * 1_000_000 - 1,
            *TEXT_SECONDS.end() * 1_000_000,
            (*TEXT_SECONDS.end() + 1) * 1_000_000,
            i64::MIN,
            i64::MAX,
        ]
        .into();
        let datetimes = Series::new("t".into(), micros.as_slice())
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .expect("datetime");
        let days: Vec<i32> = vec![0, -1, 20_000, (NOW / SECONDS_PER_DAY) as i32 + 1, i32::MIN];
        let dates = Series::new("d".into(), days.as_slice())
            .cast(&DataType::Date)
            .expect("date");
        for series in [datetimes, dates] {
            let frame =
                DataFrame::new(series.len(), vec![series.clone().into_column()]).expect("frame");
            let column = FieldColumn::read(&frame, series.name(), false).expect("read");
            let cells = column.cells().expect("cells");
            for i in 0..series.len() {
                // Far-off times polars cannot turn into a date are left out, as nulls are.
                let by_text = fields::order_time(&cells.json(i), NOW).ok();
                assert_eq!(cells.typed_time(i, NOW), by_text, "row {i} of {series:?}");
            }
        }
    }
}
