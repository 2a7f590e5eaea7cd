//! `GET /api/v1/versions`, and serving through the gate's decisions: a held version is listed
//! but never served; promoting it, and rolling back, are followed within the reload interval.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use voucher_shared::gate::{Bounds, Check, CheckKind, GATE_FILE, GateReport};
use voucher_shared::manifest::{GateOutcome, GateRecord, Manifest};
use voucher_shared::publish::{Because, MANIFEST_FILE, TABLE_FILE, TablesDir, Version};
use voucher_shared::table::VoucherTable;

use crate::helpers::{TestApp, contract_request, contract_rows, json_of, wait_until};

const SLACK: Duration = Duration::from_secs(5);

/// Writes a version complete, as a run does (table, manifest with the gate's record), and
/// publishes it: amounts from `contract_rows(base)`.
fn publish(dir: &std::path::Path, base: i64) -> Version {
    write(dir, base, None)
}

/// The same, held by the gate against `baseline` on one failed check, with its report.
fn hold(dir: &std::path::Path, base: i64, baseline: Version) -> Version {
    write(dir, base, Some(baseline))
}

fn write(dir: &std::path::Path, base: i64, held_against: Option<Version>) -> Version {
    let table = VoucherTable::new(contract_rows(base)).expect("rows");
    let staged = TablesDir::new(dir).stage(Utc::now()).expect("stage");
    let version = staged.version();
    let mut bytes = Vec::new();
    table.write(&mut bytes).expect("encode");
    std::fs::write(staged.path(TABLE_FILE), &bytes).expect("table");
    let manifest = Manifest {
        version: version.to_string(),
        table_rows: table.rows().len() as u64,
        gate: Some(GateRecord {
            outcome: match held_against {
                Some(_) => GateOutcome::Held,
                None => GateOutcome::Passed,
            },
            baseline: held_against.map(|v| v.to_string()),
            failed: usize::from(held_against.is_some()),
        }),
        ..Manifest::default()
    };
    std::fs::write(
        staged.path(MANIFEST_FILE),
        serde_json::to_vec(&manifest).expect("manifest"),
    )
    .expect("manifest");
    let because = Because::new("written by the test", "tester");
    let Some(baseline) = held_against else {
        return staged.publish(&because).expect("publish").version;
    };
    let report = GateReport {
        version,
        baseline: Some(baseline),
        outcome: GateOutcome::Held,
        bounds: Bounds::default(),
        checks: vec![Check {
            check: CheckKind::AmountChange,
            subject: "Peru frequent_segment 1-4".into(),
            observed: 3.4,
            bound: 2.0,
            passed: false,
            detail: "2640 -> 9000".into(),
        }],
        notes: Vec::new(),
    };
    std::fs::write(
        staged.path(GATE_FILE),
        serde_json::to_vec(&report).expect("report"),
    )
    .expect("report");
    staged.hold(&because).expect("hold")
}

fn served_version(api: &TestApp) -> String {
    let (status, json) = json_of(api.post_voucher(&contract_request()));
    assert_eq!(status, 200, "{json}");
    json["version"].as_str().unwrap_or_default().to_owned()
}

fn versions(api: &TestApp) -> Value {
    let (status, json) = json_of(api.get("/api/v1/versions"));
    assert_eq!(status, 200, "{json}");
    json
}

/// Version names have a one-second resolution.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn versions_lists_states_the_live_changes_and_the_held_version_which_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = publish(dir.path(), 2640);
    next_second();
    let live = publish(dir.path(), 3000);
    next_second();
    let held = hold(dir.path(), 9000, live);
    let api = TestApp::spawn(dir.path(), &[]);

    let json = versions(&api);
    assert_eq!(json["live"], live.to_string());
    let states: Vec<(&str, &str)> = json["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or(""),
                v["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let names = [held.to_string(), live.to_string(), first.to_string()];
    assert_eq!(
        states,
        [
            (names[0].as_str(), "held"),
            (names[1].as_str(), "live"),
            (names[2].as_str(), "previous")
        ]
    );
    assert_eq!(json["versions"][0]["gate"], "held");
    assert_eq!(json["versions"][2]["rollback_target"], true);

    // The changes are the two tables' amounts, segment by segment (Latvia's did not move).
    let changes = &json["changes"];
    assert_eq!(
        (changes["from"].as_str(), changes["to"].as_str()),
        (Some(names[2].as_str()), Some(names[1].as_str()))
    );
    let (old, new) = (contract_rows(2640), contract_rows(3000));
    let segments = changes["segments"].as_array().expect("segments");
    assert_eq!(
        segments.len(),
        old.iter().filter(|r| r.country_code == "Peru").count()
    );
    for s in segments {
        let find = |rows: &[voucher_shared::table::VoucherRow]| {
            rows.iter()
                .find(|r| {
                    r.country_code == s["country_code"]
                        && r.segment == s["segment"]
                        && r.segment_name.name() == s["segment_name"]
                })
                .map(|r| r.voucher_amount)
        };
        assert_eq!(s["from_amount"].as_i64(), find(&old), "{s}");
        assert_eq!(s["to_amount"].as_i64(), find(&new), "{s}");
        assert_eq!(s["change"], "changed");
    }

    let failed = &json["held"][0]["failed"];
    assert_eq!(json["held"][0]["version"], names[0]);
    assert_eq!(failed[0]["check"], "amount_change");
    assert_eq!(failed[0]["subject"], "Peru frequent_segment 1-4");
    assert_eq!(
        (
            failed[0]["observed_shown"].as_str(),
            failed[0]["bound_shown"].as_str()
        ),
        (Some("x3.40"), Some("x2.00"))
    );

    // Held is listed, never served.
    assert_eq!(served_version(&api), live.to_string());
}

#[test]
fn promoting_the_held_version_and_rolling_back_are_followed_within_the_reload_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = publish(dir.path(), 2640);
    next_second();
    let held = hold(dir.path(), 5000, live);
    let api = TestApp::spawn(dir.path(), &["--reload-interval", "200ms"]);
    assert_eq!(served_version(&api), live.to_string());

    let tables = TablesDir::new(dir.path());
    tables
        .promote(
            held,
            &Because::new("approved: the new amounts are intended", "tester"),
        )
        .expect("promote");
    wait_until(SLACK, "the promoted version", || {
        served_version(&api) == held.to_string()
    });
    let json = versions(&api);
    assert_eq!(json["live"], held.to_string());
    assert_eq!(json["held"], Value::Array(Vec::new()));

    tables
        .promote(live, &Because::new("roll back", "tester"))
        .expect("roll back");
    wait_until(SLACK, "the rolled-back version", || {
        served_version(&api) == live.to_string()
    });
    let json = versions(&api);
    assert_eq!(json["live"], live.to_string());
    assert_eq!(json["versions"][0]["state"], "previous");
}

#[test]
fn versions_needs_the_token_like_every_route_of_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), 2640);
    let api = TestApp::spawn(dir.path(), &["--api-token", "versions-secret"]);
    assert_eq!(api.get("/api/v1/versions").status(), 401);
    let answer = reqwest::blocking::Client::new()
        .get(api.url("/api/v1/versions"))
        .bearer_auth("versions-secret")
        .send()
        .expect("send");
    assert_eq!(answer.status(), 200);
}

#[test]
fn an_empty_tables_directory_lists_no_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = TestApp::spawn(dir.path(), &[]);
    let json = versions(&api);
    assert_eq!(json["live"], Value::Null);
    assert_eq!(json["versions"], Value::Array(Vec::new()));
    assert_eq!(json["changes"], Value::Null);
}

#[test]
fn a_corrupt_canary_is_a_listed_problem_and_the_live_version_goes_on_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = publish(dir.path(), 2640);
    next_second();
    let live = publish(dir.path(), 3000);
    std::fs::write(dir.path().join("CANARY"), b"garbage\n").expect("break CANARY");
    let api = TestApp::spawn(dir.path(), &["--reload-interval", "200ms"]);

    let json = versions(&api);
    assert_eq!(json["live"], live.to_string());
    assert_eq!(json["canary"], Value::Null);
    let problems = json["problems"].as_array().expect("problems listed");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("CANARY"))),
        "{problems:?}"
    );
    assert_eq!(json["versions"][1]["version"], first.to_string());
    assert_eq!(served_version(&api), live.to_string());

    // Rolling back works with the record still broken, and is followed.
    TablesDir::new(dir.path())
        .promote(first, &Because::new("roll back", "tester"))
        .expect("roll back beside a corrupt CANARY");
    wait_until(SLACK, "the rolled-back version", || {
        served_version(&api) == first.to_string()
    });
    assert_eq!(versions(&api)["live"], first.to_string());
}
