//! Prometheus metrics: one registry for the process, shared by every worker and door.
//!
//! This module holds what every serving binary exports: the scoring counters of each door and
//! the gauges of the live table and its reloads. A door's own metrics (HTTP requests, gRPC
//! calls, Kafka events) are registered by that door into the same [`Metrics::registry`]. Every
//! name carries the prefix of the binary that exports it ([`Binary::prefix`]).

use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use voucher_shared::score::{Outcome, Scored};

use crate::live::LiveTable;

mod cells;

use cells::ScoredCounts;
pub use cells::{Cell, family, labelled};

/// Latency buckets of the request doors (HTTP, gRPC), in seconds: an answer takes well under a
/// millisecond, so the low end is fine-grained.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// The serving binary whose metrics these are: its prefix starts every metric name, so that a
/// series says which program exported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `voucher-api`: `voucher_api_...`.
    Api,
    /// `voucher-events`: `voucher_events_...`.
    Events,
}

impl Binary {
    pub fn prefix(self) -> &'static str {
        match self {
            Binary::Api => "voucher_api",
            Binary::Events => "voucher_events",
        }
    }
}

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

/// The scoring counters of one door (see [`cells`] for why each thread counts apart).
#[derive(Debug, Clone)]
pub struct DoorCounters {
    counts: ScoredCounts,
    door: Door,
}

impl DoorCounters {
    /// Counts one item.
    pub fn count(&self, outcome: Outcome) {
        self.counts.count(self.door, outcome);
    }

    /// Counts one answer of the scoring core.
    pub fn count_scored(&self, scored: &Scored<'_>) {
        self.count(Outcome::of(scored));
    }
}

/// Which version answered a request while a canary is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Live = 0,
    Canary = 1,
}

impl Arm {
    pub fn label(self) -> &'static str {
        match self {
            Arm::Live => "live",
            Arm::Canary => "canary",
        }
    }
}

/// The canary's metrics: answers by version, the shadow comparison, the canary's share, and
/// canaries that could not be served.
#[derive(Debug, Clone)]
pub struct CanaryMetrics {
    answers: [IntCounter; 2],
    shadow: IntCounterVec,
    percent: IntGaugeVec,
    failures: IntCounter,
}

impl CanaryMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let answers = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "canary_answers_total",
                    "Requests answered while a canary is set, by the version that answered (arm: live, canary).",
                ),
                &["arm"],
            )?,
        )?;
        let shadow = IntCounterVec::new(
            Opts::new(
                "shadow_total",
                "Requests scored by both the live and the canary version, by country and segment type of the answer and outcome (same, different).",
            ),
            &["country", "segment_name", "outcome"],
        )?;
        let percent = IntGaugeVec::new(
            Opts::new(
                "canary_percent_hundredths",
                "The canary's share of customers in hundredths of a percent (2000 = 20%), labelled with its version; absent without a canary.",
            ),
            &["version"],
        )?;
        let failures = IntCounter::new(
            "canary_failures_total",
            "Canaries that could not be served (a missing or unreadable version or record); the live version answers everyone meanwhile.",
        )?;
        Ok(CanaryMetrics {
            answers: [Arm::Live, Arm::Canary].map(|arm| answers.with_label_values(&[arm.label()])),
            shadow: register(registry, shadow)?,
            percent: register(registry, percent)?,
            failures: register(registry, failures)?,
        })
    }

    pub(crate) fn answered(&self, arm: Arm) {
        self.answers[arm as usize].inc();
    }

    /// Counts one shadow comparison. `country` is the table's spelling (from an answer), so
    /// the label's values are bounded by the tables' countries.
    pub(crate) fn compared(&self, country: &str, segment_name: &str, same: bool) {
        let outcome = if same { "same" } else { "different" };
        self.shadow
            .with_label_values(&[country, segment_name, outcome])
            .inc();
    }

    /// Records the canary now served, or that there is none.
    pub(crate) fn set(&self, canary: Option<&voucher_shared::canary::CanaryRecord>) {
        self.percent.reset();
        if let Some(c) = canary {
            self.percent
                .with_label_values(&[&c.version.to_string()])
                .set(i64::from(c.percent.buckets()));
        }
    }

    pub(crate) fn failed(&self) {
        self.failures.inc();
    }
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

/// The metrics every serving binary exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// The scoring counters of each door, in [`Door::ALL`] order.
    doors: Arc<[DoorCounters; Door::ALL.len()]>,
    table: TableGauges,
    reloads: IntCounterVec,
    checks: IntCounter,
    canary: CanaryMetrics,
}

/// The gauges that describe the live table: version, age, rows and rows dropped per rule.
#[derive(Debug, Clone)]
struct TableGauges {
    info: IntGaugeVec,
    age: Gauge,
    rows: IntGauge,
    dropped: IntGaugeVec,
}

impl Metrics {
    /// The metrics of `binary`, every name prefixed with [`Binary::prefix`].
    pub fn new(binary: Binary) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some(binary.prefix().into()), None)?;
        let scored = register(
            &registry,
            ScoredCounts::new(
                "scored_total",
                "Requests scored, by door (http, http_batch, http_ndjson, grpc, grpc_stream, events) and outcome (ok, invalid, no_segment, malformed, unknown_customer, customers_unavailable).",
            )?,
        )?;
        let reloads = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "table_reloads_total",
                    "Attempts to load a new table version, by result.",
                ),
                &["result"],
            )?,
        )?;
        for result in [ReloadResult::Success, ReloadResult::Failure] {
            reloads.with_label_values(&[result.label()]);
        }
        let checks = register(
            &registry,
            IntCounter::new(
                "table_checks_total",
                "Times the reloader read CURRENT to look for a new table version.",
            )?,
        )?;
        Ok(Metrics {
            doors: Arc::new(Door::ALL.map(|door| DoorCounters {
                counts: scored.clone(),
                door,
            })),
            table: TableGauges::register(&registry)?,
            reloads,
            checks,
            canary: CanaryMetrics::register(&registry)?,
            registry,
        })
    }

    /// The registry, for the metrics of a door (HTTP requests, gRPC calls, Kafka events).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The scoring counters of `door`.
    pub fn door(&self, door: Door) -> &DoorCounters {
        &self.doors[door as usize]
    }

    /// The canary's metrics.
    pub fn canary(&self) -> &CanaryMetrics {
        &self.canary
    }

    pub fn reload(&self, result: ReloadResult) {
        self.reloads.with_label_values(&[result.label()]).inc();
    }

    /// Counts one look at `CURRENT`.
    pub fn checked(&self) {
        self.checks.inc();
    }

    /// Records that `table` is now live.
    pub fn table_loaded(&self, table: &LiveTable) {
        let gauges = &self.table;
        gauges.info.reset();
        gauges
            .info
            .with_label_values(&[table.version_name()])
            .set(1);
        gauges
            .rows
            .set(i64::try_from(table.rows()).unwrap_or(i64::MAX));
        gauges.dropped.reset();
        if let Some(manifest) = table.manifest() {
            for (rule, count) in manifest.dropped.iter() {
                gauges
                    .dropped
                    .with_label_values(&[rule.metric_label()])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
    }

    /// The Prometheus text exposition, with the table age as of `now` (seconds since the epoch).
    pub fn render(&self, live: Option<&LiveTable>, now: i64) -> Result<Vec<u8>, prometheus::Error> {
        if let Some(live) = live {
            self.table
                .age
                .set((now - live.version().time().timestamp()) as f64);
        }
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

impl TableGauges {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
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
        Ok(TableGauges {
            info: register(registry, info)?,
            age: register(registry, age)?,
            rows: register(registry, rows)?,
            dropped: register(registry, dropped)?,
        })
    }
}

/// The metrics of a request door (HTTP, gRPC): calls counted by what was called and how it
/// ended, and timed by what was called, in [`LATENCY_BUCKETS`].
#[derive(Debug, Clone)]
pub struct Calls {
    pub count: IntCounterVec,
    pub latency: HistogramVec,
}

/// A metric's name, help and labels.
pub type Series<'a> = (&'a str, &'a str, &'a [&'a str]);

impl Calls {
    pub fn register(
        registry: &Registry,
        (count_name, count_help, count_labels): Series<'_>,
        (latency_name, latency_help, latency_labels): Series<'_>,
    ) -> Result<Self, prometheus::Error> {
        let count = IntCounterVec::new(Opts::new(count_name, count_help), count_labels)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(latency_name, latency_help).buckets(LATENCY_BUCKETS.to_vec()),
            latency_labels,
        )?;
        Ok(Calls {
            count: register(registry, count)?,
            latency: register(registry, latency)?,
        })
    }
}

/// Registers `metric` in `registry` and gives it back.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample_live;

    fn text(metrics: &Metrics, live: Option<&LiveTable>, now: i64) -> String {
        String::from_utf8(metrics.render(live, now).expect("render")).expect("utf-8")
    }

    #[test]
    fn table_metrics_follow_the_live_version() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
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
            voucher_shared::fixtures::contract_table(),
            Some(manifest),
        );
        let metrics = Metrics::new(Binary::Api).expect("metrics");
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
    fn each_door_counts_each_outcome_under_its_own_labels() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        metrics.door(Door::Events).count(Outcome::Malformed);
        metrics.door(Door::Grpc).count(Outcome::Ok);
        metrics.door(Door::Grpc).count(Outcome::Ok);
        let out = text(&metrics, None, 0);
        for line in [
            r#"voucher_api_scored_total{door="events",outcome="malformed"} 1"#,
            r#"voucher_api_scored_total{door="grpc",outcome="ok"} 2"#,
            r#"voucher_api_scored_total{door="http",outcome="no_segment"} 0"#,
        ] {
            assert!(out.contains(line), "{line}\n{out}");
        }
    }

    #[test]
    fn each_binary_s_metrics_carry_its_own_prefix() {
        let events = text(&Metrics::new(Binary::Events).expect("metrics"), None, 0);
        let api = text(&Metrics::new(Binary::Api).expect("metrics"), None, 0);
        assert!(
            events.contains("voucher_events_table_reloads_total{result=\"failure\"} 0"),
            "{events}"
        );
        assert!(
            api.contains("voucher_api_table_reloads_total{result=\"failure\"} 0"),
            "{api}"
        );
        let named = |out: &str, prefix: &str| {
            out.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .all(|l| l.starts_with(prefix))
        };
        assert!(named(&events, "voucher_events_"), "{events}");
        assert!(named(&api, "voucher_api_"), "{api}");
    }
}
