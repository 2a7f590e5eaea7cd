//! The real binary: signals, exit codes and its log.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::helpers::{BinaryApp, contract_request, contract_rows, json_of, publish, wait_until};

/// Generous for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(5);

/// Whether nothing listens on `address` any more: a connection is refused.
fn closed(address: &str) -> bool {
    match TcpStream::connect(address) {
        Ok(_) => false,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{address}: {e}");
            true
        }
    }
}

/// A `ScoreVouchers` stream on `channel` whose first request has been answered, left open: the
/// sender of its further requests and its results.
async fn open_grpc_stream(
    channel: tonic::transport::Channel,
) -> (
    tokio::sync::mpsc::Sender<voucher_api::grpc::proto::VoucherRequest>,
    tonic::Streaming<voucher_api::grpc::proto::ScoreResult>,
) {
    let mut client =
        voucher_api::grpc::proto::voucher_service_client::VoucherServiceClient::new(channel);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let mut results = client
        .score_vouchers(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
        .await
        .expect("stream")
        .into_inner();
    tx.send(crate::doors::to_message(&contract_request()))
        .await
        .expect("send");
    assert!(results.message().await.expect("result").is_some());
    (tx, results)
}

#[test]
fn the_token_is_never_logged_and_5xx_are_logged_with_their_cause_once_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "s3cret-token-value";
    let api = BinaryApp::start(dir.path(), &["--api-token", secret]);
    let post = || {
        let response = api
            .client
            .post(api.url("/api/v1/voucher"))
            .bearer_auth(secret)
            .json(&contract_request())
            .send()
            .expect("POST");
        assert_eq!(response.status(), 503, "no table yet");
    };
    let line = "POST /api/v1/voucher -> 503: no voucher table is loaded yet";
    let started = std::time::Instant::now();
    post();
    wait_until(SLACK, "the 503 to be logged", || api.logs().contains(line));
    // A burst, then one more a second later: its line counts those that were not logged.
    for _ in 0..50 {
        post();
    }
    std::thread::sleep(Duration::from_millis(1100));
    post();
    wait_until(SLACK, "a line counting the others", || {
        api.logs()
            .contains("more 503 on this route since its last line, not logged)")
    });
    let logs = api.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(line)).collect();
    let not_logged: u64 = lines
        .iter()
        .filter_map(|l| {
            let (_, note) = l.rsplit_once(" (")?;
            note.ends_with("not logged)")
                .then(|| note.split(' ').next()?.parse::<u64>().ok())?
        })
        .sum();
    assert_eq!(lines.len() as u64 + not_logged, 52, "{logs}");
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        lines.len() <= seconds + 2,
        "{} lines in {seconds} s:\n{logs}",
        lines.len()
    );
    assert!(
        logs.contains("starting voucher-api"),
        "the config is logged:\n{logs}"
    );
    assert!(!logs.contains(secret), "{logs}");
}

#[test]
fn routes_prints_the_route_table() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-api"))
        .arg("routes")
        .env_remove("VOUCHER_TABLES_DIR")
        .output()
        .expect("run voucher-api routes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let routes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let routes = routes.as_array().expect("an array");
    assert_eq!(routes.len(), voucher_api::http::routes::routes().count());
    assert!(routes.contains(&serde_json::json!(
        {"method": "POST", "path": "/api/v1/voucher", "token": true}
    )));
    assert!(routes.contains(&serde_json::json!(
        {"method": "GET", "path": "/readyz", "token": false}
    )));
}

#[test]
fn sigterm_turns_readiness_off_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let mut api = BinaryApp::start(dir.path(), &["--drain-delay", "1s"]);
    let address = api.base.trim_start_matches("http://").to_owned();

    // A request whose body is only half sent when the signal arrives.
    let body = contract_request().to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(&address).expect("connect");
    write!(
        in_flight,
        "POST /api/v1/voucher HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .expect("write head");
    in_flight.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(100));

    api.signal("TERM");
    wait_until(SLACK, "readiness to turn 503", || {
        api.get("/readyz").status() == 503
    });
    let (_, json) = json_of(api.get("/readyz"));
    assert_eq!(json["status"], "draining");
    assert_eq!(
        api.post_voucher(&contract_request()).status(),
        200,
        "still serving while draining"
    );

    // After the drain delay the listener is closed, but the in-flight request completes.
    wait_until(SLACK, "the listener to close", || closed(&address));
    in_flight.write_all(tail.as_bytes()).expect("write tail");
    let mut response = String::new();
    in_flight
        .read_to_string(&mut response)
        .expect("read response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"voucher\":2640"), "{response}");

    let status = api.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", api.logs());
    assert!(api.logs().contains("SIGTERM received"), "{}", api.logs());
}

#[test]
fn ctrl_c_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut api = BinaryApp::start(dir.path(), &[]);
    api.signal("INT");
    let status = api.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", api.logs());
    assert!(api.logs().contains("stopped"), "{}", api.logs());
}

#[test]
fn sigterm_turns_grpc_health_off_and_lets_an_open_stream_finish() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use voucher_api::grpc::proto::score_result::Outcome;

    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let mut api = BinaryApp::start(dir.path(), &["--drain-delay", "1s"]);
    let grpc = format!("http://{}", api.grpc_address());
    crate::doors::runtime().block_on(async {
        let channel = tonic::transport::Channel::from_shared(grpc)
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let (tx, mut results) = open_grpc_stream(channel).await;
        let message = crate::doors::to_message(&contract_request());

        api.signal("TERM");
        let started = std::time::Instant::now();
        loop {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|r| r.get_ref().status());
            if status.is_ok_and(|s| s == ServingStatus::NotServing) {
                break;
            }
            assert!(started.elapsed() < SLACK, "health never turned NOT_SERVING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Past the drain delay the listener is closed; the open stream is still answered.
        let grpc_address = api.grpc_address();
        wait_until(SLACK, "the gRPC listener to close", || {
            closed(&grpc_address)
        });
        tx.send(message).await.expect("send");
        let last = results.message().await.expect("result").expect("one more");
        assert!(matches!(last.outcome, Some(Outcome::Voucher(v)) if v.voucher == 2640));
        drop(tx);
        assert!(results.message().await.expect("end").is_none());
    });
    let status = api.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", api.logs());
    assert!(api.logs().contains("gRPC on"), "{}", api.logs());
}

#[test]
fn http_and_grpc_drain_at_once_within_one_shutdown_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(4);
    // Past the timeout: the time to notice the signal and exit. Draining one door after the
    // other takes twice the timeout.
    const MARGIN: Duration = Duration::from_millis(2500);
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let mut api = BinaryApp::start(
        dir.path(),
        &["--drain-delay", "0s", "--shutdown-timeout", "4s"],
    );
    let address = api.base.trim_start_matches("http://").to_owned();
    let grpc = format!("http://{}", api.grpc_address());
    let line = contract_request().to_string();
    crate::doors::runtime().block_on(async {
        // An NDJSON stream whose first line is answered, and whose body never ends.
        let mut ndjson = TcpStream::connect(&address).expect("connect");
        write!(
            ndjson,
            "POST /api/v1/vouchers HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{line}\n\r\n",
            line.len() + 1
        )
        .expect("write a line");
        ndjson.flush().expect("flush");
        let mut answered = [0; 64];
        ndjson
            .set_read_timeout(Some(SLACK))
            .expect("read timeout");
        let read = ndjson.read(&mut answered).expect("the stream's head");
        assert!(answered[..read].starts_with(b"HTTP/1.1 200"), "{:?}", &answered[..read]);

        // A gRPC stream whose first message is answered, and whose requests never end.
        let channel = tonic::transport::Channel::from_shared(grpc)
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let (tx, results) = open_grpc_stream(channel).await;

        api.signal("TERM");
        let started = std::time::Instant::now();
        let status = api.wait_exit(TIMEOUT + MARGIN + SLACK);
        let took = started.elapsed();
        println!("SIGTERM with an open NDJSON and an open gRPC stream, --shutdown-timeout 4s: exited after {took:?}");
        assert_eq!(status.code(), Some(0), "{}", api.logs());
        assert!(took < TIMEOUT + MARGIN, "exited after {took:?}: {}", api.logs());
        drop((tx, results, ndjson));
    });
}
