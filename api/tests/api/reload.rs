//! Hot reload, refused versions, starting without a table and reload under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{
    TestApp, contract_request, contract_rows, json_of, publish, publish_bytes, wait_until,
};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

/// Generous for a loaded CI machine; the reload interval itself is 100 ms.
const SLACK: Duration = Duration::from_secs(5);

fn served(api: &TestApp) -> (i64, String) {
    let (status, json) = json_of(api.post_voucher(&contract_request()));
    assert_eq!(status, 200, "{json}");
    (
        json["voucher"].as_i64().unwrap_or_default(),
        json["version"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A Parquet file whose schema differs from the table's: `schema` is a message body.
fn parquet_with_schema(schema: &str) -> Vec<u8> {
    let schema = parse_message_type(&format!("message t {{ {schema} }}")).expect("schema");
    let mut bytes = Vec::new();
    let writer = SerializedFileWriter::new(&mut bytes, Arc::new(schema), Default::default())
        .expect("writer");
    writer.close().expect("close");
    bytes
}

#[test]
fn a_new_version_is_served_within_the_reload_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = publish(dir.path(), contract_rows(2640));
    let api = TestApp::spawn(dir.path(), &["--reload-interval", "1s"]);
    assert_eq!(served(&api), (2640, first.to_string()));

    let second = publish(dir.path(), contract_rows(5000));
    let took = wait_until(SLACK, "the new version", || served(&api).0 == 5000);
    assert_eq!(served(&api), (5000, second.to_string()));
    // One interval, plus room for the load itself and this test's polling on a busy machine.
    assert!(took < Duration::from_millis(1500), "served after {took:?}");
    assert!(
        api.logs()
            .contains(&format!("table version {second} is live")),
        "{}",
        api.logs()
    );
    assert_eq!(
        api.metric(r#"voucher_api_table_reloads_total{result="success"}"#),
        Some(2.0)
    );
    assert_eq!(
        api.metric(&format!("voucher_api_table_info{{version=\"{second}\"}}")),
        Some(1.0)
    );
    assert_eq!(
        api.metric(&format!("voucher_api_table_info{{version=\"{first}\"}}")),
        None
    );
}

#[test]
fn corrupt_versions_are_refused_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = publish(dir.path(), contract_rows(2640));
    let api = TestApp::spawn(dir.path(), &[]);

    let mut truncated = Vec::new();
    voucher_shared::table::VoucherTable::new(contract_rows(7000))
        .expect("rows")
        .write(&mut truncated)
        .expect("write");
    truncated.truncate(truncated.len() / 2);
    let missing_column = parquet_with_schema(
        "REQUIRED BYTE_ARRAY country_code (STRING); REQUIRED BYTE_ARRAY segment_name (STRING);
         REQUIRED BYTE_ARRAY segment (STRING); REQUIRED INT64 lower; OPTIONAL INT64 upper;
         REQUIRED INT64 occurrences; REQUIRED INT64 segment_rows;",
    );
    let wrong_type = parquet_with_schema(
        "REQUIRED BYTE_ARRAY country_code (STRING); REQUIRED BYTE_ARRAY segment_name (STRING);
         REQUIRED BYTE_ARRAY segment (STRING); REQUIRED INT64 lower; OPTIONAL INT64 upper;
         REQUIRED DOUBLE voucher_amount; REQUIRED INT64 occurrences; REQUIRED INT64 segment_rows;",
    );
    let cases = [
        ("truncated", truncated, "not a readable Parquet file"),
        (
            "missing column",
            missing_column,
            "column `voucher_amount` is missing",
        ),
        ("wrong type", wrong_type, "column `voucher_amount` has type"),
    ];
    for (n, (what, bytes, logged)) in cases.into_iter().enumerate() {
        let bad = publish_bytes(dir.path(), &bytes);
        let failures = (n + 1) as f64;
        wait_until(SLACK, what, || {
            api.metric(r#"voucher_api_table_reloads_total{result="failure"}"#) == Some(failures)
        });
        assert_eq!(
            served(&api),
            (2640, good.to_string()),
            "{what}: the old version serves"
        );
        let (status, ready) = json_of(api.get("/readyz"));
        assert_eq!(
            (status, ready["version"].as_str()),
            (200, Some(good.to_string().as_str()))
        );
        let logs = api.logs();
        assert!(
            logs.lines()
                .any(|l| l.contains(&format!("table version {bad} in")) && l.contains(logged)),
            "{what}: {logs}"
        );
    }
    // Refused versions are not retried: the reloader reads CURRENT (still naming the last bad
    // version) a few more times, and the failure count stays put.
    let checks = || {
        api.metric("voucher_api_table_checks_total")
            .unwrap_or_default()
    };
    let seen = checks();
    wait_until(SLACK, "three more looks at CURRENT", || {
        checks() >= seen + 3.0
    });
    assert_eq!(
        api.metric(r#"voucher_api_table_reloads_total{result="failure"}"#),
        Some(3.0)
    );

    let fixed = publish(dir.path(), contract_rows(3000));
    wait_until(SLACK, "a good version after bad ones", || {
        served(&api).0 == 3000
    });
    assert_eq!(served(&api).1, fixed.to_string());
}

#[test]
fn without_a_table_the_api_answers_503_until_one_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = TestApp::spawn(dir.path(), &["--reload-interval", "200ms"]);
    let response = api.post_voucher(&contract_request());
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (status, json) = json_of(response);
    assert_eq!(status, 503);
    assert!(
        json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no voucher table")),
        "{json}"
    );
    let (status, json) = json_of(api.get("/readyz"));
    assert_eq!((status, json["status"].as_str()), (503, Some("starting")));
    assert_eq!(api.get("/api/v1/segments").status(), 503);
    assert_eq!(
        api.get("/healthz").status(),
        200,
        "liveness does not depend on the table"
    );

    let version = publish(dir.path(), contract_rows(2640));
    wait_until(SLACK, "readiness", || api.get("/readyz").status() == 200);
    assert_eq!(served(&api), (2640, version.to_string()));
}

#[test]
fn reloads_under_load_fail_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(1000));
    let api = Arc::new(TestApp::spawn(dir.path(), &["--reload-interval", "20ms"]));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let api = Arc::clone(&api);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut seen = Vec::new();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let url = api.url("/api/v1/voucher");
                    match api.client.post(url).json(&contract_request()).send() {
                        Ok(r) if r.status() == 200 => {
                            let json: Value = r.json().expect("json");
                            let amount = json["voucher"].as_i64().unwrap_or_default();
                            if seen.last() != Some(&amount) {
                                seen.push(amount);
                            }
                        }
                        Ok(r) => failures.push(format!("{} {:?}", r.status(), r.text())),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (seen, failures)
            })
        })
        .collect();
    for amount in [2000, 3000, 4000, 5000, 6000] {
        std::thread::sleep(Duration::from_millis(150));
        publish(dir.path(), contract_rows(amount));
    }
    wait_until(SLACK, "the last version", || served(&api).0 == 6000);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let mut requests_seen = Vec::new();
    for client in clients {
        let (seen, failures) = client.join().expect("client thread");
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        // Versions only move forward, and each client saw the switches happen.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(seen.len() >= 2, "{seen:?}");
        requests_seen.push(seen);
    }
    assert_eq!(
        api.metric(r#"voucher_api_table_reloads_total{result="failure"}"#),
        Some(0.0)
    );
    let total =
        api.metric(r#"voucher_api_http_requests_total{route="/api/v1/voucher",status="200"}"#);
    assert!(
        total.is_some_and(|n| n > 50.0),
        "{total:?} {requests_seen:?}"
    );
}
