//! History in many files: a directory, Hive-style partitions, a glob; files that disagree on a
//! column's physical type; per-shard tallies merged into one table. Each gives the table and
//! the counts of one run over the same rows in one file.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use voucher_shared::numbers::{parse_count, whole_count};

use crate::common::*;

fn write(frame: &mut DataFrame, path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    ParquetWriter::new(file)
        .finish(frame)
        .expect("write parquet");
}

fn replace(frame: &DataFrame, column: Column) -> DataFrame {
    let mut frame = frame.clone();
    frame.with_column(column).expect("replace column");
    frame
}

/// `frame` split by `keep` into (rows kept, the others).
fn split(frame: &DataFrame, keep: Vec<bool>) -> (DataFrame, DataFrame) {
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    let inverse =
        BooleanChunked::from_slice("drop".into(), &keep.iter().map(|k| !k).collect::<Vec<_>>());
    (
        frame.filter(&mask).expect("filter"),
        frame.filter(&inverse).expect("filter"),
    )
}

/// Writes the rows of `history` as Hive-style partitions under `dir`, in files that disagree
/// on physical types while holding the same values: `first_order_ts` as a timestamp and as
/// text, `total_orders` as text and as int64, `voucher_amount` as float64 and as int64.
fn partition(history: &Path, dir: &Path) -> Vec<PathBuf> {
    let frame = read_parquet(history);
    let quarter = frame.height() / 4;
    let part = |i: usize| frame.slice((i * quarter) as i64, quarter);
    let mut files = Vec::new();
    let mut put = |frame: &mut DataFrame, name: &str| {
        let path = dir.join(name);
        write(frame, &path);
        files.push(path);
    };

    put(&mut part(0), "batch=0/part-0.parquet");

    let p1 = part(1);
    let texts: Vec<Option<String>> = p1
        .column("first_order_ts")
        .and_then(|c| c.cast(&DataType::Int64))
        .and_then(|c| c.i64().cloned())
        .expect("timestamps")
        .iter()
        .map(|ns| {
            ns.map(|ns| {
                chrono::DateTime::from_timestamp_nanos(ns)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
        })
        .collect();
    put(
        &mut replace(&p1, Column::new("first_order_ts".into(), texts)),
        "batch=1/part-0.parquet",
    );

    let p2 = part(2);
    let orders = p2
        .column("total_orders")
        .and_then(|c| c.str().cloned())
        .expect("text");
    let whole: Vec<bool> = orders
        .iter()
        .map(|s| s.and_then(parse_count).is_some())
        .collect();
    let (ints, rest) = split(&p2, whole);
    let parsed: Vec<Option<i64>> = ints
        .column("total_orders")
        .and_then(|c| c.str().cloned())
        .expect("text")
        .iter()
        .map(|s| s.and_then(parse_count))
        .collect();
    put(
        &mut replace(&ints, Column::new("total_orders".into(), parsed)),
        "batch=2/part-0.parquet",
    );
    put(&mut rest.clone(), "batch=2/part-1.parquet");

    let p3 = part(3)
        .vstack(&frame.slice((4 * quarter) as i64, frame.height()))
        .expect("rest");
    let amounts = p3
        .column("voucher_amount")
        .and_then(|c| c.f64().cloned())
        .expect("floats");
    let whole: Vec<bool> = amounts
        .iter()
        .map(|a| a.is_some_and(|a| whole_count(a.abs()).is_some()))
        .collect();
    let (ints, rest) = split(&p3, whole);
    let as_ints: Vec<Option<i64>> = ints
        .column("voucher_amount")
        .and_then(|c| c.f64().cloned())
        .expect("floats")
        .iter()
        .map(|a| a.map(|a| a as i64))
        .collect();
    put(
        &mut replace(&ints, Column::new("voucher_amount".into(), as_ints)),
        "batch=3/part-0.parquet",
    );
    put(&mut rest.clone(), "batch=3/part-1.parquet");
    files
}

/// The table and the counts of the live version, for comparing runs.
fn outcome(tables: &Path) -> (Vec<String>, u64, u64, String) {
    let (_, table, manifest) = read_live(tables);
    let rows = table.rows().iter().map(|r| format!("{r:?}")).collect();
    (
        rows,
        manifest.rows_read,
        manifest.rows_kept,
        format!("{:?}", manifest.dropped),
    )
}

#[test]
fn a_directory_partitions_and_a_glob_of_mixed_types_give_the_one_file_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    generate(&history, 60_000, 21);
    let one = dir.path().join("one");
    assert_success(&run_etl(
        history.to_str().expect("utf-8"),
        &one,
        &["--countries", "all"],
    ));
    let expected = outcome(&one);

    let parts = dir.path().join("history");
    let files = partition(&history, &parts);
    // Spark's markers and hidden files are not history.
    std::fs::write(parts.join("_SUCCESS"), b"").expect("marker");
    std::fs::write(parts.join("batch=0/.part-0.parquet.crc"), b"crc").expect("crc");
    let glob = format!("{}/batch=*/part-*.parquet", parts.display());
    for input in [parts.to_str().expect("utf-8"), glob.as_str()] {
        let tables = dir.path().join(format!("tables-{}", input.len()));
        let out = run_etl(input, &tables, &["--countries", "all"]);
        assert_success(&out);
        assert_eq!(outcome(&tables), expected, "{input}");
        let (_, _, manifest) = read_live(&tables);
        let listed: Vec<&str> = manifest.inputs.iter().map(|i| i.file.as_str()).collect();
        let mut wanted: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        wanted.sort();
        assert_eq!(listed, wanted, "every file, in order");
        let read: u64 = manifest.inputs.iter().map(|i| i.rows_read).sum();
        let kept: u64 = manifest.inputs.iter().map(|i| i.rows_kept).sum();
        let dropped: u64 = manifest.inputs.iter().map(|i| i.dropped.total()).sum();
        assert_eq!(
            (read, kept, dropped),
            (
                manifest.rows_read,
                manifest.rows_kept,
                manifest.dropped.total()
            )
        );
        assert_eq!(manifest.input, input);
    }
}

#[test]
fn row_groups_read_whole_or_in_slices_give_the_same_table_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    let truth = generate_in_row_groups(&history, 60_000, 5, Some(25_000));
    let input = history.to_str().expect("utf-8");
    let mut outcomes = Vec::new();
    // The default reads the three row groups whole; 20,000 slices the two big ones in halves
    // of 10,000; 9,000 slices them in 4,500s and reads the last group (10,000) in slices too.
    // Windows are read one at a time, two at once (the default) or more at once than there
    // are windows.
    for (window, in_flight) in [
        (None, "2"),
        (Some("20000"), "2"),
        (Some("9000"), "2"),
        (Some("9000"), "1"),
        (Some("9000"), "64"),
    ] {
        let tables = dir.path().join(format!("tables-{window:?}-{in_flight}"));
        let mut args = vec!["--countries", "all", "--windows-in-flight", in_flight];
        args.extend(window.iter().flat_map(|w| ["--window-rows", w]));
        assert_success(&run_etl(input, &tables, &args));
        outcomes.push(outcome(&tables));
    }
    assert_eq!(outcomes[0].1, truth.rows);
    assert_eq!(outcomes[1], outcomes[0], "half-window slices");
    assert_eq!(outcomes[2], outcomes[0], "slices not aligned to row groups");
    assert_eq!(outcomes[3], outcomes[0], "one window at a time");
    assert_eq!(outcomes[4], outcomes[0], "every window at once");
}

#[test]
fn tallies_of_shards_merge_into_the_one_pass_table_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    generate(&history, 60_000, 22);
    let one = dir.path().join("one");
    assert_success(&run_etl(
        history.to_str().expect("utf-8"),
        &one,
        &["--countries", "all"],
    ));
    let parts = dir.path().join("history");
    partition(&history, &parts);
    let tallies = dir.path().join("tallies");
    for shard in 0..4 {
        let out = bin()
            .args(["tally", "--countries", "all", "--input"])
            .arg(parts.join(format!("batch={shard}")))
            .arg("--output")
            .arg(tallies.join(format!("part-{shard}.json")))
            .output()
            .expect("run tally");
        assert_success(&out);
    }
    let merged = dir.path().join("merged");
    let out = bin()
        .args(["run", "--from-tallies"])
        .arg(&tallies)
        .arg("--output")
        .arg(&merged)
        .output()
        .expect("run");
    assert_success(&out);
    assert_eq!(outcome(&merged), outcome(&one));
    let (_, _, manifest) = read_live(&merged);
    assert_eq!(manifest.inputs.len(), 6, "every file of every shard");
    assert_eq!(manifest.input, tallies.display().to_string());

    // Tallies made with other settings do not merge silently.
    let other = bin()
        .args(["tally", "--countries", "Peru", "--input"])
        .arg(parts.join("batch=0"))
        .arg("--output")
        .arg(tallies.join("part-9.json"))
        .output()
        .expect("run tally");
    assert_success(&other);
    let out = bin()
        .args(["run", "--from-tallies"])
        .arg(&tallies)
        .arg("--output")
        .arg(dir.path().join("mixed"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("part-9.json was made with other countries or segments"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_directory_a_file_that_is_not_parquet_and_a_missing_column_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = run_etl(empty.to_str().expect("utf-8"), &tables, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no Parquet files"),
        "{}",
        stderr(&out)
    );

    let history = dir.path().join("history.parquet");
    generate(&history, 5_000, 23);
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).expect("mkdir");
    std::fs::copy(&history, parts.join("a.parquet")).expect("copy");
    let junk = parts.join("b.parquet");
    std::fs::write(&junk, "timestamp,country_code\n").expect("write");
    let out = run_etl(parts.to_str().expect("utf-8"), &tables, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("input {} is not a Parquet file", junk.display())),
        "{}",
        stderr(&out)
    );

    let mut frame = read_parquet(&history)
        .drop("total_orders")
        .expect("drop column");
    write(&mut frame, &junk);
    let out = run_etl(parts.to_str().expect("utf-8"), &tables, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "input {} has no column `total_orders`",
            junk.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!tables.join("CURRENT").exists(), "nothing was published");

    let out = run_etl(&format!("{}/*.nothing", parts.display()), &tables, &[]);
    assert!(
        stderr(&out).contains("the pattern matches no files"),
        "{}",
        stderr(&out)
    );

    // The pattern's own error follows, with where in the pattern it is.
    let broken = format!("{}/[*.parquet", parts.display());
    let out = run_etl(&broken, &tables, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "input {broken} is not a usable pattern: Pattern syntax error near position"
        )) && stderr(&out).contains("invalid range pattern"),
        "{}",
        stderr(&out)
    );
}
