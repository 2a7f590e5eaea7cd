//! Prometheus metrics: one registry for the process, shared by every worker.
//!
//! Requests are labelled by route pattern, never by raw path, so label cardinality stays
//! bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::live::LiveTable;

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The catch-all route pattern that answers them (404).
pub const UNMATCHED_PATTERN: &str = "/{path:.*}";

/// Latency buckets, in seconds: the API answers in well under a millisecond, so the low end
/// is fine-grained.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// A way in to the scoring core, for the `door` label of the scoring counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /api/v1/voucher`.
    Http,
    /// `POST /api/v1/vouchers` with a JSON array.
    HttpBatch,
    /// `POST /api/v1/vouchers` with NDJSON.
    HttpNdjson,
    /// gRPC `GetVoucher`.
    Grpc,
    /// gRPC `ScoreVouchers`.
    GrpcStream,
    /// Kafka events (`voucher-events`).
    Events,
}

impl Door {
    pub const ALL: [Door; 6] = [
        Door::Http,
        Door::HttpBatch,
        Door::HttpNdjson,
        Door::Grpc,
        Door::GrpcStream,
        Door::Events,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::HttpBatch => "http_batch",
            Door::HttpNdjson => "http_ndjson",
            Door::Grpc => "grpc",
            Door::GrpcStream => "grpc_stream",
            Door::Events => "events",
        }
    }
}

/// The scoring counters of one door, resolved once so that counting an item is one atomic add.
#[derive(Debug, Clone)]
pub struct DoorCounters {
    /// Answered with a voucher.
    pub ok: IntCounter,
    /// Refused for bad fields.
    pub invalid: IntCounter,
    /// Valid, but no segment covers it.
    pub no_segment: IntCounter,
    /// Not readable at all (a stream line that is not JSON or is too long).
    pub malformed: IntCounter,
}

impl DoorCounters {
    fn new(scored: &IntCounterVec, door: Door) -> Self {
        let counter = |outcome| scored.with_label_values(&[door.label(), outcome]);
        DoorCounters {
            ok: counter("ok"),
            invalid: counter("invalid"),
            no_segment: counter("no_segment"),
            malformed: counter("malformed"),
        }
    }

    /// Counts one outcome of the scoring core.
    pub fn count(&self, scored: &voucher_shared::score::Scored<'_>) {
        use voucher_shared::score::Refusal;
        match scored {
            Ok(_) => self.ok.inc(),
            Err(Refusal::Invalid(_)) => self.invalid.inc(),
            Err(Refusal::NoSegment(_)) => self.no_segment.inc(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    grpc_requests: IntCounterVec,
    grpc_latency: HistogramVec,
    /// The scoring counters of each door, in [`Door::ALL`] order.
    doors: Arc<[DoorCounters; Door::ALL.len()]>,
    latency: HistogramVec,
    table_info: IntGaugeVec,
    table_age: Gauge,
    table_rows: IntGauge,
    table_dropped: IntGaugeVec,
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
        let counters = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)?,
            )
        };
        let histograms = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            register(&registry, HistogramVec::new(opts, labels)?)
        };
        let requests = counters(
            "http_requests_total",
            "HTTP requests by route pattern and status.",
            &["route", "status"],
        )?;
        let latency = histograms(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route pattern.",
            &["route"],
        )?;
        let scored = counters(
            "scored_total",
            "Requests scored, by door (http, http_batch, http_ndjson, grpc, grpc_stream, events) and outcome (ok, invalid, no_segment, malformed).",
            &["door", "outcome"],
        )?;
        let grpc_requests = counters(
            "grpc_requests_total",
            "gRPC calls by method and status code (a stream counts once, when it ends).",
            &["method", "code"],
        )?;
        let grpc_latency = histograms(
            "grpc_request_duration_seconds",
            "Time to answer gRPC calls (a stream's whole duration), by method.",
            &["method"],
        )?;
        let reloads = counters(
            "table_reloads_total",
            "Attempts to load a new table version, by result.",
            &["result"],
        )?;
        for result in [ReloadResult::Success, ReloadResult::Failure] {
            reloads.with_label_values(&[result.label()]);
        }
        let (table_info, table_age, table_rows, table_dropped) = table_gauges(&registry)?;
        Ok(Metrics {
            requests,
            latency,
            grpc_requests,
            grpc_latency,
            doors: Arc::new(Door::ALL.map(|door| DoorCounters::new(&scored, door))),
            table_info,
            table_age,
            table_rows,
            table_dropped,
            reloads,
            registry,
        })
    }

    /// The registry, for metrics of a door that only one binary has (see `events::metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The scoring counters of `door`.
    pub fn door(&self, door: Door) -> &DoorCounters {
        &self.doors[door as usize]
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
        self.table_dropped.reset();
        if let Some(manifest) = table.manifest() {
            for (rule, count) in manifest.dropped.iter() {
                self.table_dropped
                    .with_label_values(&[rule.metric_label()])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
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

    /// Counts and times one gRPC call (a whole stream, for streaming calls).
    pub fn grpc_observe(&self, method: &str, code: tonic::Code, started: Instant) {
        let code = match code {
            // As grpc-go and the gRPC docs spell it; tonic's Debug says `Ok`.
            tonic::Code::Ok => "OK".to_owned(),
            other => format!("{other:?}"),
        };
        self.grpc_latency
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
        self.grpc_requests.with_label_values(&[method, &code]).inc();
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
    metrics: Metrics,
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
        let count = self
            .0
            .metrics
            .requests
            .with_label_values(&[route, status.as_str()]);
        let latency = self.0.metrics.latency.with_label_values(&[route]);
        count.inc();
        latency.observe(elapsed);
        by_route.insert(route.to_owned(), (count, latency));
    }
}

/// The gauges that describe the live table: version, age, rows and rows dropped per rule.
fn table_gauges(
    registry: &Registry,
) -> Result<(IntGaugeVec, Gauge, IntGauge, IntGaugeVec), prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new("table_info", "The live table version (value 1)."),
        &["version"],
    )?;
    let age = Gauge::new(
        "table_age_seconds",
        "Seconds since the live table version was made; NaN before the first table.",
    )?;
    age.set(f64::NAN);
    let rows = IntGauge::new("table_rows", "Rows in the live table.")?;
    let dropped = IntGaugeVec::new(
        Opts::new(
            "table_rows_dropped",
            "History rows the live table's ETL run dropped, by drop rule (from its manifest).",
        ),
        &["rule"],
    )?;
    Ok((
        register(registry, info)?,
        register(registry, age)?,
        register(registry, rows)?,
        register(registry, dropped)?,
    ))
}

/// Registers `metric` and gives it back.
pub(crate) fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
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
    use crate::live::tests::sample_live;

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
    fn the_live_manifest_s_drop_counts_are_exported_per_rule() {
        use voucher_shared::manifest::{Manifest, Producer};
        use voucher_shared::rules::{DropCounts, DropRule};
        let mut dropped = DropCounts::default();
        dropped[DropRule::Recency] = 723;
        let manifest = Manifest {
            version: "20261123T101000Z".into(),
            created_at: "2026-11-23T10:10:00Z".into(),
            input: "history.parquet".into(),
            inputs: Vec::new(),
            rows_read: 1000,
            rows_kept: 277,
            dropped,
            countries: vec!["Peru".into()],
            segments: serde_json::Value::Null,
            table_rows: 9,
            duration_ms: 1,
            producer: Producer {
                name: "voucher-etl".into(),
                version: "0.1.0".into(),
            },
            ..Manifest::default()
        };
        let version = voucher_shared::publish::Version::parse("20261123T101000Z").expect("v");
        let live = LiveTable::new(
            version,
            &voucher_shared::fixtures::contract_table(),
            Some(manifest),
        )
        .expect("live");
        let metrics = Metrics::new().expect("metrics");
        metrics.table_loaded(&live);
        let out = text(&metrics, Some(&live), 0);
        for rule in DropRule::ALL {
            let want = if rule == DropRule::Recency { 723 } else { 0 };
            let line = format!(
                "voucher_api_table_rows_dropped{{rule=\"{}\"}} {want}",
                rule.metric_label()
            );
            assert!(out.contains(&line), "{line}\n{out}");
        }
        metrics.table_loaded(&sample_live());
        let out = text(&metrics, None, 0);
        assert!(
            !out.contains("rows_dropped{"),
            "no manifest, no drop counts:\n{out}"
        );
    }

    #[test]
    fn routes_count_by_status_including_rare_ones_through_every_worker() {
        let metrics = Metrics::new().expect("metrics");
        let (one, two) = (metrics.worker_meter(), metrics.worker_meter());
        one.observe("/x", StatusCode::OK, Instant::now());
        // Once its handles are cached, a worker still counts into the shared series.
        two.observe("/x", StatusCode::OK, Instant::now());
        two.observe("/x", StatusCode::OK, Instant::now());
        one.observe("/x", StatusCode::IM_A_TEAPOT, Instant::now());
        let out = text(&metrics, None, 0);
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
