//! The JSON bodies the API answers with, and the request as documented.
//!
//! Each type here is both what the handlers serialize and what `/openapi.json` describes, so
//! the document cannot drift from the answers.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// The voucher request. Every bad field is reported, one entry each, in a 422.
#[derive(ToSchema)]
#[schema(example = json!({
    "customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
    "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"
}))]
// Never built: requests are parsed field by field so that every bad field is reported.
#[allow(dead_code)]
pub struct VoucherRequest {
    /// The customer's id; not used to choose the voucher.
    pub customer_id: i64,
    /// A country with a voucher table, e.g. `Peru`.
    pub country_code: String,
    /// When the customer last ordered: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]` or RFC 3339
    /// (`2021-10-26T00:00:00Z`, offsets). Times without an offset are UTC. Not in the future.
    pub last_order_ts: String,
    /// When the customer first ordered, in the same formats; not after `last_order_ts`.
    pub first_order_ts: String,
    /// Orders so far: a whole number >= 0 (`14` and `14.0` are both accepted).
    #[schema(minimum = 0)]
    pub total_orders: i64,
    // No doc comment here: with one, utoipa wraps the inlined enum in an `allOf` with an
    // untyped object, which no value satisfies. The enum's own description says it all.
    #[schema(inline)]
    pub segment_name: SegmentTypeName,
}

/// A segment type; it must be present in the loaded table.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SegmentTypeName {
    FrequentSegment,
    RecencySegment,
}

/// The voucher for a customer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"voucher": 2640, "country_code": "Peru", "segment_name": "frequent_segment",
    "segment": "14-37", "version": "20261123T101000Z"}))]
pub struct VoucherResponse<'a> {
    /// The amount most used by similar customers.
    pub voucher: i64,
    pub country_code: &'a str,
    pub segment_name: &'a str,
    /// The segment the customer falls in, e.g. `14-37`.
    pub segment: &'a str,
    /// The table version that answered.
    pub version: &'a str,
}

/// A FastAPI-style validation failure: one entry per bad field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrors {
    pub detail: Vec<ValidationError>,
}

/// One bad field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ValidationError {
    /// Where the problem is: `["body", "<field>"]`, or `["body"]` for the body as a whole.
    pub loc: Vec<&'static str>,
    /// What is wrong and what is accepted.
    pub msg: String,
    /// The kind of problem, e.g. `missing`, `int_type`, `value_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Any other error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong.
    pub detail: String,
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness: a table is loaded and the API is not shutting down.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready<'a> {
    /// `ready`.
    pub status: &'static str,
    /// The live table version.
    pub version: &'a str,
    /// Seconds since the live version was made.
    pub age_seconds: i64,
}

/// Not ready: no table loaded yet, or shutting down.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    /// `starting` (no table yet) or `draining` (shutting down).
    pub status: &'static str,
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
