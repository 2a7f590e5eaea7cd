//! The composition root: building the application (the tables, both doors and the page) from
//! its config, and running it until a signal stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use voucher_serve::ServeError;
use voucher_serve::customers::{self, Customers};
use voucher_serve::health::{Draining, HealthState};
use voucher_serve::metrics::{Binary, Metrics};
use voucher_serve::signals::{Signals, Stop};
use voucher_serve::tables::{PollState, Reloader, Tables};

use crate::config::Config;
use crate::grpc::server::{GrpcError, GrpcServer};
use crate::grpc::service::VoucherGrpc;
use crate::http::listing::Listings;
use crate::http::metrics::{self as http_metrics, HttpMetrics};
use crate::http::openapi;
use crate::http::routes::{self, AppState};
use crate::tls::{TlsError, TlsFiles};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no tables directory: set --tables-dir or VOUCHER_TABLES_DIR")]
    NoTablesDir,
    #[error("cannot render the OpenAPI document")]
    OpenApi(#[from] serde_json::Error),
    #[error("cannot use the TLS certificate and key")]
    Tls(#[from] TlsError),
    #[error("cannot start the gRPC server")]
    Grpc(#[from] GrpcError),
    #[error("cannot start the customer store")]
    Customers(#[from] customers::StartError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl From<prometheus::Error> for StartError {
    fn from(error: prometheus::Error) -> Self {
        StartError::Serve(ServeError::Metrics(error))
    }
}

/// A bound, not yet running application.
pub struct Application {
    server: Server,
    addresses: Vec<SocketAddr>,
    draining: Draining,
    grpc: GrpcServer,
    reloader: Reloader,
    drain_delay: Duration,
    shutdown_timeout: Duration,
    tls: bool,
}

impl Application {
    /// Loads the live table if there is one, binds both listeners and starts the reloader.
    /// Must be called inside the actix runtime.
    pub fn build(config: &Config) -> Result<Self, StartError> {
        let metrics = Metrics::new(Binary::Api)?;
        let tables_dir = config.tables_dir.as_ref().ok_or(StartError::NoTablesDir)?;
        let tables = Arc::new(Tables::new(tables_dir));
        let mut poll_state = PollState::default();
        // A missing or bad table at start is not fatal: the API answers 503 until one loads.
        tables.poll(&mut poll_state, &metrics);

        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles::load(cert, key)?),
            _ => None,
        };
        let customers = Customers::start(&config.customers, "voucher-api", metrics.registry())?;
        let draining = Draining::default();
        let grpc = GrpcServer::start(
            &format!("{}:{}", config.host, config.grpc_port),
            config.worker_count(),
            VoucherGrpc::new(
                Arc::clone(&tables),
                customers.clone(),
                metrics.clone(),
                config.api_token.clone(),
                config.max_body.0,
            )?,
            draining.clone(),
            tls.as_ref()
                .map(|t| (t.cert_pem.as_slice(), t.key_pem.as_slice())),
        )?;
        let mut health = HealthState::new(
            Arc::clone(&tables),
            metrics.clone(),
            draining.clone(),
            "finishing in-flight requests",
        );
        if let Some(check) = customers.check() {
            health = health.with_check(check);
        }
        let health = web::Data::new(health);
        let state = app_state(config, Arc::clone(&tables), customers, metrics.clone())?;
        let state = web::Data::new(state);
        let (server, addresses) = http_server(config, state, health, tls.as_ref())?;
        let reloader = Reloader::spawn(tables, metrics, config.reload_interval, poll_state)
            .map_err(ServeError::Reloader)?;
        Ok(Application {
            server,
            addresses,
            draining,
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
    /// the drain delay passes, the listeners close and in-flight requests finish. `signals`
    /// are installed by the caller before it says the server listens, so that a signal sent
    /// as soon as it does is not the default (killing) one.
    pub async fn run_until_stopped(self, mut signals: Signals) -> Result<(), StartError> {
        let handle = self.server.handle();
        let draining = self.draining.clone();
        let grpc = self.grpc.stopper();
        let drain_delay = self.drain_delay;
        actix_web::rt::spawn(async move {
            let drain = match signals.recv().await {
                Stop::Terminate => {
                    log::info!(
                        "SIGTERM received: readiness is now 503; draining for {drain_delay:?}, then finishing in-flight requests"
                    );
                    drain_delay
                }
                Stop::Interrupt => {
                    log::info!("SIGINT received: finishing in-flight requests");
                    Duration::ZERO
                }
            };
            draining.start();
            if !drain.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(drain) => {}
                    // A second signal cuts the drain short.
                    _ = signals.recv() => {}
                }
            }
            log::info!("closing the listeners; in-flight requests go on");
            // Both doors drain at once, within the one --shutdown-timeout: gRPC waits in `run`
            // only for what is left of it once HTTP is done.
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

/// What every HTTP worker shares.
fn app_state(
    config: &Config,
    tables: Arc<Tables>,
    customers: Customers,
    metrics: Metrics,
) -> Result<AppState, StartError> {
    let openapi_json = serde_json::to_vec(&openapi::document(config.api_token.is_some()))?;
    Ok(AppState {
        tables,
        customers,
        metrics,
        token: config.api_token.clone(),
        max_body: config.max_body.0,
        max_batch_body: config.max_batch_body.0,
        retry_after_secs: config.reload_interval.as_secs_f64().ceil().max(1.0) as u64,
        openapi_json: openapi_json.into(),
        swagger: Arc::new(openapi::swagger_config()),
        listings: Listings::default(),
    })
}

/// The HTTP server, bound and running (signals are handled by
/// [`Application::run_until_stopped`], which turns readiness off first).
fn http_server(
    config: &Config,
    state: web::Data<AppState>,
    health: web::Data<HealthState>,
    tls: Option<&TlsFiles>,
) -> Result<(Server, Vec<SocketAddr>), StartError> {
    let requests = HttpMetrics::register(state.metrics.registry())?;
    let address = format!("{}:{}", config.host, config.port);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(http_metrics::Meter(requests.worker_meter()))
            .configure(|cfg| routes::configure(cfg, &state, &health))
    })
    .workers(config.worker_count())
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .disable_signals();
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&address, (*tls.http).clone()),
        None => server.bind(&address),
    }
    .map_err(|source| ServeError::Bind {
        address: address.clone(),
        source,
    })?;
    let addresses = server.addrs();
    Ok((server.run(), addresses))
}
