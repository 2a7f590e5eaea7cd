//! Requests by customer id: which form a request has, a customer's stored profile, and the one
//! place where a profile becomes the request's fields.
//!
//! A request is either *full* (every field), *id-only* (`customer_id` and `segment_name`, none
//! of the profile's fields) or *partial* (anything else). Full and partial requests are scored
//! as sent (a partial one gets the 422 naming its missing fields). An id-only request is scored
//! as the full request made of its id, its segment type and the customer's stored profile, so
//! that both answer exactly alike; without a customer store it is a partial request.
//!
//! Looking profiles up is the serving side's business (one query per batch, stream window or
//! consumer batch); what it found for a batch reaches the core as [`Profiles`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};

use super::json::Json;
use super::request::{VoucherRequest, customer_id};
use super::{Refusal, Scored, Snapshot, ValidationError};
use crate::numbers::parse_count;

/// The fields a stored profile supplies, in request order.
pub const PROFILE_FIELDS: [&str; 4] = [
    "country_code",
    "last_order_ts",
    "first_order_ts",
    "total_orders",
];

/// The first element of a field error's `loc` when the bad value is the stored profile's, not
/// the caller's.
pub const PROFILE_LOC: &str = "profile";

/// One stored value, by the kind of value a store column holds (the type families the history
/// accepts: text, integers, floats and numerics, dates, timestamps).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Stored {
    #[default]
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
    /// A date or time stored as `infinity` or `-infinity` (PostgreSQL's): no day of the
    /// calendar, given as that text, which the time check names (not a missing value).
    Infinite {
        negative: bool,
    },
}

/// A customer's stored context: the request fields besides the id and the segment type, each
/// already in the form a caller would send it (so the cached profile is converted once).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    country_code: Json<'static>,
    last_order_ts: Json<'static>,
    first_order_ts: Json<'static>,
    total_orders: Json<'static>,
}

impl Profile {
    /// The profile of stored values: text stays text (an order count written as text is read
    /// as the history's cleaning reads it), numbers stay numbers, dates and timestamps become
    /// the times a caller would send (`YYYY-MM-DD`, RFC 3339 in UTC), NULL is JSON null.
    pub fn new(
        country_code: Stored,
        last_order_ts: Stored,
        first_order_ts: Stored,
        total_orders: Stored,
    ) -> Profile {
        let total_orders = match total_orders {
            Stored::Text(text) => match parse_count(&text) {
                Some(count) => Json::Int(count),
                None => Json::Str(Cow::Owned(text)),
            },
            other => as_json(other),
        };
        Profile {
            country_code: as_json(country_code),
            last_order_ts: as_json(last_order_ts),
            first_order_ts: as_json(first_order_ts),
            total_orders,
        }
    }
}

fn as_json(value: Stored) -> Json<'static> {
    match value {
        Stored::Null => Json::Null,
        Stored::Text(text) => Json::Str(Cow::Owned(text)),
        Stored::Int(n) => Json::Int(n),
        Stored::Float(f) => Json::Float(f),
        Stored::Infinite { negative } => Json::Str(Cow::Borrowed(if negative {
            "-infinity"
        } else {
            "infinity"
        })),
        Stored::Date(days) => DateTime::from_timestamp(i64::from(days) * 86_400, 0)
            .map_or(Json::Null, |t| {
                Json::Str(Cow::Owned(t.format("%Y-%m-%d").to_string()))
            }),
        // RFC 3339 with microseconds, written without a format string to read (a lookup by
        // id formats two of these per customer; the format string's parsing showed in perf).
        Stored::Timestamp(micros) => DateTime::from_timestamp_micros(micros)
            .map_or(Json::Null, |t| {
                Json::Str(Cow::Owned(t.to_rfc3339_opts(SecondsFormat::Micros, true)))
            }),
    }
}

/// A borrowed copy of a profile's value.
fn borrowed<'p>(value: &'p Json<'static>) -> Json<'p> {
    match value {
        Json::Str(text) => Json::Str(Cow::Borrowed(text.as_ref())),
        other => other.clone(),
    }
}

impl<'a> VoucherRequest<'a> {
    /// Whether the request asks by id: `customer_id` and `segment_name` given, none of the
    /// profile's fields.
    pub fn is_by_id(&self) -> bool {
        !matches!(self.customer_id, Json::Missing)
            && !matches!(self.segment_name, Json::Missing)
            && [
                &self.country_code,
                &self.last_order_ts,
                &self.first_order_ts,
                &self.total_orders,
            ]
            .iter()
            .all(|field| matches!(field, Json::Missing))
    }

    /// The id to look up, for an id-only request whose id is a signed 64-bit integer.
    pub fn lookup_id(&self) -> Option<i64> {
        self.is_by_id().then(|| self.customer_id()).flatten()
    }

    /// The full request made of this one's id and segment type and `profile`'s fields.
    pub fn with_profile<'p>(&'p self, profile: &'p Profile) -> VoucherRequest<'p> {
        VoucherRequest {
            customer_id: self.customer_id.clone(),
            country_code: borrowed(&profile.country_code),
            last_order_ts: borrowed(&profile.last_order_ts),
            first_order_ts: borrowed(&profile.first_order_ts),
            total_orders: borrowed(&profile.total_orders),
            segment_name: self.segment_name.clone(),
        }
    }
}

/// `customer_id` as a key of the store: the core's one rule for customer ids.
fn lookup_key(value: &Json<'_>) -> Result<i64, ValidationError> {
    customer_id(value).map_err(|(kind, msg)| ValidationError {
        loc: vec!["body", "customer_id"],
        msg,
        kind,
    })
}

/// What a customer store said about the ids of one request, batch, stream window or consumer
/// batch: the profiles found, the ids it does not hold, and why the others (if any) could not
/// be looked up.
#[derive(Debug, Default)]
pub struct Profiles {
    /// Whether a customer store is configured.
    store: bool,
    /// The ids the store answered for: their profile, or `None` when it does not hold them.
    known: HashMap<i64, Option<Arc<Profile>>>,
    /// Why the ids not in `known` could not be looked up.
    unavailable: Option<String>,
}

/// What [`Profiles`] holds for one id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lookup<'p> {
    /// No store is configured: id-only requests are partial requests.
    NoStore,
    Found(&'p Profile),
    /// The store does not hold the id.
    Unknown,
    /// The store could not answer for the id; why.
    Unavailable(&'p str),
}

impl Profiles {
    /// Without a customer store.
    pub fn no_store() -> Profiles {
        Profiles::default()
    }

    /// With a customer store, before any answer: every id is unavailable until it is inserted.
    pub fn with_store(capacity: usize) -> Profiles {
        Profiles {
            store: true,
            known: HashMap::with_capacity(capacity),
            unavailable: None,
        }
    }

    /// Records the store's answer for `id`: its profile, or `None` when it does not hold it.
    pub fn insert(&mut self, id: i64, profile: Option<Arc<Profile>>) {
        self.known.insert(id, profile);
    }

    /// Records why the ids not inserted could not be looked up.
    pub fn set_unavailable(&mut self, why: String) {
        self.unavailable = Some(why);
    }

    pub fn get(&self, id: i64) -> Lookup<'_> {
        if !self.store {
            return Lookup::NoStore;
        }
        match self.known.get(&id) {
            Some(Some(profile)) => Lookup::Found(profile),
            Some(None) => Lookup::Unknown,
            None => Lookup::Unavailable(
                self.unavailable
                    .as_deref()
                    .unwrap_or("the customer was not looked up"),
            ),
        }
    }
}

/// Scores one request of any form: a full or partial one as [`super::score`] does, an id-only
/// one as the full request made with the customer's profile in `profiles`.
pub fn score_with<'s>(
    request: &VoucherRequest<'_>,
    profiles: &Profiles,
    snapshot: &'s Snapshot,
    now: i64,
) -> Scored<'s> {
    if !profiles.store || !request.is_by_id() {
        return super::score(request, snapshot, now);
    }
    let id = lookup_key(&request.customer_id).map_err(|e| Refusal::Invalid(vec![e]))?;
    match profiles.get(id) {
        Lookup::Found(profile) => super::score(&request.with_profile(profile), snapshot, now)
            .map_err(|refusal| stored_values_named(refusal, id)),
        Lookup::Unknown => Err(Refusal::UnknownCustomer(id)),
        Lookup::Unavailable(why) => Err(Refusal::CustomersUnavailable(why.to_owned())),
        Lookup::NoStore => super::score(request, snapshot, now),
    }
}

/// A stored value the rules refuse is the store's fault, not the caller's: its error says so.
fn stored_values_named(refusal: Refusal, id: i64) -> Refusal {
    match refusal {
        Refusal::Invalid(mut errors) => {
            for error in &mut errors {
                if error.field().is_some_and(|f| PROFILE_FIELDS.contains(&f)) {
                    error.loc[0] = PROFILE_LOC;
                    error.msg = format!("the value stored for customer {id}: {}", error.msg);
                }
            }
            Refusal::Invalid(errors)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::contract_snapshot;

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200;

    fn parse(body: &str) -> VoucherRequest<'_> {
        VoucherRequest::parse(body.as_bytes()).expect("a JSON object")
    }

    /// 2021-10-26 as days and microseconds since the epoch.
    const DAY: i32 = 18_926;
    const MICROS: i64 = DAY as i64 * 86_400 * 1_000_000;

    fn profile() -> Profile {
        Profile::new(
            Stored::Text("Peru".into()),
            Stored::Timestamp(MICROS + 1_500_000),
            Stored::Date(DAY),
            Stored::Int(14),
        )
    }

    fn found(id: i64, profile: Profile) -> Profiles {
        let mut profiles = Profiles::with_store(1);
        profiles.insert(id, Some(Arc::new(profile)));
        profiles
    }

    #[test]
    fn the_forms_are_told_apart_by_the_fields_present() {
        let by_id = parse(r#"{"customer_id": 7, "segment_name": "frequent_segment", "x": 1}"#);
        assert!(by_id.is_by_id());
        assert_eq!(by_id.lookup_id(), Some(7));
        assert_eq!(
            parse(r#"{"customer_id": 7.0, "segment_name": "s"}"#).lookup_id(),
            Some(7)
        );
        for not_by_id in [
            r#"{"customer_id": 7}"#,
            r#"{"segment_name": "frequent_segment"}"#,
            r#"{"customer_id": 7, "segment_name": "s", "total_orders": 3}"#,
            r#"{"customer_id": 7, "segment_name": "s", "country_code": null}"#,
        ] {
            assert!(!parse(not_by_id).is_by_id(), "{not_by_id}");
        }
        for bad_id in [r#""7""#, "7.5", "18446744073709551615", "1e300", "null"] {
            let body = format!(r#"{{"customer_id": {bad_id}, "segment_name": "s"}}"#);
            assert!(parse(&body).is_by_id(), "{body}");
            assert_eq!(parse(&body).lookup_id(), None, "{body}");
        }
    }

    #[test]
    fn an_id_only_request_answers_as_the_full_request_made_with_the_profile() {
        let snapshot = contract_snapshot();
        let full = parse(
            r#"{"customer_id": 7, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:01.5",
                "first_order_ts": "2021-10-26", "total_orders": 14, "segment_name": "frequent_segment"}"#,
        );
        let by_id = parse(r#"{"customer_id": 7, "segment_name": "frequent_segment"}"#);
        let profiles = found(7, profile());
        let answer = score_with(&by_id, &profiles, &snapshot, NOW);
        assert_eq!(answer, super::super::score(&full, &snapshot, NOW));
        assert_eq!(answer.map(|a| a.voucher), Ok(2640));
        let recency = parse(r#"{"customer_id": 7, "segment_name": "recency_segment"}"#);
        let full_recency = VoucherRequest {
            segment_name: Json::Str(Cow::Borrowed("recency_segment")),
            ..full
        };
        assert_eq!(
            score_with(&recency, &profiles, &snapshot, NOW),
            super::super::score(&full_recency, &snapshot, NOW)
        );
        // A full request is scored as sent, whatever the store holds.
        assert_eq!(
            score_with(&full_recency, &profiles, &snapshot, NOW),
            super::super::score(&full_recency, &snapshot, NOW)
        );
    }

    #[test]
    fn stored_values_are_read_as_a_caller_would_send_them() {
        let p = Profile::new(
            Stored::Null,
            Stored::Date(-1),
            Stored::Timestamp(0),
            Stored::Text(" 14.0 ".into()),
        );
        assert_eq!(p.country_code, Json::Null);
        assert_eq!(p.last_order_ts, Json::Str(Cow::Borrowed("1969-12-31")));
        assert_eq!(
            p.first_order_ts,
            Json::Str(Cow::Borrowed("1970-01-01T00:00:00.000000Z"))
        );
        assert_eq!(p.total_orders, Json::Int(14));
        let p = Profile::new(
            Stored::Int(5),
            Stored::Text("2021-10-26".into()),
            Stored::Float(1.5),
            Stored::Text("many".into()),
        );
        assert_eq!(p.country_code, Json::Int(5));
        assert_eq!(p.total_orders, Json::Str(Cow::Borrowed("many")));
        for (micros, expected) in [
            (1_635_206_400_000_001, "2021-10-26T00:00:00.000001Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (253_402_300_799_999_999, "9999-12-31T23:59:59.999999Z"),
        ] {
            let stored = Profile::new(
                Stored::Null,
                Stored::Timestamp(micros),
                Stored::Null,
                Stored::Null,
            );
            assert_eq!(
                stored.last_order_ts,
                Json::Str(Cow::Borrowed(expected)),
                "{micros}"
            );
        }
    }

    #[test]
    fn unknown_unavailable_and_bad_ids_are_refused_for_what_they_are() {
        let snapshot = contract_snapshot();
        let by_id = parse(r#"{"customer_id": 8, "segment_name": "frequent_segment"}"#);
        // The store answered for 8: it holds no such customer.
        let mut profiles = found(7, profile());
        profiles.insert(8, None);
        assert_eq!(
            score_with(&by_id, &profiles, &snapshot, NOW),
            Err(Refusal::UnknownCustomer(8))
        );
        let mut down = Profiles::with_store(1);
        down.set_unavailable("the store is down".into());
        assert_eq!(
            score_with(&by_id, &down, &snapshot, NOW),
            Err(Refusal::CustomersUnavailable("the store is down".into()))
        );
        let too_big = parse(r#"{"customer_id": 9223372036854775808, "segment_name": "x"}"#);
        let Err(Refusal::Invalid(errors)) = score_with(&too_big, &profiles, &snapshot, NOW) else {
            panic!("a bad id is invalid");
        };
        assert_eq!(
            (errors.len(), errors[0].field(), errors[0].kind),
            (1, Some("customer_id"), "int_too_large")
        );
    }

    #[test]
    fn without_a_store_an_id_only_request_is_missing_its_fields() {
        let snapshot = contract_snapshot();
        let by_id = parse(r#"{"customer_id": 7, "segment_name": "frequent_segment"}"#);
        let Err(Refusal::Invalid(errors)) =
            score_with(&by_id, &Profiles::no_store(), &snapshot, NOW)
        else {
            panic!("id-only without a store is invalid");
        };
        let missing: Vec<_> = errors.iter().filter_map(ValidationError::field).collect();
        assert_eq!(missing, PROFILE_FIELDS);
        assert!(
            errors
                .iter()
                .all(|e| e.kind == "missing" && e.loc[0] == "body")
        );
    }

    /// PostgreSQL's `infinity` and `-infinity` times are named as such, not called missing
    /// strings ("should be a valid string", as a NULL would be).
    #[test]
    fn stored_infinite_times_are_named_as_no_day_of_the_calendar() {
        let snapshot = contract_snapshot();
        let by_id = parse(r#"{"customer_id": 7, "segment_name": "frequent_segment"}"#);
        let infinite = Profile::new(
            Stored::Text("Peru".into()),
            Stored::Infinite { negative: false },
            Stored::Infinite { negative: true },
            Stored::Int(14),
        );
        let Err(Refusal::Invalid(errors)) = score_with(&by_id, &found(7, infinite), &snapshot, NOW)
        else {
            panic!("an infinite stored time is invalid");
        };
        let fields: Vec<_> = errors
            .iter()
            .map(|e| (e.loc[0], e.loc[1], e.kind))
            .collect();
        assert_eq!(
            fields,
            [
                ("profile", "last_order_ts", "datetime_parsing"),
                ("profile", "first_order_ts", "datetime_parsing"),
            ]
        );
        for (error, text) in errors.iter().zip(["\"infinity\"", "\"-infinity\""]) {
            assert!(
                error.msg.contains("a time on the calendar"),
                "{}",
                error.msg
            );
            assert!(error.msg.contains(text), "{}", error.msg);
            assert!(!error.msg.contains("valid string"), "{}", error.msg);
        }
    }

    #[test]
    fn a_stored_value_the_rules_refuse_is_named_as_the_stores() {
        let snapshot = contract_snapshot();
        let by_id = parse(r#"{"customer_id": 7, "segment_name": "bogus"}"#);
        let bad = Profile::new(
            Stored::Text("Peru".into()),
            Stored::Date(DAY),
            Stored::Date(DAY),
            Stored::Int(-1),
        );
        let Err(Refusal::Invalid(errors)) = score_with(&by_id, &found(7, bad), &snapshot, NOW)
        else {
            panic!("a negative stored count is invalid");
        };
        let locs: Vec<(&str, &str)> = errors.iter().map(|e| (e.loc[0], e.loc[1])).collect();
        assert_eq!(
            locs,
            [("profile", "total_orders"), ("body", "segment_name")]
        );
        assert!(
            errors[0]
                .msg
                .starts_with("the value stored for customer 7: "),
            "{}",
            errors[0].msg
        );
    }
}
