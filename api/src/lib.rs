//! `voucher-api`: serves the live voucher table over HTTP and gRPC.
//!
//! The rules (validation, segment lookup) live in [`voucher_shared::score`], and what lies
//! below the doors (the tables and their hot reload, metrics, health) in [`voucher_serve`];
//! this crate holds one module per door and puts them together:
//!
//! - [`config`]: flags and their environment twins;
//! - [`server`]: building and running the application (the composition root);
//! - [`tls`]: TLS for both doors;
//! - [`http`]: the HTTP routes (single, batch and NDJSON scoring, the table, operations);
//! - [`grpc`]: the gRPC service, with health checking and reflection;
//! - [`page`]: the page for people at `/`.
//!
//! No door imports another: each reaches the tables through [`voucher_serve`].

pub mod config;
pub mod grpc;
pub mod http;
pub mod page;
pub mod server;
pub mod tls;
