//! One run: history in, a new published table version out.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use voucher_shared::manifest::{Manifest, Producer};
use voucher_shared::publish::{MANIFEST_FILE, Published, Staged, TABLE_FILE, TablesDir};
use voucher_shared::segments::SegmentSet;
use voucher_shared::table::VoucherTable;

use crate::clean::Countries;
use crate::memory::Planned;
use crate::tally::{self, ReadOptions, Tallied};
use crate::{EtlError, vouchers};

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
    /// Versions to keep (the live one is always kept).
    pub keep: usize,
    pub read: ReadOptions,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub published: Published,
    pub manifest: Manifest,
    pub table: VoucherTable,
    pub pruned: usize,
    /// How the history was read under the memory limit (none for merged tallies).
    pub reading: Option<Planned>,
}

/// Runs the whole job. On any error nothing is published and the live version is untouched.
pub fn run(opts: &RunOptions) -> Result<RunReport, EtlError> {
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

    let rows = vouchers::choose(&tally);
    if rows.is_empty() {
        return Err(EtlError::NothingKept {
            file: opts.source.to_string(),
            countries: countries.join(","),
        });
    }
    let table = VoucherTable::new(rows)?;

    let manifest = Manifest {
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
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        producer: Producer {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    };
    write_version(&staged, &table, &manifest)?;

    let published = staged.commit()?;
    if published.live {
        log::info!("published {} as the live version", published.version);
    } else {
        log::warn!(
            "published {}, but a newer version is already live; CURRENT left as it was",
            published.version
        );
    }
    let pruned = tables.prune(opts.keep)?;
    for version in &pruned {
        log::info!("deleted old version {version} (keeping {})", opts.keep);
    }
    Ok(RunReport {
        published,
        manifest,
        table,
        pruned: pruned.len(),
        reading,
    })
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

/// Writes the version's files into its staging directory.
fn write_version(
    staged: &Staged,
    table: &VoucherTable,
    manifest: &Manifest,
) -> Result<(), EtlError> {
    let table_path = staged.path(TABLE_FILE);
    let file = File::create(&table_path).map_err(|source| EtlError::Write {
        path: table_path.clone(),
        source,
    })?;
    table
        .write(BufWriter::new(file))
        .map_err(|source| EtlError::WriteTable {
            path: table_path,
            source,
        })?;

    let manifest_path = staged.path(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest)?;
    std::fs::write(&manifest_path, json).map_err(|source| EtlError::Write {
        path: manifest_path,
        source,
    })?;
    Ok(())
}

/// The short human summary printed after a run.
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "published version {}{} in {:.2}s",
            m.version,
            if self.published.live {
                " (live)"
            } else {
                " (not live: a newer version is)"
            },
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
        if self.pruned > 0 {
            writeln!(f, "\ndeleted {} old version(s)", self.pruned)?;
        }
        Ok(())
    }
}
