//! `voucher-etl schedule`: runs on its cron, survives failed runs, stops cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use voucher_shared::publish::TablesDir;

fn spawn_schedule(input: &str, tables: &std::path::Path, extra: &[&str]) -> Child {
    bin()
        .args([
            "schedule",
            "--cron",
            "* * * * * *",
            "--input",
            input,
            "--output",
        ])
        .arg(tables)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn terminate(child: Child) -> (std::process::ExitStatus, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn scheduled_runs_publish_until_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    generate(&history, 3_000, 9);
    let tables = dir.path().join("tables");
    let child = spawn_schedule(
        history.to_str().expect("utf-8"),
        &tables,
        &["--run-at-start", "--keep", "50"],
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let listing = TablesDir::new(&tables);
    while listing.versions().map_or(0, |v| v.len()) < 3 {
        assert!(
            Instant::now() < deadline,
            "fewer than 3 scheduled runs in 60s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, log) = terminate(child);
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("received SIGTERM") && log.contains("stopped"),
        "{log}"
    );
    read_live(&tables);
}

#[test]
fn a_failed_run_is_logged_and_the_next_one_still_happens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = spawn_schedule("/no/such/history.parquet", &dir.path().join("tables"), &[]);
    std::thread::sleep(Duration::from_millis(3_500));
    let (status, log) = terminate(child);
    assert!(status.success(), "exit {status}; log:\n{log}");
    let failures = log.matches("run failed").count();
    assert!(
        failures >= 2,
        "expected at least two failed runs, got {failures}:\n{log}"
    );
    assert!(log.contains("/no/such/history.parquet"), "{log}");
}

#[test]
fn an_invalid_cron_expression_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for cron in ["0 3 * * *", "0 61 3 * * *"] {
        let out = bin()
            .args([
                "schedule",
                "--cron",
                cron,
                "--input",
                "x.parquet",
                "--output",
            ])
            .arg(dir.path())
            .output()
            .expect("start");
        assert_eq!(out.status.code(), Some(1), "{cron}");
        let err = stderr(&out);
        assert!(
            err.contains("invalid cron expression") && err.contains(cron),
            "{err}"
        );
    }
}
