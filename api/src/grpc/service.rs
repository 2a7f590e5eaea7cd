//! `voucher.v1.VoucherService`: each call turns its message into the scoring core's request
//! and the core's result into a message or a status. A stream is scored in windows (the
//! messages already arrived, up to [`STREAM_WINDOW`]): the requests by id of a window are
//! resolved with one lookup of the customer store.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};
use voucher_serve::customers::{Customers, RETRY_AFTER_SECS};
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, DoorCounters, Metrics};
use voucher_serve::tables::Tables;
use voucher_shared::score::{
    Json, Outcome, Profiles, Refusal, ValidationError, VoucherRequest, VoucherResponse, now_secs,
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
    customers: Customers,
    metrics: Metrics,
    calls: GrpcMetrics,
    token: Option<Token>,
    max_message: usize,
}

/// The method names, as in the metrics' `method` label.
pub const GET_VOUCHER: &str = "GetVoucher";
pub const SCORE_VOUCHERS: &str = "ScoreVouchers";

/// Messages of a stream scored together at most: those already arrived when the first of a
/// window is read.
pub const STREAM_WINDOW: usize = 256;

impl VoucherGrpc {
    /// The service on `tables` (requests by id with `customers`), counting into `metrics`'
    /// registry, guarded by `token` if set, reading request messages of at most `max_message`
    /// bytes (the HTTP door's `--max-body`).
    pub fn new(
        tables: Arc<Tables>,
        customers: Customers,
        metrics: Metrics,
        token: Option<Token>,
        max_message: usize,
    ) -> Result<Self, prometheus::Error> {
        Ok(VoucherGrpc {
            calls: GrpcMetrics::register(metrics.registry())?,
            tables,
            customers,
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

    async fn get(
        &self,
        request: &Request<proto::VoucherRequest>,
    ) -> Result<proto::VoucherResponse, Status> {
        let served = self.served()?;
        let core = to_core(request.get_ref());
        let profiles = self
            .customers
            .resolve(core.lookup_id().into_iter().collect())
            .await;
        let scored = served.score_with(&core, &profiles, now_secs()).scored;
        self.metrics.door(Door::Grpc).count_scored(&scored);
        match scored {
            Ok(answer) => Ok(to_message(&answer)),
            Err(Refusal::Invalid(errors)) => Err(invalid_argument(&errors)),
            Err(refusal @ Refusal::CustomersUnavailable(_)) => Err(Status::with_error_details(
                code(Outcome::of_refusal(&refusal)),
                refusal.message(),
                ErrorDetails::with_retry_info(Some(Duration::from_secs(RETRY_AFTER_SECS))),
            )),
            Err(refusal) => Err(Status::new(
                code(Outcome::of_refusal(&refusal)),
                refusal.message(),
            )),
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
        self.get(&request).await.map(Response::new)
    }

    type ScoreVouchersStream = ResultStream;

    async fn score_vouchers(
        &self,
        request: Request<Streaming<proto::VoucherRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        Reached::mark(&request);
        let scoring = StreamScoring {
            served: self.served()?,
            customers: self.customers.clone(),
            counters: self.metrics.door(Door::GrpcStream).clone(),
            index: 0,
        };
        let windows = request.into_inner().ready_chunks(STREAM_WINDOW);
        let results = futures_util::stream::unfold(
            (windows, scoring),
            |(mut windows, mut scoring)| async move {
                let window = windows.next().await?;
                let results = scoring.score(window).await;
                Some((futures_util::stream::iter(results), (windows, scoring)))
            },
        )
        .flatten();
        Ok(Response::new(Box::pin(results)))
    }
}

/// What a `ScoreVouchers` stream scores with, and where it is.
struct StreamScoring {
    served: Served,
    customers: Customers,
    counters: DoorCounters,
    /// The index of the next request.
    index: u64,
}

impl StreamScoring {
    /// The results of one window of messages, in order, its requests by id resolved with one
    /// lookup. A message that could not be read ends the stream, as tonic ends it, with our
    /// code ([`unreadable`]).
    async fn score(
        &mut self,
        window: Vec<Result<proto::VoucherRequest, Status>>,
    ) -> Vec<Result<proto::ScoreResult, Status>> {
        let messages: Vec<&proto::VoucherRequest> =
            window.iter().map_while(|m| m.as_ref().ok()).collect();
        let requests: Vec<VoucherRequest<'_>> = messages.iter().map(|m| to_core(m)).collect();
        let ids = requests
            .iter()
            .filter_map(VoucherRequest::lookup_id)
            .collect();
        let profiles = self.customers.resolve(ids).await;
        let now = now_secs();
        let mut results: Vec<_> = requests
            .iter()
            .map(|request| Ok(self.result(request, &profiles, now)))
            .collect();
        if let Some(Err(status)) = window.get(messages.len()) {
            results.push(Err(match unreadable(status) {
                Some(unreadable) => {
                    self.counters.count(Outcome::Malformed);
                    unreadable
                }
                None => status.clone(),
            }));
        }
        results
    }

    fn result(
        &mut self,
        request: &VoucherRequest<'_>,
        profiles: &Profiles,
        now: i64,
    ) -> proto::ScoreResult {
        let scored = self.served.score_with(request, profiles, now).scored;
        self.counters.count_scored(&scored);
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
            Err(refusal @ Refusal::UnknownCustomer(_)) => {
                proto::score_result::Outcome::UnknownCustomer(refusal.message())
            }
            Err(refusal @ Refusal::CustomersUnavailable(_)) => {
                proto::score_result::Outcome::Unavailable(refusal.message())
            }
        };
        let result = proto::ScoreResult {
            index: self.index,
            outcome: Some(outcome),
        };
        self.index += 1;
        result
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
