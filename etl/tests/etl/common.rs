//! Helpers shared by the integration tests: they run the real `voucher-etl` binary on
//! history the generator writes (or the real sample in `tests/fixtures`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use voucher_etl::generate::{self, GenerateOptions, Truth};
use voucher_shared::manifest::Manifest;
use voucher_shared::publish::{TablesDir, Version};
use voucher_shared::segments::SegmentSet;
use voucher_shared::table::VoucherTable;

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voucher-etl"));
    cmd.env("RUST_LOG", "info");
    // Flags under test must not be overridden by a developer's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("VOUCHER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The real Peru sample: 10,655 rows of voucher history in the source's messy format.
pub fn real_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/peru-voucher-history-sample.parquet.gzip")
}

/// Writes synthetic history and returns what a correct ETL must find in it.
pub fn generate(path: &Path, rows: u64, seed: u64) -> Truth {
    generate_in_row_groups(path, rows, seed, None)
}

/// [`generate`] with row groups of a chosen size.
pub fn generate_in_row_groups(
    path: &Path,
    rows: u64,
    seed: u64,
    row_group_size: Option<usize>,
) -> Truth {
    generate::generate(&GenerateOptions {
        rows,
        seed,
        countries: generate::DEFAULT_COUNTRIES
            .split(',')
            .map(str::to_owned)
            .collect(),
        segments: SegmentSet::builtin(),
        output: path.to_owned(),
        row_group_size,
    })
    .expect("generate")
}

/// Runs `voucher-etl run` (built-in segments) with the given extra arguments.
pub fn run_etl(input: &str, tables: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("run")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(tables)
        .args(extra)
        .output()
        .expect("start voucher-etl")
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "voucher-etl failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a version's table and manifest, failing the test if either is incomplete.
pub fn read_version(tables: &Path, version: Version) -> (VoucherTable, Manifest) {
    let dir = TablesDir::new(tables);
    let bytes = std::fs::read(dir.table_path(version)).expect("table file");
    let table = VoucherTable::read(Bytes::from(bytes)).expect("valid table");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.manifest_path(version)).expect("manifest"))
            .expect("valid manifest");
    assert_eq!(manifest.version, version.to_string());
    (table, manifest)
}

/// The live version's table and manifest.
pub fn read_live(tables: &Path) -> (Version, VoucherTable, Manifest) {
    let version = TablesDir::new(tables)
        .current()
        .expect("CURRENT readable")
        .expect("a live version");
    let (table, manifest) = read_version(tables, version);
    (version, table, manifest)
}

/// Every entry of a tables directory with its modification time, to prove nothing changed.
pub fn snapshot(tables: &Path) -> Vec<(String, std::time::SystemTime, Vec<u8>)> {
    let mut entries = Vec::new();
    for entry in walk(tables) {
        let meta = std::fs::metadata(&entry).expect("metadata");
        let content = if meta.is_file() {
            std::fs::read(&entry).expect("read")
        } else {
            Vec::new()
        };
        entries.push((
            entry
                .strip_prefix(tables)
                .expect("prefix")
                .display()
                .to_string(),
            meta.modified().expect("mtime"),
            content,
        ));
    }
    entries.sort();
    entries
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for e in read.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".lock") {
                continue;
            }
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// A Parquet file's rows, whole.
pub fn read_parquet(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::{LazyFrame, PlRefPath};
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_str().expect("utf-8")),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .expect("read parquet")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts processes with `spawn(i)` one after another and SIGKILLs each at a moment spread
/// over `full`, how long one takes uncut, from right after its start to just past its end;
/// `check` runs after each. It goes on for at least `attempts` processes and until `kills`
/// of them were killed before they ended, and fails if that takes more than four times
/// `attempts`. A process that succeeded before its moment shortens `full` to that moment: the
/// timed run may have been slow (a cold start, a loaded machine), and moments past the end
/// of every later run would kill nothing.
pub fn kill_at_moments_over_a_run(
    mut full: Duration,
    attempts: u32,
    kills: u32,
    mut spawn: impl FnMut(u32) -> Child,
    mut check: impl FnMut(),
) {
    const MOMENTS: u32 = 10;
    let mut killed = 0;
    let mut i = 0;
    while i < attempts || killed < kills {
        assert!(
            i < attempts * 4,
            "only {killed} of {i} processes were killed mid-way (wanted {kills})"
        );
        // Moments 0, 1/8, ..., 9/8 of a run: the last ones come after it ended.
        let moment = full.mul_f64(f64::from(i % MOMENTS) / f64::from(MOMENTS - 2));
        let mut child = spawn(i);
        let started = Instant::now();
        std::thread::sleep(moment);
        match child.try_wait().expect("wait") {
            None => {
                child.kill().expect("SIGKILL");
                killed += 1;
            }
            // A refusal ends early and is no measure of a run.
            Some(status) if status.success() => full = full.min(started.elapsed()),
            Some(_) => {}
        }
        child.wait().expect("reap");
        check();
        i += 1;
    }
}
