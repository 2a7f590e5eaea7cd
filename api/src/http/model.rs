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

/// The refusals of the routes that list the live table (`GET /api/v1/segments`,
/// `GET /api/v1/table`), for their OpenAPI responses.
#[derive(utoipa::IntoResponses)]
pub enum ListingRefusals {
    /// A token is configured and the request lacks it
    #[response(status = 401)]
    Unauthorized(ErrorDetail),
    /// No table loaded yet
    #[response(
        status = 503,
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
    )]
    NotReady(ErrorDetail),
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
    {"status": 200, "voucher": 2640, "country_code": "Peru", "segment_name": "frequent_segment", "segment": "14-37", "version": "20261123T101000Z"},
    {"status": 422, "detail": [{"loc": ["body", "total_orders"], "msg": "Field required", "type": "missing"}]}
]}))]
pub struct BatchResponse<'a> {
    /// The live table version. Each answer names the version that gave it: the live one, or
    /// the canary's for the customers of its buckets while a canary runs.
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

/// A voucher: `status` 200 and the single route's answer, with the version that gave it.
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
    /// The table version that answered: the live one, or the canary's for its customers.
    pub version: &'a str,
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

/// The versions of the tables directory (`GET /api/v1/versions`): what is live, what the live
/// version changed, and what the gate held.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsResponse {
    /// The version every door serves; null before one is published.
    pub live: Option<String>,
    /// Every version, newest first.
    pub versions: Vec<VersionEntry>,
    /// The live version against the one it replaced (the roll-back target); null when there
    /// is none.
    pub changes: Option<VersionChanges>,
    /// Held versions newer than the live one (the newest few), each with the checks it failed.
    pub held: Vec<HeldVersion>,
    /// The canary: a version answering a share of customers beside the live one; null when
    /// none is set.
    pub canary: Option<CanaryView>,
    /// What could not be read (a manifest, a table, a gate report), in words.
    pub problems: Vec<String>,
}

/// One version and its place in the publishing history.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    pub version: String,
    /// `live`, `canary` (answers a share of customers), `held` (never made live), `previous`
    /// (was live before), `unpublished`, or `junk` (named like a version but not one: see
    /// `problems`).
    pub state: &'static str,
    /// When the run made it (RFC 3339); null when its manifest cannot be read.
    pub created_at: Option<String>,
    pub rows_kept: Option<u64>,
    /// Segments in its table.
    pub table_rows: Option<u64>,
    /// The gate's decision: `passed`, `held` or `skipped` (`--no-gate`); null for versions
    /// written before the gate.
    pub gate: Option<&'static str>,
    /// Checks the gate found failed (with `skipped`: those that would have held it).
    pub gate_failed: Option<usize>,
    /// Whether a roll-back from the live version returns to this one.
    pub rollback_target: bool,
}

/// What changed between two versions, as `voucher-etl diff` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionChanges {
    pub from: String,
    pub to: String,
    /// Segments added, removed or with another amount.
    pub segments_changed: usize,
    /// The share of the history's kept rows (customers like those) whose answer changes.
    pub changed_share: f64,
    /// Per segment type, that share.
    pub changed_share_by_segment_type: BTreeMap<String, f64>,
    /// The segments that changed (unchanged ones are left out).
    pub segments: Vec<SegmentChange>,
}

/// One (country, segment type, segment) whose answer changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentChange {
    pub country_code: String,
    pub segment_name: &'static str,
    pub segment: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub from_amount: Option<i64>,
    pub to_amount: Option<i64>,
}

/// The canary as the tables directory records it and as this replica serves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryView {
    pub version: String,
    /// The share of customers it answers (by the bucket of their `customer_id`), in percent.
    pub percent: f64,
    /// When it started or its share last changed (RFC 3339).
    pub since: String,
    pub reason: String,
    pub by: String,
    /// Whether this replica serves it; false when its version cannot be loaded (the live
    /// version then answers everyone; the logs and `voucher_api_canary_failures_total` say why).
    pub served: bool,
    /// Answers this replica gave since it loaded the canary, by version name.
    pub answers: BTreeMap<String, u64>,
    /// Per segment type: the share of answers the canary changes, predicted from the history
    /// and measured on this replica's requests.
    pub changed_share_by_segment_type: BTreeMap<String, ChangedShare>,
}

/// The share of answers a canary changes, for one segment type.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedShare {
    /// From the diff of the two versions: the share of the history's kept rows whose answer
    /// changes; null when the diff cannot be made.
    pub predicted: Option<f64>,
    /// `different / compared`; null before any request.
    pub measured: Option<f64>,
    /// Requests scored by both versions (the shadow comparison).
    pub compared: u64,
    /// Those the two versions answered differently.
    pub different: u64,
}

/// A version the gate held, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldVersion {
    pub version: String,
    pub created_at: Option<String>,
    /// The live version it was compared with.
    pub baseline: Option<String>,
    pub failed: Vec<FailedCheck>,
}

/// A gate check that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedCheck {
    /// `drop_share`, `rows_kept`, `missing_segments`, `amount_change`, `changed_share`,
    /// `changed_lead`, `added_segment` or `duplicate_share`.
    pub check: &'static str,
    /// What was checked: a drop rule, a country, or `<country> <segment type> <segment>`.
    pub subject: String,
    pub observed: f64,
    /// The most `observed` may be (the least, for `added_segment`).
    pub bound: f64,
    /// `observed` and `bound` in the check's unit, as `voucher-etl` prints them (e.g.
    /// `+7.20 pp`, `62.0 %`, `x3.40`).
    pub observed_shown: String,
    pub bound_shown: String,
    /// The values behind `observed`, in words.
    pub detail: String,
}
