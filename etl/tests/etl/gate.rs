//! The gate on the publish path: a normal day passes; a bad day is written complete but held,
//! with exit code 3, the live version untouched and the report saved; a held version never
//! becomes the baseline; `--no-gate` and a gate file override it.

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::days::*;
use voucher_shared::gate::CheckKind;
use voucher_shared::manifest::GateOutcome;
use voucher_shared::publish::TablesDir;

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
    for kind in CheckKind::ALL {
        assert!(r.checks.iter().any(|c| c.check == kind), "no {kind} check");
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
    assert_eq!(
        failed.len(),
        chile,
        "every Chile segment and nothing else fails"
    );
    for c in &failed {
        assert_eq!(c.check, CheckKind::AmountChange);
        assert!(c.subject.starts_with("Chile "), "{}", c.subject);
        assert!((c.observed - 10.0).abs() < 1e-9 && c.bound == 2.0, "{c:?}");
    }
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

/// The live version's files, to prove a held run did not touch them.
fn snapshot_of_live(tables: &std::path::Path) -> Vec<(String, std::time::SystemTime, Vec<u8>)> {
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
    std::fs::write(&gate, "max_amount_factor = 12.5\n").expect("write");
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
