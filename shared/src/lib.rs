//! Core types shared by `voucher-etl` and `voucher-api`.
//!
//! - [`segments`]: segment types and their bounds;
//! - [`time`]: the time formats of the history and of requests;
//! - [`table`]: the Parquet layout of the voucher table;
//! - [`manifest`]: what produced a table version;
//! - [`publish`]: the versioned tables directory and its atomic publishing protocol;
//! - [`numbers`]: the whole-number rules for amounts and order counts;
//! - [`rules`]: the drop rules of the history cleaning;
//! - [`country`]: what a country code may be, for requests and the history alike;
//! - [`score`]: validating a request and answering it from one table version;
//! - [`echo`]: how much of a value or a list an error message may repeat;
//! - [`errors`]: showing an error with its causes.

pub mod country;
pub mod echo;
pub mod errors;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod manifest;
pub mod numbers;
pub mod publish;
pub mod rules;
pub mod score;
pub mod segments;
pub mod table;
pub mod time;
