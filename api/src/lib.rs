//! `voucher-api`: serves the live voucher table.
//!
//! The rules (validation, segment lookup) live in [`voucher_shared::score`]; this crate holds
//! what every door shares, and one module per door:
//!
//! - [`config`]: flags and their environment twins;
//! - [`tables`]: loading table versions and hot-reloading the live one; [`live`]: a loaded one;
//! - [`metrics`]: Prometheus metrics of every door;
//! - [`server`]: building and running the application;
//! - [`http`]: the HTTP routes (single, batch and NDJSON scoring, the table, operations).

pub mod config;
pub mod http;
pub mod live;
pub mod metrics;
pub mod server;
pub mod tables;
