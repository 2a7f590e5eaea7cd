//! Customer profiles by id, for requests that send only a customer id: one prepared statement
//! per connection, `SELECT ... WHERE customer_id = ANY($1)`, answers every id of a batch at
//! once. Each column is read in the type families the history accepts for it and becomes the
//! scoring core's [`Profile`], which turns stored values into request fields.
//!
//! The table is the operator's: `customer_id` (an integer type; the primary key, or at least
//! indexed), `country_code`, `last_order_ts`, `first_order_ts` and `total_orders`. Other
//! columns are not read.

use tokio_postgres::Statement;
use tokio_postgres::types::{FromSql, Type};
use voucher_shared::score::{Profile, Stored};

use crate::copy::{Family, Value, decode_value, type_list};
use crate::error::{ColumnType, Failure, PgError, Step};
use crate::session::{Session, quote_identifier};

/// The table's name unless told otherwise.
pub const DEFAULT_TABLE: &str = "customers";

/// The columns read, in order, with the type families each accepts (the history's, for the
/// profile's columns).
pub const COLUMNS: [(&str, &[Family]); 5] = [
    ("customer_id", &[Family::Integer]),
    ("country_code", &[Family::Text]),
    ("last_order_ts", TIME),
    ("first_order_ts", TIME),
    (
        "total_orders",
        &[
            Family::Integer,
            Family::Float,
            Family::Numeric,
            Family::Text,
        ],
    ),
];

const TIME: &[Family] = &[
    Family::Text,
    Family::Date,
    Family::Timestamp,
    Family::TimestampTz,
];

/// The lookup of one table, prepared on one connection.
#[derive(Debug, Clone)]
pub struct CustomerLookup {
    statement: Statement,
    families: [Family; 5],
}

/// `name` as an SQL table name: `NAME` or `SCHEMA.NAME`, each part quoted as written.
pub fn table_name(name: &str) -> String {
    name.split('.')
        .map(quote_identifier)
        .collect::<Vec<_>>()
        .join(".")
}

impl CustomerLookup {
    /// Checks that `table` has the columns, each of a type it accepts, and prepares the lookup
    /// on `session`. An error names the table, and the column and its type when one is at fault.
    pub async fn prepare(session: &Session, table: &str) -> Result<CustomerLookup, PgError> {
        let names: Vec<String> = COLUMNS.iter().map(|(c, _)| quote_identifier(c)).collect();
        let select = format!("SELECT {} FROM {}", names.join(", "), table_name(table));
        let described = session.describe(&select).await?;
        let mut families = [Family::Integer; 5];
        for ((slot, (name, accepted)), found) in families.iter_mut().zip(COLUMNS).zip(&described) {
            match found.family {
                Some(family) if accepted.contains(&family) => *slot = family,
                _ => {
                    let column = ColumnType {
                        table: table.to_owned(),
                        column: name,
                        found: found.type_name.clone(),
                        accepted: type_list(accepted.iter().copied()),
                    };
                    return Err(session.fail(Failure::ColumnType(Box::new(column)), None));
                }
            }
        }
        // The ids are bound as bigint[]: an integer column of any width compares with them
        // and keeps its index.
        let lookup = format!("{select} WHERE \"customer_id\" = ANY($1::bigint[])");
        let statement = session
            .client()
            .prepare(&lookup)
            .await
            .map_err(|e| session.error(e, Step::Query))?;
        Ok(CustomerLookup {
            statement,
            families,
        })
    }

    /// The profiles of those of `ids` that the table holds, in one query (an id the table
    /// holds twice comes once, from either row).
    pub async fn fetch(
        &self,
        session: &Session,
        ids: &[i64],
    ) -> Result<Vec<(i64, Profile)>, PgError> {
        let rows = session
            .client()
            .query(&self.statement, &[&ids])
            .await
            .map_err(|e| session.error(e, Step::Query))?;
        let mut profiles = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let mut values: [Stored; 5] = Default::default();
            for (column, (slot, family)) in values.iter_mut().zip(self.families).enumerate() {
                let raw = row
                    .try_get::<_, Option<Raw<'_>>>(column)
                    .map_err(|e| session.error(e, Step::Query))?;
                let value = match raw {
                    None => Value::Null,
                    Some(Raw(bytes)) => decode_value(family, bytes).map_err(|bad| {
                        let error = bad.at(index as u64 + 1, column, family);
                        session.fail(Failure::from(error.clone()), Some(Box::new(error)))
                    })?,
                };
                *slot = stored(value);
            }
            let [
                id,
                country_code,
                last_order_ts,
                first_order_ts,
                total_orders,
            ] = values;
            // `= ANY` never matches a NULL id.
            if let Stored::Int(id) = id {
                let profile =
                    Profile::new(country_code, last_order_ts, first_order_ts, total_orders);
                profiles.push((id, profile));
            }
        }
        Ok(profiles)
    }
}

fn stored(value: Value<'_>) -> Stored {
    match value {
        Value::Null => Stored::Null,
        Value::Text(text) => Stored::Text(text.to_owned()),
        Value::Int(n) => Stored::Int(n),
        Value::Float(f) => Stored::Float(f),
        Value::Date(days) => Stored::Date(days),
        Value::Timestamp(micros) => Stored::Timestamp(micros),
        Value::Infinite { negative } => Stored::Infinite { negative },
    }
}

/// A value's bytes in the binary format, decoded by [`decode_value`] as its family (checked
/// when the lookup was prepared).
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted_part_by_part() {
        assert_eq!(table_name("customers"), "\"customers\"");
        assert_eq!(table_name("crm.Customers"), "\"crm\".\"Customers\"");
        assert_eq!(table_name("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn stored_values_keep_their_family() {
        assert_eq!(stored(Value::Text("Peru")), Stored::Text("Peru".into()));
        assert_eq!(stored(Value::Date(3)), Stored::Date(3));
        assert_eq!(stored(Value::Timestamp(-1)), Stored::Timestamp(-1));
        assert_eq!(stored(Value::Null), Stored::Null);
        assert_eq!(
            stored(Value::Infinite { negative: true }),
            Stored::Infinite { negative: true }
        );
    }
}
