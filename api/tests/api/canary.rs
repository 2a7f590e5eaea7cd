//! Canaries through every door: each customer gets the version of its bucket on the single
//! route, the batch, the NDJSON stream and gRPC; a 20% canary answers about 20% of customers;
//! the shadow counters count exactly the answers the canary changes; ending or promoting it is
//! followed within the reload interval; and deleting its version fails no request.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use voucher_shared::canary::{Bucket, Percent};
use voucher_shared::fixtures::write_version;
use voucher_shared::manifest::GateOutcome;
use voucher_shared::publish::{Because, TablesDir, Version};

use crate::doors::{self, Outcome};
use crate::helpers::{TestApp, contract_rows, json_of, wait_until};

/// Generous for a loaded CI machine; the reload interval itself is 100 ms or 1 s.
const SLACK: Duration = Duration::from_secs(5);

/// A live version (Peru's `14-37` pays 2640) and a held one (3000): Latvia's `0-4` pays 1000 in
/// both, so the two answer differently exactly for Peru's customers.
fn tables() -> (tempfile::TempDir, TablesDir, Version, Version) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = TablesDir::new(dir.path());
    let write = |base, outcome| {
        let staged = tables.stage(Utc::now()).expect("stage");
        write_version(staged, contract_rows(base), outcome)
    };
    let live = write(2640, GateOutcome::Passed);
    let candidate = write(3000, GateOutcome::Held);
    (dir, tables, live, candidate)
}

fn start(tables: &TablesDir, version: Version, percent: &str) -> Percent {
    let percent: Percent = percent.parse().expect("percent");
    tables
        .start_canary(version, percent, &Because::new("try it", "tester"))
        .expect("start the canary");
    percent
}

fn request(id: u64, peru: bool) -> Value {
    json!({"customer_id": id, "country_code": if peru { "Peru" } else { "Latvia" },
           "last_order_ts": "2026-10-01", "first_order_ts": "2021-10-26 00:00:00",
           "total_orders": if peru { 14 } else { 2 }, "segment_name": "frequent_segment"})
}

fn in_canary(id: u64, percent: Percent) -> bool {
    percent.includes(Bucket::of(&id.to_string()))
}

fn canary_json(api: &TestApp) -> Value {
    let (status, body) = json_of(api.get("/api/v1/versions"));
    assert_eq!(status, 200, "{body}");
    body["canary"].clone()
}

/// Waits until the app serves the canary of `version` (without scoring anything).
fn wait_for_canary(api: &TestApp, version: Version) {
    wait_until(SLACK, "the canary to be served", || {
        let canary = canary_json(api);
        canary["served"] == json!(true) && canary["version"] == json!(version.to_string())
    });
}

/// The version each request got from the batch route.
fn batch_versions(api: &TestApp, requests: &[Value]) -> Vec<String> {
    let body = serde_json::to_vec(requests).expect("json");
    let (status, json) = json_of(api.post_to("/api/v1/vouchers", body, "application/json"));
    assert_eq!(status, 200, "{json}");
    json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| {
            assert_eq!(item["status"], 200, "no request fails: {item}");
            item["version"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// The value of the one series of `name` whose labels include every pair of `labels`.
fn series(api: &TestApp, name: &str, labels: &[String]) -> Option<f64> {
    let text = api.get("/metrics").text().expect("metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|pair| l.contains(pair.as_str())))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn every_door_gives_each_customer_the_version_of_its_bucket() {
    let (dir, tables, live, candidate) = tables();
    let percent = start(&tables, candidate, "20");
    let api = TestApp::spawn(dir.path(), &[]);
    wait_for_canary(&api, candidate);
    let requests: Vec<Value> = (0..300).map(|id| request(id, id % 4 != 0)).collect();
    let expected = doors::single(&api, &requests);
    let mut canary_customers = 0;
    for (id, outcome) in (0..).zip(&expected) {
        let Outcome::Answer(voucher, _, _, _, version) = outcome else {
            panic!("customer {id}: {outcome:?}")
        };
        let (want, amount) = match (in_canary(id, percent), id % 4 != 0) {
            (true, peru) => (candidate, if peru { 3000 } else { 1000 }),
            (false, peru) => (live, if peru { 2640 } else { 1000 }),
        };
        canary_customers += u32::from(want == candidate);
        assert_eq!(
            (version.as_str(), *voucher),
            (want.to_string().as_str(), amount)
        );
    }
    assert!(
        canary_customers > 0 && canary_customers < 300,
        "{canary_customers}"
    );
    assert_eq!(doors::batch(&api, &requests), expected, "batch");
    assert_eq!(doors::ndjson(&api, &requests), expected, "NDJSON");
    assert_eq!(
        doors::grpc_unary(&api, &requests),
        expected,
        "gRPC GetVoucher"
    );
    assert_eq!(
        doors::grpc_stream(&api, &requests),
        expected,
        "gRPC ScoreVouchers"
    );
}

#[test]
fn a_20_percent_canary_answers_a_fifth_and_the_shadow_counts_every_changed_answer() {
    let (dir, tables, live, candidate) = tables();
    let percent = start(&tables, candidate, "20");
    let api = TestApp::spawn(dir.path(), &[]);
    wait_for_canary(&api, candidate);
    let requests: Vec<Value> = (0..100_000).map(|id| request(id, id % 3 != 0)).collect();
    let peru = requests
        .iter()
        .filter(|r| r["country_code"] == "Peru")
        .count() as u64;
    let response = api.post_to(
        "/api/v1/vouchers",
        doors::ndjson_body(&requests),
        "application/x-ndjson",
    );
    assert_eq!(response.status(), 200);
    let mut from_candidate = 0u64;
    for (id, line) in (0..).zip(response.text().expect("body").lines()) {
        let line: Value = serde_json::from_str(line).expect("a JSON line");
        let want = if in_canary(id, percent) {
            candidate
        } else {
            live
        };
        assert_eq!(line["version"], json!(want.to_string()), "customer {id}");
        from_candidate += u64::from(want == candidate);
    }
    assert!(
        (19_000..=21_000).contains(&from_candidate),
        "{from_candidate} of 100,000 from the canary"
    );

    let shadow = |country: &str, outcome: &str| {
        let labels = [
            format!("country=\"{country}\""),
            "segment_name=\"frequent_segment\"".to_owned(),
            format!("outcome=\"{outcome}\""),
        ];
        series(&api, "voucher_api_shadow_total", &labels)
    };
    assert_eq!(shadow("Peru", "different"), Some(peru as f64));
    assert_eq!(shadow("Latvia", "same"), Some((100_000 - peru) as f64));
    assert_eq!(
        (shadow("Peru", "same"), shadow("Latvia", "different")),
        (None, None)
    );
    let arm = |arm: &str| {
        series(
            &api,
            "voucher_api_canary_answers_total",
            &[format!("arm=\"{arm}\"")],
        )
    };
    assert_eq!(arm("canary"), Some(from_candidate as f64));
    assert_eq!(arm("live"), Some((100_000 - from_candidate) as f64));

    // The page's JSON: answers by version, and the measured share beside the predicted one.
    let canary = canary_json(&api);
    assert_eq!(canary["percent"], json!(20.0));
    assert_eq!(
        canary["answers"][candidate.to_string()],
        json!(from_candidate)
    );
    assert_eq!(
        canary["answers"][live.to_string()],
        json!(100_000 - from_candidate)
    );
    let frequent = &canary["changed_share_by_segment_type"]["frequent_segment"];
    assert_eq!(
        (
            frequent["compared"].as_u64(),
            frequent["different"].as_u64()
        ),
        (Some(100_000), Some(peru))
    );
    let measured = frequent["measured"].as_f64().expect("measured");
    assert!(
        (measured - peru as f64 / 100_000.0).abs() < 1e-9,
        "{measured}"
    );
    assert!(frequent["predicted"].is_number(), "{frequent}");
}

#[test]
fn ending_and_promoting_the_canary_move_everyone_within_the_reload_interval() {
    let (dir, tables, live, candidate) = tables();
    start(&tables, candidate, "50");
    let api = TestApp::spawn(dir.path(), &["--reload-interval", "1s"]);
    wait_for_canary(&api, candidate);
    let requests: Vec<Value> = (0..200).map(|id| request(id, true)).collect();
    let all = |version: Version| {
        let name = version.to_string();
        move |versions: Vec<String>| versions.iter().all(|v| *v == name)
    };
    assert!(!all(live)(batch_versions(&api, &requests)));

    tables
        .end_canary(&Because::new("enough", "tester"))
        .expect("end");
    let took = wait_until(SLACK, "everyone on the live version", || {
        all(live)(batch_versions(&api, &requests))
    });
    // One interval, plus room for this test's polling on a busy machine.
    assert!(
        took < Duration::from_millis(1500),
        "followed after {took:?}"
    );
    assert_eq!(canary_json(&api), Value::Null);

    start(&tables, candidate, "50");
    wait_for_canary(&api, candidate);
    tables
        .promote(candidate, &Because::new("looks right", "tester"))
        .expect("promote");
    let took = wait_until(SLACK, "everyone on the promoted version", || {
        all(candidate)(batch_versions(&api, &requests))
    });
    assert!(
        took < Duration::from_millis(1500),
        "followed after {took:?}"
    );
}

#[test]
fn deleting_the_canary_s_version_fails_no_request() {
    let (dir, tables, live, candidate) = tables();
    start(&tables, candidate, "50");
    let api = TestApp::spawn(dir.path(), &[]);
    wait_for_canary(&api, candidate);
    let requests: Vec<Value> = (0..200).map(|id| request(id, true)).collect();
    std::fs::remove_dir_all(tables.version_dir(candidate)).expect("delete the canary's version");
    // Every request is answered meanwhile (batch_versions asserts 200 per item), and soon all
    // by the live version.
    wait_until(SLACK, "everyone on the live version", || {
        batch_versions(&api, &requests)
            .iter()
            .all(|v| *v == live.to_string())
    });
    let (status, _) = json_of(api.post_voucher(&request(7, true)));
    assert_eq!(status, 200);
    assert_eq!(api.metric("voucher_api_canary_failures_total"), Some(1.0));
    assert_eq!(canary_json(&api)["served"], json!(false));
}
