//! The gRPC door on its own: status codes, token, health, reflection, metrics and TLS, with
//! the generated Rust client over a real connection. (That it answers as the HTTP door does is
//! in `doors`.)

use std::time::Duration;

use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_types::StatusExt as _;
use voucher_api::grpc::proto;
use voucher_api::grpc::proto::voucher_service_client::VoucherServiceClient;

use crate::doors::{runtime, to_message};
use crate::helpers::{Http, TestApp, contract_request, contract_rows, publish, wait_until};

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.grpc))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

async fn health(channel: Channel, service: &str) -> ServingStatus {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check");
    response.get_ref().status()
}

fn contract_message() -> proto::VoucherRequest {
    to_message(&contract_request())
}

#[test]
fn get_voucher_answers_and_maps_each_refusal_to_its_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let version = publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    runtime().block_on(async {
        let mut client = VoucherServiceClient::new(channel(&app).await);
        let answer = client.get_voucher(contract_message()).await.expect("ok");
        assert_eq!(answer.get_ref().voucher, 2640);
        assert_eq!(answer.get_ref().segment, "14-37");
        assert_eq!(answer.get_ref().version, version.to_string());

        let bad = proto::VoucherRequest {
            total_orders: Some(-3),
            segment_name: None,
            ..contract_message()
        };
        let status = client.get_voucher(bad).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("BadRequest").field_violations;
        let fields: Vec<(&str, &str)> = violations
            .iter()
            .map(|v| (v.field.as_str(), v.reason.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("total_orders", "GREATER_THAN_EQUAL"),
                ("segment_name", "MISSING")
            ]
        );

        let uncovered = proto::VoucherRequest {
            total_orders: Some(500),
            ..contract_message()
        };
        let status = client.get_voucher(uncovered).await.expect_err("no segment");
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().contains("total_orders = 500"),
            "{}",
            status.message()
        );
    });
    let text = app.get("/metrics").text().expect("metrics");
    for series in [
        r#"voucher_api_grpc_requests_total{code="OK",method="GetVoucher"} 1"#,
        r#"voucher_api_grpc_requests_total{code="InvalidArgument",method="GetVoucher"} 1"#,
        r#"voucher_api_grpc_requests_total{code="NotFound",method="GetVoucher"} 1"#,
        r#"voucher_api_scored_total{door="grpc",outcome="ok"} 1"#,
        r#"voucher_api_grpc_request_duration_seconds_count{method="GetVoucher"} 3"#,
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
}

#[test]
fn before_a_table_calls_are_unavailable_and_health_is_not_serving_then_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn(dir.path(), &[]);
    runtime().block_on(async {
        let channel = channel(&app).await;
        let mut client = VoucherServiceClient::new(channel.clone());
        let status = client
            .get_voucher(contract_message())
            .await
            .expect_err("no table");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("no voucher table"),
            "{}",
            status.message()
        );
        let stream = client
            .score_vouchers(futures_util::stream::iter([contract_message()]))
            .await;
        assert_eq!(
            stream.map(|_| ()).expect_err("no table").code(),
            Code::Unavailable
        );
        for service in ["", "voucher.v1.VoucherService"] {
            assert_eq!(
                health(channel.clone(), service).await,
                ServingStatus::NotServing
            );
        }

        publish(dir.path(), contract_rows(2640));
        let started = std::time::Instant::now();
        while health(channel.clone(), "voucher.v1.VoucherService").await != ServingStatus::Serving {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "health never turned SERVING"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(client.get_voucher(contract_message()).await.is_ok());
    });
}

#[test]
fn the_token_guards_the_voucher_service_but_not_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &["--api-token", "s3cret"]);
    runtime().block_on(async {
        let channel = channel(&app).await;
        let mut client = VoucherServiceClient::new(channel.clone());
        let status = client
            .get_voucher(contract_message())
            .await
            .expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated);
        let stream = client
            .score_vouchers(futures_util::stream::iter([contract_message()]))
            .await;
        assert_eq!(
            stream.map(|_| ()).expect_err("no token").code(),
            Code::Unauthenticated
        );
        for token in ["Bearer wrong", "s3cret"] {
            let mut request = tonic::Request::new(contract_message());
            request
                .metadata_mut()
                .insert("authorization", token.parse().expect("ascii"));
            let status = client.get_voucher(request).await.expect_err(token);
            assert_eq!(status.code(), Code::Unauthenticated, "{token}");
        }
        let mut request = tonic::Request::new(contract_message());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().expect("ascii"));
        assert_eq!(
            client
                .get_voucher(request)
                .await
                .expect("ok")
                .get_ref()
                .voucher,
            2640
        );
        assert_eq!(health(channel, "").await, ServingStatus::Serving);
    });
    let text = app.get("/metrics").text().expect("metrics");
    assert!(
        text.contains(
            r#"voucher_api_grpc_requests_total{code="Unauthenticated",method="GetVoucher"} 3"#
        ),
        "{text}"
    );
}

#[test]
fn reflection_lists_the_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    let services = runtime().block_on(async {
        let mut client = ServerReflectionClient::new(channel(&app).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(futures_util::stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner();
        let response = responses.message().await.expect("a response").expect("one");
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        }
    });
    for name in ["voucher.v1.VoucherService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == name), "{name} in {services:?}");
    }
}

#[test]
fn a_stream_is_answered_from_one_version_even_across_a_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    let versions = runtime().block_on(async {
        let mut client = VoucherServiceClient::new(channel(&app).await);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut results = client
            .score_vouchers(tokio_stream_from(rx))
            .await
            .expect("stream")
            .into_inner();
        tx.send(contract_message()).await.expect("send");
        let a = results.message().await.expect("result").expect("one");
        // A new version goes live while the stream is open. (The blocking HTTP client runs
        // its own runtime, so outside this one.)
        std::thread::scope(|s| {
            s.spawn(|| {
                // Version names have a one-second resolution.
                std::thread::sleep(Duration::from_millis(1100));
                publish(dir.path(), contract_rows(3000));
                wait_until(Duration::from_secs(10), "the reload", || {
                    app.get("/readyz")
                        .text()
                        .is_ok_and(|t| !t.contains(&first.to_string()))
                });
            });
        });
        tx.send(contract_message()).await.expect("send");
        let b = results.message().await.expect("result").expect("two");
        drop(tx);
        assert!(results.message().await.expect("end").is_none());
        [a, b].map(|r| match r.outcome {
            Some(proto::score_result::Outcome::Voucher(v)) => (v.version, v.voucher),
            other => panic!("{other:?}"),
        })
    });
    assert_eq!(versions[0], versions[1], "one stream, one version");
    assert_eq!(versions[0], (first.to_string(), 2640));
    // A new call sees the new version.
    let (_, body) = crate::helpers::json_of(app.post_voucher(&contract_request()));
    assert_eq!(body["voucher"], 3000);
}

/// A stream of the messages sent on `rx`.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<proto::VoucherRequest>,
) -> impl futures_util::Stream<Item = proto::VoucherRequest> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM (certificate, key).
fn test_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("a test certificate");
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key, cert_pem)
}

#[test]
fn tls_serves_both_doors_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    publish(&tables, contract_rows(2640));
    let (cert, key, cert_pem) = test_certificate(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let app = TestApp::spawn(&tables, &["--tls-cert", &cert, "--tls-key", &key]);

    let port = app.base.rsplit(':').next().expect("port").to_owned();
    let https = Http::with_client(
        format!("https://localhost:{port}"),
        reqwest::blocking::Client::builder().add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"),
        ),
    );
    let (status, body) = crate::helpers::json_of(https.post_voucher(&contract_request()));
    assert_eq!((status, body["voucher"].as_i64()), (200, Some(2640)));
    assert!(
        app.client.get(app.url("/healthz")).send().is_err(),
        "plain HTTP is refused"
    );

    runtime().block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&cert_pem))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://{}", app.grpc))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("a TLS connection");
        let answer = VoucherServiceClient::new(channel)
            .get_voucher(contract_message())
            .await
            .expect("ok");
        assert_eq!(answer.get_ref().voucher, 2640);
        let plain = Channel::from_shared(format!("http://{}", app.grpc))
            .expect("uri")
            .connect()
            .await;
        if let Ok(plain) = plain {
            let refused = VoucherServiceClient::new(plain)
                .get_voucher(contract_message())
                .await;
            assert!(refused.is_err(), "plain gRPC is refused");
        }
    });
}

#[test]
fn unusable_tls_files_stop_the_start_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _key, _) = test_certificate(dir.path());
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").expect("write");
    let missing = dir.path().join("missing.pem");
    for (cert, key, expected) in [
        (
            &cert,
            &not_a_key,
            format!("{} holds no PEM private key", not_a_key.display()),
        ),
        (
            &missing,
            &not_a_key,
            format!("cannot read TLS file {}", missing.display()),
        ),
        (
            &not_a_key,
            &not_a_key,
            format!("{} holds no PEM certificate", not_a_key.display()),
        ),
    ] {
        let config = <voucher_api::config::Config as clap::Parser>::try_parse_from([
            "voucher-api",
            "--tables-dir",
            &dir.path().display().to_string(),
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ])
        .expect("config");
        let error = actix_web::rt::System::new()
            .block_on(async { voucher_api::server::Application::build(&config).map(|_| ()) })
            .expect_err("refused");
        let message = voucher_shared::errors::Chain(&error).to_string();
        assert!(message.contains(&expected), "{message}");
    }
}

/// A client codec that sends and receives raw message bytes, to send what the generated client
/// never would.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Field 2 (`country_code`, a string) holding bytes that are not UTF-8: no VoucherRequest.
const NOT_A_MESSAGE: &[u8] = &[0x12, 0x02, 0xff, 0xfe];

async fn raw_unary(
    app: &TestApp,
    bytes: Vec<u8>,
    token: Option<&str>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel(app).await);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(bytes);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.parse().expect("ascii"));
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/voucher.v1.VoucherService/GetVoucher",
    );
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

#[test]
fn unreadable_and_oversized_messages_are_invalid_argument_and_resource_exhausted_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    runtime().block_on(async {
        let status = raw_unary(&app, NOT_A_MESSAGE.to_vec(), None)
            .await
            .expect_err("not a message");
        println!(
            "unreadable GetVoucher: {:?} {}",
            status.code(),
            status.message()
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(
            status.message().contains("VoucherRequest"),
            "{}",
            status.message()
        );

        let status = raw_unary(&app, vec![0; 20 * 1024], None)
            .await
            .expect_err("too large");
        println!(
            "oversized GetVoucher: {:?} {}",
            status.code(),
            status.message()
        );
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{}",
            status.message()
        );

        // A readable message of the same call still answers.
        let mut client = VoucherServiceClient::new(channel(&app).await);
        assert!(client.get_voucher(contract_message()).await.is_ok());

        // In a stream: the messages before are answered, the unreadable one ends the stream.
        let mut grpc = tonic::client::Grpc::new(channel(&app).await);
        grpc.ready().await.expect("ready");
        let good = prost::Message::encode_to_vec(&contract_message());
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/voucher.v1.VoucherService/ScoreVouchers",
        );
        let messages = futures_util::stream::iter([good, NOT_A_MESSAGE.to_vec()]);
        let mut results = grpc
            .streaming(tonic::Request::new(messages), path, RawCodec)
            .await
            .expect("stream")
            .into_inner();
        assert!(results.message().await.expect("a result").is_some());
        let status = results.message().await.expect_err("the stream ends");
        println!(
            "unreadable ScoreVouchers message: {:?} {}",
            status.code(),
            status.message()
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    });
    let text = app.get("/metrics").text().expect("metrics");
    for series in [
        r#"voucher_api_grpc_requests_total{code="InvalidArgument",method="GetVoucher"} 1"#,
        r#"voucher_api_grpc_requests_total{code="ResourceExhausted",method="GetVoucher"} 1"#,
        r#"voucher_api_grpc_requests_total{code="OK",method="GetVoucher"} 1"#,
        r#"voucher_api_grpc_requests_total{code="InvalidArgument",method="ScoreVouchers"} 1"#,
        r#"voucher_api_scored_total{door="grpc",outcome="malformed"} 2"#,
        r#"voucher_api_scored_total{door="grpc_stream",outcome="malformed"} 1"#,
        r#"voucher_api_scored_total{door="grpc_stream",outcome="ok"} 1"#,
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
}

#[test]
fn the_token_is_checked_before_the_message_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &["--api-token", "s3cret"]);
    runtime().block_on(async {
        for bytes in [NOT_A_MESSAGE.to_vec(), vec![0; 5 << 20]] {
            let status = raw_unary(&app, bytes, None).await.expect_err("no token");
            assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
        }
        let status = raw_unary(&app, NOT_A_MESSAGE.to_vec(), Some("Bearer s3cret"))
            .await
            .expect_err("not a message");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    });
    let text = app.get("/metrics").text().expect("metrics");
    assert!(
        text.contains(
            r#"voucher_api_grpc_requests_total{code="Unauthenticated",method="GetVoucher"} 2"#
        ),
        "{text}"
    );
}

#[test]
fn a_huge_field_is_refused_with_a_bounded_status_on_both_methods() {
    let dir = tempfile::tempdir().expect("tempdir");
    publish(dir.path(), contract_rows(2640));
    let app = TestApp::spawn(dir.path(), &[]);
    let huge = "Ω".repeat(2000);
    let bad = proto::VoucherRequest {
        country_code: Some(huge.clone()),
        last_order_ts: Some(format!("{}x", "2".repeat(4000))),
        ..contract_message()
    };
    runtime().block_on(async {
        let mut client = VoucherServiceClient::new(channel(&app).await);
        let status = client.get_voucher(bad.clone()).await.expect_err("invalid");
        println!(
            "4,000-byte country_code: {:?}, message of {} bytes, details of {} bytes",
            status.code(),
            status.message().len(),
            status.details().len()
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().len() < 2000, "{}", status.message().len());
        assert!(status.details().len() < 2000, "{}", status.details().len());
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("BadRequest").field_violations;
        assert_eq!(violations[0].field, "country_code");
        assert_eq!(violations[0].reason, "STRING_TOO_LONG");
        assert!(
            violations[0].description.contains("(4000 bytes)"),
            "{}",
            violations[0].description
        );

        let mut results = client
            .score_vouchers(futures_util::stream::iter([bad]))
            .await
            .expect("stream")
            .into_inner();
        let result = results.message().await.expect("result").expect("one");
        let Some(proto::score_result::Outcome::Invalid(invalid)) = result.outcome else {
            panic!("{result:?}");
        };
        let size: usize = invalid.violations.iter().map(|v| v.description.len()).sum();
        assert!(size < 2000, "{size}");
    });
}
