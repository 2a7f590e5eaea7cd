//! Tallies: what the cleaning found in a part of the history (drop counts and, per segment,
//! rows per amount), which add up. A run tallies its input files one by one and merges them;
//! `voucher-etl tally` writes the tally of one part (a shard) to a file, and
//! `voucher-etl run --from-tallies DIR` merges such files into one table, equal to one run over
//! all the parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use voucher_shared::manifest::InputFile;
use voucher_shared::rules::DropCounts;
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};

use crate::clean::{self, CountOverflow, Countries, SegmentTally, Tally, add_rows};
use crate::duplicates::{Duplicates, DuplicatesFile};
use crate::memory::{MemoryLimit, Planned, WindowPlan};
use crate::postgres::{self, PostgresRead};
use crate::progress::Progress;
use crate::shown::{Bounded, shown};
use crate::{EtlError, output, source};

mod check;

pub use check::TallyProblem;

/// What the cleaning found in a set of input files.
#[derive(Debug, Clone, Default)]
pub struct Tallied {
    pub tally: Tally,
    pub rows_read: u64,
    pub inputs: Vec<InputFile>,
    /// How the files were read under the memory limit: the plan with the highest estimated
    /// peak, when history was read.
    pub reading: Option<Planned>,
}

impl Tallied {
    /// The tally of one input (a file, or a database `query`), read as `planned`.
    pub(crate) fn of_input(
        file: String,
        query: Option<String>,
        rows_read: u64,
        tally: Tally,
        planned: Planned,
    ) -> Tallied {
        Tallied {
            inputs: vec![InputFile {
                file,
                query,
                rows_read,
                rows_kept: tally.rows_kept,
                dropped: tally.dropped,
            }],
            tally,
            rows_read,
            reading: Some(planned),
        }
    }

    /// Adds `other`'s counts and inputs to these (see [`Tally::merge`]).
    fn add(&mut self, other: Tallied) -> Result<(), CountOverflow> {
        self.tally.merge(other.tally)?;
        self.rows_read = add_rows(self.rows_read, other.rows_read)?;
        self.inputs.extend(other.inputs);
        self.reading = match (self.reading, other.reading) {
            (Some(a), Some(b)) => Some(if b.estimated_peak > a.estimated_peak {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        Ok(())
    }
}

/// How history is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Time limit for fetching one http(s) or s3:// file.
    pub download_timeout: Duration,
    /// Rows decoded at a time (see [`clean::windows`]).
    pub window_rows: u64,
    /// Windows read at once (see [`clean::tally`]).
    pub windows_in_flight: u16,
    /// The memory to stay under, by reading fewer or smaller windows than the two above;
    /// `None`: the cgroup's limit, if any (see [`crate::memory`]).
    pub memory_limit: Option<MemoryLimit>,
    /// The query and timeouts of a database input.
    pub postgres: PostgresRead,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            download_timeout: Duration::from_secs(600),
            window_rows: clean::WINDOW_ROWS,
            windows_in_flight: clean::WINDOWS_IN_FLIGHT,
            memory_limit: None,
            postgres: PostgresRead::default(),
        }
    }
}

/// Tallies every file `input` names (see [`source::resolve`]), one at a time and each in
/// windows of rows, so memory follows a few windows, not the file or the history; or the rows
/// of a database query (see [`postgres`]).
pub fn tally_input(
    input: &str,
    countries: &Countries,
    segments: &SegmentSet,
    read: &ReadOptions,
) -> Result<Tallied, EtlError> {
    if postgres::is_postgres(input) {
        return postgres::tally(input, countries, segments, read);
    }
    if read.postgres.query.is_some() {
        return Err(EtlError::QueryWithoutDatabase {
            input: input.to_owned(),
        });
    }
    let download_timeout = read.download_timeout;
    let files = source::resolve(input, download_timeout)?;
    let limit = MemoryLimit::resolve(read.memory_limit);
    let wanted = WindowPlan {
        window_rows: read.window_rows,
        in_flight: read.windows_in_flight,
    };
    let progress = Progress::rows("files", files.len() as u64);
    let mut all = Tallied::default();
    for (i, file) in files.iter().enumerate() {
        let input = source::open(file, download_timeout)?;
        let history = clean::scan(&input)?;
        let (windows, planned) = clean::plan_reading(&input, limit, wanted)?;
        let rows_read = windows.iter().map(|(_, rows)| rows).sum();
        log::info!("reading {file}: {planned}");
        let tally = clean::tally(
            history,
            &windows,
            planned.plan.in_flight,
            countries,
            segments,
            &input,
        )?;
        log::info!(
            "read {file} ({} of {}): {rows_read} rows, {} kept, {} dropped",
            i + 1,
            files.len(),
            tally.rows_kept,
            tally.dropped.total()
        );
        all.add(Tallied::of_input(
            file.clone(),
            None,
            rows_read,
            tally,
            planned,
        ))
        .map_err(|source| EtlError::Overflow {
            input: file.clone(),
            source,
        })?;
        progress.set(i as u64 + 1);
    }
    progress.finish();
    Ok(all)
}

/// The format of a tally file.
pub const FORMAT: &str = "voucher-etl-tally/1";

/// A tally file: the tally of one part of the history, with what it was made with.
#[derive(Debug, Serialize, Deserialize)]
struct TallyFile {
    format: String,
    countries: Vec<String>,
    /// The segment definitions; tallies merge only when they agree.
    segments: serde_json::Value,
    rows_read: u64,
    rows_kept: u64,
    /// `rows_kept` per country (absent in tallies written before it existed: see
    /// [`crate::profile`]).
    #[serde(default)]
    rows_kept_by_country: BTreeMap<String, u64>,
    dropped: DropCounts,
    inputs: Vec<InputFile>,
    groups: Vec<Group>,
    /// The rows by the hash of their columns, for exact duplicates across shards (absent in
    /// tallies written before it existed: the merged run's duplicates are then unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicates: Option<DuplicatesFile>,
}

/// The kept rows of one segment of one country.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    country: String,
    segment_name: SegmentType,
    /// The segment's position among its type's segments.
    index: usize,
    segment: Segment,
    /// (amount, rows), by amount.
    amounts: Vec<(i64, u64)>,
}

/// Writes `tallied` to `path` (replaced atomically).
pub fn write(
    path: &Path,
    tallied: &Tallied,
    countries: &Countries,
    segments: &SegmentSet,
) -> Result<(), EtlError> {
    let file = TallyFile {
        format: FORMAT.into(),
        countries: countries.to_list(),
        segments: serde_json::to_value(segments)?,
        rows_read: tallied.rows_read,
        rows_kept: tallied.tally.rows_kept,
        rows_kept_by_country: tallied.tally.rows_kept_by_country.clone(),
        dropped: tallied.tally.dropped,
        inputs: tallied.inputs.clone(),
        groups: tallied
            .tally
            .segments
            .iter()
            .map(|((country, segment_type, index), t)| Group {
                country: country.clone(),
                segment_name: *segment_type,
                index: *index,
                segment: t.segment.clone(),
                amounts: t.amounts.iter().map(|(a, n)| (*a, *n)).collect(),
            })
            .collect(),
        duplicates: DuplicatesFile::of(&tallied.tally.duplicates),
    };
    let write_err = |source| EtlError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(output::parent_dir(path)).map_err(write_err)?;
    output::write_atomically(path, write_err, |f| {
        serde_json::to_writer(f, &file).map_err(EtlError::from)
    })
}

/// What merging tally files gives: the whole tally, and what the parts were made with.
#[derive(Debug)]
pub struct Merged {
    pub tallied: Tallied,
    pub countries: Vec<String>,
    pub segments: serde_json::Value,
}

/// Reads, checks and merges every `*.json` tally file in `dir`. Each must add up (see
/// [`check`]), they must agree on the countries and segments they were made with, and no input
/// may be counted by two of them. A refusal names the tally file and what is wrong with it.
pub fn merge_dir(dir: &Path) -> Result<Merged, EtlError> {
    let files = tally_files(dir)?;
    let mut merged: Option<Merged> = None;
    // Which tally counted each input: (file, query) → tally file.
    let mut counted: BTreeMap<(String, Option<String>), &Path> = BTreeMap::new();
    for path in &files {
        let refused = |problem| EtlError::TallyRefused {
            file: path.display().to_string(),
            problem: Box::new(problem),
        };
        let part = read(path)?;
        let segments = serde_json::to_value(check::check(&part).map_err(refused)?)?;
        if let Some(m) = &merged
            && (m.countries != part.countries || m.segments != segments)
        {
            return Err(EtlError::TallyMismatch {
                file: path.display().to_string(),
                first: files[0].display().to_string(),
            });
        }
        for input in &part.inputs {
            let key = (input.file.clone(), input.query.clone());
            if let Some(other) = counted.insert(key, path) {
                return Err(refused(TallyProblem::InputInTwoTallies {
                    input: shown(&input.file),
                    other: other.display().to_string(),
                }));
            }
        }
        let tallied = Tallied {
            tally: to_tally(&part),
            rows_read: part.rows_read,
            inputs: part.inputs,
            reading: None,
        };
        match &mut merged {
            None => {
                merged = Some(Merged {
                    tallied,
                    countries: part.countries,
                    segments,
                })
            }
            Some(m) => m
                .tallied
                .add(tallied)
                .map_err(|e| refused(TallyProblem::Overflow(e)))?,
        }
    }
    merged.ok_or_else(|| EtlError::NoInputFiles {
        input: dir.display().to_string(),
        what: "the directory holds no tally files",
    })
}

/// The `*.json` files of `dir`, sorted; at least one.
fn tally_files(dir: &Path) -> Result<Vec<PathBuf>, EtlError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| EtlError::Open {
            file: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EtlError::NoInputFiles {
            input: dir.display().to_string(),
            what: "the directory holds no tally files (*.json written by `voucher-etl tally`)",
        });
    }
    Ok(files)
}

fn read(path: &Path) -> Result<TallyFile, EtlError> {
    let bytes = std::fs::read(path).map_err(|source| EtlError::Open {
        file: path.display().to_string(),
        source,
    })?;
    let file: TallyFile = serde_json::from_slice(&bytes).map_err(|source| EtlError::BadTally {
        file: path.display().to_string(),
        source: Bounded(source),
    })?;
    if file.format != FORMAT {
        return Err(EtlError::TallyFormat {
            file: path.display().to_string(),
            found: shown(&file.format),
        });
    }
    Ok(file)
}

fn to_tally(file: &TallyFile) -> Tally {
    let mut segments = BTreeMap::new();
    for g in &file.groups {
        segments.insert(
            (g.country.clone(), g.segment_name, g.index),
            SegmentTally {
                segment: g.segment.clone(),
                amounts: g.amounts.iter().copied().collect(),
            },
        );
    }
    Tally {
        dropped: file.dropped,
        rows_kept: file.rows_kept,
        rows_kept_by_country: file.rows_kept_by_country.clone(),
        segments,
        duplicates: file
            .duplicates
            .clone()
            .map_or_else(Duplicates::unknown, Duplicates::from),
    }
}

#[cfg(test)]
mod tests {
    use voucher_shared::errors::Chain;

    use super::*;

    #[test]
    fn a_broken_tally_file_is_named_with_the_json_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-0.json");
        std::fs::write(
            &path,
            "{\"format\": \"voucher-etl-tally/1\",\n \"countries\": [",
        )
        .expect("write");
        let err = read(&path).expect_err("truncated JSON");
        assert!(matches!(err, EtlError::BadTally { .. }), "{err:?}");
        let msg = Chain(&err).to_string();
        assert!(
            msg.starts_with(&format!(
                "{} is not a tally file written by voucher-etl tally: EOF while parsing a list at line 2",
                path.display()
            )),
            "{msg}"
        );

        std::fs::write(&path, r#"{"format": "voucher-etl-tally/1"}"#).expect("write");
        let err = read(&path).expect_err("fields missing");
        assert!(matches!(err, EtlError::BadTally { .. }), "{err:?}");
        assert!(Chain(&err).to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn a_tally_of_another_format_says_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-0.json");
        let mut file = serde_json::to_value(TallyFile {
            format: FORMAT.into(),
            countries: vec!["Peru".into()],
            segments: serde_json::Value::Null,
            rows_read: 0,
            rows_kept: 0,
            rows_kept_by_country: BTreeMap::new(),
            dropped: DropCounts::default(),
            inputs: Vec::new(),
            groups: Vec::new(),
            duplicates: None,
        })
        .expect("json");
        file["format"] = "voucher-etl-tally/0".into();
        std::fs::write(&path, file.to_string()).expect("write");
        let err = read(&path).expect_err("another format");
        assert_eq!(
            err.to_string(),
            format!(
                "tally file {} has format \"voucher-etl-tally/0\"; this voucher-etl reads \"voucher-etl-tally/1\"",
                path.display()
            )
        );
    }
}
