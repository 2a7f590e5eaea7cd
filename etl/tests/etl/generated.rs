//! The generator's output, run through `voucher-etl run`, gives the table the generator was
//! built to produce.

use std::collections::BTreeMap;

use crate::common::*;
use voucher_shared::rules::{DropCounts, DropRule};

const ROWS: u64 = 120_000;

#[test]
fn a_run_over_generated_history_finds_exactly_what_was_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    let truth = generate(&history, ROWS, 7);
    let tables = dir.path().join("tables");

    let out = run_etl(
        history.to_str().expect("utf-8"),
        &tables,
        &["--countries", "all"],
    );
    assert_success(&out);
    let (_, table, manifest) = read_live(&tables);

    assert_eq!(manifest.rows_read, ROWS);
    let mut dropped = DropCounts::default();
    dropped[DropRule::CountryCode] = truth.no_country;
    let mut kept = 0;
    for t in truth.countries.values() {
        kept += t.kept;
        dropped += t.dropped;
    }
    assert_eq!(manifest.dropped, dropped);
    assert_eq!(manifest.rows_kept, kept);
    // Every row is of a selected country or of none: each is kept or counted once.
    assert_eq!(manifest.rows_read - manifest.rows_kept, dropped.total());
    assert!(
        dropped.iter().all(|(_, n)| n > 0),
        "every rule fires: {dropped:?}"
    );

    let mut expected_rows = 0;
    for (country, t) in &truth.countries {
        for ((segment_type, label), amounts) in &t.amounts {
            expected_rows += 1;
            let row = table
                .rows()
                .iter()
                .find(|r| {
                    &r.country_code == country
                        && r.segment_name == *segment_type
                        && &r.segment == label
                })
                .unwrap_or_else(|| panic!("no row for {country} {segment_type} {label}"));
            let favourite = t.favourites[&(*segment_type, label.clone())];
            assert_eq!(
                row.voucher_amount, favourite,
                "{country} {segment_type} {label}: the generator favoured {favourite}; counts {amounts:?}"
            );
            assert_eq!(row.occurrences as u64, amounts[&favourite]);
            assert_eq!(row.segment_rows as u64, amounts.values().sum::<u64>());
        }
    }
    assert_eq!(table.rows().len(), expected_rows);
    let countries: BTreeMap<_, _> = table
        .rows()
        .iter()
        .map(|r| (r.country_code.as_str(), ()))
        .collect();
    assert_eq!(countries.len(), 4, "every generated country has a table");
}

#[test]
fn the_default_country_is_peru_and_others_are_only_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    let truth = generate(&history, 30_000, 11);
    let tables = dir.path().join("tables");

    let out = run_etl(history.to_str().expect("utf-8"), &tables, &[]);
    assert_success(&out);
    let (_, table, manifest) = read_live(&tables);
    let peru = &truth.countries["Peru"];
    assert_eq!(manifest.rows_read, 30_000, "rows of every country are read");
    assert_eq!(manifest.rows_kept, peru.kept);
    assert_eq!(manifest.dropped, peru.dropped);
    assert_eq!(manifest.countries, vec!["Peru".to_owned()]);
    assert!(table.rows().iter().all(|r| r.country_code == "Peru"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rows read") && stdout.contains("frequent_segment"),
        "{stdout}"
    );
}

#[test]
fn the_same_seed_gives_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    let c = dir.path().join("c.parquet");
    let ta = generate(&a, 5_000, 3);
    let tb = generate(&b, 5_000, 3);
    let tc = generate(&c, 5_000, 4);
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
}

#[test]
fn the_generate_command_writes_a_file_the_run_command_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("h.parquet");
    let out = bin()
        .args([
            "generate",
            "--rows",
            "2000",
            "--seed",
            "5",
            "--countries",
            "Peru,Chile",
            "--output",
        ])
        .arg(&history)
        .output()
        .expect("start");
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 2000 rows"));
    let tables = dir.path().join("tables");
    assert_success(&run_etl(
        history.to_str().expect("utf-8"),
        &tables,
        &["--countries", "Peru,Chile"],
    ));
    let (_, table, _) = read_live(&tables);
    let countries: std::collections::BTreeSet<_> = table
        .rows()
        .iter()
        .map(|r| r.country_code.clone())
        .collect();
    assert_eq!(countries.into_iter().collect::<Vec<_>>(), ["Chile", "Peru"]);
}

#[test]
fn a_run_from_any_directory_uses_the_built_in_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(&dir.path().join("history.parquet"), 2_000, 3);
    // Relative paths, no --segments, and a working directory without data/segments.toml.
    let out = bin()
        .current_dir(dir.path())
        .args(["run", "--input", "history.parquet", "--output", "tables"])
        .output()
        .expect("start voucher-etl");
    assert_success(&out);
    let (_, _, manifest) = read_live(&dir.path().join("tables"));
    let builtin = voucher_shared::segments::SegmentSet::builtin();
    assert_eq!(
        manifest.segments,
        serde_json::to_value(&builtin).expect("json")
    );
}
