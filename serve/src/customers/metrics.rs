//! The customer store's metrics, in the process's registry: ids looked up by what became of
//! them, the cache's hits and misses, and the queries (count, ids, latency).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::Counts;
use crate::metrics::register;

/// Query latency buckets, in seconds: a lookup of a window's ids takes about a millisecond.
const QUERY_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Ids per query: how many requests one query answers.
const IDS_BUCKETS: [f64; 9] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

#[derive(Debug, Clone)]
pub struct StoreMetrics {
    found: IntCounter,
    unknown: IntCounter,
    unavailable: IntCounter,
    hits: IntCounter,
    misses: IntCounter,
    queries_ok: IntCounter,
    queries_failed: IntCounter,
    query_seconds: Histogram,
    query_ids: Histogram,
    up: IntGauge,
}

impl StoreMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let lookups = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "customer_lookups_total",
                    "Customer ids of id-only requests looked up, by result: found, unknown (no such customer in the table), unavailable (the store could not answer).",
                ),
                &["result"],
            )?,
        )?;
        let cache = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "customer_cache_total",
                    "Customer ids asked of the cache, by result: hit, miss.",
                ),
                &["result"],
            )?,
        )?;
        let queries = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "customer_queries_total",
                    "Queries to the customer store (each answers every id waiting for it), by result: ok, error.",
                ),
                &["result"],
            )?,
        )?;
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            register(
                registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?,
            )
        };
        Ok(StoreMetrics {
            found: lookups.with_label_values(&["found"]),
            unknown: lookups.with_label_values(&["unknown"]),
            unavailable: lookups.with_label_values(&["unavailable"]),
            hits: cache.with_label_values(&["hit"]),
            misses: cache.with_label_values(&["miss"]),
            queries_ok: queries.with_label_values(&["ok"]),
            queries_failed: queries.with_label_values(&["error"]),
            query_seconds: histogram(
                "customer_query_seconds",
                "Time of a customer store query, from taking a connection to its last row.",
                &QUERY_BUCKETS,
            )?,
            query_ids: histogram(
                "customer_query_ids",
                "Customer ids per query.",
                &IDS_BUCKETS,
            )?,
            up: register(
                registry,
                IntGauge::new(
                    "customer_store_up",
                    "1 when the last lookup or check of the customer store succeeded, else 0.",
                )?,
            )?,
        })
    }

    pub(crate) fn lookups(&self, counts: &Counts) {
        add(&self.found, counts.found);
        add(&self.unknown, counts.unknown);
        add(&self.unavailable, counts.unavailable);
    }

    pub(crate) fn cache(&self, hits: usize, misses: usize) {
        add(&self.hits, hits as u64);
        add(&self.misses, misses as u64);
    }

    pub(crate) fn query(&self, ok: bool, ids: usize, seconds: f64) {
        if ok {
            self.queries_ok.inc();
        } else {
            self.queries_failed.inc();
        }
        self.query_ids.observe(ids as f64);
        self.query_seconds.observe(seconds);
    }

    pub(crate) fn up(&self, up: bool) {
        self.up.set(i64::from(up));
    }
}

/// Adds `n` unless it is 0: a request by id counts one id, and each addition is an atomic
/// write to a cache line every worker shares.
fn add(counter: &IntCounter, n: u64) {
    if n > 0 {
        counter.inc_by(n);
    }
}
