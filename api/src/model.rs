//! The JSON bodies the API answers with (the request is [`crate::request::VoucherRequest`]).
//!
//! Each type here is both what the handlers serialize and what `/openapi.json` describes, so
//! the document cannot drift from the answers.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

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
