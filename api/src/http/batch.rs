//! Many requests in one HTTP request: a JSON array (`application/json`) answered as one JSON
//! document, or an NDJSON stream (`application/x-ndjson`) answered line by line. Each item is
//! scored exactly as the single route scores its body, by the same core.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::error::Category;
use serde_json::value::RawValue;
use voucher_serve::customers::{Customers, RETRY_AFTER_SECS};
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, DoorCounters};
use voucher_shared::score::{
    BodyError, Outcome, Profiles, Refusal, ValidationError, VoucherRequest, now_secs,
};

use crate::http::errors::ApiError;
use crate::http::model::{BatchResponse, ItemAnswer, ItemError, ItemInvalid, ItemResult};
use crate::http::ndjson;
use crate::http::routes::{AppState, BodyKind, body_kind, read_body};

/// The most requests one JSON batch may hold; larger lists go as NDJSON or in several batches.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// The response header that names the table version of a batch or stream.
pub const VERSION_HEADER: &str = "x-voucher-version";

/// One item of a batch or stream, read as the single route reads its body.
pub type Parsed<'b> = Result<VoucherRequest<'b>, BodyError>;

/// The ids of the requests by id among `items`, for one lookup of the customer store.
pub fn lookup_ids<'i, 'b: 'i>(items: impl IntoIterator<Item = &'i Parsed<'b>>) -> Vec<i64> {
    items
        .into_iter()
        .filter_map(|item| item.as_ref().ok()?.lookup_id())
        .collect()
}

/// Scores one read item as the single route would, with the customer store's answer for the
/// item's batch or stream window.
///
/// `line` is set for stream lines. Every answer names the version that gave it (a batch or
/// stream may hold answers of the live version and of the canary's).
pub fn score_item<'a>(
    item: Parsed<'_>,
    served: &'a Served,
    profiles: &Profiles,
    now: i64,
    line: Option<u64>,
    counters: &DoorCounters,
) -> ItemResult<'a> {
    let (outcome, result) = match item {
        Ok(request) => match served.score_with(&request, profiles, now).scored {
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
            Err(refusal) => failed(line, Outcome::of_refusal(&refusal), refusal.message()),
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
        retry_after: outcome.is_transient().then_some(RETRY_AFTER_SECS),
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
            headers(
                ("x-voucher-version" = String, description = "The live table version (each answer names the version that gave it)"),
                ("Retry-After" = u64, description = "JSON batches with an item refused because the customer store could not answer (status 503): seconds to wait before sending those items again"),
            )),
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
            let counters = state.metrics.door(Door::HttpBatch);
            let (out, retry) = batch(&body, &served, &state.customers, counters).await?;
            let mut response = HttpResponse::Ok();
            response.insert_header(ContentType::json()).insert_header((
                header::HeaderName::from_static(VERSION_HEADER),
                served.live().version_name(),
            ));
            if retry {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            Ok(response.body(out))
        }
    }
}

/// Scores a JSON array of requests into the batch answer's bytes, with one lookup of the
/// customer store for the requests by id; `true` when an item is worth retrying.
async fn batch(
    body: &[u8],
    served: &Served,
    customers: &Customers,
    counters: &DoorCounters,
) -> Result<(Vec<u8>, bool), ApiError> {
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
    let parsed: Vec<Parsed<'_>> = items
        .iter()
        .map(|item| VoucherRequest::parse(item.get().as_bytes()))
        .collect();
    let profiles = customers.resolve(lookup_ids(&parsed)).await;
    let now = now_secs();
    let results: Vec<ItemResult<'_>> = parsed
        .into_iter()
        .map(|item| score_item(item, served, &profiles, now, None, counters))
        .collect();
    let retry = results
        .iter()
        .any(|r| matches!(r, ItemResult::Error(e) if e.retry_after.is_some()));
    let out = serde_json::to_vec(&BatchResponse {
        version: served.live().version_name(),
        results,
    })
    .map_err(|e| ApiError::Internal(format!("cannot serialize a batch answer: {e}")))?;
    Ok((out, retry))
}
