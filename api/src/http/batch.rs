//! Many requests in one HTTP request: a JSON array (`application/json`) answered as one JSON
//! document, or an NDJSON stream (`application/x-ndjson`) answered line by line. Each item is
//! scored exactly as the single route scores its body, by the same core.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::error::Category;
use serde_json::value::RawValue;
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, DoorCounters};
use voucher_shared::score::{
    BodyError, Outcome, Refusal, ValidationError, VoucherRequest, now_secs,
};

use crate::http::errors::ApiError;
use crate::http::model::{BatchResponse, ItemAnswer, ItemError, ItemInvalid, ItemResult};
use crate::http::ndjson;
use crate::http::routes::{AppState, BodyKind, body_kind, read_body};

/// The most requests one JSON batch may hold; larger lists go as NDJSON or in several batches.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// The response header that names the table version of a batch or stream.
pub const VERSION_HEADER: &str = "x-voucher-version";

/// Scores one request given as JSON bytes, as the single route would.
///
/// `line` is set for stream lines. Every answer names the version that gave it (a batch or
/// stream may hold answers of the live version and of the canary's).
pub fn score_item<'a>(
    body: &[u8],
    served: &'a Served,
    now: i64,
    line: Option<u64>,
    counters: &DoorCounters,
) -> ItemResult<'a> {
    let (outcome, result) = match VoucherRequest::parse(body) {
        Ok(request) => match served.score(&request, now).scored {
            Ok(answer) => (
                Outcome::Ok,
                ItemResult::Answer(ItemAnswer {
                    line,
                    status: Outcome::Ok.http_status(),
                    voucher: answer.voucher,
                    country_code: answer.country_code,
                    segment_name: answer.segment_name,
                    segment: answer.segment,
                    version: answer.version,
                }),
            ),
            Err(Refusal::Invalid(detail)) => invalid(line, detail),
            Err(Refusal::NoSegment(no_segment)) => {
                failed(line, Outcome::NoSegment, no_segment.message)
            }
        },
        Err(BodyError::Shape(error) | BodyError::Duplicate(error)) => invalid(line, vec![error]),
        Err(BodyError::Syntax(message)) => failed(line, Outcome::Malformed, message),
    };
    counters.count(outcome);
    result
}

fn invalid<'a>(line: Option<u64>, detail: Vec<ValidationError>) -> (Outcome, ItemResult<'a>) {
    let status = Outcome::Invalid.http_status();
    let result = ItemResult::Invalid(ItemInvalid {
        line,
        status,
        detail,
    });
    (Outcome::Invalid, result)
}

fn failed<'a>(line: Option<u64>, outcome: Outcome, detail: String) -> (Outcome, ItemResult<'a>) {
    let status = outcome.http_status();
    let result = ItemResult::Error(ItemError {
        line,
        status,
        detail,
    });
    (outcome, result)
}

#[utoipa::path(
    post,
    path = "/api/v1/vouchers",
    tag = "vouchers",
    request_body(
        description = "Up to 10,000 voucher requests as a JSON array, or any number as NDJSON (one request per line).",
        content(
            (Vec<VoucherRequest<'_>> = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "One result per request, in order: a JSON document for a JSON array, one line per request line for NDJSON",
            content(
                (BatchResponse<'_> = "application/json"),
                (ItemResult<'_> = "application/x-ndjson"),
            ),
            headers(("x-voucher-version" = String, description = "The live table version (each answer names the version that gave it)"))),
        (status = 400, description = "The body is not JSON", body = crate::http::model::ErrorDetail),
        (status = 401, description = "A token is configured and the request lacks `Authorization: Bearer <token>`", body = crate::http::model::ErrorDetail),
        (status = 413, description = "More than 10,000 requests in a JSON array, or a body over the batch size limit", body = crate::http::model::ErrorDetail),
        (status = 415, description = "The content type is neither JSON nor NDJSON", body = crate::http::model::ErrorDetail),
        (status = 422, description = "The JSON body is not an array", body = crate::http::model::ValidationErrors),
        (status = 503, description = "No table loaded yet", body = crate::http::model::ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn vouchers(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let kind = body_kind(&req, true)?;
    // What is served now answers the whole batch or stream, even if a reload swaps it meanwhile.
    let served = state.served()?;
    match kind {
        BodyKind::Ndjson => Ok(ndjson::respond(payload, served, &state)),
        BodyKind::Json => {
            let body = read_body(&req, payload, state.max_batch_body).await?;
            let out = batch(&body, &served, state.metrics.door(Door::HttpBatch))?;
            Ok(HttpResponse::Ok()
                .insert_header(ContentType::json())
                .insert_header((
                    header::HeaderName::from_static(VERSION_HEADER),
                    served.live().version_name(),
                ))
                .body(out))
        }
    }
}

/// Scores a JSON array of requests into the batch answer's bytes.
fn batch(body: &[u8], served: &Served, counters: &DoorCounters) -> Result<Vec<u8>, ApiError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => ApiError::Invalid(vec![ValidationError {
            loc: vec!["body"],
            msg: format!(
                "Input should be a JSON array of at most {MAX_BATCH_ITEMS} voucher requests ({e})"
            ),
            kind: "list_type",
        }]),
        Category::Io | Category::Syntax | Category::Eof => {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })?;
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::TooManyItems {
            count: items.len(),
            limit: MAX_BATCH_ITEMS,
        });
    }
    let now = now_secs();
    let results = items
        .iter()
        .map(|item| score_item(item.get().as_bytes(), served, now, None, counters))
        .collect();
    serde_json::to_vec(&BatchResponse {
        version: served.live().version_name(),
        results,
    })
    .map_err(|e| ApiError::Internal(format!("cannot serialize a batch answer: {e}")))
}
