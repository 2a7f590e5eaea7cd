//! `voucher.v1.VoucherService`: each call turns its message into the scoring core's request
//! and the core's result into a message or a status.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, Metrics};
use voucher_serve::tables::Tables;
use voucher_shared::score::{
    Json, Outcome, Refusal, ValidationError, VoucherRequest, VoucherResponse, now_secs,
};

use crate::config::Token;
use crate::grpc::guard::{Guarded, Reached, unreadable};
use crate::grpc::metrics::GrpcMetrics;
use crate::grpc::proto;
use crate::grpc::proto::voucher_service_server::VoucherServiceServer;

/// The service, shared by every connection.
#[derive(Debug, Clone)]
pub struct VoucherGrpc {
    tables: Arc<Tables>,
    metrics: Metrics,
    calls: GrpcMetrics,
    token: Option<Token>,
    max_message: usize,
}

/// The method names, as in the metrics' `method` label.
pub const GET_VOUCHER: &str = "GetVoucher";
pub const SCORE_VOUCHERS: &str = "ScoreVouchers";

impl VoucherGrpc {
    /// The service on `tables`, counting into `metrics`' registry, guarded by `token` if set,
    /// reading request messages of at most `max_message` bytes (the HTTP door's `--max-body`).
    pub fn new(
        tables: Arc<Tables>,
        metrics: Metrics,
        token: Option<Token>,
        max_message: usize,
    ) -> Result<Self, prometheus::Error> {
        Ok(VoucherGrpc {
            calls: GrpcMetrics::register(metrics.registry())?,
            tables,
            metrics,
            token,
            max_message,
        })
    }

    /// The server to serve: the generated one, behind the token check and the call counting.
    pub fn into_server(self) -> Guarded<VoucherServiceServer<VoucherGrpc>> {
        let (token, calls) = (self.token.clone(), self.calls.clone());
        let unary = self.metrics.door(Door::Grpc).clone();
        let server =
            VoucherServiceServer::new(self.clone()).max_decoding_message_size(self.max_message);
        Guarded::new(server, token, calls, unary)
    }

    /// The tables it serves, for health checking.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// What is served, for one call (or one whole stream).
    fn served(&self) -> Result<Served, Status> {
        self.tables.served().ok_or_else(|| {
            Status::unavailable(format!(
                "no voucher table is loaded yet from {}; retry later",
                self.tables.dir().root().display()
            ))
        })
    }

    fn get(
        &self,
        request: &Request<proto::VoucherRequest>,
    ) -> Result<proto::VoucherResponse, Status> {
        let served = self.served()?;
        let scored = served.score(&to_core(request.get_ref()), now_secs()).scored;
        self.metrics.door(Door::Grpc).count_scored(&scored);
        match scored {
            Ok(answer) => Ok(to_message(&answer)),
            Err(Refusal::Invalid(errors)) => Err(invalid_argument(&errors)),
            Err(Refusal::NoSegment(no_segment)) => {
                Err(Status::new(code(Outcome::NoSegment), no_segment.message))
            }
        }
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<proto::ScoreResult, Status>> + Send>>;

#[tonic::async_trait]
impl proto::voucher_service_server::VoucherService for VoucherGrpc {
    async fn get_voucher(
        &self,
        request: Request<proto::VoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        Reached::mark(&request);
        self.get(&request).map(Response::new)
    }

    type ScoreVouchersStream = ResultStream;

    async fn score_vouchers(
        &self,
        request: Request<Streaming<proto::VoucherRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        Reached::mark(&request);
        let served = self.served()?;
        let counters = self.metrics.door(Door::GrpcStream).clone();
        let mut index = 0;
        let results = request.into_inner().map(move |item| {
            // A message that cannot be read ends the stream, as tonic ends it, with our code.
            let message = item.map_err(|status| match unreadable(&status) {
                Some(unreadable) => {
                    counters.count(Outcome::Malformed);
                    unreadable
                }
                None => status,
            })?;
            let scored = served.score(&to_core(&message), now_secs()).scored;
            counters.count_scored(&scored);
            let outcome = match scored {
                Ok(answer) => proto::score_result::Outcome::Voucher(to_message(&answer)),
                Err(Refusal::Invalid(errors)) => {
                    proto::score_result::Outcome::Invalid(proto::Invalid {
                        violations: errors
                            .iter()
                            .map(violation)
                            .map(|v| proto::FieldViolation {
                                field: v.field,
                                description: v.description,
                                reason: v.reason,
                            })
                            .collect(),
                    })
                }
                Err(Refusal::NoSegment(no_segment)) => {
                    proto::score_result::Outcome::NoSegment(no_segment.message)
                }
            };
            let result = proto::ScoreResult {
                index,
                outcome: Some(outcome),
            };
            index += 1;
            Ok(result)
        });
        Ok(Response::new(Box::pin(results)))
    }
}

/// The message as the scoring core's request: an absent field is missing, as in JSON.
fn to_core(message: &proto::VoucherRequest) -> VoucherRequest<'_> {
    fn text(value: &Option<String>) -> Json<'_> {
        value
            .as_deref()
            .map_or(Json::Missing, |s| Json::Str(Cow::Borrowed(s)))
    }
    let int = |value: Option<i64>| value.map_or(Json::Missing, Json::Int);
    VoucherRequest {
        customer_id: int(message.customer_id),
        country_code: text(&message.country_code),
        last_order_ts: text(&message.last_order_ts),
        first_order_ts: text(&message.first_order_ts),
        total_orders: int(message.total_orders),
        segment_name: text(&message.segment_name),
    }
}

fn to_message(answer: &VoucherResponse<'_>) -> proto::VoucherResponse {
    proto::VoucherResponse {
        voucher: answer.voucher,
        country_code: answer.country_code.to_owned(),
        segment_name: answer.segment_name.to_owned(),
        segment: answer.segment.to_owned(),
        version: answer.version.to_owned(),
    }
}

/// One field error as a `google.rpc.BadRequest` violation: the field, the HTTP API's message,
/// and its `type` in upper case as the reason.
fn violation(error: &ValidationError) -> FieldViolation {
    FieldViolation {
        field: error.field().unwrap_or("request").to_owned(),
        description: error.msg.clone(),
        reason: error.kind.to_ascii_uppercase(),
        localized_message: None,
    }
}

/// The status code of an outcome, as the scoring core maps it.
fn code(outcome: Outcome) -> Code {
    Code::from_i32(outcome.grpc_code().number)
}

/// `INVALID_ARGUMENT` with every bad field in the status details.
fn invalid_argument(errors: &[ValidationError]) -> Status {
    let summary = errors
        .iter()
        .map(|e| format!("{}: {}", e.field().unwrap_or("request"), e.msg))
        .collect::<Vec<_>>()
        .join("; ");
    let details = ErrorDetails::with_bad_request(errors.iter().map(violation).collect::<Vec<_>>());
    Status::with_error_details(
        code(Outcome::Invalid),
        format!("{} invalid field(s): {summary}", errors.len()),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_missing_and_present_ones_keep_their_values() {
        let message = proto::VoucherRequest {
            customer_id: Some(7),
            country_code: Some("Peru".into()),
            total_orders: Some(-1),
            ..Default::default()
        };
        let core = to_core(&message);
        assert_eq!(core.customer_id, Json::Int(7));
        assert_eq!(core.country_code, Json::Str(Cow::Borrowed("Peru")));
        assert_eq!(core.total_orders, Json::Int(-1));
        assert_eq!(core.last_order_ts, Json::Missing);
        assert_eq!(core.segment_name, Json::Missing);
    }

    #[test]
    fn each_outcome_s_code_is_the_canonical_one_tonic_knows() {
        for outcome in Outcome::ALL {
            let tonic = code(outcome);
            assert_eq!(tonic as i32, outcome.grpc_code().number, "{outcome:?}");
            // tonic's Debug is the canonical name in camel case: INVALID_ARGUMENT is
            // InvalidArgument.
            let camel: String = outcome
                .grpc_code()
                .name
                .split('_')
                .map(|word| word[..1].to_owned() + &word[1..].to_ascii_lowercase())
                .collect();
            assert_eq!(format!("{tonic:?}"), camel, "{outcome:?}");
        }
    }

    #[test]
    fn field_errors_become_bad_request_violations() {
        let errors = [ValidationError {
            loc: vec!["body", "total_orders"],
            msg: "Field required".into(),
            kind: "missing",
        }];
        let status = invalid_argument(&errors);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("total_orders: Field required"),
            "{}",
            status.message()
        );
        let details = status.get_error_details();
        let bad = details.bad_request().expect("a BadRequest detail");
        assert_eq!(bad.field_violations[0].field, "total_orders");
        assert_eq!(bad.field_violations[0].reason, "MISSING");
    }
}
