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
