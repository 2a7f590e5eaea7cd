//! `voucher-serve`: what the serving binaries (`voucher-api` and `voucher-events`) share below
//! their doors. No door lives here and none is imported: each binary composes these pieces
//! with its own doors.
//!
//! - [`tables`]: loading table versions, the one reloader that follows `CURRENT`, and the
//!   publication of each change to whoever subscribes;
//! - [`live`]: a loaded version, and [`live::Served`], the one seam through which every door
//!   scores a request against what is served;
//! - [`canary`]: a second version answering a share of customers, and the shadow comparison;
//! - [`customers`]: the customer store that id-only requests are scored with (PostgreSQL, a
//!   pool, one query per batch, a cache), and its readiness check;
//! - [`metrics`]: the registry, the scoring counters of every door, the table gauges;
//! - [`health`]: `/healthz`, `/readyz` and `/metrics`, with readiness from the drain, the
//!   table and each binary's own checks;
//! - [`signals`]: SIGTERM and SIGINT;
//! - [`ServeError`]: what can stop a serving process.

pub mod canary;
pub mod customers;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod health;
pub mod live;
pub mod metrics;
pub mod signals;
pub mod tables;

use std::io;

/// What can stop a process that serves from starting or running; shared by both binaries.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {address}")]
    Bind { address: String, source: io::Error },
    #[error("cannot start the table reloader")]
    Reloader(#[source] io::Error),
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
}
