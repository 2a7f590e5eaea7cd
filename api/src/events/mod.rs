//! The events door: `voucher-events` consumes voucher request events from Kafka, scores each
//! with the core against the live table, and produces a result (or a dead letter) per event,
//! at least once.
//!
//! A binary of its own rather than a mode of `voucher-api`: it scales with the topic's
//! partitions and lag, not with HTTP traffic, and a broker outage must never touch the HTTP
//! and gRPC doors. It shares everything else with them: the tables and their hot reload, the
//! metrics registry, and the scoring core.
//!
//! - [`config`]: flags and their environment twins;
//! - [`event`]: one payload → a result or a dead letter (pure, unit-tested);
//! - [`consumer`]: the Kafka loop and its offset discipline;
//! - [`metrics`]: the events door's own metrics;
//! - this module: the application (health, readiness and metrics over HTTP; signals).

pub mod config;
pub mod consumer;
pub mod event;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use voucher_shared::score::now_secs;

use self::config::EventsConfig;
use self::consumer::{BrokerStatus, EventLoop};
use self::metrics::EventMetrics;
use crate::http::model::{Health, NotReady, Ready};
use crate::http::routes::{HEALTHZ, METRICS, READYZ};
use crate::metrics::{Door, Metrics};
use crate::server::ServeError;
use crate::tables::{PollState, Reloader, Tables};

/// Why `voucher-events` could not start or went on.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot create metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot create the Kafka {role} (check --kafka-brokers and --kafka-option)")]
    Client {
        role: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot subscribe to {topic}")]
    Subscribe {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("a task of voucher-events panicked")]
    Join,
}

/// What the health endpoints read.
struct State {
    tables: Arc<Tables>,
    metrics: Metrics,
    broker: Arc<BrokerStatus>,
    draining: AtomicBool,
}

/// A started, not yet running `voucher-events`.
pub struct EventsApp {
    server: Server,
    addresses: Vec<SocketAddr>,
    state: web::Data<State>,
    events: EventLoop,
    reloader: Reloader,
}

impl EventsApp {
    /// Loads the live table if there is one, creates the Kafka clients and binds the health
    /// endpoints. Must be called inside the actix runtime.
    pub fn build(config: &EventsConfig) -> Result<Self, EventsError> {
        let metrics = Metrics::new()?;
        let event_metrics = EventMetrics::register(metrics.registry())?;
        let tables = Arc::new(Tables::new(&config.tables_dir));
        let mut poll_state = PollState::default();
        tables.poll(&mut poll_state, &metrics);
        let events = EventLoop::new(
            config,
            Arc::clone(&tables),
            event_metrics,
            metrics.door(Door::Events).clone(),
        )?;
        let state = web::Data::new(State {
            tables: Arc::clone(&tables),
            metrics: metrics.clone(),
            broker: events.broker_status(),
            draining: AtomicBool::new(false),
        });
        let app_state = state.clone();
        let address = format!("{}:{}", config.host, config.port);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .route(HEALTHZ, web::get().to(healthz))
                .route(READYZ, web::get().to(readyz))
                .route(METRICS, web::get().to(metrics_text))
        })
        .workers(1)
        .disable_signals()
        .bind(&address)
        .map_err(|source| ServeError::Bind {
            address: address.clone(),
            source,
        })?;
        let addresses = server.addrs();
        let reloader = Reloader::spawn(tables, metrics, config.reload_interval, poll_state)
            .map_err(ServeError::Reloader)?;
        Ok(EventsApp {
            server: server.run(),
            addresses,
            state,
            events,
            reloader,
        })
    }

    /// The addresses of the health endpoints (useful with port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Consumes until SIGTERM or SIGINT; then readiness turns 503, the events already read are
    /// answered, their offsets committed, and the consumer leaves its group.
    pub async fn run_until_stopped(self) -> Result<(), EventsError> {
        let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
        let (stop, stopped) = watch::channel(false);
        // The health server runs beside the event loop, and is stopped after it.
        let server = self.server.handle();
        let serving = actix_web::rt::spawn(self.server);
        let events = actix_web::rt::spawn(self.events.run(stopped));
        let state = self.state.clone();
        actix_web::rt::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => log::info!("SIGTERM received: answering the events already read, then committing and leaving the group"),
                _ = interrupt.recv() => log::info!("SIGINT received: answering the events already read, then committing and leaving the group"),
            }
            state.draining.store(true, Ordering::Relaxed);
            let _ = stop.send(true);
        });
        let result = events.await.map_err(|_| EventsError::Join).and_then(|r| r);
        server.stop(true).await;
        let served = match serving.await {
            Ok(served) => served.map_err(|e| ServeError::Serve(e).into()),
            Err(_) => Err(EventsError::Join),
        };
        self.reloader.stop();
        result?;
        served?;
        log::info!("stopped");
        Ok(())
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready when a table is loaded, the broker answers with the three topics, and not stopping.
async fn readyz(state: web::Data<State>) -> HttpResponse {
    let not_ready = |status, detail| {
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(NotReady { status, detail })
    };
    if state.draining.load(Ordering::Relaxed) {
        return not_ready(
            "draining",
            "shutting down: committing and leaving the group".into(),
        );
    }
    let live = state.tables.live();
    let Some(table) = live.as_ref() else {
        return not_ready(
            "starting",
            format!(
                "no voucher table loaded yet from {}",
                state.tables.dir().root().display()
            ),
        );
    };
    if let Err(why) = state.broker.get() {
        return not_ready("broker_unavailable", why);
    }
    HttpResponse::Ok().json(Ready {
        status: "ready",
        version: table.version_name(),
        age_seconds: now_secs() - table.version().time().timestamp(),
    })
}

async fn metrics_text(state: web::Data<State>) -> HttpResponse {
    let live = state.tables.live();
    match state.metrics.render(live.as_deref(), now_secs()) {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Err(e) => {
            log::error!("cannot render metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
