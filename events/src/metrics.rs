//! The metrics only the events door has, in the same registry as the table and scoring
//! metrics, under the binary's prefix: `voucher_events_consumer_lag`, and
//! `voucher_events_scored_total{door="events"}` counts outcomes as every door does.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use voucher_serve::metrics::register;
use voucher_shared::score::Outcome;

use crate::event::{DEAD_LETTER_REASONS, UNDELIVERABLE};

/// Processing latency buckets, in seconds: an event waits for its batch and the broker's
/// acknowledgement, so these reach further than the HTTP ones.
const PROCESSING_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Clone)]
pub struct EventMetrics {
    /// Events read from the events topic.
    pub consumed: IntCounter,
    /// Results acknowledged by the broker.
    pub results: IntCounter,
    /// Dead letters acknowledged by the broker, indexed by outcome (resolved once: no label
    /// lookup per event); `None` for the outcome that is no dead letter.
    dead_lettered: [Option<IntCounter>; Outcome::ALL.len()],
    /// Records acknowledged in place of a dead letter the broker refused for good.
    pub undeliverable: IntCounter,
    /// Productions the broker refused or timed out (each is retried).
    pub produce_failures: IntCounter,
    /// From reading an event to the broker acknowledging its output.
    pub processing: Histogram,
    /// Consumer lag (high watermark minus committed offset) per partition.
    pub lag: IntGaugeVec,
    /// Partitions of the events topic assigned to this consumer.
    pub assigned: IntGauge,
    /// 1 when the last broker check succeeded.
    pub broker_up: IntGauge,
}

impl EventMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| register(registry, IntCounter::new(name, help)?);
        let gauge = |name: &str, help: &str| register(registry, IntGauge::new(name, help)?);
        let dead_lettered = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "dead_lettered_total",
                    "Events sent to the dead-letter topic (acknowledged), by reason (malformed, invalid, no_segment, unknown_customer, undeliverable).",
                ),
                &["reason"],
            )?,
        )?;
        let undeliverable = dead_lettered.with_label_values(&[UNDELIVERABLE]);
        let dead_lettered = Outcome::ALL.map(|outcome| {
            DEAD_LETTER_REASONS
                .contains(&outcome)
                .then(|| dead_lettered.with_label_values(&[outcome.label()]))
        });
        Ok(EventMetrics {
            consumed: counter(
                "consumed_total",
                "Events read from the events topic.",
            )?,
            results: counter(
                "results_total",
                "Results produced to the results topic and acknowledged by the broker.",
            )?,
            dead_lettered,
            undeliverable,
            produce_failures: counter(
                "produce_failures_total",
                "Messages the broker did not acknowledge in time or refused; each is produced again (a dead letter refused for good, as a record without its payload).",
            )?,
            processing: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "processing_seconds",
                        "From reading an event to the broker acknowledging its result or dead letter.",
                    )
                    .buckets(PROCESSING_BUCKETS.to_vec()),
                )?,
            )?,
            lag: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "consumer_lag",
                        "Events not yet committed by this consumer (high watermark minus committed offset, or minus the partition's start before a first commit), per assigned partition.",
                    ),
                    &["topic", "partition"],
                )?,
            )?,
            assigned: gauge(
                "assigned_partitions",
                "Partitions of the events topic assigned to this consumer.",
            )?,
            broker_up: gauge(
                "broker_up",
                "1 when the last broker check reached the broker and found the three topics, else 0.",
            )?,
        })
    }

    /// Counts one acknowledged dead letter.
    pub fn dead_lettered(&self, reason: Outcome) {
        if let Some(counter) = &self.dead_lettered[reason as usize] {
            counter.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_serve::metrics::{Binary, Metrics};

    #[test]
    fn the_consumer_s_metrics_carry_voucher_events_prefix() {
        let metrics = Metrics::new(Binary::Events).expect("metrics");
        let events = EventMetrics::register(metrics.registry()).expect("event metrics");
        events.consumed.inc();
        events.broker_up.set(1);
        events.dead_lettered(Outcome::Invalid);
        let text = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        for line in [
            "voucher_events_consumed_total 1",
            "voucher_events_broker_up 1",
            r#"voucher_events_dead_lettered_total{reason="invalid"} 1"#,
            r#"voucher_events_scored_total{door="events",outcome="ok"} 0"#,
            "voucher_events_table_reloads_total{result=\"failure\"} 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(!text.contains("voucher_api_"), "{text}");
    }
}
