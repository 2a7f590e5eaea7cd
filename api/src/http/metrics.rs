//! The HTTP door's request metrics, and the middleware that records them. Requests are
//! labelled by route pattern, never by raw path, so label cardinality stays bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest};
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
    /// status -> route -> (request counter, latency histogram).
    handles: RefCell<HashMap<u16, HashMap<String, RouteHandles>>>,
}

type RouteHandles = (IntCounter, Histogram);

impl WorkerMeter {
    /// Counts and times one answered request.
    fn observe(&self, route: &str, status: StatusCode, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        let mut handles = self.0.handles.borrow_mut();
        let by_route = handles.entry(status.as_u16()).or_default();
        if let Some((count, latency)) = by_route.get(route) {
            count.inc();
            latency.observe(elapsed);
            return;
        }
        let calls = &self.0.metrics.0;
        let count = calls.count.with_label_values(&[route, status.as_str()]);
        let latency = calls.latency.with_label_values(&[route]);
        count.inc();
        latency.observe(elapsed);
        by_route.insert(route.to_owned(), (count, latency));
    }
}

/// Middleware (wrap the whole app with `from_fn`) that counts and times every request under
/// its route pattern. It sits outside every other middleware, so answers those give (such as
/// the token guard's 401) are counted under their route too.
pub async fn meter(
    meter: WorkerMeter,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let result = next.call(req).await;
    let (status, request) = match &result {
        Ok(response) => (response.status(), Some(response.request())),
        Err(error) => (error.as_response_error().status_code(), None),
    };
    // Every route's resource is named by its path (see `routes::configure`): no allocation.
    let route = request
        .and_then(HttpRequest::match_name)
        .unwrap_or(UNMATCHED);
    meter.observe(route, status, started);
    if status.is_server_error() {
        log_server_error(route, status, &result);
    }
    result
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
