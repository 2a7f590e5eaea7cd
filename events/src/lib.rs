//! `voucher-events`: consumes voucher request events from Kafka, scores each with the core
//! against the live table, and produces a result (or a dead letter) per event, at least once.
//!
//! A binary of its own rather than a mode of `voucher-api`: it scales with the topic's
//! partitions and lag, not with HTTP traffic, and a broker outage must never touch the HTTP
//! and gRPC doors. It shares with them what lies below the doors ([`voucher_serve`]: the tables
//! and their hot reload, the metrics registry, health and readiness) and the scoring core.
//!
//! - [`config`]: flags and their environment twins;
//! - [`event`]: one payload → a result or a dead letter (pure, unit-tested);
//! - [`consumer`]: the Kafka loop and its offset discipline;
//! - [`commits`]: whether each partition's offsets move on, for readiness;
//! - [`metrics`]: the events door's own metrics;
//! - this module: the application (health, readiness and metrics over HTTP; signals).

pub mod commits;
pub mod config;
pub mod consumer;
pub mod event;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use voucher_serve::ServeError;
use voucher_serve::customers::{self, Customers};
use voucher_serve::health::{self, Draining, HealthState};
use voucher_serve::metrics::{Binary, Door, Metrics};
use voucher_serve::signals::Signals;
use voucher_serve::tables::{PollState, Reloader, Tables};

use self::config::EventsConfig;
use self::consumer::EventLoop;
use self::metrics::EventMetrics;

/// Why `voucher-events` could not start or went on.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
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
    #[error("cannot start the customer store")]
    Customers(#[from] customers::StartError),
    /// Boxed: the other variants stay small.
    #[error(transparent)]
    Refused(Box<Refused>),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("a task of voucher-events panicked")]
    Join,
}

/// An output the broker refused for a reason that producing it again cannot change.
#[derive(Debug, thiserror::Error)]
#[error(
    "the broker refused the {output} of event {event} on {topic} for good; fix what it names (the topic's size limit, authorization or policy) and restart: the event is read again"
)]
pub struct Refused {
    pub output: &'static str,
    pub topic: String,
    pub event: String,
    pub source: rdkafka::error::KafkaError,
}

impl From<prometheus::Error> for EventsError {
    fn from(error: prometheus::Error) -> Self {
        EventsError::Serve(ServeError::Metrics(error))
    }
}

/// A started, not yet running `voucher-events`.
pub struct EventsApp {
    server: Server,
    addresses: Vec<SocketAddr>,
    draining: Draining,
    events: EventLoop,
    reloader: Reloader,
}

impl EventsApp {
    /// Loads the live table if there is one, creates the Kafka clients and binds the health
    /// endpoints. Must be called inside the actix runtime.
    pub fn build(config: &EventsConfig) -> Result<Self, EventsError> {
        let metrics = Metrics::new(Binary::Events)?;
        let event_metrics = EventMetrics::register(metrics.registry())?;
        let tables = Arc::new(Tables::new(&config.tables_dir));
        let mut poll_state = PollState::default();
        tables.poll(&mut poll_state, &metrics);
        let customers = Customers::start(&config.customers, "voucher-events", metrics.registry())?;
        let store_check = customers.check();
        let events = EventLoop::new(
            config,
            Arc::clone(&tables),
            customers,
            event_metrics,
            metrics.door(Door::Events).clone(),
        )?;
        let draining = Draining::default();
        let mut health = HealthState::new(
            Arc::clone(&tables),
            metrics.clone(),
            draining.clone(),
            "committing and leaving the group",
        )
        .with_check(events.broker_status())
        .with_check(events.commits());
        if let Some(check) = store_check {
            health = health.with_check(check);
        }
        let health = web::Data::new(health);
        let address = format!("{}:{}", config.host, config.port);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(health.clone())
                .configure(health::configure)
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
            draining,
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
    /// `signals` are installed by the caller before it says where it listens, so that a signal
    /// sent as soon as that line is logged is handled, not fatal.
    pub async fn run_until_stopped(self, mut signals: Signals) -> Result<(), EventsError> {
        // The health server runs beside the event loop, and is stopped after it. The loop stops
        // when draining starts.
        let server = self.server.handle();
        let serving = actix_web::rt::spawn(self.server);
        let events = actix_web::rt::spawn(self.events.run(self.draining.subscribe()));
        let draining = self.draining.clone();
        actix_web::rt::spawn(async move {
            let signal = signals.recv().await;
            log::info!(
                "{} received: answering the events already read, then committing and leaving the group",
                signal.name()
            );
            draining.start();
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
