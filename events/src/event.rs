//! One event in, one message out: a result for the results topic, or a dead letter.
//!
//! Pure functions of the payload and what is served, so that every rule of the events door is
//! unit-tested without a broker. The scoring itself is the core's ([`voucher_shared::score`],
//! through [`Served::score`]); this module only reads the event's own two fields and shapes the
//! output.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use voucher_serve::live::Served;
use voucher_shared::echo::cut;
use voucher_shared::score::{
    BodyError, Json, Outcome, Profiles, Refusal, ValidationError, VoucherRequest, VoucherResponse,
};
use voucher_shared::time::{ACCEPTED_TIME_FORMATS, parse_timestamp};

/// Longest accepted `event_id`, in bytes: ids are keys for deduplication, not documents.
pub const MAX_EVENT_ID: usize = 256;

/// The outcomes that send an event to the dead-letter topic, with their label as its `reason`:
/// `malformed` (not JSON, not UTF-8, empty, a tombstone, or not an object), `invalid` (a field
/// is missing, wrong or given twice: the HTTP API's checks and the event's own), `no_segment`
/// (valid, but no segment of the live table covers it) and `unknown_customer` (an event by id
/// for a customer the customer store does not hold).
pub const DEAD_LETTER_REASONS: [Outcome; 4] = [
    Outcome::Malformed,
    Outcome::Invalid,
    Outcome::NoSegment,
    Outcome::UnknownCustomer,
];

/// The `reason` of the record that replaces a dead letter the broker refused for good
/// ([`Undeliverable`]).
pub const UNDELIVERABLE: &str = "undeliverable";

/// The event's own fields, read with the request's in one pass.
const EVENT_FIELDS: [&str; 2] = ["event_id", "event_timestamp"];

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
    /// [`DEAD_LETTER_REASONS`]. `undeliverable` replaces it if the broker refuses it for good.
    DeadLetter {
        reason: Outcome,
        value: Vec<u8>,
        undeliverable: Undeliverable,
    },
    /// Nothing yet: the customer store could not answer for the event, which is to be scored
    /// again (never dead-lettered).
    Retry { why: String },
}

/// The customer id to look up, for an event that asks by id (the event's own fields aside,
/// its request has only `customer_id` and `segment_name`).
pub fn lookup_id(payload: Option<&[u8]>) -> Option<i64> {
    read(payload?).ok()?.0.lookup_id()
}

/// A result: the event it answers and the core's answer (which names the table version).
#[derive(Debug, Serialize)]
struct EventResult<'a> {
    event_id: &'a str,
    event_timestamp: &'a str,
    customer_id: i64,
    #[serde(flatten)]
    answer: VoucherResponse<'a>,
}

/// What is known of a payload without repeating it: its length and SHA-256, `None` for a
/// tombstone (no value at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Fingerprint {
    #[serde(rename = "payload_bytes")]
    bytes: Option<usize>,
    #[serde(rename = "payload_sha256")]
    sha256: Option<String>,
}

impl Fingerprint {
    fn of(payload: Option<&[u8]>) -> Self {
        Fingerprint {
            bytes: payload.map(<[u8]>::len),
            sha256: payload.map(|p| {
                Sha256::digest(p)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }),
        }
    }
}

/// A dead letter: why, the table version that judged it, where it came from and the payload
/// (its first `max_payload` bytes, with the whole payload's length and hash).
#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    reason: &'a str,
    /// What is wrong, in one sentence.
    message: String,
    /// One entry per bad field, as the HTTP API's 422 `detail`; only for `invalid`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ValidationError],
    /// The event's id, when it could be read (and is one: at most [`MAX_EVENT_ID`] bytes).
    event_id: Option<&'a str>,
    /// The table version that refused it; absent for `malformed`.
    version: Option<&'a str>,
    source: Source<'a>,
    #[serde(flatten)]
    fingerprint: &'a Fingerprint,
    /// Whether the payload below is only the first part of the event's.
    payload_truncated: bool,
    /// The payload when it is UTF-8 text (it usually is); `null` for a tombstone.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Option<&'a str>>,
    /// The payload as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// The record that replaces a dead letter the broker refuses for good (too large for it, or
/// otherwise refused for a reason that retrying cannot change): the event's place, length and
/// hash, without its payload, so that it always fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeliverable {
    /// The reason of the dead letter it replaces.
    reason: Outcome,
    topic: String,
    partition: i32,
    offset: i64,
    event_id: Option<String>,
    fingerprint: Fingerprint,
}

impl Undeliverable {
    /// The record, saying that the dead letter was refused and why (`refusal`, the broker's
    /// error).
    pub fn to_json(&self, refusal: &str) -> Vec<u8> {
        let message = format!(
            "the broker refused this event's dead letter (reason {}) for good ({}); this record replaces it, without the payload: find the event at its source",
            self.reason.label(),
            cut(refusal, 200)
        );
        let letter = DeadLetter {
            reason: UNDELIVERABLE,
            message,
            errors: &[],
            event_id: self.event_id.as_deref(),
            version: None,
            source: Source {
                topic: &self.topic,
                partition: self.partition,
                offset: self.offset,
            },
            fingerprint: &self.fingerprint,
            payload_truncated: self.fingerprint.bytes.is_some_and(|n| n > 0),
            payload: Some(self.fingerprint.bytes.map(|_| "")),
            payload_base64: None,
        };
        to_json(&letter, UNDELIVERABLE)
    }
}

/// Scores one event payload (`None` for a tombstone) against what is served at time `now`
/// (seconds since the epoch), an event by id with its customer's profile from `profiles` (the
/// customer store's answer for the event's batch). A dead letter carries at most
/// `max_payload` bytes of the payload.
pub fn route(
    payload: Option<&[u8]>,
    source: Source<'_>,
    served: &Served,
    profiles: &Profiles,
    now: i64,
    max_payload: usize,
) -> Routed {
    let dead = |reason, message: String, errors: &[ValidationError], event_id, version| {
        let letter = Letter {
            reason,
            message,
            errors,
            event_id,
            version,
        };
        dead_letter(payload, source, max_payload, letter)
    };
    let Some(payload_bytes) = payload.filter(|p| !p.is_empty()) else {
        let message = match payload {
            None => "the event has no value (a tombstone); an event is a JSON object",
            Some(_) => "the event is empty (a value of 0 bytes); an event is a JSON object",
        };
        return dead(Outcome::Malformed, message.to_owned(), &[], None, None);
    };
    let (request, [event_id_field, event_timestamp]) = match read(payload_bytes) {
        Ok(parsed) => parsed,
        Err((reason, message, error)) => {
            return dead(reason, message, error.as_slice(), None, None);
        }
    };
    let event_id = match &event_id_field {
        Json::Str(id) if !id.is_empty() && id.len() <= MAX_EVENT_ID => Some(id.as_ref()),
        _ => None,
    };
    let mut errors = check_event_fields(&event_id_field, &event_timestamp);
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
    // The core accepted the request, so its customer_id is one by the core's rule.
    let (Some(customer_id), Some(event_id), Json::Str(event_timestamp)) =
        (request.customer_id(), event_id, &event_timestamp)
    else {
        let message = "the event lacks what its result carries".to_owned();
        return dead(Outcome::Invalid, message, &[], event_id, version);
    };
    let result = EventResult {
        event_id,
        event_timestamp,
        customer_id,
        answer,
    };
    match serde_json::to_vec(&result) {
        Ok(value) => Routed::Result {
            key: customer_id.to_string().into_bytes(),
            value,
        },
        Err(e) => dead(
            Outcome::Invalid,
            format!("cannot write the result: {e}"),
            &[],
            Some(event_id),
            version,
        ),
    }
}

/// An event read: the request and the event's own fields; or why it cannot be read (the
/// dead letter's reason, message and field error).
type Read<'a> = Result<
    (VoucherRequest<'a>, [Json<'a>; EVENT_FIELDS.len()]),
    (Outcome, String, Option<ValidationError>),
>;

fn read(payload: &[u8]) -> Read<'_> {
    VoucherRequest::parse_with(payload, EVENT_FIELDS).map_err(|e| match e {
        BodyError::Syntax(message) => (
            Outcome::Malformed,
            message.replace("the body is", "the event is"),
            None,
        ),
        // A payload that is not a JSON object is no event at all: malformed, where the HTTP
        // door (whose body is known to be a request) calls it invalid.
        BodyError::Shape(error) => (Outcome::Malformed, error.msg.clone(), Some(error)),
        BodyError::Duplicate(error) => (
            Outcome::Invalid,
            invalid_message(std::slice::from_ref(&error)),
            Some(error),
        ),
    })
}

/// The event's own fields, in the shape of the core's field errors.
fn check_event_fields(event_id: &Json<'_>, event_timestamp: &Json<'_>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut error = |field, kind, msg: &str| {
        errors.push(ValidationError {
            loc: vec!["body", field],
            msg: msg.to_owned(),
            kind,
        });
    };
    match event_id {
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
    match event_timestamp {
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

/// Why an event is refused, as its dead letter says.
struct Letter<'a> {
    reason: Outcome,
    message: String,
    errors: &'a [ValidationError],
    event_id: Option<&'a str>,
    version: Option<&'a str>,
}

fn dead_letter(
    payload: Option<&[u8]>,
    source: Source<'_>,
    max_payload: usize,
    letter: Letter<'_>,
) -> Routed {
    use base64::Engine as _;
    let bytes = payload.unwrap_or_default();
    let text = std::str::from_utf8(bytes).ok();
    // Text is cut on a character boundary, other bytes anywhere.
    let shown = match text {
        Some(text) => cut(text, max_payload).len(),
        None => bytes.len().min(max_payload),
    };
    let truncated = shown < bytes.len();
    let mut message = letter.message;
    if truncated {
        message.push_str(&format!(
            " (the payload below is cut to its first {shown} of {} bytes)",
            bytes.len()
        ));
    }
    let fingerprint = Fingerprint::of(payload);
    let dead = DeadLetter {
        reason: letter.reason.label(),
        message,
        errors: letter.errors,
        event_id: letter.event_id,
        version: letter.version,
        source,
        fingerprint: &fingerprint,
        payload_truncated: truncated,
        payload: match (payload, text) {
            (None, _) => Some(None),
            (Some(_), Some(text)) => Some(Some(&text[..shown])),
            (Some(_), None) => None,
        },
        payload_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(&bytes[..shown])),
    };
    let value = to_json(&dead, letter.reason.label());
    Routed::DeadLetter {
        reason: letter.reason,
        value,
        undeliverable: Undeliverable {
            reason: letter.reason,
            topic: source.topic.to_owned(),
            partition: source.partition,
            offset: source.offset,
            event_id: letter.event_id.map(str::to_owned),
            fingerprint,
        },
    }
}

/// Serializes a dead letter. Plain strings and numbers cannot fail to serialize; the fallback
/// keeps at least the reason.
fn to_json(value: &DeadLetter<'_>, reason: &str) -> Vec<u8> {
    serde_json::to_vec(value)
        .unwrap_or_else(|_| format!("{{\"reason\":\"{reason}\"}}").into_bytes())
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

    /// The default of `--dead-letter-max-payload`.
    const MAX_PAYLOAD: usize = 65_536;

    fn route_at(payload: Option<&[u8]>, profiles: &Profiles, max_payload: usize) -> Routed {
        route(
            payload,
            SOURCE,
            &sample_served(),
            profiles,
            NOW,
            max_payload,
        )
    }

    fn routed_value(payload: Option<&[u8]>) -> (Option<Vec<u8>>, Option<Outcome>, Value) {
        routed_with(payload, &Profiles::no_store())
    }

    fn routed_with(
        payload: Option<&[u8]>,
        profiles: &Profiles,
    ) -> (Option<Vec<u8>>, Option<Outcome>, Value) {
        match route_at(payload, profiles, MAX_PAYLOAD) {
            Routed::Result { key, value } => (
                Some(key),
                None,
                serde_json::from_slice(&value).expect("json"),
            ),
            Routed::DeadLetter { reason, value, .. } => (
                None,
                Some(reason),
                serde_json::from_slice(&value).expect("json"),
            ),
            Routed::Retry { why } => panic!("retried: {why}"),
        }
    }

    fn routed(payload: &[u8]) -> (Option<Vec<u8>>, Option<Outcome>, Value) {
        routed_value(Some(payload))
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
        assert_eq!(lookup_id(None), None, "a tombstone");
        let full = routed(&event(&[]));
        assert_eq!(routed_with(Some(&by_id(123)), &stored()), full);

        let (key, reason, value) = routed_with(Some(&by_id(124)), &stored());
        assert_eq!((key, reason), (None, Some(Outcome::UnknownCustomer)));
        assert!(
            value["message"].as_str().is_some_and(|m| m.contains("124")),
            "{value}"
        );
        assert_eq!(value["event_id"], "e-1");
        // Bad event fields win, as over no_segment.
        let bad = routed_with(
            Some(&event(&[
                ("customer_id", json!(124)),
                ("country_code", Value::Null),
                ("last_order_ts", Value::Null),
                ("first_order_ts", Value::Null),
                ("total_orders", Value::Null),
                ("event_id", Value::Null),
            ])),
            &stored(),
        );
        assert_eq!(bad.1, Some(Outcome::Invalid));

        let mut down = Profiles::with_store(1);
        down.set_unavailable("connection refused".into());
        match route_at(Some(&by_id(123)), &down, MAX_PAYLOAD) {
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
        for payload in [&b"{\"event_id\": "[..], b"[1, 2]", b"42"] {
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
    fn a_tombstone_and_an_empty_value_are_told_apart() {
        let (_, reason, tombstone) = routed_value(None);
        assert_eq!(reason, Some(Outcome::Malformed));
        let (_, reason, empty) = routed(b"");
        assert_eq!(reason, Some(Outcome::Malformed));
        assert_ne!(tombstone["message"], empty["message"]);
        assert!(
            tombstone["message"]
                .as_str()
                .is_some_and(|m| m.contains("tombstone"))
        );
        assert_eq!(
            (
                &tombstone["payload"],
                &tombstone["payload_bytes"],
                &tombstone["payload_sha256"]
            ),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        assert_eq!(
            (&empty["payload"], &empty["payload_bytes"]),
            (&json!(""), &json!(0))
        );
        assert_eq!(
            empty["payload_sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_large_payload_is_cut_and_keeps_its_length_and_hash() {
        // 800 KB that is not UTF-8: whole, its base64 would be over 1 MB, Kafka's default limit.
        let payload: Vec<u8> = (0..800 * 1024).map(|i| (i % 251) as u8 | 0x80).collect();
        let Routed::DeadLetter { value, .. } =
            route_at(Some(&payload), &Profiles::no_store(), MAX_PAYLOAD)
        else {
            panic!("a dead letter");
        };
        assert!(value.len() < 100_000, "{} bytes", value.len());
        let letter: Value = serde_json::from_slice(&value).expect("json");
        use base64::Engine as _;
        let shown = base64::engine::general_purpose::STANDARD
            .decode(letter["payload_base64"].as_str().expect("base64"))
            .expect("base64");
        assert_eq!(shown, payload[..MAX_PAYLOAD]);
        assert_eq!(letter["payload_bytes"], payload.len());
        assert_eq!(letter["payload_truncated"], true);
        let sha: String = Sha256::digest(&payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(letter["payload_sha256"], sha);
        assert!(
            letter["message"]
                .as_str()
                .is_some_and(|m| m.contains("cut to its first 65536 of 819200 bytes")),
            "{}",
            letter["message"]
        );
        // Text is cut on a character boundary.
        let text = format!("{{\"event_id\": \"{}\"", "é".repeat(MAX_PAYLOAD));
        let Routed::DeadLetter { value, .. } =
            route_at(Some(text.as_bytes()), &Profiles::no_store(), 5)
        else {
            panic!("a dead letter");
        };
        let letter: Value = serde_json::from_slice(&value).expect("json");
        assert_eq!(letter["payload"], "{\"eve");
        assert_eq!(letter["payload_truncated"], true);
    }

    #[test]
    fn a_refused_dead_letter_is_replaced_by_a_record_without_its_payload() {
        let payload = event(&[("total_orders", json!(-1))]);
        let Routed::DeadLetter { undeliverable, .. } =
            route_at(Some(&payload), &Profiles::no_store(), MAX_PAYLOAD)
        else {
            panic!("a dead letter");
        };
        let record: Value =
            serde_json::from_slice(&undeliverable.to_json("Broker: Message size too large"))
                .expect("json");
        assert_eq!(record["reason"], UNDELIVERABLE);
        assert_eq!(record["payload"], "");
        assert_eq!(record["payload_bytes"], payload.len());
        assert_eq!(record["event_id"], "e-1");
        assert_eq!(record["source"]["offset"], 41);
        let message = record["message"].as_str().expect("message");
        assert!(
            message.contains("reason invalid") && message.contains("Message size too large"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_fields_are_invalid_and_customer_id_is_a_signed_64_bit_integer() {
        let twice = br#"{"event_id": "e-1", "event_timestamp": "2026-11-23T11:59:00Z",
            "customer_id": 1, "customer_id": 2, "country_code": "Peru"}"#;
        let (_, reason, value) = routed(twice);
        assert_eq!(reason, Some(Outcome::Invalid));
        assert_eq!(value["errors"][0]["loc"], json!(["body", "customer_id"]));
        assert_eq!(value["errors"][0]["type"], "duplicate_field");

        for (id, key) in [(json!(i64::MAX), i64::MAX), (json!(-1), -1)] {
            let (got, reason, value) = routed(&event(&[("customer_id", id)]));
            assert_eq!(reason, None, "{value}");
            assert_eq!(got, Some(key.to_string().into_bytes()));
            assert_eq!(value["customer_id"], key);
        }
        for id in [
            json!(u64::MAX),
            json!(9_223_372_036_854_775_808_u64),
            json!(1e300),
        ] {
            let (_, reason, value) = routed(&event(&[("customer_id", id.clone())]));
            assert_eq!(reason, Some(Outcome::Invalid), "{id}");
            assert_eq!(value["errors"][0]["loc"][1], "customer_id", "{id}");
            assert_eq!(value["errors"][0]["type"], "int_too_large", "{id}");
        }
    }

    /// The edge cases every door is checked against (the HTTP and gRPC doors in voucher-api's
    /// four-door test): refused with the same field and type, or given the core's answer.
    #[test]
    fn the_edge_cases_of_every_door_get_the_cores_answer() {
        let served = sample_served();
        for case in voucher_shared::fixtures::edge_cases("2026-11-20 00:00:00") {
            let payload = format!(
                r#"{{"event_id": "e-1", "event_timestamp": "2026-11-23T11:59:00Z", {}"#,
                case.body.trim_start().trim_start_matches('{')
            );
            let (key, reason, value) = routed(payload.as_bytes());
            match case.refused {
                Some((field, kind)) => {
                    assert_eq!(reason, Some(Outcome::Invalid), "{}: {value}", case.body);
                    let errors = value["errors"].as_array().expect("errors");
                    assert_eq!(errors.len(), 1, "{}: {value}", case.body);
                    assert_eq!(errors[0]["loc"], json!(["body", field]), "{}", case.body);
                    assert_eq!(errors[0]["type"], kind, "{}", case.body);
                }
                None => {
                    let request =
                        VoucherRequest::parse(case.body.as_bytes()).expect("a valid request");
                    let core = served.score(&request, NOW).scored.expect("answered");
                    let core = serde_json::to_value(&core).expect("json");
                    assert_eq!(reason, None, "{}: {value}", case.body);
                    for (field, expected) in core.as_object().expect("an object") {
                        assert_eq!(&value[field], expected, "{field} of {}", case.body);
                    }
                    assert_eq!(key, Some(value["customer_id"].to_string().into_bytes()));
                }
            }
        }
    }

    #[test]
    fn an_event_id_that_is_not_one_is_not_repeated() {
        let long = "i".repeat(100_000);
        let (_, reason, value) = routed(&event(&[("event_id", json!(long))]));
        assert_eq!(reason, Some(Outcome::Invalid));
        assert_eq!(value["event_id"], Value::Null);
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
        let mut letters = Vec::new();
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
            let (_, reason, value) = routed_with(Some(&payload), &profiles);
            assert!(reason.is_some());
            letters.push(value);
            if let Routed::DeadLetter { undeliverable, .. } =
                route_at(Some(&payload), &profiles, MAX_PAYLOAD)
            {
                letters
                    .push(serde_json::from_slice(&undeliverable.to_json("refused")).expect("json"));
            }
        }
        letters.push(routed_value(None).2);
        for value in letters {
            assert!(keys(&value).is_subset(&known), "{value}");
            assert!(keys(&value).is_superset(&required(&dead)), "{value}");
        }
        let reasons = dead["properties"]["reason"]["enum"]
            .as_array()
            .expect("enum");
        assert!(reasons.contains(&json!(UNDELIVERABLE)));
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
