//! Prometheus metrics: one registry for the process, shared by every worker.
//!
//! Requests are labelled by route pattern, never by raw path, so label cardinality stays
//! bounded. Each route keeps its metric handles per worker, which keeps the request path free
//! of label hashing and locks.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::lookup::LiveTable;

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets, in seconds: the API answers in well under a millisecond, so the low end
/// is fine-grained.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    table_info: IntGaugeVec,
    table_age: Gauge,
    table_rows: IntGauge,
    reloads: IntCounterVec,
}

/// What a reload attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Failure,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        }
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("voucher_api".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern and status.",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests, by route pattern.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let table_info = IntGaugeVec::new(
            Opts::new("table_info", "The live table version (value 1)."),
            &["version"],
        )?;
        let table_age = Gauge::new(
            "table_age_seconds",
            "Seconds since the live table version was made; NaN before the first table.",
        )?;
        let table_rows = IntGauge::new("table_rows", "Rows in the live table.")?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "table_reloads_total",
                "Attempts to load a new table version, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(table_info.clone()))?;
        registry.register(Box::new(table_age.clone()))?;
        registry.register(Box::new(table_rows.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        table_age.set(f64::NAN);
        for result in [ReloadResult::Success, ReloadResult::Failure] {
            reloads.with_label_values(&[result.label()]);
        }
        Ok(Metrics {
            registry,
            requests,
            latency,
            table_info,
            table_age,
            table_rows,
            reloads,
        })
    }

    pub fn reload(&self, result: ReloadResult) {
        self.reloads.with_label_values(&[result.label()]).inc();
    }

    /// Records that `table` is now live.
    pub fn table_loaded(&self, table: &LiveTable) {
        self.table_info.reset();
        self.table_info
            .with_label_values(&[table.version_name()])
            .set(1);
        self.table_rows
            .set(i64::try_from(table.rows()).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition, with the table age as of `now` (seconds since the epoch).
    pub fn render(&self, live: Option<&LiveTable>, now: i64) -> Result<Vec<u8>, prometheus::Error> {
        if let Some(live) = live {
            self.table_age
                .set((now - live.version().time().timestamp()) as f64);
        }
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// Middleware that counts and times the requests of one route.
    pub fn meter(&self, route: &'static str) -> Meter {
        Meter {
            metrics: self.clone(),
            route,
        }
    }
}

/// The metric handles of one route in one worker. Counters are resolved on a status's first
/// use, so the exposition lists only statuses that happened.
struct RouteMetrics {
    route: &'static str,
    requests: IntCounterVec,
    latency: Histogram,
    by_status: RefCell<Vec<(StatusCode, IntCounter)>>,
}

impl RouteMetrics {
    fn new(metrics: &Metrics, route: &'static str) -> Self {
        RouteMetrics {
            route,
            requests: metrics.requests.clone(),
            latency: metrics.latency.with_label_values(&[route]),
            by_status: RefCell::new(Vec::new()),
        }
    }

    fn record(&self, status: StatusCode, started: Instant) {
        self.latency.observe(started.elapsed().as_secs_f64());
        let mut by_status = self.by_status.borrow_mut();
        match by_status.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.inc(),
            None => {
                let counter = self
                    .requests
                    .with_label_values(&[self.route, status.as_str()]);
                counter.inc();
                by_status.push((status, counter));
            }
        }
    }
}

/// See [`Metrics::meter`].
pub struct Meter {
    metrics: Metrics,
    route: &'static str,
}

impl<S, B> Transform<S, ServiceRequest> for Meter
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = MeterService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(MeterService {
            service,
            route: Rc::new(RouteMetrics::new(&self.metrics, self.route)),
        }))
    }
}

pub struct MeterService<S> {
    service: S,
    route: Rc<RouteMetrics>,
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
            route: Rc::clone(&self.route),
            inner: self.service.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a metered request.
    pub struct Metered<F> {
        started: Instant,
        route: Rc<RouteMetrics>,
        #[pin]
        inner: F,
    }
}

impl<F, B> Future for Metered<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        this.route.record(status, *this.started);
        if status.is_server_error() {
            log_server_error(this.route.route, status, &result);
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
    use crate::lookup::tests::sample_live;

    fn text(metrics: &Metrics, live: Option<&LiveTable>, now: i64) -> String {
        String::from_utf8(metrics.render(live, now).expect("render")).expect("utf-8")
    }

    #[test]
    fn table_metrics_follow_the_live_version() {
        let metrics = Metrics::new().expect("metrics");
        let before = text(&metrics, None, 0);
        assert!(
            before.contains("voucher_api_table_age_seconds NaN"),
            "{before}"
        );
        assert!(
            before.contains("voucher_api_table_reloads_total{result=\"failure\"} 0"),
            "{before}"
        );

        let live = sample_live();
        metrics.table_loaded(&live);
        metrics.reload(ReloadResult::Success);
        let made = live.version().time().timestamp();
        let after = text(&metrics, Some(&live), made + 90);
        assert!(
            after.contains("voucher_api_table_info{version=\"20261123T101000Z\"} 1"),
            "{after}"
        );
        assert!(
            after.contains("voucher_api_table_age_seconds 90"),
            "{after}"
        );
        assert!(after.contains("voucher_api_table_rows 9"), "{after}");
        assert!(
            after.contains("voucher_api_table_reloads_total{result=\"success\"} 1"),
            "{after}"
        );
    }

    #[test]
    fn routes_count_by_status_including_rare_ones() {
        let metrics = Metrics::new().expect("metrics");
        let route = RouteMetrics::new(&metrics, "/x");
        route.record(StatusCode::OK, Instant::now());
        route.record(StatusCode::IM_A_TEAPOT, Instant::now());
        let out = text(&metrics, None, 0);
        assert!(
            out.contains("voucher_api_http_requests_total{route=\"/x\",status=\"200\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("voucher_api_http_requests_total{route=\"/x\",status=\"418\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("voucher_api_http_request_duration_seconds_count{route=\"/x\"} 2"),
            "{out}"
        );
    }
}
