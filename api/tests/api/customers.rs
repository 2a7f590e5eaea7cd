//! Requests by customer id, against a real PostgreSQL (`make postgres-test` starts Debian's
//! PostgreSQL and sets VOUCHER_TEST_POSTGRES_URL; without it these tests print a notice and
//! pass): unknown ids, a profile the rules refuse, a profile updated in the table, the server
//! stopped and started again under a running API, readiness and metrics. That every door's
//! answer by id equals its answer to the full request is in `doors`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tonic::Code;
use voucher_api::grpc::proto;
use voucher_api::grpc::proto::voucher_service_client::VoucherServiceClient;
use voucher_postgres::{ConnectOptions, DbUrl, Session};

use crate::doors::{Outcome, from_http, runtime};
use crate::helpers::{TestApp, contract_rows, days_ago, json_of, publish, wait_until};

/// Generous for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(20);

/// The test server, for setting up customer tables.
pub struct TestDb {
    runtime: tokio::runtime::Runtime,
    session: Session,
    pub url: String,
}

/// The test server, or `None` (with a notice) when VOUCHER_TEST_POSTGRES_URL is not set.
pub fn test_db() -> Option<TestDb> {
    let Ok(url) = std::env::var("VOUCHER_TEST_POSTGRES_URL") else {
        eprintln!("skipped: VOUCHER_TEST_POSTGRES_URL is not set (run `make postgres-test`)");
        return None;
    };
    let runtime = runtime();
    let parsed = DbUrl::parse(&url, None).expect("VOUCHER_TEST_POSTGRES_URL parses");
    let session = runtime
        .block_on(Session::connect(&parsed, &ConnectOptions::default()))
        .expect("connect to the test server");
    Some(TestDb {
        runtime,
        session,
        url,
    })
}

/// One stored customer: id, country, last order, first order, orders, each as SQL text.
pub type Row<'a> = (i64, &'a str, &'a str, &'a str, &'a str);

impl TestDb {
    pub fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.session.client().batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// A new table `name` (dropped first) with the profile columns of `types` (country,
    /// last order, first order, orders), holding `rows`.
    pub fn customers(&self, name: &str, types: [&str; 4], rows: &[Row<'_>]) {
        let [country, last, first, orders] = types;
        self.execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (customer_id bigint PRIMARY KEY, \
             country_code {country}, last_order_ts {last}, first_order_ts {first}, \
             total_orders {orders})"
        ));
        for chunk in rows.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|(id, country, last, first, orders)| {
                    format!("({id}, {country}, {last}, {first}, {orders})")
                })
                .collect();
            self.execute(&format!("INSERT INTO {name} VALUES {}", values.join(", ")));
        }
    }

    /// The API on `tables`, asking this server's table `table`, with `args` besides.
    pub fn app(&self, tables: &std::path::Path, table: &str, args: &[&str]) -> TestApp {
        let mut all = vec!["--customers-db", &self.url, "--customers-table", table];
        all.extend(args);
        TestApp::spawn(tables, &all)
    }
}

/// `text` as an SQL string literal.
pub fn sql(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn by_id(customer_id: i64, segment_name: &str) -> Value {
    json!({"customer_id": customer_id, "segment_name": segment_name})
}

/// Peru, 14 orders, last order 10 days ago, stored as text, timestamp and integer.
fn one_customer(db: &TestDb, table: &str, id: i64, orders: &str) {
    let last = sql(&days_ago(10));
    db.customers(
        table,
        ["text", "timestamp", "timestamp", "integer"],
        &[(id, "'Peru'", &last, "'2020-01-01 00:00:00'", orders)],
    );
}

#[test]
fn postgres_unknown_ids_are_not_found_by_name_and_bad_stored_values_are_the_stores() {
    let Some(db) = test_db() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    one_customer(&db, "customers_unknown", 41, "-1");
    let app = db.app(dir.path(), "customers_unknown", &[]);

    let (status, body) = json_of(app.post_voucher(&by_id(42, "frequent_segment")));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"], "customer 42 is not in the customer store");
    runtime().block_on(async {
        let mut client = VoucherServiceClient::connect(format!("http://{}", app.grpc))
            .await
            .expect("connect");
        let message = proto::VoucherRequest {
            customer_id: Some(42),
            segment_name: Some("recency_segment".into()),
            ..Default::default()
        };
        let status = client.get_voucher(message).await.expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("customer 42"), "{status:?}");
    });

    // Customer 41 is stored with -1 orders: a 422 that says the value is the store's.
    let (status, body) = json_of(app.post_voucher(&by_id(41, "frequent_segment")));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["profile", "total_orders"]));
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("the value stored for customer 41")),
        "{body}"
    );
    // An id that is no 64-bit integer is the caller's.
    let (status, body) = json_of(app.post_voucher(&json!({
        "customer_id": 1e19, "segment_name": "frequent_segment"
    })));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "customer_id"]));
    let text = app.get("/metrics").text().expect("metrics");
    for line in [
        r#"voucher_api_customer_lookups_total{result="unknown"} 2"#,
        r#"voucher_api_customer_lookups_total{result="found"} 1"#,
        r#"voucher_api_scored_total{door="http",outcome="unknown_customer"} 1"#,
        r#"voucher_api_scored_total{door="grpc",outcome="unknown_customer"} 1"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}

#[test]
fn postgres_a_profile_updated_in_the_table_is_answered_within_the_caches_ttl() {
    let Some(db) = test_db() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    one_customer(&db, "customers_ttl", 7, "14");
    let ttl = Duration::from_secs(2);
    let app = db.app(
        dir.path(),
        "customers_ttl",
        &["--customers-cache-ttl", "2s"],
    );
    let voucher = || json_of(app.post_voucher(&by_id(7, "frequent_segment"))).1["voucher"].clone();
    assert_eq!(voucher(), 2640, "14 orders: segment 14-37");
    let updated = std::time::Instant::now();
    db.execute("UPDATE customers_ttl SET total_orders = 5 WHERE customer_id = 7");
    let stale = voucher();
    let waited = wait_until(ttl + SLACK, "the new profile to be answered", || {
        voucher() == 2640 + 880
    });
    assert!(
        updated.elapsed() < ttl + Duration::from_secs(2),
        "answered with the new values {waited:?} after the update; the TTL is {ttl:?}"
    );
    if stale == 2640 {
        // Seen from the cache until it expired: the cache is in use.
        assert!(
            waited > Duration::from_millis(200),
            "the stale answer lasted {waited:?}"
        );
    }
    let text = app.get("/metrics").text().expect("metrics");
    assert!(
        text.contains(r#"voucher_api_customer_cache_total{result="hit"}"#),
        "{text}"
    );
}

#[test]
fn postgres_single_requests_in_flight_together_share_queries() {
    let Some(db) = test_db() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let ids: Vec<i64> = (100..140).collect();
    let last = sql(&days_ago(10));
    let orders: Vec<String> = ids.iter().map(|id| (id % 38).to_string()).collect();
    let rows: Vec<Row<'_>> = ids
        .iter()
        .zip(&orders)
        .map(|(id, orders)| {
            (
                *id,
                "'Peru'",
                last.as_str(),
                "'2020-01-01 00:00:00'",
                orders.as_str(),
            )
        })
        .collect();
    db.customers(
        "customers_shared",
        ["text", "timestamp", "timestamp", "integer"],
        &rows,
    );
    let app = db.app(
        dir.path(),
        "customers_shared",
        &["--customers-cache-size", "0", "--customers-timeout", "30s"],
    );
    let outcome = |request: &Value| {
        let (status, body) = json_of(app.post_voucher(request));
        from_http(status, &body, "")
    };
    // The full requests, answered without the store, and once by id to open a connection.
    let expected: Vec<Outcome> = ids
        .iter()
        .zip(&orders)
        .map(|(id, orders)| {
            outcome(&json!({"customer_id": id, "country_code": "Peru",
                "last_order_ts": days_ago(10), "first_order_ts": "2020-01-01 00:00:00",
                "total_orders": orders.parse::<i64>().expect("orders"),
                "segment_name": "frequent_segment"}))
        })
        .collect();
    assert!(
        expected.iter().all(|o| matches!(o, Outcome::Answer(..))),
        "{expected:?}"
    );
    assert_eq!(outcome(&by_id(ids[0], "frequent_segment")), expected[0]);
    let queries = || {
        app.metric(r#"voucher_api_customer_queries_total{result="ok"}"#)
            .unwrap_or_default()
    };
    let before = queries();

    // The table locked, the store's queries wait; the requests sent meanwhile wait for them.
    db.execute("BEGIN; LOCK TABLE customers_shared IN ACCESS EXCLUSIVE MODE");
    let answers = std::thread::scope(|scope| {
        let sent: Vec<_> = ids
            .iter()
            .map(|id| scope.spawn(move || outcome(&by_id(*id, "frequent_segment"))))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        db.execute("COMMIT");
        sent.into_iter()
            .map(|t| t.join().expect("request thread"))
            .collect::<Vec<_>>()
    });
    assert_eq!(answers, expected);
    let shared = queries() - before;
    assert!(
        shared <= 10.0,
        "{} requests in flight together took {shared} queries",
        ids.len()
    );
}

/// Runs the server's control script (`stop` or `start`); see tools/postgres.sh.
fn control(ctl: &str, action: &str) {
    let status = Command::new(ctl)
        .arg(action)
        .status()
        .unwrap_or_else(|e| panic!("{ctl} {action}: {e}"));
    assert!(status.success(), "{ctl} {action} failed");
}

/// Stops the shared test server, so it runs alone: `etl/tests/postgres_test.sh` runs it after
/// the other PostgreSQL tests, with VOUCHER_TEST_POSTGRES_CTL set.
#[test]
fn postgres_server_restart_gives_503_then_recovers_without_restarting_the_api() {
    let Some(db) = test_db() else { return };
    let Ok(ctl) = std::env::var("VOUCHER_TEST_POSTGRES_CTL") else {
        eprintln!(
            "skipped: VOUCHER_TEST_POSTGRES_CTL is not set (etl/tests/postgres_test.sh sets it when this test runs alone)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    one_customer(&db, "customers_restart", 7, "14");
    drop(db);
    let app = TestApp::spawn(
        dir.path(),
        &[
            "--customers-db",
            &std::env::var("VOUCHER_TEST_POSTGRES_URL").unwrap_or_default(),
            "--customers-table",
            "customers_restart",
            "--customers-cache-size",
            "0",
            "--customers-timeout",
            "1s",
        ],
    );
    let ask = || json_of(app.post_voucher(&by_id(7, "frequent_segment")));
    assert_eq!(ask().0, 200, "answered before the stop");
    let readiness = || json_of(app.get("/readyz"));
    wait_until(SLACK, "readiness to report the store ok", || {
        readiness().1["checks"]["customers"]["state"] == "ok"
    });

    control(&ctl, "stop");
    let response = app.post_voucher(&by_id(7, "frequent_segment"));
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json_of(response);
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("customer store")),
        "{body}"
    );
    let full = json!({"customer_id": 7, "country_code": "Peru", "last_order_ts": days_ago(10),
        "first_order_ts": "2020-01-01", "total_orders": 14, "segment_name": "frequent_segment"});
    assert_eq!(
        json_of(app.post_voucher(&full)).0,
        200,
        "full requests go on"
    );
    let (status, ready) = readiness();
    assert_eq!(status, 200, "still ready: {ready}");
    assert_eq!(ready["checks"]["customers"]["state"], "degraded", "{ready}");
    let (_, batch) = json_of(app.post_to(
        "/api/v1/vouchers",
        serde_json::to_vec(&[by_id(7, "frequent_segment"), full.clone()]).expect("json"),
        "application/json",
    ));
    assert_eq!(
        (
            &batch["results"][0]["status"],
            &batch["results"][1]["status"]
        ),
        (&json!(503), &json!(200)),
        "{batch}"
    );
    assert_eq!(batch["results"][0]["retry_after"], 1);

    control(&ctl, "start");
    wait_until(SLACK, "answers by id again", || ask().0 == 200);
    assert_eq!(ask().1["voucher"], 2640);
    wait_until(SLACK, "readiness to report the store ok again", || {
        readiness().1["checks"]["customers"]["state"] == "ok"
    });
    assert_eq!(
        app.metric(r#"voucher_api_customer_store_up"#),
        Some(1.0),
        "the store is up again"
    );
}

#[test]
fn without_a_store_an_id_only_request_gets_the_422_of_its_missing_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    let (status, body) = json_of(app.post_voucher(&by_id(7, "frequent_segment")));
    assert_eq!(status, 422, "{body}");
    let missing: Vec<&str> = body["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        missing,
        [
            "country_code",
            "last_order_ts",
            "first_order_ts",
            "total_orders"
        ]
    );
    let (_, ready) = json_of(app.get("/readyz"));
    assert!(ready.get("checks").is_none(), "no store, no check: {ready}");
}
