//! `voucher-api`: serves the live voucher table over HTTP.
//!
//! - [`config`]: flags and their environment twins;
//! - [`tables`]: loading table versions and hot-reloading the live one;
//! - [`lookup`]: the live table decoded for requests;
//! - [`request`]: parsing and validating a voucher request;
//! - [`routes`]: the HTTP routes; [`errors`]: their error answers; [`model`]: their bodies;
//! - [`metrics`]: Prometheus metrics; [`openapi`]: the OpenAPI document and Swagger UI;
//! - [`server`]: building and running the application.

pub mod config;
pub mod errors;
pub mod lookup;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod request;
pub mod routes;
pub mod server;
pub mod tables;
