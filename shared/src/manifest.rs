//! `manifest.json`: what produced a table version.

use serde::{Deserialize, Serialize};

/// How many rows each drop rule removed, in the order the rules apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    pub voucher_amount: u64,
    pub total_orders: u64,
    pub timestamp: u64,
    pub last_order_ts: u64,
    pub recency: u64,
    pub first_after_last: u64,
}

impl DropCounts {
    /// The rule names with their counts, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("voucher_amount", self.voucher_amount),
            ("total_orders", self.total_orders),
            ("timestamp", self.timestamp),
            ("last_order_ts", self.last_order_ts),
            ("recency", self.recency),
            ("first_after_last", self.first_after_last),
        ]
        .into_iter()
    }

    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }
}

impl std::ops::AddAssign for DropCounts {
    fn add_assign(&mut self, other: DropCounts) {
        self.voucher_amount += other.voucher_amount;
        self.total_orders += other.total_orders;
        self.timestamp += other.timestamp;
        self.last_order_ts += other.last_order_ts;
        self.recency += other.recency;
        self.first_after_last += other.first_after_last;
    }
}

/// The program that wrote a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

/// The contents of `<version>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version directory's name.
    pub version: String,
    /// When the version was published, RFC 3339 UTC.
    pub created_at: String,
    /// The history file or URL the table was computed from.
    pub input: String,
    /// Rows in the input, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    pub dropped: DropCounts,
    /// The countries asked for (`["all"]` for every country).
    pub countries: Vec<String>,
    /// The segment definitions the table was built with.
    pub segments: serde_json::Value,
    /// Rows in `vouchers.parquet`.
    pub table_rows: u64,
    pub duration_ms: u64,
    pub producer: Producer,
}
