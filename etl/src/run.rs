//! One run: history in, a new table version out, published if the gate passes it and held
//! (written complete, not made live) if it does not.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use voucher_shared::errors::Chain;
use voucher_shared::gate::{Baseline, Bounds, GATE_FILE, GateReport};
use voucher_shared::manifest::{GateOutcome, Manifest, Producer};
use voucher_shared::publish::{
    Because, MANIFEST_FILE, Published, Staged, TABLE_FILE, TablesDir, Version,
};
use voucher_shared::segments::SegmentSet;
use voucher_shared::table::VoucherTable;

use crate::clean::Countries;
use crate::memory::Planned;
use crate::tally::{self, ReadOptions, Tallied};
use crate::{EtlError, metrics, profile, vouchers};

/// Where a run's counts come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// History: a Parquet file, a directory of them (partitions included), a glob, or an
    /// http(s) URL.
    History(String),
    /// A directory of tally files (`voucher-etl tally`) to merge.
    Tallies(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A database URL may hold a password: never shown, logged or in a manifest.
            Source::History(input) => f.write_str(&voucher_postgres::display_input(input)),
            Source::Tallies(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// What a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub source: Source,
    pub tables_dir: PathBuf,
    pub countries: Countries,
    /// A segments file; the built-in segments when `None` (tallies carry their own).
    pub segments: Option<PathBuf>,
    /// Versions to keep (beyond it, the live one, a newer held one and the roll-back target
    /// are kept too).
    pub keep: usize,
    pub read: ReadOptions,
    pub gate: GateOptions,
}

/// How the gate treats a run's version.
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub bounds: Bounds,
    /// False for `--no-gate`: the checks are reported, the version published whatever they say.
    pub enforce: bool,
    /// A Prometheus textfile to rewrite after each run with the gate's outcomes (see
    /// [`crate::metrics`]).
    pub metrics_file: Option<PathBuf>,
}

impl Default for GateOptions {
    /// The built-in bounds, enforced; no metrics file.
    fn default() -> Self {
        GateOptions {
            bounds: Bounds::default(),
            enforce: true,
            metrics_file: None,
        }
    }
}

/// What became of a run's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Published(Published),
    /// Written complete; `CURRENT` left where it was.
    Held(Version),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub tables_dir: PathBuf,
    pub outcome: Outcome,
    pub manifest: Manifest,
    pub gate: GateReport,
    pub table: VoucherTable,
    pub pruned: usize,
    /// How the history was read under the memory limit (none for merged tallies).
    pub reading: Option<Planned>,
    /// What failed after the version was published or held (retention): logged as warnings,
    /// never a failure of the run, whose version is in place by then.
    pub cleanup_failures: Vec<String>,
}

impl RunReport {
    pub fn held(&self) -> bool {
        matches!(self.outcome, Outcome::Held(_))
    }
}

/// Who a run acts for in the publish log: `$USER`, or the program.
pub fn run_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_owned())
}

/// Runs the whole job. On any error nothing is published and the live version is untouched;
/// once the version is published or held, a failure to clean up after it is reported in
/// [`RunReport::cleanup_failures`] instead.
pub fn run(opts: &RunOptions) -> Result<RunReport, EtlError> {
    let result = attempt(opts);
    metrics::ended(result.is_ok(), opts.gate.metrics_file.as_deref());
    result
}

fn attempt(opts: &RunOptions) -> Result<RunReport, EtlError> {
    let started = Instant::now();
    let tables = TablesDir::new(&opts.tables_dir);
    // Staging first fails fast on an unwritable output, before any heavy work; an error
    // later drops the stage, which deletes it.
    let staged = tables.stage(Utc::now())?;
    log::info!(
        "run {}: reading {} for {}",
        staged.version(),
        opts.source,
        opts.countries.to_list().join(",")
    );
    let (tallied, countries, segments) = gather(opts)?;
    let Tallied {
        tally,
        rows_read,
        inputs,
        reading,
    } = tallied;
    log::info!(
        "cleaned {rows_read} rows from {} file(s) in {:.1}s: {} kept, {} dropped",
        inputs.len(),
        started.elapsed().as_secs_f64(),
        tally.rows_kept,
        tally.dropped.total()
    );

    let rows = vouchers::choose(&tally).map_err(|source| EtlError::Overflow {
        input: opts.source.to_string(),
        source,
    })?;
    if rows.is_empty() {
        return Err(EtlError::NothingKept {
            file: opts.source.to_string(),
            countries: countries.join(","),
        });
    }
    let table = VoucherTable::new(rows)?;
    let table_bytes = encode(&table, &staged)?;

    let mut manifest = Manifest {
        version: staged.version().to_string(),
        created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        input: opts.source.to_string(),
        inputs,
        rows_read,
        rows_kept: tally.rows_kept,
        dropped: tally.dropped,
        countries,
        segments,
        table_rows: table.rows().len() as u64,
        duration_ms: 0,
        producer: Producer {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        profile: profile::profile(&tally, &table, &table_bytes),
        gate: None,
    };
    let gate = check(&tables, &opts.gate, &manifest, staged.version())?;
    manifest.gate = Some(gate.record());
    manifest.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    write_version(&staged, &table_bytes, &manifest, &gate)?;
    let outcome = publish_or_hold(staged, &gate)?;
    let (pruned, cleanup_failures) = clean_up(&tables, opts.keep, outcome);
    metrics::record(&gate, !cleanup_failures.is_empty());
    Ok(RunReport {
        tables_dir: opts.tables_dir.clone(),
        outcome,
        manifest,
        gate,
        table,
        pruned,
        reading,
        cleanup_failures,
    })
}

/// Retention after a version is in place: its failure is a warning (returned), since the
/// run's outcome is decided and a retry would only publish again.
fn clean_up(tables: &TablesDir, keep: usize, outcome: Outcome) -> (usize, Vec<String>) {
    match tables.prune(keep) {
        Ok(pruned) => {
            for version in &pruned {
                log::info!("deleted old version {version} (keeping {keep})");
            }
            (pruned.len(), Vec::new())
        }
        Err(e) => {
            let failure = format!("retention (--keep {keep}) failed: {}", Chain(&e));
            let done = match outcome {
                Outcome::Published(p) => format!("version {} is published", p.version),
                Outcome::Held(v) => format!("version {v} is held"),
            };
            log::warn!("{done}, but the clean-up after it failed: {failure}; nothing was deleted");
            (0, vec![failure])
        }
    }
}

/// The gate's report on the new version against the live one. With `--no-gate`, a live
/// version that cannot be read is no reason to fail: the report says it was not compared.
fn check(
    tables: &TablesDir,
    gate: &GateOptions,
    manifest: &Manifest,
    version: Version,
) -> Result<GateReport, EtlError> {
    let (baseline, unreadable) = match Baseline::live(tables) {
        Ok(baseline) => (baseline, None),
        Err(e) if !gate.enforce => (None, Some(Chain(&e).to_string())),
        Err(e) => return Err(EtlError::Baseline(e)),
    };
    let mut report = GateReport::evaluate(
        &gate.bounds,
        manifest,
        version,
        baseline.as_ref(),
        gate.enforce,
    );
    if let Some(why) = unreadable {
        report.notes = vec![format!(
            "not compared: the live version cannot be read: {why}"
        )];
    }
    Ok(report)
}

/// Makes the version live if the gate let it through, else holds it.
fn publish_or_hold(staged: Staged, gate: &GateReport) -> Result<Outcome, EtlError> {
    let because = Because::new(gate.summary(), run_by());
    if gate.outcome == GateOutcome::Held {
        let version = staged.hold(&because)?;
        log::warn!(
            "version {version} HELD by the gate; {} stays live: {}",
            gate.baseline.map(|v| v.to_string()).unwrap_or_default(),
            gate.summary()
        );
        return Ok(Outcome::Held(version));
    }
    let published = staged.publish(&because)?;
    log_published(&published, gate);
    Ok(Outcome::Published(published))
}

fn log_published(published: &Published, gate: &GateReport) {
    if published.live {
        log::info!(
            "published {} as the live version ({})",
            published.version,
            gate.summary()
        );
    } else {
        log::warn!(
            "published {}, but a newer version is already live; CURRENT left as it was",
            published.version
        );
    }
}

/// The counts of the run's source, with the countries and segments they were made with.
fn gather(opts: &RunOptions) -> Result<(Tallied, Vec<String>, serde_json::Value), EtlError> {
    Ok(match &opts.source {
        Source::History(input) => {
            let segments = SegmentSet::load(opts.segments.as_deref())?;
            let tallied = tally::tally_input(input, &opts.countries, &segments, &opts.read)?;
            let segments = serde_json::to_value(&segments)?;
            (tallied, opts.countries.to_list(), segments)
        }
        Source::Tallies(dir) => {
            let merged = tally::merge_dir(dir)?;
            (merged.tallied, merged.countries, merged.segments)
        }
    })
}

/// The table as Parquet bytes (a few KiB: written whole, and hashed for the manifest).
fn encode(table: &VoucherTable, staged: &Staged) -> Result<Vec<u8>, EtlError> {
    let mut bytes = Vec::new();
    table
        .write(&mut bytes)
        .map_err(|source| EtlError::WriteTable {
            path: staged.path(TABLE_FILE),
            source,
        })?;
    Ok(bytes)
}

/// Writes the version's files into its staging directory.
fn write_version(
    staged: &Staged,
    table_bytes: &[u8],
    manifest: &Manifest,
    gate: &GateReport,
) -> Result<(), EtlError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = staged.path(name);
        std::fs::write(&path, bytes).map_err(|source| EtlError::Write { path, source })
    };
    write(TABLE_FILE, table_bytes)?;
    write(MANIFEST_FILE, &serde_json::to_vec_pretty(manifest)?)?;
    write(GATE_FILE, &serde_json::to_vec_pretty(gate)?)?;
    Ok(())
}

/// The short human summary printed after a run.
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        let (verb, state) = match self.outcome {
            Outcome::Published(p) if p.live => ("published", "live"),
            Outcome::Published(_) => ("published", "not live: a newer version is"),
            Outcome::Held(_) => ("HELD", "not live: the gate held it"),
        };
        writeln!(
            f,
            "{verb} version {} ({state}) in {:.2}s",
            m.version,
            m.duration_ms as f64 / 1000.0
        )?;
        writeln!(f, "input      {}", m.input)?;
        writeln!(f, "countries  {}", m.countries.join(", "))?;
        if let Some(reading) = &self.reading {
            writeln!(f, "read in    {reading}")?;
        }
        writeln!(f, "rows read  {:>12}", m.rows_read)?;
        writeln!(f, "rows kept  {:>12}", m.rows_kept)?;
        for (rule, n) in m.dropped.iter() {
            writeln!(f, "dropped    {n:>12}  {rule}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:<17} {:<9} {:>8} {:>12} {:>12}",
            "country", "segment_name", "segment", "voucher", "occurrences", "segment_rows"
        )?;
        for r in self.table.rows() {
            writeln!(
                f,
                "{:<12} {:<17} {:<9} {:>8} {:>12} {:>12}",
                r.country_code,
                r.segment_name.name(),
                r.segment,
                r.voucher_amount,
                r.occurrences,
                r.segment_rows
            )?;
        }
        writeln!(f)?;
        write!(f, "{}", self.gate)?;
        if self.held() {
            let dir = self.tables_dir.display();
            let v = &m.version;
            writeln!(
                f,
                "\nthe live version is unchanged (runbook: docs/operations.md)"
            )?;
            writeln!(f, "  the report:       {dir}/{v}/{GATE_FILE}")?;
            writeln!(f, "  what it changes:  voucher-etl diff --tables-dir {dir}")?;
            writeln!(
                f,
                "  to approve it:    voucher-etl promote --tables-dir {dir} {v} --reason TEXT"
            )?;
            writeln!(
                f,
                "  to leave it held: nothing; the next run is compared with the live version"
            )?;
        }
        if self.pruned > 0 {
            writeln!(f, "\ndeleted {} old version(s)", self.pruned)?;
        }
        for failure in &self.cleanup_failures {
            writeln!(
                f,
                "\nwarning: the clean-up after this run failed: {failure}"
            )?;
        }
        Ok(())
    }
}
