//! What people and accidents leave in a tables directory: a corrupt `CANARY`, stray files,
//! directories and symlinks named like versions. Runs still say what they did (exit code,
//! summary, a warning and a metric for a failed clean-up), problems are listed rather than
//! failing the commands, and nothing voucher-etl did not make is deleted.

use std::path::Path;

use chrono::Utc;
use serde_json::Value;
use voucher_shared::publish::Version;

use crate::common::*;
use crate::days::*;

fn metric(file: &Path, series: &str) -> Option<f64> {
    let text = std::fs::read_to_string(file).expect("metrics file");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_corrupt_canary_is_listed_never_blocks_a_run_roll_back_or_canary_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    let v1 = live(&tables).expect("live");
    std::fs::write(tables.join("CANARY"), "garbage\n").expect("break CANARY");

    // `versions` lists the problem, in text and JSON, and exits 0.
    let out = etl_on(&tables, &["versions"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("CANARY") && text.contains("canary --off"),
        "{text}"
    );
    let listed = versions_json(&tables);
    let problems: Vec<&str> = listed
        .iter()
        .filter_map(|v| v["problem"].as_str())
        .collect();
    assert!(problems.iter().any(|p| p.contains("CANARY")), "{listed:?}");

    // A run publishes and says so (exit 0, its summary); the clean-up failure after it is a
    // warning and a metric, not a failure that would make a CronJob publish again.
    let metrics = dir.path().join("etl.prom");
    let metrics_flag = ["--metrics-file", metrics.to_str().expect("utf-8")];
    let out = run_day(&normal_day(dir.path(), 3), &tables, &metrics_flag);
    assert_eq!(exit_code(&out), Some(0), "{}", stderr(&out));
    let v3 = live(&tables).expect("live");
    assert_ne!(v3, v1);
    assert!(
        stdout(&out).contains(&format!("published version {v3}")),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("clean-up"), "{}", stderr(&out));
    assert!(stdout(&out).contains("clean-up"), "{}", stdout(&out));
    assert_eq!(
        metric(&metrics, "voucher_etl_last_run_cleanup_failed"),
        Some(1.0)
    );
    // A held run exits 3, not 1.
    let out = run_day(&bad, &tables, &metrics_flag);
    assert_eq!(exit_code(&out), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("HELD version"), "{}", stdout(&out));

    // Roll-back works beside the broken record.
    let out = etl_on(
        &tables,
        &["promote", &v1.to_string(), "--reason", "roll back"],
    );
    assert_success(&out);
    assert_eq!(live(&tables), Some(v1));

    // `canary --off` removes it, and the next run cleans up again.
    let out = etl_on(&tables, &["canary", "--off", "--reason", "broken record"]);
    assert_success(&out);
    assert!(!tables.join("CANARY").exists());
    assert!(stdout(&out).contains("CANARY"), "{}", stdout(&out));
    let out = run_day(&normal_day(dir.path(), 5), &tables, &metrics_flag);
    assert_eq!(exit_code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        metric(&metrics, "voucher_etl_last_run_cleanup_failed"),
        Some(0.0)
    );
}

/// A copy of version `v`'s directory outside the tables directory, its manifest renamed to
/// `name`: a directory that would be a valid version, to be linked in.
fn copy_of_version(tables: &Path, v: Version, to: &Path, name: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(tables.join(v.to_string())).expect("list") {
        let path = entry.expect("entry").path();
        let file = path.file_name().expect("name");
        std::fs::copy(&path, to.join(file)).expect("copy");
    }
    let manifest = to.join("manifest.json");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("read")).expect("json");
    m["version"] = Value::from(name);
    std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("write");
}

#[test]
fn stray_entries_named_like_versions_are_junk_not_versions_and_are_never_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    assert_success(&run_day(&normal_day(dir.path(), 1), &tables, &[]));
    let v1 = live(&tables).expect("live");
    // A future directory, an old file, and symlinks (future and old) to a directory holding
    // what would be a valid version.
    let (future_dir, old_file) = ("20301231T000000Z", "20200102T000000Z");
    let (future_link, old_link) = ("20301230T000000Z", "20200101T000000Z");
    std::fs::create_dir(tables.join(future_dir)).expect("mkdir");
    std::fs::write(tables.join(old_file), "notes").expect("write");
    let elsewhere = dir.path().join("elsewhere");
    copy_of_version(&tables, v1, &elsewhere, old_link);
    std::os::unix::fs::symlink(&elsewhere, tables.join(old_link)).expect("symlink");
    std::os::unix::fs::symlink(&elsewhere, tables.join(future_link)).expect("symlink");

    // Retention down to one version: only voucher-etl's own versions are candidates.
    let day = normal_day(dir.path(), 2);
    let day = day.to_str().expect("utf-8");
    let out = run_etl(day, &tables, &["--countries", "all", "--keep", "1"]);
    assert_eq!(exit_code(&out), Some(0), "{}", stderr(&out));
    let v2 = live(&tables).expect("live");
    let tomorrow = Version::parse(
        &(Utc::now() + chrono::TimeDelta::days(1))
            .format("%Y%m%dT%H%M%SZ")
            .to_string(),
    )
    .expect("version");
    assert!(v2 > v1 && v2 < tomorrow, "{v2} was pushed into the future");
    for name in [future_dir, old_file, future_link, old_link] {
        assert!(
            tables.join(name).symlink_metadata().is_ok(),
            "{name} was deleted"
        );
        assert!(stderr(&out).contains(name), "{name}: {}", stderr(&out));
    }
    assert!(elsewhere.join("vouchers.parquet").exists());
    assert!(elsewhere.join("manifest.json").exists());
    assert_eq!(
        all_versions(&tables),
        vec![v1, v2],
        "v1: the roll-back target"
    );

    let listed = versions_json(&tables);
    let states: Vec<(String, String)> = listed
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or("").to_owned(),
                v["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let state = |name: &str| {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
            .unwrap_or_else(|| panic!("{name} not listed: {states:?}"))
    };
    for name in [future_dir, old_file, future_link, old_link] {
        assert_eq!(state(name), "junk", "{name}");
    }
    assert_eq!(state(&v1.to_string()), "previous");
    assert_eq!(state(&v2.to_string()), "live");
    let text = stdout(&etl_on(&tables, &["versions"]));
    assert!(text.contains(future_dir) && text.contains("junk"), "{text}");
}
