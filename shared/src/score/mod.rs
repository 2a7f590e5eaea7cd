//! The scoring rules every door calls, free of any protocol: raw request fields → a valid query
//! (or one error per bad field) → the voucher from one table [`Snapshot`].
//!
//! The HTTP routes (single, batch, NDJSON), gRPC, events and offline campaign scoring only turn
//! their own input into a [`VoucherRequest`] and the [`Scored`] result into their own output;
//! validation, the segment lookup and the version in the answer live here once.

mod json;
mod outcome;
mod profile;
mod request;
mod snapshot;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use json::Json;
pub use outcome::{GrpcCode, Outcome};
pub use profile::{Lookup, PROFILE_FIELDS, PROFILE_LOC, Profile, Profiles, Stored, score_with};
#[cfg(feature = "openapi")]
pub use request::SegmentTypeName;
pub use request::{BodyError, Query, RequestFields, ValidationError, VoucherRequest, fields};
pub use snapshot::{CountrySegments, Entry, NoSegment, Snapshot};

/// The voucher for a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"voucher": 2640, "country_code": "Peru",
    "segment_name": "frequent_segment", "segment": "14-37", "version": "20261123T101000Z"})))]
pub struct VoucherResponse<'a> {
    /// The amount most used by similar customers.
    pub voucher: i64,
    pub country_code: &'a str,
    pub segment_name: &'a str,
    /// The segment the customer falls in, e.g. `14-37`.
    pub segment: &'a str,
    /// The table version that answered.
    pub version: &'a str,
    /// This answer as JSON, as the fields above serialize: rendered once per table version
    /// (see [`Entry::json`]), so that a door answering with just this copies it rather than
    /// serializing the fields on every request.
    #[serde(skip)]
    pub json: &'a str,
}

impl VoucherResponse<'_> {
    /// The fields as JSON (what [`VoucherResponse::json`] holds once the snapshot rendered it).
    pub fn to_json(&self) -> String {
        // Strings and an integer: serde_json cannot fail on them.
        serde_json::to_string(self).expect("a VoucherResponse serializes")
    }
}

/// Why a request got no voucher. How each door says it is [`Outcome`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Bad fields, one entry each.
    Invalid(Vec<ValidationError>),
    /// The request is valid but no segment covers it.
    NoSegment(NoSegment),
    /// An id-only request for a customer the customer store does not hold.
    UnknownCustomer(i64),
    /// An id-only request while the customer store cannot answer: why.
    CustomersUnavailable(String),
}

impl Refusal {
    /// What a door says of a refusal other than [`Refusal::Invalid`] (which lists its fields).
    pub fn message(&self) -> String {
        match self {
            Refusal::Invalid(errors) => format!("{} invalid field(s)", errors.len()),
            Refusal::NoSegment(no_segment) => no_segment.message.clone(),
            Refusal::UnknownCustomer(id) => {
                format!("customer {id} is not in the customer store")
            }
            Refusal::CustomersUnavailable(why) => {
                format!("the customer store cannot answer ({why}); retry later")
            }
        }
    }
}

/// The outcome of scoring one request.
pub type Scored<'a> = Result<VoucherResponse<'a>, Refusal>;

/// Scores one request against one table version at time `now` (seconds since the epoch, UTC).
///
/// The answer borrows only from the snapshot, so it can outlive the request's buffer.
pub fn score<'s>(request: &VoucherRequest<'_>, snapshot: &'s Snapshot, now: i64) -> Scored<'s> {
    let query = request.validate(snapshot, now).map_err(Refusal::Invalid)?;
    let entry = snapshot
        .find_in(query.country, query.segment_type, query.value)
        .map_err(Refusal::NoSegment)?;
    Ok(entry.answer(
        query.country.name(),
        query.segment_type,
        snapshot.version_name(),
    ))
}

/// The current time in seconds since the epoch, as [`score`] takes it.
///
/// Read from the coarse clock, the time of the kernel's last tick (at most a few milliseconds
/// old): whole seconds are all scoring uses, and it reads in a quarter of the time of the
/// precise clock (4.5 ns against 18 ns here), once per request at every door.
#[cfg(target_os = "linux")]
pub fn now_secs() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid `timespec` to write to, and the clock is one Linux has had since
    // 2.6.32.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } == 0 {
        #[allow(
            clippy::useless_conversion,
            reason = "time_t is 32 bits on some Linux targets"
        )]
        i64::from(now.tv_sec)
    } else {
        precise_now_secs()
    }
}

/// The current time in seconds since the epoch, as [`score`] takes it.
#[cfg(not(target_os = "linux"))]
pub fn now_secs() -> i64 {
    precise_now_secs()
}

fn precise_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::fixtures::{CONTRACT_VERSION, contract_snapshot};

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200;

    fn request(total_orders: Json<'static>, segment_name: &'static str) -> VoucherRequest<'static> {
        VoucherRequest {
            customer_id: Json::Int(1),
            country_code: Json::Str(Cow::Borrowed("Peru")),
            last_order_ts: Json::Str(Cow::Borrowed("2026-10-01")),
            first_order_ts: Json::Str(Cow::Borrowed("2021-10-26 00:00:00")),
            total_orders,
            segment_name: Json::Str(Cow::Borrowed(segment_name)),
        }
    }

    #[test]
    fn the_coarse_clock_tells_the_same_second_as_the_precise_one() {
        // The coarse clock lags by at most a tick: the two may straddle a second, no more.
        let before = precise_now_secs();
        let now = now_secs();
        let after = precise_now_secs();
        assert!(before - 1 <= now && now <= after, "{before} {now} {after}");
        assert!(now > 1_764_547_200, "after 2025-12-01: {now}");
    }

    #[test]
    fn a_valid_request_gets_its_segments_voucher_and_the_version() {
        let snapshot = contract_snapshot();
        let frequent = request(Json::Int(14), "frequent_segment");
        assert_eq!(
            score(&frequent, &snapshot, NOW),
            Ok(VoucherResponse {
                voucher: 2640,
                country_code: "Peru",
                segment_name: "frequent_segment",
                segment: "14-37",
                version: CONTRACT_VERSION,
                json: r#"{"voucher":2640,"country_code":"Peru","segment_name":"frequent_segment","segment":"14-37","version":"20261123T101000Z"}"#,
            })
        );
        // 2026-10-01 to 2026-11-23 is 53 days: the recency segment 30-60, the first one.
        let recency = request(Json::Int(14), "recency_segment");
        let answer = score(&recency, &snapshot, NOW).expect("covered");
        assert_eq!((answer.segment, answer.voucher), ("30-60", 2641));
    }

    #[test]
    fn bad_fields_and_uncovered_values_are_refused_with_their_kind() {
        let snapshot = contract_snapshot();
        let bad = request(Json::Str(Cow::Borrowed("many")), "frequent_segment");
        let refusal = score(&bad, &snapshot, NOW).expect_err("invalid");
        assert_eq!(Outcome::of_refusal(&refusal), Outcome::Invalid);
        let Refusal::Invalid(errors) = refusal else {
            panic!("{refusal:?}")
        };
        assert_eq!(errors[0].field(), Some("total_orders"));

        let uncovered = request(Json::Int(1000), "frequent_segment");
        let refusal = score(&uncovered, &snapshot, NOW).expect_err("no segment");
        assert_eq!(Outcome::of_refusal(&refusal), Outcome::NoSegment);
        assert!(
            matches!(&refusal, Refusal::NoSegment(n) if n.message.contains("total_orders = 1000")),
            "{refusal:?}"
        );
    }
}
