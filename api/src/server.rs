//! Building the application from its config and running it until a signal stops it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::grpc::server::{GrpcError, GrpcServer};
use crate::grpc::service::VoucherGrpc;
use crate::http::openapi;
use crate::http::routes::{self, AppState};
use crate::metrics::{self, Metrics};
use crate::tables::{PollState, Reloader, Tables};
use crate::tls::{TlsError, TlsFiles};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no tables directory: set --tables-dir or VOUCHER_TABLES_DIR")]
    NoTablesDir,
    #[error("cannot create metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot render the OpenAPI document")]
    OpenApi(#[from] serde_json::Error),
    #[error("cannot use the TLS certificate and key")]
    Tls(#[from] TlsError),
    #[error("cannot start the gRPC server")]
    Grpc(#[from] GrpcError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// What can stop a process that serves HTTP from starting or running; shared by both binaries
/// (`voucher-api`'s server and the health endpoints of `voucher-events`).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}")]
    Bind { address: String, source: io::Error },
    #[error("cannot start the table reloader")]
    Reloader(#[source] io::Error),
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
}

/// A bound, not yet running application.
pub struct Application {
    server: Server,
    addresses: Vec<SocketAddr>,
    state: web::Data<AppState>,
    grpc: GrpcServer,
    reloader: Reloader,
    drain_delay: Duration,
    shutdown_timeout: Duration,
    tls: bool,
}

impl Application {
    /// Loads the live table if there is one, binds the listener and starts the reloader. Must be
    /// called inside the actix runtime.
    pub fn build(config: &Config) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let tables_dir = config.tables_dir.as_ref().ok_or(StartError::NoTablesDir)?;
        let tables = Arc::new(Tables::new(tables_dir));
        let mut poll_state = PollState::default();
        // A missing or bad table at start is not fatal: the API answers 503 until one loads.
        tables.poll(&mut poll_state, &metrics);

        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles::load(cert, key)?),
            _ => None,
        };
        let draining = Arc::new(AtomicBool::new(false));
        let grpc = GrpcServer::start(
            &format!("{}:{}", config.host, config.grpc_port),
            config.worker_count(),
            VoucherGrpc {
                tables: Arc::clone(&tables),
                metrics: metrics.clone(),
                token: config.api_token.clone(),
            },
            Arc::clone(&draining),
            tls.as_ref()
                .map(|t| (t.cert_pem.as_slice(), t.key_pem.as_slice())),
        )?;
        let openapi_json = serde_json::to_vec(&openapi::document(config.api_token.is_some()))?;
        let state = web::Data::new(AppState {
            tables: Arc::clone(&tables),
            metrics: metrics.clone(),
            token: config.api_token.clone(),
            max_body: config.max_body.0,
            max_batch_body: config.max_batch_body.0,
            retry_after_secs: config.reload_interval.as_secs_f64().ceil().max(1.0) as u64,
            draining,
            openapi_json: openapi_json.into(),
            swagger: Arc::new(openapi::swagger_config()),
        });

        let app_state = state.clone();
        let address = format!("{}:{}", config.host, config.port);
        let server = HttpServer::new(move || {
            let meter = app_state.metrics.worker_meter();
            App::new()
                .wrap(from_fn(move |req, next| {
                    metrics::meter(meter.clone(), req, next)
                }))
                .configure(|cfg| routes::configure(cfg, &app_state))
        })
        .workers(config.worker_count())
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        // Signals are handled in `run_until_stopped`, which turns readiness off first.
        .disable_signals();
        let server = match &tls {
            Some(tls) => server.bind_rustls_0_23(&address, (*tls.http).clone()),
            None => server.bind(&address),
        }
        .map_err(|source| ServeError::Bind {
            address: address.clone(),
            source,
        })?;
        let addresses = server.addrs();
        let server = server.run();

        let reloader = Reloader::spawn(tables, metrics, config.reload_interval, poll_state)
            .map_err(ServeError::Reloader)?;
        Ok(Application {
            server,
            addresses,
            state,
            grpc,
            reloader,
            drain_delay: config.drain_delay,
            shutdown_timeout: config.shutdown_timeout,
            tls: tls.is_some(),
        })
    }

    /// The addresses the listener is bound to (useful with port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The address of the gRPC listener.
    pub fn grpc_address(&self) -> SocketAddr {
        self.grpc.address()
    }

    /// Whether both doors serve TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The port the listener is bound to (the first address's).
    pub fn port(&self) -> u16 {
        self.addresses.first().map_or(0, SocketAddr::port)
    }

    /// A handle that stops the server (tests stop in-process servers with it).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully: readiness turns 503, (on SIGTERM)
    /// the drain delay passes, the listener closes and in-flight requests finish.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let handle = self.server.handle();
        let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
        let state = self.state.clone();
        let grpc = self.grpc.stopper();
        let drain_delay = self.drain_delay;
        actix_web::rt::spawn(async move {
            let drain = tokio::select! {
                _ = terminate.recv() => {
                    log::info!("SIGTERM received: readiness is now 503; draining for {drain_delay:?}, then finishing in-flight requests");
                    drain_delay
                }
                _ = interrupt.recv() => {
                    log::info!("SIGINT received: finishing in-flight requests");
                    Duration::ZERO
                }
            };
            state.draining.store(true, Ordering::Relaxed);
            if !drain.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(drain) => {}
                    // A second signal cuts the drain short.
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            grpc.stop_accepting();
            handle.stop(true).await;
        });
        self.run().await
    }

    /// Serves until stopped through [`Application::handle`]; then stops gRPC (letting its
    /// calls finish) and the reloader.
    pub async fn run(self) -> Result<(), StartError> {
        let result = self.server.await;
        let (grpc, timeout) = (self.grpc, self.shutdown_timeout);
        // Waiting blocks, so off the actix thread.
        let _ = actix_web::rt::task::spawn_blocking(move || grpc.stop(timeout)).await;
        self.reloader.stop();
        match result {
            Ok(()) => {
                log::info!("stopped");
                Ok(())
            }
            Err(e) => Err(ServeError::Serve(e).into()),
        }
    }
}
