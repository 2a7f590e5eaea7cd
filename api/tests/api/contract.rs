//! Every row of the contract's status table, the other endpoints, and the token guard.

use crate::helpers::{TestApp, contract_request, contract_rows, days_ago, json_of, publish};
use serde_json::{Value, json};

fn started() -> (tempfile::TempDir, TestApp, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let version = publish(dir.path(), contract_rows(2640)).to_string();
    let api = TestApp::spawn(dir.path(), &[]);
    (dir, api, version)
}

fn with(overrides: &[(&str, Value)]) -> Value {
    let mut body = contract_request();
    for (k, v) in overrides {
        body[*k] = v.clone();
    }
    body
}

fn without(field: &str) -> Value {
    let mut body = contract_request();
    body.as_object_mut().expect("object").remove(field);
    body
}

/// Asserts a FastAPI-style 422 body naming exactly `fields` (in order) and returns its entries.
fn assert_422(api: &TestApp, body: &Value, fields: &[&str]) -> Vec<Value> {
    let (status, json) = json_of(api.post_voucher(body));
    assert_eq!(status, 422, "{body} -> {json}");
    let detail = json["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail is a list: {json}"));
    let locs: Vec<Value> = detail.iter().map(|e| e["loc"].clone()).collect();
    let expected: Vec<Value> = fields.iter().map(|f| json!(["body", f])).collect();
    assert_eq!(locs, expected, "{json}");
    for entry in detail {
        let keys: Vec<&String> = entry.as_object().expect("entry object").keys().collect();
        assert_eq!(keys, ["loc", "msg", "type"], "{entry}");
        assert!(
            entry["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{entry}"
        );
        assert!(
            entry["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{entry}"
        );
    }
    detail.clone()
}

fn assert_detail(response: reqwest::blocking::Response, status: u16) -> String {
    let (got, json) = json_of(response);
    assert_eq!(got, status, "{json}");
    assert_eq!(
        json.as_object().map(|o| o.len()),
        Some(1),
        "only `detail`: {json}"
    );
    json["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("detail is a string: {json}"))
        .to_owned()
}

#[test]
fn the_contract_example_is_answered() {
    let (_dir, api, version) = started();
    let (status, json) = json_of(api.post_voucher(&contract_request()));
    assert_eq!(status, 200);
    assert_eq!(
        json,
        json!({"voucher": 2640, "country_code": "Peru", "segment_name": "frequent_segment",
               "segment": "14-37", "version": version})
    );
    // 14.0 is the same number of orders.
    let (status, json) = json_of(api.post_voucher(&with(&[("total_orders", json!(14.0))])));
    assert_eq!((status, json["voucher"].clone()), (200, json!(2640)));
}

#[test]
fn recency_is_measured_from_today() {
    let (_dir, api, _) = started();
    let body = with(&[
        ("segment_name", json!("recency_segment")),
        ("last_order_ts", json!(days_ago(100))),
        ("first_order_ts", json!("2019-01-01")),
    ]);
    let (status, json) = json_of(api.post_voucher(&body));
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        (json["segment"].as_str(), json["voucher"].as_i64()),
        (Some("91-120"), Some(2643))
    );
}

#[test]
fn invalid_fields_get_one_422_entry_each() {
    let (_dir, api, _) = started();
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("total_orders"), "total_orders", "missing"),
        (
            with(&[("total_orders", json!("many"))]),
            "total_orders",
            "int_type",
        ),
        (
            with(&[("total_orders", json!(-1))]),
            "total_orders",
            "greater_than_equal",
        ),
        (
            with(&[("total_orders", json!(2.5))]),
            "total_orders",
            "int_from_float",
        ),
        (
            with(&[("last_order_ts", json!("26/10/2021"))]),
            "last_order_ts",
            "datetime_parsing",
        ),
        (
            with(&[("segment_name", json!("loyalty_segment"))]),
            "segment_name",
            "enum",
        ),
        (
            with(&[("country_code", json!("Atlantis"))]),
            "country_code",
            "value_error",
        ),
        (
            with(&[("country_code", json!(7))]),
            "country_code",
            "string_type",
        ),
        (
            with(&[("customer_id", json!("abc"))]),
            "customer_id",
            "int_type",
        ),
        (
            with(&[("last_order_ts", json!("2999-01-01"))]),
            "last_order_ts",
            "value_error",
        ),
        (
            with(&[("first_order_ts", json!("2022-01-01"))]),
            "first_order_ts",
            "value_error",
        ),
    ];
    for (body, field, kind) in cases {
        let detail = assert_422(&api, &body, &[field]);
        assert_eq!(detail[0]["type"], kind, "{body}");
    }
}

#[test]
fn country_codes_outside_the_rule_and_ids_beyond_64_bits_get_one_422_entry_each() {
    let (_dir, api, _) = started();
    let cases = [
        ("country_code", json!(""), "string_too_short"),
        ("country_code", json!(" "), "string_pattern_mismatch"),
        ("country_code", json!("x".repeat(65)), "string_too_long"),
        ("customer_id", json!(u64::MAX), "int_too_large"),
        ("customer_id", json!(1e300), "int_too_large"),
    ];
    for (field, value, kind) in cases {
        let body = with(&[(field, value)]);
        let detail = assert_422(&api, &body, &[field]);
        assert_eq!(detail[0]["type"], kind, "{body}");
    }
}

#[test]
fn messages_name_what_is_accepted() {
    let (_dir, api, _) = started();
    let detail = assert_422(
        &api,
        &with(&[("segment_name", json!("loyalty_segment"))]),
        &["segment_name"],
    );
    let msg = detail[0]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("frequent_segment") && msg.contains("recency_segment"),
        "{msg}"
    );
    let detail = assert_422(
        &api,
        &with(&[("country_code", json!("Atlantis"))]),
        &["country_code"],
    );
    let msg = detail[0]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("Atlantis") && msg.contains("Latvia, Peru"),
        "{msg}"
    );
}

#[test]
fn all_bad_fields_are_reported_together() {
    let (_dir, api, _) = started();
    let body = json!({"customer_id": 1, "country_code": "Atlantis", "last_order_ts": "never",
                      "first_order_ts": "2021-10-26", "total_orders": -3});
    assert_422(
        &api,
        &body,
        &[
            "country_code",
            "last_order_ts",
            "total_orders",
            "segment_name",
        ],
    );
    assert_422(
        &api,
        &json!({}),
        &[
            "customer_id",
            "country_code",
            "last_order_ts",
            "first_order_ts",
            "total_orders",
            "segment_name",
        ],
    );
}

#[test]
fn json_of_the_wrong_shape_is_422_and_broken_json_is_400() {
    let (_dir, api, _) = started();
    let (status, json) = json_of(api.post_raw("[1, 2]", Some("application/json")));
    assert_eq!(status, 422);
    assert_eq!(json["detail"][0]["loc"], json!(["body"]), "{json}");
    let detail = assert_detail(
        api.post_raw("{\"customer_id\": ", Some("application/json")),
        400,
    );
    assert!(detail.contains("not valid JSON"), "{detail}");
    assert_detail(api.post_raw("", Some("application/json")), 400);
}

#[test]
fn every_json_answer_says_nosniff() {
    let (_dir, api, _) = started();
    let responses = [
        api.post_voucher(&contract_request()),
        api.post_voucher(&without("total_orders")),
        api.post_raw("{", Some("application/json")),
        api.get("/api/v1/segments"),
        api.get("/readyz"),
        api.get("/openapi.json"),
        api.get("/no/such/path"),
        api.get("/"),
    ];
    for response in responses {
        let url = response.url().to_string();
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{url} ({})",
            response.status()
        );
    }
}

#[test]
fn an_uncovered_value_is_404_naming_the_value_and_segments() {
    let (_dir, api, _) = started();
    let detail = assert_detail(api.post_voucher(&with(&[("total_orders", json!(50))])), 404);
    assert!(detail.contains("50"), "{detail}");
    assert!(
        detail.contains("0-4") && detail.contains("5-13") && detail.contains("14-37"),
        "{detail}"
    );
    // 12 days since the last order is below every recency segment.
    let body = with(&[
        ("segment_name", json!("recency_segment")),
        ("last_order_ts", json!(days_ago(12))),
    ]);
    let detail = assert_detail(api.post_voucher(&body), 404);
    assert!(detail.contains("12") && detail.contains("180+"), "{detail}");
}

#[test]
fn bodies_over_the_limit_are_413() {
    let (_dir, api, _) = started();
    let mut body = contract_request();
    body["padding"] = json!("x".repeat(20 * 1024));
    let detail = assert_detail(api.post_voucher(&body), 413);
    assert!(detail.contains("16384"), "{detail}");
    // Just under the limit is fine.
    body["padding"] = json!("x".repeat(15 * 1024));
    assert_eq!(api.post_voucher(&body).status(), 200);
}

/// POSTs `pieces` to the single route as a chunked body, one write each with a pause between,
/// so that the server reads them apart; gives the status and the body of the answer.
fn post_in_pieces(api: &TestApp, pieces: &[Vec<u8>]) -> (u16, String) {
    use std::io::{Read, Write};
    let address = api.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("read timeout");
    let head = format!(
        "POST /api/v1/voucher HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    for piece in pieces {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        // The server may answer 413 and close before the last pieces.
        if stream
            .write_all(&chunk)
            .and_then(|()| stream.flush())
            .is_err()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, body)| body.to_owned());
    (status, body)
}

#[test]
fn a_body_sent_in_pieces_is_read_whole() {
    let (_dir, api, _) = started();
    let body = contract_request().to_string().into_bytes();
    let (whole_status, whole) = json_of(api.post_voucher(&contract_request()));
    assert_eq!(whole_status, 200, "{whole}");
    let thirds: Vec<Vec<u8>> = body
        .chunks(body.len() / 3 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(thirds.len(), 3);
    let (status, answer) = post_in_pieces(&api, &thirds);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(answer, whole);
}

#[test]
fn a_body_of_unknown_length_over_the_limit_is_413() {
    let (_dir, api, _) = started();
    let mut body = contract_request();
    body["padding"] = json!("x".repeat(20 * 1024));
    let body = body.to_string().into_bytes();
    let pieces: Vec<Vec<u8>> = body.chunks(4096).map(<[u8]>::to_vec).collect();
    let (status, answer) = post_in_pieces(&api, &pieces);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("16384"), "{answer}");
}

#[test]
fn a_configured_limit_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let api = TestApp::spawn(dir.path(), &["--max-body", "100B"]);
    assert_detail(api.post_voucher(&contract_request()), 413);
}

#[test]
fn non_json_content_types_are_415() {
    let (_dir, api, _) = started();
    let body = contract_request().to_string();
    let detail = assert_detail(api.post_raw(body.clone(), Some("text/plain")), 415);
    assert!(detail.contains("text/plain"), "{detail}");
    assert_detail(
        api.post_raw(body.clone(), Some("application/x-www-form-urlencoded")),
        415,
    );
    assert_eq!(
        api.post_raw(body.clone(), Some("application/json; charset=utf-8"))
            .status(),
        200
    );
    assert_eq!(
        api.post_raw(body, None).status(),
        200,
        "no content type is read as JSON"
    );
}

#[test]
fn other_methods_are_405_with_allow() {
    let (_dir, api, _) = started();
    let response = api.get("/api/v1/voucher");
    assert_eq!(
        response.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    assert_detail(response, 405);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/segments",
        "/openapi.json",
    ] {
        let response = api.client.delete(api.url(path)).send().expect("DELETE");
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(
            response.headers().get("allow").map(|v| v.as_bytes()),
            Some(&b"GET"[..]),
            "{path}"
        );
    }
}

#[test]
fn unknown_paths_are_404_and_counted_under_one_label() {
    let (_dir, api, _) = started();
    assert_eq!(
        assert_detail(api.get("/no/such/path-7f3a"), 404),
        "Not Found"
    );
    api.post_voucher(&contract_request());
    let metrics = api.get("/metrics").text().expect("metrics");
    assert!(!metrics.contains("7f3a"), "raw paths never become labels");
    assert!(
        metrics.contains(r#"voucher_api_http_requests_total{route="unmatched",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"voucher_api_http_requests_total{route="/api/v1/voucher",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"voucher_api_http_request_duration_seconds_bucket{route="/api/v1/voucher",le="0.001"}"#
    ));
}

#[test]
fn health_readiness_and_metrics() {
    let (_dir, api, version) = started();
    let (status, json) = json_of(api.get("/healthz"));
    assert_eq!((status, json), (200, json!({"status": "ok"})));
    let (status, json) = json_of(api.get("/readyz"));
    assert_eq!(status, 200);
    assert_eq!(
        (json["status"].as_str(), json["version"].as_str()),
        (Some("ready"), Some(version.as_str()))
    );
    assert!(
        json["age_seconds"]
            .as_i64()
            .is_some_and(|age| (0..60).contains(&age)),
        "{json}"
    );
    let response = api.get("/metrics");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/plain")),
        "prometheus text format"
    );
    let metrics = response.text().expect("text");
    assert!(
        metrics.contains(&format!(
            "voucher_api_table_info{{version=\"{version}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("voucher_api_table_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("voucher_api_table_age_seconds "),
        "{metrics}"
    );
}

#[test]
fn the_segments_route_lists_the_live_table() {
    let (_dir, api, version) = started();
    let (status, json) = json_of(api.get("/api/v1/segments"));
    assert_eq!(status, 200);
    assert_eq!(json["version"], json!(version));
    let frequent = &json["countries"]["Peru"]["frequent_segment"];
    assert_eq!(frequent.as_array().map(Vec::len), Some(3));
    assert_eq!(
        frequent[2],
        json!({"segment": "14-37", "lower": 14, "upper": 37, "voucher": 2640,
                                   "occurrences": 4, "segment_rows": 10})
    );
    assert_eq!(
        json["countries"]["Peru"]["recency_segment"][4]["upper"],
        Value::Null
    );
}

#[test]
fn the_table_route_gives_the_version_and_its_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let version = publish(dir.path(), contract_rows(2640));
    let mut manifest = voucher_shared::manifest::Manifest {
        version: version.to_string(),
        created_at: "2026-11-23T10:10:00Z".into(),
        input: "history/batch=1/part-0.parquet".into(),
        inputs: Vec::new(),
        rows_read: 100,
        rows_kept: 90,
        dropped: Default::default(),
        countries: vec!["Peru".into()],
        segments: json!({}),
        table_rows: 9,
        duration_ms: 12,
        producer: voucher_shared::manifest::Producer {
            name: "voucher-etl".into(),
            version: "0.1.0".into(),
        },
        ..Default::default()
    };
    manifest.dropped[voucher_shared::rules::DropRule::ALL[1]] = 10;
    let tables = voucher_shared::publish::TablesDir::new(dir.path());
    std::fs::write(
        tables.manifest_path(version),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("write manifest");
    let api = TestApp::spawn(dir.path(), &[]);
    let (status, json) = json_of(api.get("/api/v1/table"));
    assert_eq!(status, 200);
    assert_eq!(json["version"], json!(version.to_string()));
    assert_eq!(json["rows"], 9);
    assert_eq!(json["manifest"]["input"], "history/batch=1/part-0.parquet");
    assert_eq!(json["manifest"]["rows_read"], 100);
    assert_eq!(json["manifest"]["producer"], "voucher-etl 0.1.0");
    let rules = json["drop_rules"].as_array().expect("rules");
    assert_eq!(rules.len(), voucher_shared::rules::DropRule::ALL.len());
    let second = voucher_shared::rules::DropRule::ALL[1];
    assert_eq!(rules[1]["rule"], second.name());
    assert_eq!(rules[1]["description"], second.description());
    assert_eq!(rules[1]["dropped"], 10);
    assert_eq!(rules[0]["dropped"], 0);

    // Without a manifest the table is still described, its provenance unknown.
    let bare = tempfile::tempdir().expect("tempdir");
    publish(bare.path(), contract_rows(2640));
    let api = TestApp::spawn(bare.path(), &[]);
    let (_, json) = json_of(api.get("/api/v1/table"));
    assert_eq!(json["manifest"], Value::Null);
    assert_eq!(json["drop_rules"][0]["dropped"], Value::Null);
}

#[test]
fn the_page_and_its_files_are_served_with_a_strict_content_security_policy() {
    let (_dir, api, _) = started();
    for (path, kind) in [
        ("/", "text/html"),
        ("/page/app.js", "text/javascript"),
        ("/page/app.css", "text/css"),
        ("/page/icon.svg", "image/svg+xml"),
    ] {
        let response = api.get(path);
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let page = api.get("/").text().expect("html");
    assert!(page.contains("<h1>Voucher table</h1>"));
}

#[test]
fn openapi_and_docs_are_served_without_network() {
    let (_dir, api, _) = started();
    let (status, doc) = json_of(api.get("/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/voucher"]["post"]["responses"]["422"].is_object());
    let response = api.get("/docs");
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/docs/");
    let page = api.get("/docs/");
    assert_eq!(page.status(), 200);
    assert!(
        page.text().expect("html").contains("swagger-ui"),
        "the Swagger UI page"
    );
    let init = api.get("/docs/swagger-initializer.js").text().expect("js");
    assert!(init.contains("/openapi.json"), "{init}");
    let bundle = api.get("/docs/swagger-ui-bundle.js");
    assert_eq!(bundle.status(), 200, "the bundle is in the binary");
    assert_eq!(api.get("/docs/nothing-here.js").status(), 404);
}

#[test]
fn a_token_guards_the_voucher_and_segments_routes_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let secret = "tok-8c1d2e";
    let api = TestApp::spawn(dir.path(), &["--api-token", secret]);
    let post = |auth: Option<&str>| {
        let mut request = api
            .client
            .post(api.url("/api/v1/voucher"))
            .json(&contract_request());
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send().expect("POST")
    };
    let response = post(None);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_detail(response, 401);
    assert_detail(post(Some("Bearer wrong")), 401);
    assert_detail(post(Some(&format!("Bearer {secret}x"))), 401);
    assert_eq!(post(Some(&format!("Bearer {secret}"))).status(), 200);
    assert_detail(api.get("/api/v1/segments"), 401);
    let segments = api
        .client
        .get(api.url("/api/v1/segments"))
        .bearer_auth(secret)
        .send()
        .expect("GET");
    assert_eq!(segments.status(), 200);
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(api.get(open).status(), 200, "{open} stays open");
    }
    let (_, doc) = json_of(api.get("/openapi.json"));
    assert_eq!(
        doc["paths"]["/api/v1/voucher"]["post"]["security"],
        json!([{"bearer": []}])
    );
}
