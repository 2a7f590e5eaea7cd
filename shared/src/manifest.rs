//! `manifest.json`: what produced a table version.

use serde::{Deserialize, Serialize};

pub use crate::rules::DropCounts;

/// The program that wrote a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

/// One input file of a run (or of a tally), with what the cleaning made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// The file or URL as given or found; a database URL without its password.
    pub file: String,
    /// The query read from a database input (absent for files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Rows in the file, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    /// Rows dropped per rule.
    pub dropped: DropCounts,
}

/// The contents of `<version>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version directory's name.
    pub version: String,
    /// When the version was published, RFC 3339 UTC.
    pub created_at: String,
    /// The history the table was computed from, as given (a file, directory, glob or URL, or
    /// the directory of tallies merged).
    pub input: String,
    /// Every file read, in order, with its rows read, kept and dropped (absent in manifests
    /// written before this field existed).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Rows in the input, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    /// Rows dropped per rule, in rule order.
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
