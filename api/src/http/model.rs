//! The JSON bodies the HTTP door answers with. The request, the answer and the field errors are
//! the scoring core's ([`voucher_shared::score`]), so every door says the same.
//!
//! Each type here is both what the handlers serialize and what `/openapi.json` describes, so
//! the document cannot drift from the answers.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
pub use voucher_shared::score::{ValidationError, VoucherRequest, VoucherResponse};

/// A FastAPI-style validation failure: one entry per bad field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrors {
    pub detail: Vec<ValidationError>,
}

/// Any other error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong.
    pub detail: String,
}

/// The live table.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentsResponse {
    /// The live table version.
    pub version: String,
    /// When the version was made (RFC 3339, UTC).
    pub created_at: String,
    /// Country → segment type → segments, ordered by lower bound.
    pub countries: BTreeMap<String, BTreeMap<String, Vec<SegmentEntry>>>,
}

/// One segment of the live table with its voucher.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentEntry {
    /// The segment label, e.g. `14-37`.
    pub segment: String,
    /// Inclusive lower bound.
    pub lower: i64,
    /// Inclusive upper bound; null when open-ended.
    pub upper: Option<i64>,
    /// The chosen amount.
    pub voucher: i64,
    /// History rows of this segment with that amount.
    pub occurrences: i64,
    /// History rows in this segment.
    pub segment_rows: i64,
}

/// The answer to a batch of requests (`POST /api/v1/vouchers` with a JSON array).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"version": "20261123T101000Z", "results": [
    {"status": 200, "voucher": 2640, "country_code": "Peru", "segment_name": "frequent_segment", "segment": "14-37"},
    {"status": 422, "detail": [{"loc": ["body", "total_orders"], "msg": "Field required", "type": "missing"}]}
]}))]
pub struct BatchResponse<'a> {
    /// The table version that answered every item.
    pub version: &'a str,
    /// One result per request, in order.
    pub results: Vec<ItemResult<'a>>,
}

/// The result for one request of a batch or one line of an NDJSON stream: the answer, or what
/// the single route would have answered instead (its status and `detail`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemResult<'a> {
    Answer(ItemAnswer<'a>),
    Invalid(ItemInvalid),
    Error(ItemError),
}

/// A voucher: `status` 200 and the single route's answer. Batch items leave out the version
/// (the batch gives it once); stream lines carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemAnswer<'a> {
    /// The line of the request, in an NDJSON stream (counted from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Always 200.
    pub status: u16,
    pub voucher: i64,
    pub country_code: &'a str,
    pub segment_name: &'a str,
    pub segment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
}

/// Invalid fields: `status` 422 and the single route's 422 `detail`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemInvalid {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Always 422.
    pub status: u16,
    pub detail: Vec<ValidationError>,
}

/// Any other failure of one item: 404 (no segment covers it, or no such customer for a request
/// by id), 503 (a request by id while the customer store cannot answer: retry it), or in a
/// stream 400 (the line is not JSON) and 413 (the line is too long).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub status: u16,
    pub detail: String,
    /// With status 503: seconds to wait before sending the item again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The live table version and what produced it (`GET /api/v1/table`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TableResponse {
    /// The live table version.
    pub version: String,
    /// When the version was made (RFC 3339, UTC).
    pub created_at: String,
    /// Rows (segments) in the table.
    pub rows: usize,
    /// What the ETL recorded about the run that made the version; null when the version has no
    /// readable manifest.
    pub manifest: Option<TableManifest>,
    /// Every drop rule of the cleaning, in rule order, with the rows it dropped in that run.
    pub drop_rules: Vec<DropRuleCount>,
}

/// The run that made a version, from its `manifest.json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableManifest {
    /// When the version was published (RFC 3339, UTC).
    pub created_at: String,
    /// The history file(s) or URL the table was computed from.
    pub input: String,
    /// Rows in the input, of every country.
    pub rows_read: u64,
    /// Rows of the selected countries that passed every drop rule.
    pub rows_kept: u64,
    /// The countries asked for (`all` for every country).
    pub countries: Vec<String>,
    pub duration_ms: u64,
    /// The program that wrote the version, e.g. `voucher-etl 0.1.0`.
    pub producer: String,
}

/// One drop rule and what it removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DropRuleCount {
    /// The rule's name, as in the manifest and the metrics.
    pub rule: &'static str,
    /// What the rule drops and why.
    pub description: &'static str,
    /// Rows it dropped; null without a manifest.
    pub dropped: Option<u64>,
}
