//! The HTTP door's request metrics, and the middleware that records them. Requests are
//! labelled by route pattern, never by raw path, so label cardinality stays bounded.
//!
//! Every worker counts into cells of its own, which a scrape sums: the two series are written
//! on every request by every worker, and shared prometheus metrics would make the workers'
//! cores pass the same cache lines back and forth (five atomic read-modify-writes per request,
//! about 3 % of the single route's throughput; bench/RESULTS.md).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpRequest};
use pin_project_lite::pin_project;
use prometheus::Registry;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use voucher_serve::metrics::{Cell, LATENCY_BUCKETS, family, labelled};

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The catch-all route pattern that answers them (404).
pub const UNMATCHED_PATTERN: &str = "/{path:.*}";

const REQUESTS: (&str, &str) = (
    "http_requests_total",
    "HTTP requests by route pattern and status.",
);
const DURATION: (&str, &str) = (
    "http_request_duration_seconds",
    "Time to answer HTTP requests, by route pattern.",
);

/// The HTTP door's own metrics: requests by route pattern and status, and their latency, in
/// the process's registry.
#[derive(Debug, Clone)]
pub struct HttpMetrics(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    requests: Desc,
    duration: Desc,
    /// [`LATENCY_BUCKETS`] in nanoseconds.
    bounds: [u64; LATENCY_BUCKETS.len()],
    /// Every worker's cells, for scrapes.
    cells: Mutex<Vec<Arc<RouteCells>>>,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let desc = |(name, help): (&str, &str), labels: &[&str]| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                labels.iter().map(|l| (*l).to_owned()).collect(),
                HashMap::new(),
            )
        };
        let metrics = HttpMetrics(Arc::new(Shared {
            requests: desc(REQUESTS, &["route", "status"])?,
            duration: desc(DURATION, &["route"])?,
            bounds: LATENCY_BUCKETS.map(|b| (b * 1e9).round() as u64),
            cells: Mutex::default(),
        }));
        registry.register(Box::new(metrics.clone()))?;
        Ok(metrics)
    }

    /// The request metrics of one worker (see [`WorkerMeter`]).
    pub fn worker_meter(&self) -> WorkerMeter {
        WorkerMeter(Rc::new(WorkerHandles {
            metrics: self.clone(),
            handles: RefCell::default(),
        }))
    }
}

/// One worker's counts of one (route, status). Only the worker that made it adds to it
/// (through its [`WorkerMeter`], which cannot leave its thread).
#[derive(Debug)]
struct RouteCells {
    route: String,
    status: StatusCode,
    /// Requests with a latency up to each bound and above the one before; the last cell holds
    /// those above every bound. Their total is the request count, so a scrape's buckets always
    /// add up to its count.
    buckets: [Cell; LATENCY_BUCKETS.len() + 1],
    /// Their latencies, in nanoseconds.
    nanos: Cell,
}

impl Collector for HttpMetrics {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.requests, &self.0.duration]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut requests: BTreeMap<(&str, StatusCode), u64> = BTreeMap::new();
        let mut durations: BTreeMap<&str, ([u64; LATENCY_BUCKETS.len() + 1], u64)> =
            BTreeMap::new();
        let cells = self.0.cells.lock().unwrap_or_else(PoisonError::into_inner);
        for cell in cells.iter() {
            let counts = cell.buckets.each_ref().map(Cell::get);
            *requests.entry((&cell.route, cell.status)).or_default() += counts.iter().sum::<u64>();
            let (buckets, nanos) = durations.entry(&cell.route).or_default();
            for (total, count) in buckets.iter_mut().zip(counts) {
                *total += count;
            }
            *nanos += cell.nanos.get();
        }
        let requests = requests
            .into_iter()
            .map(|((route, status), count)| {
                let mut counter = proto::Counter::default();
                counter.set_value(count as f64);
                let mut metric = labelled(&[("route", route), ("status", status.as_str())]);
                metric.set_counter(counter);
                metric
            })
            .collect();
        let durations = durations
            .into_iter()
            .map(|(route, (counts, nanos))| {
                let mut cumulative = 0;
                let buckets = LATENCY_BUCKETS
                    .iter()
                    .zip(counts)
                    .map(|(bound, count)| {
                        cumulative += count;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = proto::Histogram::default();
                histogram.set_bucket(buckets);
                histogram.set_sample_count(counts.iter().sum());
                histogram.set_sample_sum(nanos as f64 / 1e9);
                let mut metric = labelled(&[("route", route)]);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        vec![
            family(&self.0.requests, MetricType::COUNTER, requests),
            family(&self.0.duration, MetricType::HISTOGRAM, durations),
        ]
    }
}

/// The request metrics of one HTTP worker: its own cells of each (route, status). Workers are
/// single-threaded, hence `Rc` (cloned for every request: one non-atomic increment), which
/// also keeps the cells' single writer on its thread.
#[derive(Clone)]
pub struct WorkerMeter(Rc<WorkerHandles>);

struct WorkerHandles {
    metrics: HttpMetrics,
    /// The (route, status) pairs seen so far, the last one counted first: a few dozen at most
    /// (routes times statuses), and a worker answers mostly one, so a scan that usually stops
    /// at the first costs less than hashing the route.
    handles: RefCell<Vec<Arc<RouteCells>>>,
}

impl WorkerMeter {
    /// Counts and times one answered request.
    fn observe(&self, route: &str, status: StatusCode, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut handles = self.0.handles.borrow_mut();
        let known = handles
            .iter()
            .position(|h| h.status == status && h.route == route);
        let at = match known {
            Some(at) => at,
            None => {
                let cells = Arc::new(RouteCells {
                    route: route.to_owned(),
                    status,
                    buckets: Default::default(),
                    nanos: Cell::default(),
                });
                let shared = &self.0.metrics.0;
                shared
                    .cells
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arc::clone(&cells));
                handles.push(cells);
                handles.len() - 1
            }
        };
        if at != 0 {
            handles.swap(0, at);
        }
        let cells = &handles[0];
        let bucket = self.0.metrics.0.bounds.partition_point(|b| *b < nanos);
        cells.buckets[bucket].add(1);
        cells.nanos.add(nanos);
    }
}

/// Middleware around the whole app (one per worker, [`HttpMetrics::worker_meter`]): counts and
/// times every request under its route pattern, and marks every answer
/// `X-Content-Type-Options: nosniff` (no answer is to be sniffed as anything but its declared
/// type). It sits outside every other middleware, so answers those give (such as the token
/// guard's 401) are counted under their route too.
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
            // The page's files say the same (with their CSP), so this replaces nothing else.
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        Poll::Ready(result)
    }
}

fn log_server_error<B>(
    route: &str,
    status: StatusCode,
    result: &Result<ServiceResponse<B>, Error>,
) {
    let Some(more) = ServerErrorLog::admit(route, status, Instant::now()) else {
        return;
    };
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
    let more = match more {
        0 => String::new(),
        n => format!(
            " ({n} more {} on this route since its last line, not logged)",
            status.as_u16()
        ),
    };
    log::error!(
        "{target} -> {}: {}{more}",
        status.as_u16(),
        cause.as_deref().unwrap_or("no cause recorded")
    );
}

/// Server errors logged at most once per [`ServerErrorLog::EVERY`] for each route and status:
/// when the customer store is down, every request by id gets a 503, and a line each would be
/// tens of thousands of lines a second saying the same. The metrics count every one; the line
/// that is logged says how many were not.
#[derive(Debug, Default)]
struct ServerErrorLog {
    /// Per route and status: when a line was last logged, and the errors since.
    routes: Vec<(String, StatusCode, Instant, u64)>,
}

static SERVER_ERRORS: Mutex<ServerErrorLog> = Mutex::new(ServerErrorLog { routes: Vec::new() });

impl ServerErrorLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Whether to log an error of `route` and `status` now, and if so how many were not
    /// logged since the last line.
    fn admit(route: &str, status: StatusCode, now: Instant) -> Option<u64> {
        SERVER_ERRORS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .decide(route, status, now)
    }

    fn decide(&mut self, route: &str, status: StatusCode, now: Instant) -> Option<u64> {
        let Some((_, _, last, since)) = self
            .routes
            .iter_mut()
            .find(|(r, s, _, _)| r == route && *s == status)
        else {
            self.routes.push((route.to_owned(), status, now, 0));
            return Some(0);
        };
        if now.saturating_duration_since(*last) < Self::EVERY {
            *since += 1;
            return None;
        }
        *last = now;
        Some(std::mem::take(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_serve::metrics::{Binary, Metrics};

    #[test]
    fn server_errors_are_logged_once_a_second_per_route_and_status_with_the_rest_counted() {
        let mut log = ServerErrorLog::default();
        let start = Instant::now();
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        let at = |ms| start + std::time::Duration::from_millis(ms);
        assert_eq!(log.decide("/api/v1/voucher", unavailable, at(0)), Some(0));
        for ms in 1..1000 {
            assert_eq!(log.decide("/api/v1/voucher", unavailable, at(ms)), None);
        }
        // Another status, another route: their own first lines.
        let internal = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(log.decide("/api/v1/voucher", internal, at(500)), Some(0));
        assert_eq!(
            log.decide("/api/v1/vouchers", unavailable, at(500)),
            Some(0)
        );
        assert_eq!(
            log.decide("/api/v1/voucher", unavailable, at(1000)),
            Some(999)
        );
        assert_eq!(log.decide("/api/v1/voucher", unavailable, at(1001)), None);
        assert_eq!(
            log.decide("/api/v1/voucher", unavailable, at(5000)),
            Some(1)
        );
        assert_eq!(log.routes.len(), 3);
    }

    #[test]
    fn routes_count_by_status_including_rare_ones_through_every_worker() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
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

    #[test]
    fn latencies_fall_in_their_buckets_and_add_up_to_the_count() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        let http = HttpMetrics::register(metrics.registry()).expect("http metrics");
        let meter = http.worker_meter();
        let ago = |ms| Instant::now() - std::time::Duration::from_millis(ms);
        meter.observe("/y", StatusCode::OK, ago(3));
        meter.observe("/y", StatusCode::NOT_FOUND, ago(3));
        // Above every bound: only in +Inf.
        meter.observe("/y", StatusCode::OK, ago(2_000));
        let out = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        let series = "voucher_api_http_request_duration_seconds";
        for expected in [
            format!("{series}_bucket{{route=\"/y\",le=\"0.0025\"}} 0"),
            format!("{series}_bucket{{route=\"/y\",le=\"0.005\"}} 2"),
            format!("{series}_bucket{{route=\"/y\",le=\"1\"}} 2"),
            format!("{series}_bucket{{route=\"/y\",le=\"+Inf\"}} 3"),
            format!("{series}_count{{route=\"/y\"}} 3"),
        ] {
            assert!(out.contains(&expected), "{expected} in {out}");
        }
        let sum: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series}_sum{{route=\"/y\"}} ")))
            .and_then(|v| v.parse().ok())
            .expect("a sum");
        assert!((2.006..2.5).contains(&sum), "{sum}");
    }

    #[test]
    fn workers_on_their_own_threads_lose_no_count_while_scraped() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        let http = HttpMetrics::register(metrics.registry()).expect("http metrics");
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let http = http.clone();
                std::thread::spawn(move || {
                    let meter = http.worker_meter();
                    for i in 0..20_000 {
                        let status = if i % 4 == 0 {
                            StatusCode::NOT_FOUND
                        } else {
                            StatusCode::OK
                        };
                        meter.observe("/z", status, Instant::now());
                    }
                })
            })
            .collect();
        while !workers.iter().all(std::thread::JoinHandle::is_finished) {
            // A scrape meanwhile sees consistent histograms: buckets add up to the count.
            for family in http.collect().iter().skip(1) {
                for metric in family.get_metric() {
                    let histogram = metric.get_histogram();
                    let last = histogram
                        .get_bucket()
                        .last()
                        .map_or(0, |b| b.cumulative_count());
                    assert!(last <= histogram.get_sample_count());
                }
            }
        }
        for worker in workers {
            worker.join().expect("worker");
        }
        let out = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        for expected in [
            r#"voucher_api_http_requests_total{route="/z",status="200"} 30000"#,
            r#"voucher_api_http_requests_total{route="/z",status="404"} 10000"#,
            r#"voucher_api_http_request_duration_seconds_count{route="/z"} 40000"#,
        ] {
            assert!(out.contains(expected), "{expected} in {out}");
        }
    }
}
