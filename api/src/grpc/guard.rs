//! What every call of `voucher.v1.VoucherService` passes through, around the generated server:
//! the token check, before the request message is even decoded; the count of calls by method
//! and final status code, whatever ends them (the service, tonic's decoding, the client going
//! away); and the status of a request message that cannot be read.
//!
//! tonic decodes a unary request before the service method runs and answers a message it
//! cannot read with INTERNAL (not protobuf) or OUT_OF_RANGE (over the size limit), which no
//! method sees. Here such an answer becomes INVALID_ARGUMENT or RESOURCE_EXHAUSTED, and is
//! counted as a `malformed` item, as the HTTP door counts a body that is not JSON. (Messages of
//! a stream reach the service, which says the same of them: [`unreadable`].)

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Code, Status};
use voucher_serve::metrics::DoorCounters;
use voucher_shared::echo::cut;
use voucher_shared::score::Outcome;

use crate::config::Token;
use crate::grpc::metrics::GrpcMetrics;
use crate::grpc::service::{GET_VOUCHER, SCORE_VOUCHERS};

/// The `method` label of a call to a method the service does not have: the label's values
/// stay bounded whatever paths clients send.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Set by the service when a call reaches a method: a call that ends before that ended in
/// tonic, reading the request.
#[derive(Debug, Clone, Default)]
pub struct Reached(Arc<AtomicBool>);

impl Reached {
    /// Notes that the call reached its method (a no-op for a request built without a guard).
    pub fn mark<T>(request: &tonic::Request<T>) {
        if let Some(reached) = request.extensions().get::<Reached>() {
            reached.0.store(true, Ordering::Relaxed);
        }
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A status for a request message that cannot be read, from tonic's; `None` when `status` is
/// not about reading the message.
pub fn unreadable(status: &Status) -> Option<Status> {
    let code = match status.code() {
        Code::Internal | Code::InvalidArgument => Code::InvalidArgument,
        Code::OutOfRange | Code::ResourceExhausted => Code::ResourceExhausted,
        _ => return None,
    };
    Some(Status::new(
        code,
        format!(
            "the request message cannot be read as a voucher.v1.VoucherRequest: {}",
            cut(status.message(), 200)
        ),
    ))
}

/// The generated server `S`, guarded.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    token: Option<Token>,
    calls: GrpcMetrics,
    /// The scoring counters of `GetVoucher`, for the requests tonic could not read.
    unary: DoorCounters,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, token: Option<Token>, calls: GrpcMetrics, unary: DoorCounters) -> Self {
        Guarded {
            inner,
            token,
            calls,
            unary,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tonic::codegen::Service<http::Request<Body>> for Guarded<S>
where
    S: tonic::codegen::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let call = Call {
            metrics: self.calls.clone(),
            method: method_of(request.uri().path()),
            started: Instant::now(),
        };
        if let Some(token) = &self.token {
            let presented = request.headers().get("authorization").map(|v| v.as_bytes());
            if !token.authorizes(presented) {
                let status = Status::unauthenticated(
                    "missing or wrong bearer token: send metadata `authorization: Bearer <token>`",
                );
                call.record(status.code());
                let response = status.into_http::<Body>();
                return Box::pin(std::future::ready(Ok::<_, Infallible>(response)));
            }
        }
        let reached = Reached::default();
        request.extensions_mut().insert(reached.clone());
        // The ready service answers this call; a fresh clone waits for the next one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let unary = self.unary.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok::<_, Infallible>(finish(response, &reached, call, &unary))
        })
    }
}

/// Counts a call whose status is in the response's headers (it ended before any message),
/// turning tonic's status for an unreadable request into ours; otherwise counts it when its
/// body ends.
fn finish(
    response: http::Response<Body>,
    reached: &Reached,
    call: Call,
    unary: &DoorCounters,
) -> http::Response<Body> {
    let Some(code) = response
        .headers()
        .get(Status::GRPC_STATUS)
        .map(|v| Code::from_bytes(v.as_bytes()))
    else {
        return response.map(|body| {
            Body::new(Counted {
                inner: body,
                call: Some(call),
            })
        });
    };
    if !reached.get() && code != Code::Ok {
        let status =
            Status::from_header_map(response.headers()).unwrap_or_else(|| Status::new(code, ""));
        if let Some(status) = unreadable(&status) {
            unary.count(Outcome::Malformed);
            call.record(status.code());
            return status.into_http();
        }
    }
    call.record(code);
    response
}

/// The `method` label of a request path.
fn method_of(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some(GET_VOUCHER) => GET_VOUCHER,
        Some(SCORE_VOUCHERS) => SCORE_VOUCHERS,
        _ => UNKNOWN_METHOD,
    }
}

/// One call, counted once with its final code.
#[derive(Debug)]
struct Call {
    metrics: GrpcMetrics,
    method: &'static str,
    started: Instant,
}

impl Call {
    fn record(self, code: Code) {
        self.metrics.observe(self.method, code, self.started);
    }
}

/// A response body that counts its call when it ends: with the status of its trailers, or as
/// CANCELLED when it is dropped before (the client went away).
struct Counted {
    inner: Body,
    call: Option<Call>,
}

impl Counted {
    fn end(&mut self, code: Code) {
        if let Some(call) = self.call.take() {
            call.record(code);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get(Status::GRPC_STATUS)
                        .map_or(Code::Unknown, |v| Code::from_bytes(v.as_bytes()));
                    self.end(code);
                }
            }
            Some(Err(status)) => self.end(status.code()),
            None => self.end(Code::Unknown),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_s_statuses_for_an_unreadable_message_become_ours() {
        let decode = Status::internal("failed to decode Protobuf message: invalid wire type");
        let status = unreadable(&decode).expect("a decode failure");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("invalid wire type"),
            "{}",
            status.message()
        );
        let large = Status::out_of_range("Error, decoded message length too large");
        assert_eq!(
            unreadable(&large).map(|s| s.code()),
            Some(Code::ResourceExhausted)
        );
        assert!(unreadable(&Status::unimplemented("gzip")).is_none());
        assert!(unreadable(&Status::cancelled("gone")).is_none());
    }

    #[test]
    fn the_method_label_is_one_of_the_service_s_or_unknown() {
        assert_eq!(
            method_of("/voucher.v1.VoucherService/GetVoucher"),
            GET_VOUCHER
        );
        assert_eq!(
            method_of("/voucher.v1.VoucherService/ScoreVouchers"),
            SCORE_VOUCHERS
        );
        assert_eq!(
            method_of("/voucher.v1.VoucherService/Other"),
            UNKNOWN_METHOD
        );
        assert_eq!(
            method_of(&format!("/x/{}", "y".repeat(10_000))),
            UNKNOWN_METHOD
        );
    }
}
