//! `voucher-etl schedule`: runs on its cron, survives failed runs, stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::common::*;
use voucher_shared::publish::TablesDir;

/// A running `voucher-etl schedule` (every second), its log read line by line as it comes.
struct Schedule {
    child: Child,
    lines: Receiver<String>,
    log: String,
}

impl Schedule {
    fn spawn(input: &str, tables: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = bin()
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
            .expect("spawn");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Schedule {
            child,
            lines,
            log: String::new(),
        }
    }

    /// Waits until the log holds `needle` `times` times; fails the test after `within`.
    fn wait_for(&mut self, needle: &str, times: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log.matches(needle).count() < times {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{needle:?} not {times} times in the log within {within:?}:\n{}",
                    self.log
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("voucher-etl exited; log:\n{}", self.log)
                }
            }
        }
    }

    /// Sends SIGTERM and returns the exit status and the whole log.
    fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = self.child.wait().expect("wait");
        // The reader ends at the end of the log, when the process has closed stderr.
        for line in self.lines.iter() {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status, self.log)
    }
}

#[test]
fn scheduled_runs_publish_until_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.parquet");
    generate(&history, 3_000, 9);
    let tables = dir.path().join("tables");
    let schedule = Schedule::spawn(
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
    let (status, log) = schedule.terminate();
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
    let mut schedule = Schedule::spawn("/no/such/history.parquet", &dir.path().join("tables"), &[]);
    schedule.wait_for("run failed", 2, Duration::from_secs(60));
    let (status, log) = schedule.terminate();
    assert!(status.success(), "exit {status}; log:\n{log}");
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
