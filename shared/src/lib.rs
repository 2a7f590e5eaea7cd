//! Core types shared by `voucher-etl` and `voucher-api`.
//!
//! - [`segments`]: segment types and their bounds;
//! - [`time`]: the time formats of the history and of requests;
//! - [`table`]: the Parquet layout of the voucher table;
//! - [`manifest`]: what produced a table version;
//! - [`publish`]: the versioned tables directory and its atomic publishing protocol;
//! - [`publish_log`]: the append-only log of publishes, holds and promotions;
//! - [`gate`]: the quality gate a new version passes before it goes live;
//! - [`canary`]: a version answering a share of customers, and the bucket rule that picks them;
//! - [`versions`]: each version's state, checking a version before it is served, promotion;
//! - [`diff`]: what changes between two versions, segment by segment;
//! - [`overview`]: the versions, the live one's changes and the held ones, for the API and page;
//! - [`numbers`]: the whole-number rules for amounts and order counts;
//! - [`rules`]: the drop rules of the history cleaning;
//! - [`country`]: what a country code may be, for requests and the history alike;
//! - [`score`]: validating a request and answering it from one table version;
//! - [`echo`]: how much of a value or a list an error message may repeat;
//! - [`errors`]: showing an error with its causes.

pub mod canary;
pub mod country;
pub mod diff;
pub mod echo;
pub mod errors;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gate;
pub mod manifest;
pub mod numbers;
pub mod overview;
pub mod publish;
pub mod publish_log;
pub mod rules;
pub mod score;
pub mod segments;
pub mod table;
pub mod time;
pub mod versions;
