//! The voucher history's columns: their names and the physical types accepted for each.
//!
//! Real files disagree on types (a time may be a string in one file and a timestamp in
//! another; `total_orders` is text like `2.0`), so each column accepts a family of types and
//! the cleaner normalises them. Extra columns are ignored.

use std::fmt;

use polars::prelude::DataType;

/// The kinds of types a column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Text only.
    Text,
    /// A float or integer type.
    Number,
    /// Text holding a number, or a float or integer type.
    TextOrNumber,
    /// Text holding a time, a date or a timestamp.
    Time,
}

impl Accepts {
    /// Whether a column of `dtype` can be read as this kind. An all-null column (`Null`) is
    /// accepted wherever nulls are: its rows fail the column's drop rule. Dictionary-encoded
    /// strings (pandas categoricals, polars' Categorical and Enum) are text: any reader sees
    /// the strings (see [`dictionary_text`]).
    pub fn allows(self, dtype: &DataType) -> bool {
        let text = matches!(dtype, DataType::String) || dictionary_text(dtype);
        let null = matches!(dtype, DataType::Null);
        match self {
            Accepts::Text => text,
            Accepts::Number => dtype.is_primitive_numeric() || null,
            Accepts::TextOrNumber => text || dtype.is_primitive_numeric() || null,
            Accepts::Time => {
                text || null || matches!(dtype, DataType::Date | DataType::Datetime(..))
            }
        }
    }
}

/// Whether `dtype` holds strings through a dictionary (polars' Categorical and Enum, which is
/// how pandas categoricals and polars' own read): read as the strings, they are text.
pub fn dictionary_text(dtype: &DataType) -> bool {
    dtype.is_categorical() || dtype.is_enum()
}

impl fmt::Display for Accepts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accepts::Text => "a string",
            Accepts::Number => "a float or integer type",
            Accepts::TextOrNumber => "a string, float or integer type",
            Accepts::Time => "a string, date or timestamp type",
        })
    }
}

/// One column the ETL reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub accepts: Accepts,
}

impl Column {
    const fn new(name: &'static str, accepts: Accepts) -> Column {
        Column { name, accepts }
    }
}

/// When the voucher was sent.
pub const TIMESTAMP: Column = Column::new("timestamp", Accepts::Time);
pub const COUNTRY_CODE: Column = Column::new("country_code", Accepts::Text);
pub const LAST_ORDER_TS: Column = Column::new("last_order_ts", Accepts::Time);
pub const FIRST_ORDER_TS: Column = Column::new("first_order_ts", Accepts::Time);
pub const TOTAL_ORDERS: Column = Column::new("total_orders", Accepts::TextOrNumber);
pub const VOUCHER_AMOUNT: Column = Column::new("voucher_amount", Accepts::Number);

/// Every column the ETL needs, in the order of the source files.
pub const COLUMNS: [Column; 6] = [
    TIMESTAMP,
    COUNTRY_CODE,
    LAST_ORDER_TS,
    FIRST_ORDER_TS,
    TOTAL_ORDERS,
    VOUCHER_AMOUNT,
];

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{TimeUnit, TimeZone};

    #[test]
    fn each_column_accepts_the_types_seen_in_real_files() {
        let datetime = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        assert!(TIMESTAMP.accepts.allows(&DataType::String));
        assert!(FIRST_ORDER_TS.accepts.allows(&datetime));
        assert!(LAST_ORDER_TS.accepts.allows(&DataType::Date));
        assert!(TOTAL_ORDERS.accepts.allows(&DataType::String));
        assert!(TOTAL_ORDERS.accepts.allows(&DataType::Float64));
        assert!(VOUCHER_AMOUNT.accepts.allows(&DataType::Int64));
        assert!(VOUCHER_AMOUNT.accepts.allows(&DataType::Null));
        assert!(!VOUCHER_AMOUNT.accepts.allows(&DataType::String));
        assert!(!COUNTRY_CODE.accepts.allows(&DataType::Int64));
        assert!(!TIMESTAMP.accepts.allows(&DataType::Float64));
    }

    #[test]
    fn dictionary_encoded_strings_are_text() {
        let categorical = DataType::from_categories(polars::prelude::Categories::global());
        assert!(COUNTRY_CODE.accepts.allows(&categorical));
        assert!(TIMESTAMP.accepts.allows(&categorical));
        assert!(TOTAL_ORDERS.accepts.allows(&categorical));
        assert!(!VOUCHER_AMOUNT.accepts.allows(&categorical));
    }
}
