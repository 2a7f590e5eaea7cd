//! `voucher-api`: serves the live voucher table.
//!
//! The rules (validation, segment lookup) live in [`voucher_shared::score`]; this crate holds
//! what every door shares, and one module per door:
//!
//! - [`config`]: flags and their environment twins;
//! - [`tables`]: loading table versions and hot-reloading the live one; [`live`]: a loaded one;
//! - [`metrics`]: Prometheus metrics of every door;
//! - [`server`]: building and running the application;
//! - [`tls`]: TLS for both doors;
//! - [`http`]: the HTTP routes (single, batch and NDJSON scoring, the table, operations);
//! - [`grpc`]: the gRPC service, with health checking and reflection;
//! - [`page`]: the page for people at `/`;
//! - [`events`]: the Kafka consumer of `voucher-events`.

pub mod config;
pub mod events;
pub mod grpc;
pub mod http;
pub mod live;
pub mod metrics;
pub mod page;
pub mod server;
pub mod tables;
pub mod tls;
