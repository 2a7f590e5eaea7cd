//! How each run ended, its gate's metrics and whether its clean-up failed, as a Prometheus
//! textfile.
//!
//! The ETL is a batch job with no HTTP endpoint to scrape, so after each run it rewrites one
//! file (`--metrics-file`, atomically) in the text exposition format, for node-exporter's
//! textfile collector (`--collector.textfile.directory`) on a host, or any agent that reads
//! such files. A textfile rather than a Pushgateway push: nothing on the publish path waits for
//! the network, and in Kubernetes the Job's own status already carries the signal (exit 3 is a
//! failed Job: see docs/operations.md). Counters add up over the process's life, so under
//! `schedule` they count every run since it started; the `last_*` gauges describe the last run
//! whatever the mode.

use std::path::Path;
use std::sync::LazyLock;

use prometheus::{
    Encoder as _, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use voucher_shared::errors::Chain;
use voucher_shared::gate::{CheckKind, GateReport};
use voucher_shared::manifest::GateOutcome;

use crate::output;

struct GateMetrics {
    registry: Registry,
    runs: IntCounterVec,
    checks: IntCounterVec,
    last_outcome: IntGaugeVec,
    last_failed: IntGaugeVec,
    last_time: Gauge,
    cleanup_failures: IntCounter,
    last_cleanup_failed: IntGauge,
    ended: IntCounterVec,
    last_failed_run: IntGauge,
    last_end: Gauge,
}

const RESULTS: [&str; 2] = ["pass", "fail"];
const RUN_RESULTS: [&str; 2] = ["succeeded", "failed"];

fn build() -> Result<GateMetrics, prometheus::Error> {
    let registry = Registry::new();
    let runs = IntCounterVec::new(
        Opts::new(
            "voucher_etl_gate_runs_total",
            "Runs that reached the gate, by outcome (passed, held, skipped by --no-gate).",
        ),
        &["outcome"],
    )?;
    let checks = IntCounterVec::new(
        Opts::new(
            "voucher_etl_gate_checks_total",
            "Gate checks made, by check and result (pass, fail).",
        ),
        &["check", "result"],
    )?;
    let last_outcome = IntGaugeVec::new(
        Opts::new(
            "voucher_etl_gate_last_outcome",
            "The last run's gate outcome: 1 for it, 0 for the others.",
        ),
        &["outcome"],
    )?;
    let last_failed = IntGaugeVec::new(
        Opts::new(
            "voucher_etl_gate_last_failed_checks",
            "Checks the last run failed, by check.",
        ),
        &["check"],
    )?;
    let last_time = Gauge::new(
        "voucher_etl_gate_last_run_timestamp_seconds",
        "When the last run reached the gate, in seconds since 1970.",
    )?;
    registry.register(Box::new(runs.clone()))?;
    registry.register(Box::new(checks.clone()))?;
    registry.register(Box::new(last_outcome.clone()))?;
    registry.register(Box::new(last_failed.clone()))?;
    let cleanup_failures = IntCounter::new(
        "voucher_etl_cleanup_failures_total",
        "Runs whose clean-up after publishing or holding their version (retention) failed.",
    )?;
    let last_cleanup_failed = IntGauge::new(
        "voucher_etl_last_run_cleanup_failed",
        "1 when the last run's clean-up after publishing or holding its version failed, else 0.",
    )?;
    registry.register(Box::new(last_time.clone()))?;
    registry.register(Box::new(cleanup_failures.clone()))?;
    registry.register(Box::new(last_cleanup_failed.clone()))?;
    let (ended, last_failed_run, last_end) = run_end(&registry)?;
    // Every series exists from the start, so that `increase()` sees the first one.
    for outcome in GateOutcome::ALL {
        runs.with_label_values(&[outcome.name()]);
        last_outcome.with_label_values(&[outcome.name()]);
    }
    for kind in CheckKind::ALL {
        for result in RESULTS {
            checks.with_label_values(&[kind.name(), result]);
        }
        last_failed.with_label_values(&[kind.name()]);
    }
    Ok(GateMetrics {
        registry,
        runs,
        checks,
        last_outcome,
        last_failed,
        last_time,
        cleanup_failures,
        last_cleanup_failed,
        ended,
        last_failed_run,
        last_end,
    })
}

/// How runs ended, whatever got as far as the gate.
fn run_end(registry: &Registry) -> Result<(IntCounterVec, IntGauge, Gauge), prometheus::Error> {
    let ended = IntCounterVec::new(
        Opts::new(
            "voucher_etl_runs_total",
            "Runs ended, by result: succeeded (published or held) or failed (nothing published).",
        ),
        &["result"],
    )?;
    let last_failed_run = IntGauge::new(
        "voucher_etl_last_run_failed",
        "1 when the last run failed before publishing or holding its version, else 0.",
    )?;
    let last_end = Gauge::new(
        "voucher_etl_last_run_end_timestamp_seconds",
        "When the last run ended, whatever its result, in seconds since 1970.",
    )?;
    registry.register(Box::new(ended.clone()))?;
    registry.register(Box::new(last_failed_run.clone()))?;
    registry.register(Box::new(last_end.clone()))?;
    for result in RUN_RESULTS {
        ended.with_label_values(&[result]);
    }
    Ok((ended, last_failed_run, last_end))
}

static METRICS: LazyLock<Option<GateMetrics>> = LazyLock::new(|| match build() {
    Ok(m) => Some(m),
    Err(e) => {
        log::warn!("gate metrics unavailable: {}", Chain(&e));
        None
    }
});

/// Counts a run's gate outcome and checks, and whether its clean-up failed; [`ended`] writes
/// them out.
pub fn record(report: &GateReport, cleanup_failed: bool) {
    let Some(m) = METRICS.as_ref() else { return };
    if cleanup_failed {
        m.cleanup_failures.inc();
    }
    m.last_cleanup_failed.set(i64::from(cleanup_failed));
    m.runs.with_label_values(&[report.outcome.name()]).inc();
    for outcome in GateOutcome::ALL {
        m.last_outcome
            .with_label_values(&[outcome.name()])
            .set(i64::from(outcome == report.outcome));
    }
    for kind in CheckKind::ALL {
        let of_kind = || report.checks.iter().filter(move |c| c.check == kind);
        let failed = of_kind().filter(|c| !c.passed).count() as u64;
        let passed = of_kind().count() as u64 - failed;
        m.checks
            .with_label_values(&[kind.name(), "pass"])
            .inc_by(passed);
        m.checks
            .with_label_values(&[kind.name(), "fail"])
            .inc_by(failed);
        m.last_failed
            .with_label_values(&[kind.name()])
            .set(i64::try_from(failed).unwrap_or(i64::MAX));
    }
    m.last_time.set(chrono::Utc::now().timestamp() as f64);
}

/// Counts how a run ended, then rewrites `file` if given. A failure to write is logged, never
/// fatal: a run that published has published.
pub fn ended(succeeded: bool, file: Option<&Path>) {
    let Some(m) = METRICS.as_ref() else { return };
    m.ended
        .with_label_values(&[RUN_RESULTS[usize::from(!succeeded)]])
        .inc();
    m.last_failed_run.set(i64::from(!succeeded));
    m.last_end.set(chrono::Utc::now().timestamp() as f64);
    if let Some(path) = file
        && let Err(e) = write(path)
    {
        log::warn!(
            "cannot write the metrics file {}: {}",
            path.display(),
            Chain(&e)
        );
    }
}

/// The metrics in the text exposition format.
pub fn render() -> String {
    let Some(m) = METRICS.as_ref() else {
        return String::new();
    };
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        log::warn!("cannot encode the gate metrics: {}", Chain(&e));
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(output::parent_dir(path))?;
    let text = render();
    output::write_atomically(
        path,
        |e| e,
        |f| std::io::Write::write_all(f, text.as_bytes()),
    )
}
