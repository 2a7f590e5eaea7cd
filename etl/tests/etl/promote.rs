//! `promote`, `versions` and `diff`: approving a held version, rolling back, refusing what
//! cannot be served, surviving kill -9, retention around them, and diffs that match the tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use voucher_shared::publish::{TablesDir, Version};
use voucher_shared::table::VoucherTable;
use voucher_shared::versions;

use crate::common::*;
use crate::days::*;

/// A published normal day (v1), then a day with Chile's amounts x10, held (v2).
fn live_and_held(dir: &Path) -> (std::path::PathBuf, Version, Version) {
    let (tables, bad) = live_then_x10(dir, "Chile");
    assert_eq!(exit_code(&run_day(&bad, &tables, &[])), Some(3));
    let all = all_versions(&tables);
    (tables, all[0], all[1])
}

fn promote(tables: &Path, version: Version, extra: &[&str]) -> std::process::Output {
    let v = version.to_string();
    let mut args = vec!["promote", v.as_str(), "--reason", "checked by hand"];
    args.extend_from_slice(extra);
    etl_on(tables, &args)
}

#[test]
fn promote_approves_a_held_version_then_rolls_back_to_the_earlier_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, v1, v2) = live_and_held(dir.path());

    let out = promote(&tables, v2, &["--by", "alice"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("approved the held version {v2}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(live(&tables), Some(v2));
    assert_eq!(
        (state_of(&tables, v1), state_of(&tables, v2)),
        ("previous".into(), "live".into())
    );

    let out = bin()
        .env("USER", "bob")
        .args([
            "promote",
            &v1.to_string(),
            "--reason",
            "x10 was a mistake after all",
            "--tables-dir",
        ])
        .arg(&tables)
        .output()
        .expect("promote");
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("rolled back to {v1}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(live(&tables), Some(v1));
    assert_eq!(
        (state_of(&tables, v1), state_of(&tables, v2)),
        ("live".into(), "previous".into())
    );

    // Every move is in the log, with who and why; `versions` shows it.
    let log = voucher_shared::publish_log::read(&tables).expect("log");
    let moves: Vec<_> = log
        .iter()
        .map(|e| (e.action.name(), e.from, e.to, e.by.as_str()))
        .collect();
    assert_eq!(
        moves[1..],
        [
            ("hold", Some(v1), v2, moves[1].3),
            ("promote", Some(v1), v2, "alice"),
            ("promote", Some(v2), v1, "bob"),
        ]
    );
    assert_eq!(log[3].reason, "x10 was a mistake after all");
    let text = stdout(&etl_on(&tables, &["versions"]));
    assert!(
        text.contains("promote") && text.contains("by bob: x10 was a mistake after all"),
        "{text}"
    );
}

#[test]
fn promote_refuses_unknown_incomplete_and_tampered_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, v1, v2) = live_and_held(dir.path());
    let t = TablesDir::new(&tables);
    let refused = |version: Version, expected: &str| {
        let out = promote(&tables, version, &[]);
        assert_eq!(exit_code(&out), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "expected {expected:?} in:\n{}",
            stderr(&out)
        );
        assert_eq!(live(&tables), Some(v1), "CURRENT stays");
    };
    let unknown = Version::parse("20000101T000000Z").expect("version");
    refused(unknown, "does not exist");
    let out = etl_on(&tables, &["promote", "../etc", "--reason", "x"]);
    assert_eq!(exit_code(&out), Some(2), "a path is not a version name");
    refused(v1, "already live");

    // Tampered: another valid table in place of v2's.
    let table = t.table_path(v2);
    let original = std::fs::read(&table).expect("read");
    std::fs::copy(t.table_path(v1), &table).expect("copy");
    refused(v2, "was changed after it was written");
    // Corrupt: not Parquet at all.
    std::fs::write(&table, b"not parquet").expect("write");
    refused(v2, "not a valid voucher table");
    // Incomplete: its manifest is gone.
    std::fs::write(&table, &original).expect("restore");
    let manifest = t.manifest_path(v2);
    let manifest_bytes = std::fs::read(&manifest).expect("read");
    std::fs::remove_file(&manifest).expect("remove");
    refused(v2, "is incomplete");
    // Edited: the manifest's profile (an amount), or its rows kept, no longer as written.
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut m: Value = serde_json::from_slice(&manifest_bytes).expect("manifest");
        change(&mut m);
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).expect("json")).expect("edit");
    };
    edit(&|m| m["profile"]["segments"][0]["amount"] = Value::from(1));
    refused(v2, "manifest.json has SHA-256");
    edit(&|m| m["rows_kept"] = Value::from(m["rows_kept"].as_u64().unwrap_or(0) + 1));
    refused(v2, "manifest.json has SHA-256");
    let out = etl_on(&tables, &["canary", &v2.to_string(), "--percent", "5"]);
    assert_eq!(exit_code(&out), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was changed after it was written"),
        "{}",
        stderr(&out)
    );
    // Restored whole, it is accepted.
    std::fs::write(&manifest, manifest_bytes).expect("restore");
    assert_success(&promote(&tables, v2, &[]));
    assert_eq!(live(&tables), Some(v2));
}

/// Starts `voucher-etl ARGS --tables-dir TABLES`, its output dropped.
fn spawn_on(tables: &Path, args: &[&str]) -> std::process::Child {
    bin()
        .args(args)
        .arg("--tables-dir")
        .arg(tables)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// CURRENT names a version that [`versions::verify`] accepts.
fn assert_current_complete(tables: &Path) -> Version {
    let t = TablesDir::new(tables);
    let live = t
        .current()
        .expect("CURRENT parses")
        .expect("something live");
    versions::verify(&t, live).unwrap_or_else(|e| panic!("{live}: {e}"));
    live
}

#[test]
fn promote_killed_at_any_moment_leaves_a_complete_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, v1, v2) = live_and_held(dir.path());
    let spawn = |v: Version| spawn_on(&tables, &["promote", &v.to_string(), "--reason", "flip"]);
    let started = Instant::now();
    assert!(spawn(v2).wait().expect("wait").success());
    let full = started.elapsed();

    // Kill promotions at moments spread over a whole one, each to the version not live (a
    // promotion of the live one is refused before it starts).
    let mut seen = BTreeMap::new();
    kill_at_moments_over_a_run(
        full,
        40,
        10,
        |_| spawn(if live(&tables) == Some(v1) { v2 } else { v1 }),
        || *seen.entry(assert_current_complete(&tables)).or_insert(0) += 1,
    );
    assert!(seen.keys().all(|v| *v == v1 || *v == v2), "{seen:?}");
    // The log stays readable, and a later promotion works.
    voucher_shared::publish_log::read(&tables).expect("log readable");
    let target = if live(&tables) == Some(v1) { v2 } else { v1 };
    assert_success(&promote(&tables, target, &[]));
    assert_eq!(assert_current_complete(&tables), target);
}

fn amounts(table: &VoucherTable) -> BTreeMap<(String, String, String), i64> {
    table
        .rows()
        .iter()
        .map(|r| {
            (
                (
                    r.country_code.clone(),
                    r.segment_name.to_string(),
                    r.segment.clone(),
                ),
                r.voucher_amount,
            )
        })
        .collect()
}

fn read_table(tables: &Path, v: Version) -> VoucherTable {
    let bytes = std::fs::read(TablesDir::new(tables).table_path(v)).expect("table");
    VoucherTable::read(Bytes::from(bytes)).expect("valid table")
}

#[test]
fn diff_json_amounts_equal_the_two_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, v1, v2) = live_and_held(dir.path());
    // Defaults: from the live version to the newest.
    let out = etl_on(&tables, &["diff", "--json"]);
    assert_success(&out);
    let diff: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (diff["from"].as_str(), diff["to"].as_str()),
        (Some(&*v1.to_string()), Some(&*v2.to_string()))
    );

    let (from, to) = (
        amounts(&read_table(&tables, v1)),
        amounts(&read_table(&tables, v2)),
    );
    let segments = diff["segments"].as_array().expect("segments");
    let mut seen = 0;
    for s in segments {
        let key = (
            s["country_code"].as_str().expect("country").to_owned(),
            s["segment_name"].as_str().expect("type").to_owned(),
            s["segment"].as_str().expect("segment").to_owned(),
        );
        assert_eq!(
            s["from_amount"].as_i64(),
            from.get(&key).copied(),
            "{key:?}"
        );
        assert_eq!(s["to_amount"].as_i64(), to.get(&key).copied(), "{key:?}");
        let expected = if key.0 == "Chile" {
            "changed"
        } else {
            "unchanged"
        };
        assert_eq!(s["change"], expected, "{key:?}");
        seen += 1;
    }
    assert_eq!(
        seen,
        from.keys()
            .chain(to.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    let chile = from.keys().filter(|k| k.0 == "Chile").count() as u64;
    assert_eq!(diff["summary"]["segments_changed"].as_u64(), Some(chile));
    let share = diff["summary"]["answers"]["changed_share"]
        .as_f64()
        .expect("share");
    assert!(share > 0.05 && share < 0.5, "Chile's customers: {share}");

    // Named versions, the other way round; a readable table on the terminal.
    let out = etl_on(&tables, &["diff", &v2.to_string(), &v1.to_string()]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(&format!("from {v2}  to {v1}")), "{text}");
    assert!(
        text.contains(&format!("{chile} of {} segments changed", from.len())),
        "{text}"
    );
}

#[test]
fn retention_keeps_the_live_version_a_newer_held_one_and_the_rollback_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    for seed in 1..=3 {
        assert_success(&run_day(&normal_day(dir.path(), seed), &tables, &[]));
    }
    let [v1, v2, v3] = all_versions(&tables)[..] else {
        panic!("three versions")
    };
    let bad = x10_day(dir.path(), 4, "Chile");
    let out = run_etl(
        bad.to_str().expect("utf-8"),
        &tables,
        &["--countries", "all", "--keep", "1"],
    );
    assert_eq!(exit_code(&out), Some(3));
    let v4 = *all_versions(&tables).last().expect("held");
    assert_eq!(all_versions(&tables), vec![v2, v3, v4], "only v1 may go");
    let log = stderr(&out);
    assert!(
        log.contains(&format!(
            "keeping version {v2} beyond --keep 1: a roll-back"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("deleted old version {v1}")), "{log}");
    let listed = versions_json(&tables);
    let target: Vec<_> = listed
        .iter()
        .filter(|v| v["rollback_target"] == true)
        .collect();
    assert_eq!(target.len(), 1);
    assert_eq!(target[0]["version"], v2.to_string());
}

/// The publish log agrees with `CURRENT` and `CANARY`, as every reader of the log sees it: the
/// versions it made live chain (each `from` is the `to` before it) up to the one `CURRENT`
/// names, and the canary it last started (and did not end) is the one `CANARY` holds, at the
/// same share.
fn assert_log_agrees_with_the_files(tables: &Path) {
    use voucher_shared::publish_log::{self, Action};
    let t = TablesDir::new(tables);
    let log = publish_log::read(tables).expect("log readable");
    let made_live: Vec<_> = log.iter().filter(|e| e.action.made_live()).collect();
    for pair in made_live.windows(2) {
        assert_eq!(
            pair[1].from,
            Some(pair[0].to),
            "the chain breaks between {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(
        made_live.last().map(|e| e.to),
        t.current().expect("CURRENT"),
        "the log's last move is not CURRENT"
    );
    let mut canary = None;
    for e in &log {
        match e.action {
            Action::Canary => canary = Some((e.to, e.percent)),
            Action::CanaryEnd if canary.is_some_and(|(v, _)| v == e.to) => canary = None,
            _ => {}
        }
    }
    let file = t
        .canary()
        .expect("CANARY readable")
        .map(|r| (r.version, Some(r.percent)));
    assert_eq!(canary, file, "the log's canary is not CANARY's");
}

#[test]
fn promote_and_canary_killed_at_any_moment_leave_the_log_in_step_with_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, v1, v2) = live_and_held(dir.path());
    let other = || if live(&tables) == Some(v1) { v2 } else { v1 };
    // Promotions both ways, canaries of the version not live at changing shares, and ends.
    let spawn = |i: u32| {
        let target = other().to_string();
        let percent = (1 + i % 7).to_string();
        let args: Vec<&str> = match i % 4 {
            0 | 2 => vec!["promote", &target, "--reason", "flip"],
            1 => vec!["canary", &target, "--percent", &percent],
            _ => vec!["canary", "--off"],
        };
        spawn_on(&tables, &args)
    };
    let started = Instant::now();
    assert!(spawn(1).wait().expect("wait").success());
    let full = started.elapsed();
    assert_log_agrees_with_the_files(&tables);

    kill_at_moments_over_a_run(full, 60, 24, spawn, || {
        assert_log_agrees_with_the_files(&tables)
    });
    // After the next command, the log file itself agrees (not only as read).
    assert_success(&promote(&tables, other(), &[]));
    assert_log_agrees_with_the_files(&tables);
    let raw = std::fs::read_to_string(tables.join("publish-log.jsonl")).expect("log");
    let written = raw
        .lines()
        .filter(|l| serde_json::from_str::<voucher_shared::publish_log::LogEntry>(l).is_ok())
        .count();
    let read = voucher_shared::publish_log::read(&tables).expect("log");
    assert_eq!(written, read.len(), "every entry read is in the file");
    assert_current_complete(&tables);
}
