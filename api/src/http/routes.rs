//! The HTTP routes and their handlers.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use voucher_serve::customers::Customers;
use voucher_serve::health;
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, Metrics};
use voucher_serve::tables::Tables;
use voucher_shared::echo::Echo;
use voucher_shared::score::{BodyError, VoucherRequest, now_secs};

use crate::config::Token;
use crate::http::errors::ApiError;
use crate::http::listing::{Listing, Listings};
use crate::http::metrics::{UNMATCHED, UNMATCHED_PATTERN};
use crate::http::model::{ErrorDetail, VoucherResponse};
use crate::http::versions::{VERSIONS, versions};
use crate::http::{batch, ndjson};
use crate::page;

pub const VOUCHER: &str = "/api/v1/voucher";
pub const VOUCHERS: &str = "/api/v1/vouchers";
pub const SEGMENTS: &str = "/api/v1/segments";
pub const TABLE: &str = "/api/v1/table";
pub const OPENAPI: &str = "/openapi.json";
pub const DOCS: &str = "/docs";
pub const DOCS_FILES: &str = "/docs/{file:.*}";

/// Every route under this prefix requires the bearer token when one is configured; the
/// OpenAPI document declares the same (see [`Route::needs_token`]).
pub const GUARDED_SCOPE: &str = "/api/v1";

/// One route: its method, path pattern and handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: fn(actix_web::Route) -> actix_web::Route,
}

impl Route {
    const fn new(
        method: Method,
        path: &'static str,
        handler: fn(actix_web::Route) -> actix_web::Route,
    ) -> Self {
        Route {
            method,
            path,
            handler,
        }
    }

    /// Whether a configured token guards this route.
    pub fn needs_token(&self) -> bool {
        self.path.starts_with(GUARDED_SCOPE)
    }
}

/// The routes of the API itself; [`routes`] adds the page's files.
const API_ROUTES: [Route; 11] = [
    Route::new(Method::POST, VOUCHER, |r| r.to(voucher)),
    Route::new(Method::POST, VOUCHERS, |r| r.to(batch::vouchers)),
    Route::new(Method::GET, SEGMENTS, |r| r.to(segments)),
    Route::new(Method::GET, TABLE, |r| r.to(table)),
    Route::new(Method::GET, VERSIONS, |r| r.to(versions)),
    Route::new(Method::GET, health::HEALTHZ, |r| r.to(health::healthz)),
    Route::new(Method::GET, health::READYZ, |r| r.to(health::readyz)),
    Route::new(Method::GET, health::METRICS, |r| r.to(health::metrics_text)),
    Route::new(Method::GET, OPENAPI, |r| r.to(openapi)),
    Route::new(Method::GET, DOCS, |r| r.to(docs_redirect)),
    Route::new(Method::GET, DOCS_FILES, |r| r.to(docs_file)),
];

/// The route table: what `configure` registers, `voucher-api routes` prints and the
/// deployment checks read. The page's files are served at their paths.
pub fn routes() -> impl Iterator<Item = Route> {
    let page = page::ASSETS
        .iter()
        .map(|asset| Route::new(Method::GET, asset.path, |r| r.to(page::asset)));
    API_ROUTES.into_iter().chain(page)
}

/// The route table as JSON, for `voucher-api routes`.
pub fn table_json() -> serde_json::Value {
    routes()
        .map(|r| serde_json::json!({"method": r.method.as_str(), "path": r.path, "token": r.needs_token()}))
        .collect()
}

/// What every worker shares (beside [`health::HealthState`], which the operations routes read).
pub struct AppState {
    pub tables: Arc<Tables>,
    /// The profiles of id-only requests.
    pub customers: Customers,
    pub metrics: Metrics,
    pub token: Option<Token>,
    /// Largest body of the single route, and longest line of an NDJSON stream.
    pub max_body: usize,
    /// Largest body of a JSON batch.
    pub max_batch_body: usize,
    /// `Retry-After` of a 503: the reload interval, rounded up.
    pub retry_after_secs: u64,
    pub openapi_json: Bytes,
    pub swagger: Arc<utoipa_swagger_ui::Config<'static>>,
    /// `/api/v1/segments` and `/api/v1/table` of the live version.
    pub listings: Listings,
}

impl AppState {
    /// What is served, or 503 before a table is loaded.
    pub fn served(&self) -> Result<Served, ApiError> {
        self.tables.served().ok_or_else(|| self.not_ready())
    }

    /// The answer before a table is loaded.
    pub fn not_ready(&self) -> ApiError {
        ApiError::NotReady {
            retry_after_secs: self.retry_after_secs,
        }
    }
}

/// Registers every route of [`routes`]: those under [`GUARDED_SCOPE`] in a scope that checks
/// the token, when one is configured. Called once per worker.
///
/// The guarded routes go first: actix tries resources in the order they were registered, and
/// the scoring routes are the hot ones (behind the others, every request paid for the `/docs/`
/// pattern's regex and eight more comparisons; perf, bench/RESULTS.md). Without a token they
/// are registered at their full paths, not in a scope: a scope is one more router that every
/// request passes through.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    state: &web::Data<AppState>,
    health: &web::Data<health::HealthState>,
) {
    cfg.app_data(state.clone()).app_data(health.clone());
    let (guarded, open): (Vec<Route>, Vec<Route>) = routes().partition(Route::needs_token);
    if state.token.is_some() {
        let scope = guarded.into_iter().fold(
            web::scope(GUARDED_SCOPE)
                .wrap(from_fn(require_token))
                .default_service(web::to(not_found)),
            |scope, route| {
                let relative = route.path.strip_prefix(GUARDED_SCOPE).unwrap_or(route.path);
                scope.service(resource(&route, relative))
            },
        );
        cfg.service(scope);
    } else {
        for route in guarded {
            cfg.service(resource(&route, route.path));
        }
    }
    for route in open {
        cfg.service(resource(&route, route.path));
    }
    // Registered last, so it only sees paths no route matched.
    cfg.service(
        web::resource(UNMATCHED_PATTERN)
            .name(UNMATCHED)
            .to(not_found),
    );
}

/// The resource of `route`, at `path` (its own, or relative to a scope).
fn resource(route: &Route, path: &str) -> actix_web::Resource {
    let method = route.method.clone();
    // Named by its full path: the metrics label requests with the name.
    web::resource(path)
        .name(route.path)
        .route((route.handler)(web::method(method.clone())))
        // Other methods: 405 with `Allow`.
        .default_service(web::to(move || {
            let allow = method.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        }))
}

/// The state [`configure`] registers, borrowed from a request.
fn app_state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|data| &***data)
        .ok_or_else(|| ApiError::Internal("the app state is not registered".to_owned()))
}

/// The token guard of [`GUARDED_SCOPE`].
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.token.as_ref());
    authorize(req.request(), token)?;
    next.call(req).await
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::with_body(status, body).map_into_boxed_body();
    // A static value: `ContentType::json()` would format and check a MIME type per answer.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Checks the bearer token in constant time, when one is configured.
fn authorize(req: &HttpRequest, token: Option<&Token>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if token.authorizes(presented) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// What a body holds, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Ndjson,
}

/// Accepts `application/json` and `application/*+json`, and with `ndjson`
/// `application/x-ndjson`; a missing content type is read as JSON, as FastAPI does.
pub fn body_kind(req: &HttpRequest, ndjson: bool) -> Result<BodyKind, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    let essence = value
        .as_bytes()
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let is_json = essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > b"application/+json".len()
            && essence[..12].eq_ignore_ascii_case(b"application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"));
    if is_json {
        Ok(BodyKind::Json)
    } else if ndjson && essence.eq_ignore_ascii_case(ndjson::CONTENT_TYPE.as_bytes()) {
        Ok(BodyKind::Ndjson)
    } else {
        Err(ApiError::UnsupportedMediaType {
            found: Echo(&String::from_utf8_lossy(value.as_bytes())).to_string(),
            accepted: if ndjson {
                "application/json` or `application/x-ndjson"
            } else {
                "application/json"
            },
        })
    }
}

/// The whole body, refused (413) over `limit` bytes, whether declared by `Content-Length` or
/// found while reading a body of unknown length.
///
/// A body that arrives in one piece, as a request this small does, is kept as it came (a view of
/// the connection's read buffer); only a body in several pieces is copied, into a buffer of the
/// size it declares (or turns out to have). actix's `to_bytes_limited` copied every body into a
/// fresh 32 KiB buffer.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(piece) = payload.next().await {
        let piece =
            piece.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        let read = joined.as_ref().map_or(first.len(), BytesMut::len);
        // `read` never passes `limit`.
        if piece.len() > limit - read {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        match &mut joined {
            Some(buffer) => buffer.extend_from_slice(&piece),
            None if first.is_empty() => first = piece,
            None => {
                // Room for the declared length at once (at most `limit`, checked above, and
                // actix's decoder ends the body there); a body of unknown length grows.
                let declared = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                let mut buffer = BytesMut::with_capacity(declared.max(first.len() + piece.len()));
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&piece);
                joined = Some(buffer);
            }
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

#[utoipa::path(
    post,
    path = "/api/v1/voucher",
    tag = "vouchers",
    request_body(
        content = VoucherRequest<'_>,
        content_type = "application/json",
        description = "Every field; or, when the API has a customer store (`--customers-db`), only `customer_id` and `segment_name`: a request by id, answered exactly as the full request made of the customer's stored profile."
    ),
    responses(
        (status = 200, description = "The voucher for the customer's segment", body = VoucherResponse<'_>),
        (status = 400, description = "The body is not JSON", body = ErrorDetail),
        (status = 401, description = "A token is configured and the request lacks `Authorization: Bearer <token>`", body = ErrorDetail),
        (status = 404, description = "No segment of that type covers the customer's value; or, for a request by id, no such customer in the customer store", body = ErrorDetail),
        (status = 413, description = "The body is over the size limit", body = ErrorDetail),
        (status = 415, description = "The content type is not JSON", body = ErrorDetail),
        (status = 422, description = "Invalid fields, one entry each", body = crate::http::model::ValidationErrors),
        (status = 503, description = "No table loaded yet; or, for a request by id, the customer store cannot answer (full requests are still answered)", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn voucher(req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    // Borrowed, not extracted: `web::Data` would clone the `Arc` every worker shares, and
    // its count's cache line would move between cores on every request.
    let state = app_state(&req)?;
    if !state.tables.is_loaded() {
        return Err(state.not_ready());
    }
    body_kind(&req, false)?;
    let body = read_body(&req, payload, state.max_body).await?;
    let raw = VoucherRequest::parse(&body).map_err(|e| match e {
        BodyError::Syntax(message) => ApiError::BadRequest(message),
        BodyError::Shape(error) | BodyError::Duplicate(error) => ApiError::Invalid(vec![error]),
    })?;
    let profiles = state
        .customers
        .resolve(raw.lookup_id().into_iter().collect())
        .await;
    let now = now_secs();
    state
        .tables
        .with_served(|served| {
            let scored = served.score_with(&raw, &profiles, now).scored;
            state.metrics.door(Door::Http).count_scored(&scored);
            Ok(json(StatusCode::OK, scored?.json.as_bytes().to_vec()))
        })
        .unwrap_or_else(|| Err(state.not_ready()))
}

#[utoipa::path(
    get,
    path = "/api/v1/segments",
    tag = "vouchers",
    responses(
        (status = 200, description = "The live table", body = crate::http::model::SegmentsResponse),
        crate::http::model::ListingRefusals,
    )
)]
pub async fn segments(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    listing(&state, |l| &l.segments)
}

/// Answers with a part of the live version's listing, or 503 before a version is loaded.
fn listing(state: &AppState, part: fn(&Listing) -> &Bytes) -> Result<HttpResponse, ApiError> {
    let live = state.tables.live();
    let live = live.as_ref().ok_or_else(|| state.not_ready())?;
    let listing = state
        .listings
        .of(live)
        .map_err(|e| ApiError::Internal(format!("cannot render the table listing: {e}")))?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(part(&listing).clone()))
}

#[utoipa::path(
    get,
    path = "/api/v1/table",
    tag = "vouchers",
    responses(
        (status = 200, description = "The live table version, when it was made, and the run that made it: inputs, rows read and kept, rows dropped per rule", body = crate::http::model::TableResponse),
        crate::http::model::ListingRefusals,
    )
)]
pub async fn table(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    listing(&state, |l| &l.table)
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(state.openapi_json.clone())
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 308, description = "Redirects to the Swagger UI page at `/docs/`"))
)]
pub async fn docs_redirect() -> HttpResponse {
    // The page loads its assets relative to its own URL, which must end with a slash.
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

pub async fn docs_file(
    file: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&file, Arc::clone(&state.swagger)) {
        Ok(Some(file)) => {
            let body = match file.bytes {
                std::borrow::Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
            };
            Ok(HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, file.content_type))
                .body(body))
        }
        Ok(None) => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::Internal(format!(
            "cannot serve Swagger UI file {file}: {e}"
        ))),
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token() -> Token {
        "s3cret".parse().expect("token")
    }

    #[test]
    fn the_bearer_token_must_match_exactly() {
        let t = token();
        let with = |value: &str| {
            TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request()
        };
        assert!(authorize(&with("Bearer s3cret"), Some(&t)).is_ok());
        assert!(authorize(&with("bearer s3cret"), Some(&t)).is_ok());
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer",
            "",
        ] {
            assert!(authorize(&with(bad), Some(&t)).is_err(), "{bad:?}");
        }
        assert!(authorize(&TestRequest::default().to_http_request(), Some(&t)).is_err());
        assert!(authorize(&TestRequest::default().to_http_request(), None).is_ok());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &str| {
            TestRequest::default()
                .insert_header((header::CONTENT_TYPE, value))
                .to_http_request()
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert_eq!(
                body_kind(&with(ok), false).ok(),
                Some(BodyKind::Json),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/+json",
            "json",
            "application/jsonx",
        ] {
            assert!(body_kind(&with(bad), true).is_err(), "{bad}");
        }
        assert_eq!(
            body_kind(&TestRequest::default().to_http_request(), false).ok(),
            Some(BodyKind::Json)
        );
        let ndjson = with("application/x-ndjson; charset=utf-8");
        assert_eq!(body_kind(&ndjson, true).ok(), Some(BodyKind::Ndjson));
        assert!(
            body_kind(&ndjson, false).is_err(),
            "the single route takes one JSON body"
        );
    }
}
