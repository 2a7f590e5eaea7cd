//! One event in, one message out: a result for the results topic, or a dead letter.
//!
//! Pure functions of the payload and what is served, so that every rule of the events door is
//! unit-tested without a broker. The scoring itself is the core's ([`voucher_shared::score`],
//! through [`Served::score`]); this module only reads the event's own two fields and shapes the
//! output.

use serde::{Deserialize, Serialize};
use voucher_serve::live::Served;
use voucher_shared::score::{
    BodyError, Json, Outcome, Profiles, Refusal, ValidationError, VoucherRequest, VoucherResponse,
};
use voucher_shared::time::{ACCEPTED_TIME_FORMATS, parse_timestamp};

/// Longest accepted `event_id`, in bytes: ids are keys for deduplication, not documents.
pub const MAX_EVENT_ID: usize = 256;

/// The outcomes that send an event to the dead-letter topic, with their label as its `reason`:
/// `malformed` (not JSON, not UTF-8, empty, or not an object), `invalid` (a field is missing or
/// wrong: the HTTP API's checks and the event's own), `no_segment` (valid, but no segment of
/// the live table covers it) and `unknown_customer` (an event by id for a customer the
/// customer store does not hold).
pub const DEAD_LETTER_REASONS: [Outcome; 4] = [
    Outcome::Malformed,
    Outcome::Invalid,
    Outcome::NoSegment,
    Outcome::UnknownCustomer,
];

/// Where an event was read, carried into its dead letter so that it can be found again.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// What to produce for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// To the results topic, keyed by `customer_id`.
    Result { key: Vec<u8>, value: Vec<u8> },
    /// To the dead-letter topic, keyed like the event; `reason` is one of
    /// [`DEAD_LETTER_REASONS`].
    DeadLetter { reason: Outcome, value: Vec<u8> },
    /// Nothing yet: the customer store could not answer for the event, which is to be scored
    /// again (never dead-lettered).
    Retry { why: String },
}

/// The customer id to look up, for an event that asks by id (the event's own fields aside,
/// its request has only `customer_id` and `segment_name`).
pub fn lookup_id(payload: Option<&[u8]>) -> Option<i64> {
    VoucherRequest::parse(payload?).ok()?.lookup_id()
}

/// The event's own fields, beside the voucher request's (which the core reads).
#[derive(Debug, Default, Deserialize)]
struct EventFields<'a> {
    #[serde(borrow, default)]
    event_id: Json<'a>,
    #[serde(borrow, default)]
    event_timestamp: Json<'a>,
}

/// A result: the event it answers and the core's answer (which names the table version).
#[derive(Debug, Serialize)]
struct EventResult<'a> {
    event_id: &'a str,
    event_timestamp: &'a str,
    customer_id: serde_json::Number,
    #[serde(flatten)]
    answer: VoucherResponse<'a>,
}

/// A dead letter: why, the table version that judged it, where it came from and the payload.
#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    reason: Outcome,
    /// What is wrong, in one sentence.
    message: String,
    /// One entry per bad field, as the HTTP API's 422 `detail`; only for `invalid`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ValidationError],
    /// The event's id, when it could be read.
    event_id: Option<&'a str>,
    /// The table version that refused it; absent for `malformed`.
    version: Option<&'a str>,
    source: Source<'a>,
    /// The original payload, when it is UTF-8 text (it usually is).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    /// The original payload as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// Scores one event payload against what is served at time `now` (seconds since the epoch),
/// an event by id with its customer's profile from `profiles` (the customer store's answer for
/// the event's batch).
pub fn route(
    payload: Option<&[u8]>,
    source: Source<'_>,
    served: &Served,
    profiles: &Profiles,
    now: i64,
) -> Routed {
    let bytes = payload.unwrap_or_default();
    let dead = |reason, message: String, errors: &[ValidationError], event_id, version| {
        dead_letter(bytes, source, reason, message, errors, event_id, version)
    };
    let (request, fields) = match parse(bytes) {
        Ok(parsed) => parsed,
        Err(BodyError::Syntax(message)) => {
            let message = message.replace("the body is", "the event is");
            return dead(Outcome::Malformed, message, &[], None, None);
        }
        // A payload that is not a JSON object is no event at all: malformed, where the HTTP
        // door (whose body is known to be a request) calls it invalid.
        Err(BodyError::Shape(error)) => {
            let message = error.msg.clone();
            return dead(Outcome::Malformed, message, &[error], None, None);
        }
    };
    let event_id = match &fields.event_id {
        Json::Str(id) => Some(id.as_ref()),
        _ => None,
    };
    let mut errors = check_event_fields(&fields);
    let answered = served.score_with(&request, profiles, now);
    let version = Some(answered.version);
    let answer = match answered.scored {
        Ok(answer) if errors.is_empty() => answer,
        Err(Refusal::Invalid(core)) => {
            // The request's fields first, as the HTTP API lists them, then the event's.
            errors.splice(0..0, core);
            let message = invalid_message(&errors);
            return dead(Outcome::Invalid, message, &errors, event_id, version);
        }
        // Not the event's fault, whatever its own fields: it is scored again later.
        Err(refusal @ Refusal::CustomersUnavailable(_)) => {
            return Routed::Retry {
                why: refusal.message(),
            };
        }
        Err(refusal) if errors.is_empty() => {
            let reason = Outcome::of_refusal(&refusal);
            return dead(reason, refusal.message(), &[], event_id, version);
        }
        // Bad event fields win over what the core found.
        Ok(_) | Err(_) => {
            let message = invalid_message(&errors);
            return dead(Outcome::Invalid, message, &errors, event_id, version);
        }
    };
    // The core accepted customer_id as a whole number, so it has a JSON number form.
    let (Some(customer_id), Some(event_id), Json::Str(event_timestamp)) = (
        number(&request.customer_id),
        event_id,
        &fields.event_timestamp,
    ) else {
        let message = "customer_id is not a number the results can carry".to_owned();
        return dead(Outcome::Invalid, message, &[], event_id, version);
    };
    let key = customer_id.to_string().into_bytes();
    let result = EventResult {
        event_id,
        event_timestamp,
        customer_id,
        answer,
    };
    match serde_json::to_vec(&result) {
        Ok(value) => Routed::Result { key, value },
        Err(e) => dead(
            Outcome::Invalid,
            format!("cannot write the result: {e}"),
            &[],
            Some(event_id),
            version,
        ),
    }
}

fn parse(bytes: &[u8]) -> Result<(VoucherRequest<'_>, EventFields<'_>), BodyError> {
    let request = VoucherRequest::parse(bytes)?;
    // Already known to be a JSON object; the second pass reads only the event's two fields.
    let fields = serde_json::from_slice::<EventFields<'_>>(bytes).unwrap_or_default();
    Ok((request, fields))
}

/// The event's own fields, in the shape of the core's field errors.
fn check_event_fields(fields: &EventFields<'_>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut error = |field, kind, msg: &str| {
        errors.push(ValidationError {
            loc: vec!["body", field],
            msg: msg.to_owned(),
            kind,
        });
    };
    match &fields.event_id {
        Json::Missing => error("event_id", "missing", "Field required"),
        Json::Str(id) if id.is_empty() || id.len() > MAX_EVENT_ID => error(
            "event_id",
            if id.is_empty() {
                "string_too_short"
            } else {
                "string_too_long"
            },
            &format!("event_id must be 1 to {MAX_EVENT_ID} bytes long"),
        ),
        Json::Str(_) => {}
        _ => error("event_id", "string_type", "Input should be a valid string"),
    }
    match &fields.event_timestamp {
        Json::Missing => error("event_timestamp", "missing", "Field required"),
        Json::Str(text) if parse_timestamp(text).is_some() => {}
        Json::Str(_) => error(
            "event_timestamp",
            "datetime_parsing",
            &format!("Input should be a time: {ACCEPTED_TIME_FORMATS}"),
        ),
        _ => error(
            "event_timestamp",
            "string_type",
            "Input should be a valid string",
        ),
    }
    errors
}

fn invalid_message(errors: &[ValidationError]) -> String {
    let fields: Vec<&str> = errors.iter().filter_map(ValidationError::field).collect();
    format!("invalid fields: {}", fields.join(", "))
}

/// A whole number's JSON form: `123.0` becomes `123`, so that one customer has one key.
fn number(value: &Json<'_>) -> Option<serde_json::Number> {
    match value {
        Json::Int(n) => Some((*n).into()),
        Json::UInt(n) => Some((*n).into()),
        #[allow(clippy::cast_possible_truncation)]
        Json::Float(f) if f.abs() < 9.0e18 => Some((*f as i64).into()),
        Json::Float(f) => serde_json::Number::from_f64(*f),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn dead_letter(
    payload: &[u8],
    source: Source<'_>,
    reason: Outcome,
    message: String,
    errors: &[ValidationError],
    event_id: Option<&str>,
    version: Option<&str>,
) -> Routed {
    use base64::Engine as _;
    let text = std::str::from_utf8(payload).ok();
    let letter = DeadLetter {
        reason,
        message,
        errors,
        event_id,
        version,
        source,
        payload: text,
        payload_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(payload)),
    };
    // Serializing plain strings and numbers cannot fail; the fallback keeps the reason anyway.
    let value = serde_json::to_vec(&letter)
        .unwrap_or_else(|_| format!("{{\"reason\":\"{}\"}}", reason.label()).into_bytes());
    Routed::DeadLetter { reason, value }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use voucher_serve::fixtures::sample_served;
    use voucher_shared::fixtures::CONTRACT_VERSION;

    use super::*;

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200;
    const SOURCE: Source<'static> = Source {
        topic: "voucher-requests",
        partition: 2,
        offset: 41,
    };

    fn event(overrides: &[(&str, Value)]) -> Vec<u8> {
        let mut json = json!({
            "event_id": "e-1", "event_timestamp": "2026-11-23T11:59:00Z",
            "customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
            "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14,
            "segment_name": "frequent_segment"
        });
        for (k, v) in overrides {
            if v.is_null() {
                json.as_object_mut().expect("object").remove(*k);
            } else {
                json[*k] = v.clone();
            }
        }
        serde_json::to_vec(&json).expect("json")
    }

    fn routed(payload: &[u8]) -> (Option<Vec<u8>>, Option<Outcome>, Value) {
        routed_with(payload, &Profiles::no_store())
    }

    fn routed_with(
        payload: &[u8],
        profiles: &Profiles,
    ) -> (Option<Vec<u8>>, Option<Outcome>, Value) {
        match route(Some(payload), SOURCE, &sample_served(), profiles, NOW) {
            Routed::Result { key, value } => (
                Some(key),
                None,
                serde_json::from_slice(&value).expect("json"),
            ),
            Routed::DeadLetter { reason, value } => (
                None,
                Some(reason),
                serde_json::from_slice(&value).expect("json"),
            ),
            Routed::Retry { why } => panic!("retried: {why}"),
        }
    }

    /// The profile of the event of [`event`], stored for customer 123.
    fn stored() -> Profiles {
        use std::sync::Arc;
        use voucher_shared::score::{Profile, Stored};
        let mut profiles = Profiles::with_store(1);
        let profile = Profile::new(
            Stored::Text("Peru".into()),
            Stored::Text("2021-10-26 00:00:00".into()),
            Stored::Text("2021-10-26 00:00:00".into()),
            Stored::Int(14),
        );
        profiles.insert(123, Some(Arc::new(profile)));
        profiles.insert(124, None);
        profiles
    }

    fn by_id(customer_id: i64) -> Vec<u8> {
        event(&[
            ("customer_id", json!(customer_id)),
            ("country_code", Value::Null),
            ("last_order_ts", Value::Null),
            ("first_order_ts", Value::Null),
            ("total_orders", Value::Null),
        ])
    }

    #[test]
    fn an_event_by_id_gets_the_full_events_result_or_names_the_unknown_customer() {
        assert_eq!(lookup_id(Some(&by_id(123))), Some(123));
        assert_eq!(lookup_id(Some(&event(&[]))), None, "a full event");
        assert_eq!(lookup_id(Some(b"not json")), None);
        let full = routed(&event(&[]));
        assert_eq!(routed_with(&by_id(123), &stored()), full);

        let (key, reason, value) = routed_with(&by_id(124), &stored());
        assert_eq!((key, reason), (None, Some(Outcome::UnknownCustomer)));
        assert!(
            value["message"].as_str().is_some_and(|m| m.contains("124")),
            "{value}"
        );
        assert_eq!(value["event_id"], "e-1");
        // Bad event fields win, as over no_segment.
        let bad = routed_with(
            &event(&[
                ("customer_id", json!(124)),
                ("country_code", Value::Null),
                ("last_order_ts", Value::Null),
                ("first_order_ts", Value::Null),
                ("total_orders", Value::Null),
                ("event_id", Value::Null),
            ]),
            &stored(),
        );
        assert_eq!(bad.1, Some(Outcome::Invalid));

        let mut down = Profiles::with_store(1);
        down.set_unavailable("connection refused".into());
        match route(Some(&by_id(123)), SOURCE, &sample_served(), &down, NOW) {
            Routed::Retry { why } => assert!(why.contains("connection refused"), "{why}"),
            other => panic!("not retried: {other:?}"),
        }
        // Without a store, an event by id is missing its fields.
        let (_, reason, value) = routed(&by_id(123));
        assert_eq!(reason, Some(Outcome::Invalid));
        assert_eq!(value["errors"].as_array().map(Vec::len), Some(4), "{value}");
    }

    #[test]
    fn a_valid_event_gets_the_cores_answer_keyed_by_customer() {
        let (key, reason, value) = routed(&event(&[]));
        assert_eq!((key.as_deref(), reason), (Some(&b"123"[..]), None));
        assert_eq!(
            value,
            json!({"event_id": "e-1", "event_timestamp": "2026-11-23T11:59:00Z",
                "customer_id": 123, "voucher": 2640, "country_code": "Peru",
                "segment_name": "frequent_segment", "segment": "14-37",
                "version": CONTRACT_VERSION})
        );
        // Unknown fields are ignored, as the HTTP API ignores them.
        let (key, _, _) = routed(&event(&[("source_system", json!("crm"))]));
        assert_eq!(key.as_deref(), Some(&b"123"[..]));
    }

    #[test]
    fn not_json_and_not_an_object_are_malformed_and_keep_the_payload() {
        for payload in [&b"{\"event_id\": "[..], b"", b"[1, 2]", b"42"] {
            let (_, reason, value) = routed(payload);
            assert_eq!(reason, Some(Outcome::Malformed), "{payload:?}");
            assert_eq!(value["payload"], String::from_utf8_lossy(payload).as_ref());
            assert_eq!(value["source"]["offset"], 41);
            assert_eq!(value["version"], Value::Null);
        }
        let (_, reason, value) = routed(b"\xff\xfe{");
        assert_eq!(reason, Some(Outcome::Malformed));
        assert_eq!(value["payload_base64"], "//57");
        assert!(value.get("payload").is_none());
    }

    #[test]
    fn bad_request_and_event_fields_are_listed_together() {
        let payload = event(&[
            ("total_orders", json!(-3)),
            ("event_timestamp", json!("yesterday")),
        ]);
        let (_, reason, value) = routed(&payload);
        assert_eq!(reason, Some(Outcome::Invalid));
        let fields: Vec<&str> = value["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["loc"][1].as_str().expect("field"))
            .collect();
        assert_eq!(fields, ["total_orders", "event_timestamp"]);
        assert_eq!(value["event_id"], "e-1");
        assert_eq!(value["version"], CONTRACT_VERSION);
        assert_eq!(
            value["message"],
            "invalid fields: total_orders, event_timestamp"
        );
        // The event's payload comes back as sent.
        assert_eq!(
            value["payload"],
            std::str::from_utf8(&payload).expect("utf-8")
        );

        for (field, bad) in [
            ("event_id", Value::Null),
            ("event_id", json!(7)),
            ("event_id", json!("")),
            ("event_id", json!("x".repeat(MAX_EVENT_ID + 1))),
            ("event_timestamp", Value::Null),
            ("event_timestamp", json!(1_795_435_200)),
        ] {
            let (_, reason, value) = routed(&event(&[(field, bad.clone())]));
            assert_eq!(reason, Some(Outcome::Invalid), "{field} = {bad}");
            assert_eq!(value["errors"][0]["loc"][1], field, "{field} = {bad}");
        }
    }

    #[test]
    fn an_uncovered_value_is_no_segment_but_bad_event_fields_win() {
        let (_, reason, value) = routed(&event(&[("total_orders", json!(1000))]));
        assert_eq!(reason, Some(Outcome::NoSegment));
        assert!(
            value["message"]
                .as_str()
                .is_some_and(|m| m.contains("total_orders = 1000")),
            "{value}"
        );
        let (_, reason, _) = routed(&event(&[
            ("total_orders", json!(1000)),
            ("event_id", Value::Null),
        ]));
        assert_eq!(reason, Some(Outcome::Invalid));
    }

    #[test]
    fn a_whole_float_customer_id_has_the_same_key_as_the_integer() {
        let (key, _, value) = routed(&event(&[("customer_id", json!(123.0))]));
        assert_eq!(key.as_deref(), Some(&b"123"[..]));
        assert_eq!(value["customer_id"], json!(123));
    }

    fn schema(text: &str) -> Value {
        serde_json::from_str(text).expect("a JSON Schema of docs/events")
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().expect("object").keys().cloned().collect()
    }

    fn required(schema: &Value) -> BTreeSet<String> {
        let names = schema["required"].as_array().expect("required");
        names
            .iter()
            .map(|f| f.as_str().expect("name").to_owned())
            .collect()
    }

    /// The documented formats are the ones written: the schema's example event gets a result
    /// with exactly the fields the result schema requires, and a dead letter of each reason has
    /// only properties the dead-letter schema knows. (The events test validates every message
    /// against the schemas on a real broker.)
    #[test]
    fn messages_have_the_fields_docs_events_describes() {
        let event_schema = schema(include_str!(
            "../../docs/events/voucher-request-event.schema.json"
        ));
        let result = schema(include_str!("../../docs/events/voucher-result.schema.json"));
        let dead = schema(include_str!(
            "../../docs/events/voucher-dead-letter.schema.json"
        ));
        let example = serde_json::to_vec(&event_schema["examples"][0]).expect("json");
        let (_, reason, value) = routed(&example);
        assert_eq!(reason, None, "{value}");
        assert_eq!(keys(&value), required(&result));
        assert_eq!(keys(&value), keys(&result["properties"]));

        let known = keys(&dead["properties"]);
        for (payload, profiles) in [
            (b"not json".to_vec(), Profiles::no_store()),
            (b"\xff".to_vec(), Profiles::no_store()),
            (
                event(&[("total_orders", Value::Null)]),
                Profiles::no_store(),
            ),
            (
                event(&[("total_orders", json!(1000))]),
                Profiles::no_store(),
            ),
            (by_id(124), stored()),
        ] {
            let (_, reason, value) = routed_with(&payload, &profiles);
            assert!(reason.is_some());
            assert!(keys(&value).is_subset(&known), "{value}");
            assert!(keys(&value).is_superset(&required(&dead)), "{value}");
        }
    }

    #[test]
    fn the_reasons_serialize_as_their_metric_labels() {
        for reason in DEAD_LETTER_REASONS {
            assert_ne!(reason, Outcome::Ok);
            assert_eq!(
                serde_json::to_value(reason).expect("json"),
                json!(reason.label())
            );
        }
    }
}
