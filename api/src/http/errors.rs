//! Every non-200 answer of the API, with its status and `{"detail": ...}` body.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use voucher_serve::customers::RETRY_AFTER_SECS;
use voucher_shared::score::{Outcome, Refusal};

use crate::http::model::{ErrorDetail, ValidationError, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("no voucher table is loaded yet; retry in {retry_after_secs} s")]
    NotReady { retry_after_secs: u64 },
    /// `found` is the header as an error may repeat it (see `voucher_shared::echo`).
    #[error("content type {found} is not accepted here; send `Content-Type: {accepted}`")]
    UnsupportedMediaType {
        found: String,
        accepted: &'static str,
    },
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "the batch holds {count} requests; the limit is {limit} per JSON batch (send more as NDJSON, `Content-Type: application/x-ndjson`, or in several batches)"
    )]
    TooManyItems { count: usize, limit: usize },
    /// The body is not JSON, or cannot be read: a malformed request.
    #[error("{0}")]
    BadRequest(String),
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<ValidationError>),
    #[error("{0}")]
    NoSegment(String),
    /// A request by id for a customer the store does not hold.
    #[error("{0}")]
    UnknownCustomer(String),
    /// A request by id while the customer store cannot answer.
    #[error("{0}")]
    CustomersUnavailable(String),
    #[error("Not Found")]
    NotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed { allow: Method },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(errors) => ApiError::Invalid(errors),
            Refusal::NoSegment(no_segment) => ApiError::NoSegment(no_segment.message),
            Refusal::UnknownCustomer(_) => ApiError::UnknownCustomer(refusal.message()),
            Refusal::CustomersUnavailable(_) => ApiError::CustomersUnavailable(refusal.message()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyItems { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BadRequest(_) => status_of(Outcome::Malformed),
            ApiError::Invalid(_) => status_of(Outcome::Invalid),
            ApiError::NoSegment(_) => status_of(Outcome::NoSegment),
            ApiError::UnknownCustomer(_) => status_of(Outcome::UnknownCustomer),
            ApiError::CustomersUnavailable(_) => status_of(Outcome::CustomersUnavailable),
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::NotReady { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            ApiError::CustomersUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        let body = match self {
            ApiError::Invalid(errors) => serde_json::to_vec(&ValidationErrors {
                detail: errors.clone(),
            }),
            // An internal error's cause goes to the log, not to the client.
            ApiError::Internal(_) => serde_json::to_vec(&ErrorDetail {
                detail: "internal error".into(),
            }),
            other => serde_json::to_vec(&ErrorDetail {
                detail: other.to_string(),
            }),
        };
        response
            .content_type(mime_json())
            // Serializing strings and numbers cannot fail; the fallback keeps the body JSON anyway.
            .body(body.unwrap_or_else(|_| br#"{"detail":"error"}"#.to_vec()))
    }
}

/// The status of an item's outcome, as the scoring core maps it.
pub fn status_of(outcome: Outcome) -> StatusCode {
    StatusCode::from_u16(outcome.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(error: &ApiError) -> (StatusCode, serde_json::Value, HttpResponse) {
        let response = error.error_response();
        let status = response.status();
        let (response, body) = response.into_parts();
        let bytes = body.try_into_bytes().expect("in-memory body");
        let json = serde_json::from_slice(&bytes).expect("json body");
        (status, json, response.set_body(()).map_into_boxed_body())
    }

    #[test]
    fn each_error_has_its_status_body_and_headers() {
        let (status, json, response) = body_of(&ApiError::NotReady {
            retry_after_secs: 5,
        });
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no voucher table"))
        );
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );

        let (status, _, response) = body_of(&ApiError::MethodNotAllowed {
            allow: Method::POST,
        });
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );

        let (status, json, _) = body_of(&ApiError::Invalid(vec![ValidationError {
            loc: vec!["body", "total_orders"],
            msg: "m".into(),
            kind: "int_type",
        }]));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            json,
            serde_json::json!({"detail": [{"loc": ["body", "total_orders"], "msg": "m", "type": "int_type"}]})
        );

        let refused = ApiError::from(Refusal::NoSegment(voucher_shared::score::NoSegment {
            message: "none covers it".into(),
        }));
        let (status, json, _) = body_of(&refused);
        assert_eq!(
            (status, json["detail"].as_str()),
            (StatusCode::NOT_FOUND, Some("none covers it"))
        );

        let (status, json, _) = body_of(&ApiError::from(Refusal::UnknownCustomer(77)));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            json["detail"].as_str().is_some_and(|d| d.contains("77")),
            "{json}"
        );
        let down = ApiError::from(Refusal::CustomersUnavailable("connection refused".into()));
        let (status, json, response) = body_of(&down);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("connection refused")),
            "{json}"
        );
        assert!(response.headers().contains_key(header::RETRY_AFTER));

        let (status, json, _) = body_of(&ApiError::Internal("disk on fire".into()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["detail"], "internal error");
    }
}
