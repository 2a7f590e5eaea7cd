//! The HTTP door's request metrics, and the middleware that records them. Requests are
//! labelled by route pattern, never by raw path, so label cardinality stays bounded.

use std::cell::RefCell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpRequest};
use pin_project_lite::pin_project;
use prometheus::{Histogram, IntCounter, Registry};
use voucher_serve::metrics::Calls;

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The catch-all route pattern that answers them (404).
pub const UNMATCHED_PATTERN: &str = "/{path:.*}";

/// The HTTP door's own metrics: requests by route pattern and status, and their latency, in
/// the process's registry.
#[derive(Debug, Clone)]
pub struct HttpMetrics(Calls);

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Calls::register(
            registry,
            (
                "http_requests_total",
                "HTTP requests by route pattern and status.",
                &["route", "status"],
            ),
            (
                "http_request_duration_seconds",
                "Time to answer HTTP requests, by route pattern.",
                &["route"],
            ),
        )
        .map(HttpMetrics)
    }

    /// The request metrics of one worker (see [`WorkerMeter`]).
    pub fn worker_meter(&self) -> WorkerMeter {
        WorkerMeter(Rc::new(WorkerHandles {
            metrics: self.clone(),
            handles: RefCell::default(),
        }))
    }
}

/// The request metrics of one HTTP worker: the counter and histogram of each (route, status)
/// resolved once, so that counting a request costs no label hashing or registry lock. Workers
/// are single-threaded, hence `Rc` (cloned for every request: one non-atomic increment).
#[derive(Clone)]
pub struct WorkerMeter(Rc<WorkerHandles>);

struct WorkerHandles {
    metrics: HttpMetrics,
    /// The (route, status) pairs seen so far, the last one counted first: a few dozen at most
    /// (routes times statuses), and a worker answers mostly one, so a scan that usually stops
    /// at the first costs less than hashing the route.
    handles: RefCell<Vec<RouteHandles>>,
}

struct RouteHandles {
    status: StatusCode,
    route: String,
    count: IntCounter,
    latency: Histogram,
}

impl WorkerMeter {
    /// Counts and times one answered request.
    fn observe(&self, route: &str, status: StatusCode, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        let mut handles = self.0.handles.borrow_mut();
        let known = handles
            .iter()
            .position(|h| h.status == status && h.route == route);
        let at = match known {
            Some(at) => at,
            None => {
                let calls = &self.0.metrics.0;
                handles.push(RouteHandles {
                    status,
                    route: route.to_owned(),
                    count: calls.count.with_label_values(&[route, status.as_str()]),
                    latency: calls.latency.with_label_values(&[route]),
                });
                handles.len() - 1
            }
        };
        if at != 0 {
            handles.swap(0, at);
        }
        let first = &handles[0];
        first.count.inc();
        first.latency.observe(elapsed);
    }
}

/// Middleware around the whole app (one per worker, [`HttpMetrics::worker_meter`]): counts and
/// times every request under its route pattern, and marks every answer
/// `X-Content-Type-Options: nosniff` unless it says otherwise (no answer is to be sniffed as
/// anything but its declared type; the page's files set it themselves, with their CSP). It
/// sits outside every other middleware, so answers those give (such as the token guard's 401)
/// are counted under their route too.
///
/// A hand-written future rather than `from_fn` and `DefaultHeaders`: those box the rest of the
/// chain's future on every request, which the single route paid for (bench/RESULTS.md).
pub struct Meter(pub WorkerMeter);

impl<S, B> Transform<S, ServiceRequest> for Meter
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = MeterService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MeterService {
            service,
            meter: self.0.clone(),
        }))
    }
}

pub struct MeterService<S> {
    service: S,
    meter: WorkerMeter,
}

impl<S, B> Service<ServiceRequest> for MeterService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Metered<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Metered {
            started: Instant::now(),
            inner: self.service.call(req),
            meter: self.meter.clone(),
        }
    }
}

pin_project! {
    /// One request's answer on its way out of [`Meter`].
    pub struct Metered<F> {
        #[pin]
        inner: F,
        meter: WorkerMeter,
        started: Instant,
    }
}

impl<F, B> Future for Metered<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        let (status, request) = match &result {
            Ok(response) => (response.status(), Some(response.request())),
            Err(error) => (error.as_response_error().status_code(), None),
        };
        // Every route's resource is named by its path (see `routes::configure`): no allocation.
        let route = request
            .and_then(HttpRequest::match_name)
            .unwrap_or(UNMATCHED);
        this.meter.observe(route, status, *this.started);
        if status.is_server_error() {
            log_server_error(route, status, &result);
        }
        if let Ok(response) = &mut result {
            let headers = response.headers_mut();
            if !headers.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
            }
        }
        Poll::Ready(result)
    }
}

fn log_server_error<B>(
    route: &str,
    status: StatusCode,
    result: &Result<ServiceResponse<B>, Error>,
) {
    let (request, cause) = match result {
        Ok(response) => (
            Some(response.request()),
            response.response().error().map(ToString::to_string),
        ),
        Err(error) => (None, Some(error.to_string())),
    };
    let target = request.map_or_else(
        || route.to_owned(),
        |r| format!("{} {}", r.method(), r.path()),
    );
    log::error!(
        "{target} -> {}: {}",
        status.as_u16(),
        cause.as_deref().unwrap_or("no cause recorded")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_serve::metrics::Metrics;

    #[test]
    fn routes_count_by_status_including_rare_ones_through_every_worker() {
        let metrics = Metrics::new().expect("metrics");
        let http = HttpMetrics::register(metrics.registry()).expect("http metrics");
        let (one, two) = (http.worker_meter(), http.worker_meter());
        one.observe("/x", StatusCode::OK, Instant::now());
        // Once its handles are cached, a worker still counts into the shared series.
        two.observe("/x", StatusCode::OK, Instant::now());
        two.observe("/x", StatusCode::OK, Instant::now());
        one.observe("/x", StatusCode::IM_A_TEAPOT, Instant::now());
        let out = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        assert!(
            out.contains("voucher_api_http_requests_total{route=\"/x\",status=\"200\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("voucher_api_http_requests_total{route=\"/x\",status=\"418\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("voucher_api_http_request_duration_seconds_count{route=\"/x\"} 4"),
            "{out}"
        );
    }
}
