//! The gate on the publish path: a normal day passes; a bad day is written complete but held,
//! with exit code 3, the live version untouched and the report saved; a held version never
//! becomes the baseline; `--no-gate` and a gate file override it. The bad days of issue 34,
//! built from the real sample, are each held by the check named.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use polars::prelude::DataFrame;

use crate::common::*;
use crate::days::*;
use voucher_shared::gate::{CheckKind, GateReport};
use voucher_shared::manifest::{GateOutcome, Manifest};
use voucher_shared::publish::TablesDir;
use voucher_shared::table::VoucherTable;

const HELD: Option<i32> = Some(3);

#[test]
fn a_normal_second_day_passes_and_goes_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let first = run_day(&normal_day(dir.path(), 1), &tables, &[]);
    assert_success(&first);
    assert!(stdout(&first).contains("nothing is live: the first version passes"));
    let (v1, _, m1) = read_live(&tables);
    assert_eq!(
        m1.gate.as_ref().map(|g| g.outcome),
        Some(GateOutcome::Passed)
    );

    let second = run_day(&normal_day(dir.path(), 2), &tables, &[]);
    assert_success(&second);
    let (v2, _, m2) = read_live(&tables);
    assert!(v2 > v1);
    let gate = m2.gate.expect("gate recorded");
    assert_eq!(
        (gate.outcome, gate.baseline, gate.failed),
        (GateOutcome::Passed, Some(v1.to_string()), 0)
    );
    let r = report(&tables, v2);
    assert!(
        r.checks.len() > 40,
        "every kind of check ran: {}",
        r.checks.len()
    );
    // Every kind of check but those made only for changed amounts and added segments.
    for kind in CheckKind::ALL {
        let made = r.checks.iter().any(|c| c.check == kind);
        let expected = !matches!(kind, CheckKind::ChangedLead | CheckKind::AddedSegment);
        assert_eq!(made, expected, "{kind} check");
    }
    // The profile behind the checks is in the manifest.
    assert_eq!(m2.profile.rows_kept_by_country.len(), 4);
    assert_eq!(
        m2.profile.rows_kept_by_country.values().sum::<u64>(),
        m2.rows_kept
    );
    assert_eq!(m2.profile.segments.len() as u64, m2.table_rows);
    assert_eq!(
        (state_of(&tables, v1), state_of(&tables, v2)),
        ("previous".into(), "live".into())
    );
}

#[test]
fn amounts_ten_times_larger_in_one_country_are_held_on_the_amount_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    let metrics = dir.path().join("textfile/voucher-etl.prom");
    let (v1, live_table, _) = read_live(&tables);
    let before = snapshot_of_live(&tables);
    let out = run_day(
        &bad,
        &tables,
        &["--metrics-file", metrics.to_str().expect("utf-8")],
    );
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    assert_eq!(live(&tables), Some(v1), "CURRENT stays");
    assert_eq!(
        snapshot_of_live(&tables),
        before,
        "the live version is untouched"
    );

    let held = *all_versions(&tables).last().expect("a new version");
    let (_, manifest) = read_version(&tables, held);
    assert_eq!(
        manifest.gate.as_ref().map(|g| g.outcome),
        Some(GateOutcome::Held)
    );
    let r = report(&tables, held);
    let chile = live_table
        .rows()
        .iter()
        .filter(|r| r.country_code == "Chile")
        .count();
    let failed: Vec<_> = r.failed().collect();
    assert!(
        failed.iter().all(|c| c.subject.starts_with("Chile")),
        "only Chile fails: {failed:?}"
    );
    let amounts: Vec<_> = failed
        .iter()
        .filter(|c| c.check == CheckKind::AmountChange)
        .collect();
    assert_eq!(amounts.len(), chile, "every Chile segment's amount fails");
    for c in &amounts {
        assert!((c.observed - 10.0).abs() < 1e-9 && c.bound == 2.0, "{c:?}");
    }
    // Chile changed all its amounts at once.
    assert!(
        failed
            .iter()
            .any(|c| c.check == CheckKind::ChangedShare && c.observed == 100.0)
    );
    // The printed report names the failures with observed value and bound.
    let text = stdout(&out);
    assert!(text.contains("HELD") && text.contains("FAIL"), "{text}");
    assert!(
        text.contains("amount_change") && text.contains("x10.00") && text.contains("x2.00"),
        "{text}"
    );
    assert_eq!(state_of(&tables, held), "held");

    let prom = std::fs::read_to_string(&metrics).expect("metrics textfile");
    assert!(
        prom.contains("voucher_etl_gate_runs_total{outcome=\"held\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains(&format!(
            "voucher_etl_gate_checks_total{{check=\"amount_change\",result=\"fail\"}} {chile}"
        )),
        "{prom}"
    );
    assert!(
        prom.contains("voucher_etl_gate_last_outcome{outcome=\"held\"} 1"),
        "{prom}"
    );
}

#[test]
fn a_run_that_fails_says_so_in_the_metrics_file_and_the_next_success_clears_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let metrics = dir.path().join("textfile/voucher-etl.prom");
    let flag = ["--metrics-file", metrics.to_str().expect("utf-8")];
    let missing = dir.path().join("no-such-history.parquet");
    let out = run_day(&missing, &tables, &flag);
    assert_eq!(exit_code(&out), Some(1), "{}", stderr(&out));
    let prom = std::fs::read_to_string(&metrics).expect("a failed run writes the textfile");
    for series in [
        "voucher_etl_runs_total{result=\"failed\"} 1",
        "voucher_etl_runs_total{result=\"succeeded\"} 0",
        "voucher_etl_last_run_failed 1",
    ] {
        assert!(prom.contains(series), "{series} in {prom}");
    }
    assert!(
        prom.contains("voucher_etl_last_run_end_timestamp_seconds"),
        "{prom}"
    );

    let out = run_day(&normal_day(dir.path(), 1), &tables, &flag);
    assert_eq!(exit_code(&out), Some(0), "{}", stderr(&out));
    let prom = std::fs::read_to_string(&metrics).expect("metrics textfile");
    assert!(prom.contains("voucher_etl_last_run_failed 0"), "{prom}");
    assert!(
        prom.contains("voucher_etl_runs_total{result=\"succeeded\"} 1"),
        "{prom}"
    );
}

/// The live version's files, to prove a held run did not touch them.
fn snapshot_of_live(tables: &Path) -> Vec<(String, std::time::SystemTime, Vec<u8>)> {
    let live = live(tables).expect("live");
    snapshot(&TablesDir::new(tables).version_dir(live))
}

#[test]
fn a_day_with_half_the_amounts_missing_is_held_on_the_drop_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    assert_success(&run_day(&normal_day(dir.path(), 1), &tables, &[]));
    let v1 = live(&tables);
    let bad = half_amounts_missing(&normal_day(dir.path(), 2), &dir.path().join("half.parquet"));
    let out = run_day(&bad, &tables, &[]);
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    assert_eq!(live(&tables), v1);
    let r = report(&tables, *all_versions(&tables).last().expect("held"));
    let drop = r
        .failed()
        .find(|c| c.check == CheckKind::DropShare)
        .expect("a drop share check failed");
    assert_eq!(drop.subject, "voucher_amount");
    assert!(drop.observed > 40.0, "{drop:?}");
}

#[test]
fn a_day_without_one_country_is_held_on_the_missing_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    assert_success(&run_day(&normal_day(dir.path(), 1), &tables, &[]));
    let (v1, live_table, _) = read_live(&tables);
    let bad = without_country(
        &normal_day(dir.path(), 2),
        &dir.path().join("no-mexico.parquet"),
        "Mexico",
    );
    let out = run_day(&bad, &tables, &[]);
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    assert_eq!(live(&tables), Some(v1));
    let r = report(&tables, *all_versions(&tables).last().expect("held"));
    let missing = r
        .failed()
        .find(|c| c.check == CheckKind::MissingSegments)
        .expect("missing segments failed");
    let mexico = live_table
        .rows()
        .iter()
        .filter(|r| r.country_code == "Mexico")
        .count();
    assert_eq!(missing.observed, mexico as f64);
    assert!(missing.detail.contains("Mexico"), "{}", missing.detail);
    // Mexico's rows kept fell to nothing; the other countries' did not move much.
    let kept: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.check == CheckKind::RowsKept)
        .collect();
    assert!(
        kept.iter()
            .any(|c| c.subject == "Mexico" && !c.passed && c.observed == 100.0)
    );
    assert!(
        kept.iter()
            .filter(|c| c.subject != "Mexico")
            .all(|c| c.passed),
        "{kept:?}"
    );
}

#[test]
fn a_held_version_never_becomes_the_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Peru");
    let v1 = live(&tables).expect("live");
    assert_eq!(exit_code(&run_day(&bad, &tables, &[])), HELD);
    // The next normal day is compared with the live version, not the held one, and passes.
    assert_success(&run_day(&normal_day(dir.path(), 3), &tables, &[]));
    let (v3, _, m3) = read_live(&tables);
    assert_eq!(m3.gate.and_then(|g| g.baseline), Some(v1.to_string()));
    let held = all_versions(&tables)[1];
    assert!(v1 < held && held < v3);
    assert_eq!(state_of(&tables, held), "held");
}

#[test]
fn no_gate_publishes_a_bad_day_and_the_manifest_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    let out = run_day(&bad, &tables, &["--no-gate"]);
    assert_success(&out);
    let (v2, _, m2) = read_live(&tables);
    let gate = m2.gate.expect("gate recorded");
    assert_eq!(gate.outcome, GateOutcome::Skipped);
    assert!(
        gate.failed > 0,
        "the checks that would have held it are counted"
    );
    let log = versions_json(&tables);
    let events = &log
        .iter()
        .find(|v| v["version"] == v2.to_string())
        .expect("listed")["events"];
    assert!(
        events[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--no-gate")),
        "{events}"
    );
}

#[test]
fn a_gate_file_and_its_environment_twin_override_the_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    let gate = dir.path().join("gate.toml");
    // Chile's amounts all move, and clear winners lose: those bounds open too.
    std::fs::write(
        &gate,
        "max_amount_factor = 12.5\nmax_changed_share_percent = 100\nmax_changed_lead_points = 100\n",
    )
    .expect("write");
    let out = bin()
        .env("VOUCHER_GATE", &gate)
        .args(["run", "--countries", "all", "--input"])
        .arg(&bad)
        .arg("--output")
        .arg(&tables)
        .output()
        .expect("run");
    assert_success(&out);
    let (v2, _, _) = read_live(&tables);
    assert_eq!(report(&tables, v2).bounds.max_amount_factor, 12.5);

    for (text, expected) in [
        (
            "max_amount_factor = 0.5\n",
            "max_amount_factor = 0.5 is out of range",
        ),
        ("max_amount = 3\n", "unknown field `max_amount`"),
    ] {
        std::fs::write(&gate, text).expect("write");
        let out = run_day(&bad, &tables, &["--gate", gate.to_str().expect("utf-8")]);
        assert_eq!(exit_code(&out), Some(1));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    }
    assert_eq!(live(&tables), Some(v2), "a bad gate file publishes nothing");
}

#[test]
fn run_from_tallies_goes_through_the_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    assert_success(&run_day(&normal_day(dir.path(), 1), &tables, &[]));
    let bad = half_amounts_missing(&normal_day(dir.path(), 2), &dir.path().join("half.parquet"));
    let tallies = dir.path().join("tallies");
    assert_success(
        &bin()
            .args(["tally", "--countries", "all", "--input"])
            .arg(&bad)
            .arg("--output")
            .arg(tallies.join("part-0.json"))
            .output()
            .expect("tally"),
    );
    let v1 = live(&tables);
    let out = bin()
        .args(["run", "--from-tallies"])
        .arg(&tallies)
        .arg("--output")
        .arg(&tables)
        .output()
        .expect("run");
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    assert_eq!(live(&tables), v1);
}

#[test]
fn the_real_sample_passes_against_itself_and_is_held_with_half_its_amounts_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let sample = real_sample();
    assert_success(&run_day(&sample, &tables, &[]));
    let out = run_day(&sample, &tables, &[]);
    assert_success(&out);
    let (v2, _, m2) = read_live(&tables);
    assert_eq!(
        m2.gate.map(|g| (g.outcome, g.failed)),
        Some((GateOutcome::Passed, 0))
    );
    let half = half_amounts_missing(&sample, &dir.path().join("half.parquet"));
    let out = run_day(&half, &tables, &[]);
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    assert_eq!(live(&tables), Some(v2));
    let r = report(&tables, *all_versions(&tables).last().expect("held"));
    assert!(failed_kinds(&r).contains(&CheckKind::DropShare), "{r:?}");
}

#[test]
fn a_scheduled_run_that_is_held_is_logged_and_counted_and_the_schedule_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    let v1 = live(&tables);
    let log = dir.path().join("schedule.log");
    let child = bin()
        .args([
            "schedule",
            "--cron",
            "* * * * * *",
            "--run-at-start",
            "--countries",
            "all",
            "--keep",
            "50",
            "--input",
        ])
        .arg(&bad)
        .arg("--output")
        .arg(&tables)
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("2 run(s) held")
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no second held run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut child = child;
    assert!(
        child.wait().expect("wait").success(),
        "the schedule stops cleanly"
    );
    assert_eq!(live(&tables), v1, "held runs never move CURRENT");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("run held: version") && text.contains("the schedule goes on"),
        "{text}"
    );
}

/// `dir/tables` with the real history (see [`real_history`]) published, and that history.
fn real_history_live(dir: &Path) -> (PathBuf, DataFrame) {
    let tables = dir.join("tables");
    let history = real_history();
    let path = write_history(&history, dir, "history.parquet");
    assert_success(&run_day(&path, &tables, &[]));
    let (_, _, m) = read_live(&tables);
    assert_eq!(
        m.profile.duplicate_rows,
        Some(0),
        "no row of the sample repeats another"
    );
    (tables, history)
}

/// Runs `day` (written to `dir/name`) against the live version: held (exit 3), the live
/// version untouched. The report, the held version's manifest and table, and stdout.
fn held_day(
    dir: &Path,
    tables: &Path,
    day: &DataFrame,
    name: &str,
) -> (GateReport, Manifest, VoucherTable, String) {
    let live_before = live(tables);
    let out = run_day(&write_history(day, dir, name), tables, &[]);
    assert_eq!(exit_code(&out), HELD, "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(live(tables), live_before, "CURRENT stays");
    let held = *all_versions(tables).last().expect("a held version");
    let (table, manifest) = read_version(tables, held);
    (report(tables, held), manifest, table, stdout(&out))
}

/// The subjects of the failed checks of `kind`.
fn failed_subjects(r: &GateReport, kind: CheckKind) -> Vec<&str> {
    r.failed()
        .filter(|c| c.check == kind)
        .map(|c| c.subject.as_str())
        .collect()
}

#[test]
fn a_normal_day_of_the_real_history_passes_every_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let day = write_history(&next_day(&history), dir.path(), "next.parquet");
    let out = run_day(&day, &tables, &[]);
    assert_success(&out);
    let (v2, _, m2) = read_live(&tables);
    let r = report(&tables, v2);
    assert_eq!(r.outcome, GateOutcome::Passed, "{r}");
    let kinds: std::collections::BTreeSet<CheckKind> = r.checks.iter().map(|c| c.check).collect();
    for kind in [CheckKind::ChangedShare, CheckKind::DuplicateShare] {
        assert!(kinds.contains(&kind), "no {kind} check: {r}");
    }
    assert!(!kinds.contains(&CheckKind::AddedSegment), "{r}");
    assert!(m2.rows_read > history.height() as u64);
    assert!(m2.profile.duplicate_rows.is_some());
}

#[test]
fn every_amount_times_1_9_is_held_on_the_share_of_amounts_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let path = write_history(&history, dir.path(), "base.parquet");
    let day = read_history(&amounts_times_everywhere(&path, dir.path(), 1.9));
    let (r, _, _, text) = held_day(dir.path(), &tables, &day, "x1.9.parquet");
    assert_eq!(
        failed_subjects(&r, CheckKind::ChangedShare),
        vec!["Chile", "Peru"]
    );
    assert!(
        r.checks
            .iter()
            .filter(|c| c.check == CheckKind::AmountChange)
            .all(|c| c.passed && (c.observed - 1.9).abs() < 1e-9),
        "x1.9 is within the amount factor: the new checks hold it"
    );
    assert!(
        text.contains("FAIL   changed_share") && text.contains("100.0 %"),
        "{text}"
    );
}

/// `input` with every amount multiplied by `factor`, written to `dir`.
fn amounts_times_everywhere(input: &Path, dir: &Path, factor: f64) -> PathBuf {
    let output = dir.join(format!("times-{factor}.parquet"));
    // Rounded: whole amounts stay whole, as the day of the issue published.
    rewrite(
        input,
        &output,
        |_, _, a| a.map(|a| (a * factor).round()),
        |_| true,
    );
    output
}

#[test]
fn one_countrys_amounts_divided_by_1_95_are_held_on_its_share_of_amounts_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let path = write_history(&history, dir.path(), "base.parquet");
    let output = dir.path().join("chile-div.parquet");
    rewrite(
        &path,
        &output,
        |_, c, a| {
            if c == "Chile" {
                a.map(|a| (a / 1.95).round())
            } else {
                a
            }
        },
        |_| true,
    );
    let (r, _, _, _) = held_day(dir.path(), &tables, &read_history(&output), "div.parquet");
    assert_eq!(failed_subjects(&r, CheckKind::ChangedShare), vec!["Chile"]);
    let peru = r
        .checks
        .iter()
        .find(|c| c.check == CheckKind::ChangedShare && c.subject == "Peru")
        .expect("Peru's share");
    assert!(peru.passed && peru.observed == 0.0, "{peru:?}");
    assert!(r.failed().all(|c| c.subject.starts_with("Chile")), "{r}");
}

#[test]
fn one_row_copied_6000_times_is_held_on_duplicates_and_on_the_lead_its_amounts_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let (_, live_table, _) = read_live(&tables);
    let day = one_row_copied(&history);
    let (r, manifest, table, _) = held_day(dir.path(), &tables, &day, "copied.parquet");
    // The day is the one of the issue: two Peru segments turn from 2640 to 4400.
    let flipped: Vec<String> = table
        .rows()
        .iter()
        .filter(|new| {
            live_table.rows().iter().any(|was| {
                (&was.country_code, was.segment_name, &was.segment)
                    == (&new.country_code, new.segment_name, &new.segment)
                    && (was.voucher_amount, new.voucher_amount) == (2640, 4400)
            })
        })
        .map(|r| format!("{} {} {}", r.country_code, r.segment_name.name(), r.segment))
        .collect();
    assert_eq!(
        flipped,
        ["Peru frequent_segment 5-13", "Peru recency_segment 30-60"]
    );
    assert_eq!(manifest.profile.duplicate_rows, Some(6000));
    assert_eq!(failed_subjects(&r, CheckKind::DuplicateShare), vec!["all"]);
    assert_eq!(failed_subjects(&r, CheckKind::ChangedLead), flipped);
    assert!(
        !failed_kinds(&r).contains(&CheckKind::ChangedShare),
        "2 of Peru's segments is within the changed share"
    );
}

#[test]
fn three_rows_of_a_new_country_are_held_as_thin_and_named_in_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let day = thin_new_country(&history);
    let (r, manifest, _, text) = held_day(dir.path(), &tables, &day, "thin.parquet");
    assert_eq!(manifest.profile.rows_kept_by_country.get("PERU"), Some(&2));
    let added = failed_subjects(&r, CheckKind::AddedSegment);
    assert!(
        !added.is_empty() && added.iter().all(|s| s.starts_with("PERU ")),
        "{added:?}"
    );
    assert_eq!(
        failed_kinds(&r),
        [CheckKind::AddedSegment].into_iter().collect()
    );
    assert!(
        r.notes.iter().any(|n| n.contains("new countries: PERU")),
        "{:?}",
        r.notes
    );
    assert!(
        text.contains("new countries: PERU") && text.contains("999999"),
        "{text}"
    );
}

#[test]
fn duplicates_are_counted_across_tally_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, history) = real_history_live(dir.path());
    let day = one_row_copied(&history);
    // The original row and 3,000 copies in one shard, the other 3,000 in the other.
    let split = history.height() + 3000;
    let tallies = dir.path().join("tallies");
    for (i, part) in [day.slice(0, split), day.slice(split as i64, 3000)]
        .iter()
        .enumerate()
    {
        let path = write_history(part, dir.path(), &format!("part-{i}.parquet"));
        assert_success(
            &bin()
                .args(["tally", "--countries", "all", "--input"])
                .arg(&path)
                .arg("--output")
                .arg(tallies.join(format!("part-{i}.json")))
                .output()
                .expect("tally"),
        );
    }
    let out = bin()
        .args(["run", "--from-tallies"])
        .arg(&tallies)
        .arg("--output")
        .arg(&tables)
        .output()
        .expect("run");
    assert_eq!(exit_code(&out), HELD, "{}", stderr(&out));
    let held = *all_versions(&tables).last().expect("held");
    let (_, manifest) = read_version(&tables, held);
    assert_eq!(manifest.profile.duplicate_rows, Some(6000));
    assert!(failed_kinds(&report(&tables, held)).contains(&CheckKind::DuplicateShare));
}
