//! The voucher request: parsed without trusting its shape, then checked field by field so that
//! every bad field is reported at once, as FastAPI does.
//!
//! Parsing borrows strings from the body (no allocation unless a string has escapes) and keeps
//! each field's JSON kind, so that a wrong type becomes a field error rather than a parse
//! failure. Doors that are not JSON (gRPC, Parquet columns) build the request from their own
//! values with the same [`Json`] kinds, and so get the same checks.
//!
//! Every message repeats the input, or the table, only through [`crate::echo`]: an error is
//! never much larger than the request's fields, whatever their size.

use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;

use super::Snapshot;
use super::json::Json;
use super::snapshot::CountrySegments;
use crate::country::{COUNTRY_CODE_RULE, CountryCodeError, check_country_code};
use crate::echo::{Echo, MAX_LISTED, Plain, few};
use crate::numbers::{whole_count, whole_integer};
use crate::segments::SegmentType;
use crate::time::{ACCEPTED_TIME_FORMATS, SECONDS_PER_DAY, parse_timestamp};

/// Defines [`VoucherRequest`] and, from the same field list, [`VoucherRequest::FIELDS`] and
/// [`RequestFields`]: doors that read fields by name (the columns of a customer list) get the
/// names and the shape from the type itself, and the compiler checks every use of a field.
macro_rules! voucher_request {
    (
        $(#[$meta:meta])*
        pub struct VoucherRequest<'a> {
            $( $(#[$field_meta:meta])* pub $name:ident: Json<'a>, )*
        }
    ) => {
        $(#[$meta])*
        pub struct VoucherRequest<'a> {
            $( $(#[$field_meta])* pub $name: Json<'a>, )*
        }

        impl VoucherRequest<'_> {
            /// The fields' names, in declaration order, as requests spell them.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),*];
        }

        /// One value of any type per field of [`VoucherRequest`] (e.g. a column of values
        /// per field), named as the request's fields are.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct RequestFields<T> {
            $( pub $name: T, )*
        }

        impl<T> RequestFields<T> {
            /// Each field's value from its name.
            pub fn try_from_fn<E>(
                mut value: impl FnMut(&'static str) -> Result<T, E>,
            ) -> Result<Self, E> {
                Ok(RequestFields { $($name: value(stringify!($name))?,)* })
            }

            /// Each field's value mapped by `f`.
            pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> RequestFields<U> {
                RequestFields { $($name: f(&self.$name),)* }
            }

            /// Each field's value mapped by `f`, which may fail.
            pub fn try_map<U, E>(
                self,
                mut f: impl FnMut(T) -> Result<U, E>,
            ) -> Result<RequestFields<U>, E> {
                Ok(RequestFields { $($name: f(self.$name)?,)* })
            }

            /// References to each field's value.
            pub fn as_ref(&self) -> RequestFields<&T> {
                RequestFields { $($name: &self.$name,)* }
            }
        }

        impl<'a> From<RequestFields<Json<'a>>> for VoucherRequest<'a> {
            fn from(fields: RequestFields<Json<'a>>) -> Self {
                VoucherRequest { $($name: fields.$name,)* }
            }
        }
    };
}

voucher_request! {
    /// The voucher request as sent. This one type gives both the field names that are read and
    /// the OpenAPI schema. Each field keeps its JSON kind, so that a wrong type is reported as a
    /// 422 entry for that field, with every other bad field, as FastAPI does. Unknown fields are
    /// ignored; a field given twice is refused. Read with [`VoucherRequest::parse`]. With a
    /// customer store, `customer_id` and `segment_name` alone make a request by id (see
    /// [`super::score_with`]).
    #[derive(Debug, Default, PartialEq)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "openapi", schema(example = json!({
        "customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
        "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"
    })))]
    pub struct VoucherRequest<'a> {
        /// The customer's id, a signed 64-bit integer; not used to choose the voucher.
        #[cfg_attr(feature = "openapi", schema(value_type = i64, required = true))]
        pub customer_id: Json<'a>,
        /// A country with a voucher table, e.g. `Peru`: 1 to 64 bytes, without leading or trailing
        /// whitespace or control characters.
        #[cfg_attr(feature = "openapi", schema(value_type = String, required = true, min_length = 1, max_length = 64))]
        pub country_code: Json<'a>,
        /// When the customer last ordered: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]` or RFC 3339
        /// (`2021-10-26T00:00:00Z`, offsets). Times without an offset are UTC. Not in the future.
        #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
        pub last_order_ts: Json<'a>,
        /// When the customer first ordered, in the same formats; not after `last_order_ts`.
        #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
        pub first_order_ts: Json<'a>,
        /// Orders so far: a whole number >= 0 (`14` and `14.0` are both accepted).
        #[cfg_attr(feature = "openapi", schema(value_type = i64, minimum = 0, required = true))]
        pub total_orders: Json<'a>,
        // No doc comment here: with one, utoipa wraps the inlined enum in an `allOf` with an
        // untyped object, which no value satisfies. The enum's own description says it all.
        #[cfg_attr(feature = "openapi", schema(value_type = SegmentTypeName, inline, required = true))]
        pub segment_name: Json<'a>,
    }
}

/// A segment type; it must be present in the loaded table.
#[cfg(feature = "openapi")]
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
// Only documented: requests are read as [`Json`] and checked by name.
pub enum SegmentTypeName {
    FrequentSegment,
    RecencySegment,
}

/// A field of `self` with its name, as written in the struct (so never misspelt).
macro_rules! field {
    ($request:ident . $name:ident) => {
        (stringify!($name), &$request.$name)
    };
}

/// One bad field, as FastAPI reports it (the 422 body's `detail` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationError {
    /// Where the problem is: `["body", "<field>"]`, or `["body"]` for the body as a whole.
    pub loc: Vec<&'static str>,
    /// What is wrong and what is accepted.
    pub msg: String,
    /// The kind of problem, e.g. `missing`, `int_type`, `value_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl ValidationError {
    /// The field concerned, or `None` for the request as a whole.
    pub fn field(&self) -> Option<&'static str> {
        self.loc.get(1).copied()
    }
}

/// Why a body could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON: a 400.
    Syntax(String),
    /// JSON, but not an object: a 422 on the body as a whole (for events, whose payload is not
    /// known to be a request, no event at all).
    Shape(ValidationError),
    /// An object that gives a field twice: a 422 naming the field, at every door.
    Duplicate(ValidationError),
}

/// A valid request: what to look up, in the table its fields were checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'s> {
    /// The request's country in the table: looked up once, when the field was checked.
    pub country: CountrySegments<'s>,
    pub segment_type: SegmentType,
    /// The quantity the segment type is measured on: orders, or days since the last order.
    pub value: i64,
}

impl<'a> VoucherRequest<'a> {
    /// Reads a request from a JSON body.
    pub fn parse(body: &'a [u8]) -> Result<Self, BodyError> {
        Self::parse_with(body, []).map(|(request, [])| request)
    }

    /// Reads a request and a door's own fields (`extra`, e.g. an event's `event_id`) from one
    /// JSON object, in one pass; a field given twice is refused whichever it is.
    pub fn parse_with<const M: usize>(
        body: &'a [u8],
        extra: [&'static str; M],
    ) -> Result<(Self, [Json<'a>; M]), BodyError> {
        let mut target = Target {
            request: VoucherRequest::default(),
            names: extra,
            extra: std::array::from_fn(|_| Json::Missing),
            duplicate: None,
        };
        let mut reader = serde_json::Deserializer::from_slice(body);
        let read = reader
            .deserialize_map(ObjectVisitor(&mut target))
            .and_then(|()| reader.end());
        match read {
            Ok(()) => match target.duplicate {
                None => Ok((target.request, target.extra)),
                Some(field) => Err(BodyError::Duplicate(ValidationError {
                    loc: vec!["body", field],
                    msg: format!("{field} is given more than once; give each field once"),
                    kind: "duplicate_field",
                })),
            },
            Err(e) => Err(match e.classify() {
                Category::Data => BodyError::Shape(ValidationError {
                    loc: vec!["body"],
                    msg: format!(
                        "Input should be a JSON object with the voucher request fields, not {}",
                        json_kind(body)
                    ),
                    kind: "model_attributes_type",
                }),
                Category::Io | Category::Syntax | Category::Eof => {
                    BodyError::Syntax(format!("the body is not valid JSON: {e}"))
                }
            }),
        }
    }

    /// The customer's id, when it is one by the core's rule (see [`VoucherRequest::validate`]).
    pub fn customer_id(&self) -> Option<i64> {
        customer_id(&self.customer_id).ok()
    }

    /// The customer id as its decimal string (`"123"`), when it is a valid integer (as
    /// [`VoucherRequest::validate`] accepts it: `123` and `123.0` are the same customer). What
    /// the canary's bucket rule hashes ([`crate::canary::Bucket`]).
    pub fn customer_key(&self) -> Option<String> {
        match &self.customer_id {
            Json::Int(n) => Some(n.to_string()),
            Json::UInt(n) => Some(n.to_string()),
            Json::Float(f) if f.is_finite() && f.fract() == 0.0 => {
                // Exact for every whole float; `-0.0` is customer 0.
                Some(if *f == 0.0 {
                    "0".to_owned()
                } else {
                    format!("{f:.0}")
                })
            }
            _ => None,
        }
    }

    /// Checks every field against the live table and the current time (`now`, seconds since
    /// the epoch, UTC) and returns what to look up, or one error per bad field.
    pub fn validate<'s>(
        &self,
        table: &'s Snapshot,
        now: i64,
    ) -> Result<Query<'s>, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let (name, value) = field!(self.customer_id);
        check(e, name, customer_id(value));
        let (name, value) = field!(self.country_code);
        let country = check(e, name, country(value, table));
        let (name, value) = field!(self.last_order_ts);
        let last = check(e, name, time(value, now));
        let (name, value) = field!(self.first_order_ts);
        let first = check(e, name, time(value, now).and_then(|f| not_after(f, last)));
        let (name, value) = field!(self.total_orders);
        let total_orders = check(e, name, count(value));
        let (name, value) = field!(self.segment_name);
        let segment_type = check(e, name, segment_type(value, table));
        match (country, last, first, total_orders, segment_type) {
            (Some(country), Some(last), Some(_), Some(total_orders), Some(segment_type))
                if errors.is_empty() =>
            {
                Ok(Query::new(country, segment_type, total_orders, last, now))
            }
            _ => Err(errors),
        }
    }
}

impl<'s> Query<'s> {
    /// What a request whose fields passed their checks looks up: the quantity its segment type
    /// is measured on, from `total_orders` or from the last order (seconds since the epoch)
    /// and `now`.
    pub fn new(
        country: CountrySegments<'s>,
        segment_type: SegmentType,
        total_orders: i64,
        last_order: i64,
        now: i64,
    ) -> Self {
        let value = match segment_type {
            SegmentType::Frequent => total_orders,
            // Whole days between the two UTC dates, whatever the hour of either.
            SegmentType::Recency => {
                now.div_euclid(SECONDS_PER_DAY) - last_order.div_euclid(SECONDS_PER_DAY)
            }
        };
        Query {
            country,
            segment_type,
            value,
        }
    }
}

/// Where [`VoucherRequest::parse_with`] puts what it reads.
struct Target<'a, const M: usize> {
    request: VoucherRequest<'a>,
    names: [&'static str; M],
    extra: [Json<'a>; M],
    /// The first field given twice.
    duplicate: Option<&'static str>,
}

/// The request's field of that name, as the struct spells it (so never misspelt).
macro_rules! request_field {
    ($request:expr, $key:expr, [$($name:ident),*]) => {
        match $key {
            $(stringify!($name) => Some((stringify!($name), &mut $request.$name)),)*
            _ => None,
        }
    };
}

impl<'a, const M: usize> Target<'a, M> {
    /// The field `key` is read into, with its name; `None` for a field nobody reads.
    fn slot(&mut self, key: &str) -> Option<(&'static str, &mut Json<'a>)> {
        if let Some(i) = self.names.iter().position(|name| *name == key) {
            return Some((self.names[i], &mut self.extra[i]));
        }
        request_field!(
            self.request,
            key,
            [
                customer_id,
                country_code,
                last_order_ts,
                first_order_ts,
                total_orders,
                segment_name
            ]
        )
    }
}

/// Reads a JSON object (and nothing else) into a [`Target`]: keys borrow from the body, unknown
/// fields are skipped, and a field given twice is noted, its second value skipped.
struct ObjectVisitor<'t, 'a, const M: usize>(&'t mut Target<'a, M>);

impl<'de, const M: usize> Visitor<'de> for ObjectVisitor<'_, 'de, M> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Json<'de>>()? {
            let Json::Str(key) = key else {
                return Err(de::Error::custom("a key is not a string"));
            };
            match self.0.slot(&key) {
                Some((_, slot)) if matches!(slot, Json::Missing) => *slot = map.next_value()?,
                Some((name, _)) => {
                    map.next_value::<IgnoredAny>()?;
                    self.0.duplicate.get_or_insert(name);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// What a JSON document that is not an object is, from its first byte, for the message that
/// refuses it (serde's own message would repeat a string of any length).
fn json_kind(body: &[u8]) -> &'static str {
    match body.trim_ascii_start().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A field's value, or the kind and message of its error (a [`ValidationError`]'s `type`
/// and `msg`).
pub type Check<T> = Result<T, (&'static str, String)>;

/// Records a field's error under its name and keeps its value, if any.
fn check<T>(errors: &mut Vec<ValidationError>, field: &'static str, result: Check<T>) -> Option<T> {
    result
        .map_err(|(kind, msg)| {
            errors.push(ValidationError {
                loc: vec!["body", field],
                msg,
                kind,
            })
        })
        .ok()
}

fn missing<T>() -> Check<T> {
    Err(("missing", "Field required".into()))
}

/// The customer's id: a signed 64-bit integer, as gRPC's `int64` carries it. A whole number
/// written as a float (`123.0`) is that integer, up to 2^53 in size (beyond, a float no longer
/// holds every integer).
pub fn customer_id(value: &Json<'_>) -> Check<i64> {
    const RANGE: &str =
        "Input should be a signed 64-bit integer (-9223372036854775808 to 9223372036854775807)";
    match value {
        Json::Missing => missing(),
        Json::Int(n) => Ok(*n),
        Json::UInt(n) => Err(("int_too_large", format!("{RANGE}, got {n}"))),
        // NaN's fraction is NaN: without this it would be called a number with a fraction.
        Json::Float(f) if !f.is_finite() => Err(not_finite(*f)),
        Json::Float(f) if f.fract() != 0.0 => Err((
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part".into(),
        )),
        Json::Float(f) => whole_integer(*f).ok_or_else(|| {
            (
                "int_too_large",
                format!("{RANGE}, got {}", Plain(&f.to_string())),
            )
        }),
        _ => Err(("int_type", "Input should be a valid integer".into())),
    }
}

/// `total_orders`: a whole number >= 0.
pub fn count(value: &Json<'_>) -> Check<i64> {
    const NEGATIVE: &str = "Input should be greater than or equal to 0";
    match value {
        Json::Missing => missing(),
        Json::Int(n) if *n >= 0 => Ok(*n),
        Json::Int(_) => Err(("greater_than_equal", NEGATIVE.into())),
        Json::Float(f) if !f.is_finite() => Err(not_finite(*f)),
        Json::Float(f) if *f < 0.0 => Err(("greater_than_equal", NEGATIVE.into())),
        Json::Float(f) if f.fract() != 0.0 => Err((
            "int_from_float",
            format!(
                "Input should be a whole number of orders (e.g. 14 or 14.0), got {}",
                Plain(&f.to_string())
            ),
        )),
        Json::Float(f) => whole_count(*f).ok_or_else(|| too_large(f)),
        Json::UInt(n) => Err(too_large(n)),
        _ => Err((
            "int_type",
            "Input should be a whole number >= 0 (e.g. 14 or 14.0)".into(),
        )),
    }
}

/// A float that is no number (NaN) or no finite one, as Pydantic refuses it for an integer
/// field. JSON cannot carry these; a customer list's or a store's float column can.
fn not_finite(f: f64) -> (&'static str, String) {
    let what = if f.is_nan() { "NaN" } else { "infinite" };
    (
        "finite_number",
        format!("Input should be a finite number, got {what}"),
    )
}

fn too_large(n: &dyn fmt::Display) -> (&'static str, String) {
    (
        "int_too_large",
        format!(
            "{} is too large to be a count of orders",
            Plain(&n.to_string())
        ),
    )
}

fn string<'v>(value: &'v Json<'_>) -> Check<&'v str> {
    match value {
        Json::Missing => missing(),
        Json::Str(s) => Ok(s),
        _ => Err(("string_type", "Input should be a valid string".into())),
    }
}

/// `country_code`: a country of the live table, as the table holds it.
pub fn country<'s>(value: &Json<'_>, table: &'s Snapshot) -> Check<CountrySegments<'s>> {
    let name = string(value)?;
    if let Err(why) = check_country_code(name) {
        let kind = match why {
            CountryCodeError::Empty => "string_too_short",
            CountryCodeError::TooLong(_) => "string_too_long",
            CountryCodeError::Untrimmed | CountryCodeError::Control => "string_pattern_mismatch",
        };
        return Err((
            kind,
            format!(
                "Value error, a country code is {COUNTRY_CODE_RULE}; {} is not: {why}",
                Echo(name)
            ),
        ));
    }
    if let Some(country) = table.country(name) {
        return Ok(country);
    }
    let known = table.countries();
    let more = if known.len() > MAX_LISTED {
        " (see /api/v1/segments)"
    } else {
        ""
    };
    Err((
        "value_error",
        format!(
            "Value error, no voucher table for country {}; countries with a table: {}{more}",
            Echo(name),
            few(&known)
        ),
    ))
}

/// `last_order_ts` or `first_order_ts`: a time in an accepted format, not after `now`;
/// seconds since the epoch.
pub fn time(value: &Json<'_>, now: i64) -> Check<i64> {
    let text = string(value)?;
    let bare = text.trim().trim_start_matches(['+', '-']);
    if bare.eq_ignore_ascii_case("infinity") || bare.eq_ignore_ascii_case("inf") {
        // PostgreSQL's `infinity` (a stored profile's): a time, but of no day.
        return Err((
            "datetime_parsing",
            format!(
                "Input should be a time on the calendar, got {}: {ACCEPTED_TIME_FORMATS}",
                Echo(text)
            ),
        ));
    }
    let secs = parse_timestamp(text).ok_or_else(|| {
        (
            "datetime_parsing",
            format!("Input should be a time: {ACCEPTED_TIME_FORMATS}"),
        )
    })?;
    if !not_in_future(secs, now) {
        return Err((
            "value_error",
            format!(
                "Value error, {} is in the future; the time must not be after now",
                Echo(text)
            ),
        ));
    }
    Ok(secs)
}

/// Whether an order time (seconds since the epoch) is acceptable at `now`.
pub fn not_in_future(secs: i64, now: i64) -> bool {
    secs <= now
}

/// `first_order_ts` against `last_order_ts` (when that one is valid): not after it.
pub fn not_after(first: i64, last: Option<i64>) -> Check<i64> {
    match last {
        Some(last) if first > last => Err((
            "value_error",
            "Value error, first_order_ts is after last_order_ts".into(),
        )),
        _ => Ok(first),
    }
}

/// `segment_name`: a segment type of the live table.
pub fn segment_type(value: &Json<'_>, table: &Snapshot) -> Check<SegmentType> {
    let name = string(value)?;
    let known = table.segment_types();
    match name.parse::<SegmentType>() {
        Ok(t) if known.contains(&t) => Ok(t),
        _ => Err((
            "enum",
            format!(
                "Input should be one of the segment types of the live table: {}",
                few(known.iter().map(|t| format!("'{t}'")))
            ),
        )),
    }
}

/// The check of each field, by the field's name, as [`VoucherRequest::validate`] applies them.
/// Doors that score many requests at once (campaign lists) call them on their own values, so
/// that a fast path applies the very same rules.
pub mod fields {
    pub use super::{
        Check, count as total_orders, country as country_code, customer_id,
        not_after as first_order_ts, not_in_future, segment_type as segment_name,
        time as order_time,
    };
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::fixtures::contract_snapshot as sample_live;

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200;

    fn body(overrides: &[(&str, serde_json::Value)]) -> Vec<u8> {
        let mut json = serde_json::json!({
            "customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
            "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14,
            "segment_name": "frequent_segment"
        });
        for (k, v) in overrides {
            json[*k] = v.clone();
        }
        serde_json::to_vec(&json).expect("json")
    }

    /// A valid request's [`Query`], owned.
    #[derive(Debug, PartialEq)]
    struct Looked {
        country: String,
        segment_type: SegmentType,
        value: i64,
    }

    fn validate(bytes: &[u8]) -> Result<Looked, Vec<(String, &'static str)>> {
        let live = sample_live();
        let raw = VoucherRequest::parse(bytes).expect("parses");
        raw.validate(&live, NOW)
            .map(|q| {
                assert_eq!(live.country(q.country.name()), Some(q.country));
                Looked {
                    country: q.country.name().to_owned(),
                    segment_type: q.segment_type,
                    value: q.value,
                }
            })
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| (e.loc.join("."), e.kind))
                    .collect()
            })
    }

    #[test]
    fn fields_by_name_are_the_fields_serde_reads() {
        let object: serde_json::Map<String, serde_json::Value> = VoucherRequest::FIELDS
            .iter()
            .map(|name| ((*name).to_owned(), (*name).into()))
            .collect();
        let body = serde_json::to_vec(&object).expect("json");
        let parsed = VoucherRequest::parse(&body).expect("parses");
        let built = VoucherRequest::from(
            RequestFields::try_from_fn(|name| Ok::<_, ()>(Json::Str(Cow::Borrowed(name))))
                .expect("infallible"),
        );
        assert_eq!(parsed, built);
        assert_eq!(VoucherRequest::FIELDS.len(), 6);
        assert_eq!(built.total_orders, Json::Str(Cow::Borrowed("total_orders")));
    }

    #[test]
    fn the_contract_example_is_valid() {
        let q = validate(&body(&[])).expect("valid");
        assert_eq!(
            q,
            Looked {
                country: "Peru".into(),
                segment_type: SegmentType::Frequent,
                value: 14
            }
        );
    }

    #[test]
    fn whole_floats_count_and_fractions_or_negatives_do_not() {
        assert_eq!(
            validate(&body(&[("total_orders", 14.0.into())])).map(|q| q.value),
            Ok(14)
        );
        let e = validate(&body(&[("total_orders", 14.5.into())])).unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "int_from_float")]);
        let e = validate(&body(&[("total_orders", (-1).into())])).unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "greater_than_equal")]);
        let e = validate(&body(&[("total_orders", (-1.0).into())])).unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "greater_than_equal")]);
        let e = validate(&body(&[("customer_id", 1.5.into())])).unwrap_err();
        assert_eq!(
            e,
            [("body.customer_id".into(), "int_from_float")],
            "a lone bad id is refused"
        );
        let e = validate(&body(&[("total_orders", "14".into())])).unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "int_type")]);
        let e = validate(&body(&[("total_orders", u64::MAX.into())])).unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "int_too_large")]);
        let e = validate(br#"{"customer_id": 1, "country_code": "Peru", "last_order_ts": "2021-10-26",
            "first_order_ts": "2021-10-26", "total_orders": 1e300, "segment_name": "frequent_segment"}"#)
            .unwrap_err();
        assert_eq!(e, [("body.total_orders".into(), "int_too_large")]);
    }

    #[test]
    fn recency_is_days_from_the_last_order_date_to_today() {
        // 2026-11-23 minus 2026-08-25 is 90 days, whatever the hour of either.
        let q = validate(&body(&[
            ("segment_name", "recency_segment".into()),
            ("last_order_ts", "2026-08-25T23:59:59Z".into()),
            ("first_order_ts", "2020-01-01".into()),
        ]))
        .expect("valid");
        assert_eq!((q.segment_type, q.value), (SegmentType::Recency, 90));
        // An offset moves the time to the next UTC day: 89 days.
        let q = validate(&body(&[
            ("segment_name", "recency_segment".into()),
            ("last_order_ts", "2026-08-25 23:00:00-05:00".into()),
            ("first_order_ts", "2020-01-01".into()),
        ]))
        .expect("valid");
        assert_eq!(q.value, 89);
    }

    #[test]
    fn every_bad_field_is_reported_in_field_order() {
        let e = validate(
            br#"{"customer_id": "x", "country_code": "Atlantis", "last_order_ts": "yesterday",
                 "first_order_ts": 5, "total_orders": 2.5, "segment_name": "loyalty_segment"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                ("body.customer_id".into(), "int_type"),
                ("body.country_code".into(), "value_error"),
                ("body.last_order_ts".into(), "datetime_parsing"),
                ("body.first_order_ts".into(), "string_type"),
                ("body.total_orders".into(), "int_from_float"),
                ("body.segment_name".into(), "enum"),
            ]
        );
        let e = validate(b"{}").unwrap_err();
        assert_eq!(e.len(), 6);
        assert!(e.iter().all(|(_, kind)| *kind == "missing"));
    }

    #[test]
    fn times_in_the_future_or_out_of_order_are_refused() {
        let e = validate(&body(&[("last_order_ts", "2026-11-23T12:00:01Z".into())])).unwrap_err();
        assert_eq!(e, [("body.last_order_ts".into(), "value_error")]);
        let e = validate(&body(&[("first_order_ts", "2021-10-26 00:00:01".into())])).unwrap_err();
        assert_eq!(e, [("body.first_order_ts".into(), "value_error")]);
        assert!(validate(&body(&[("last_order_ts", "2026-11-23T12:00:00Z".into())])).is_ok());
    }

    #[test]
    fn messages_say_what_is_accepted() {
        let live = sample_live();
        let bytes = body(&[
            ("country_code", "Atlantis".into()),
            ("segment_name", "loyalty_segment".into()),
            ("last_order_ts", "26/10/2021".into()),
        ]);
        let raw = VoucherRequest::parse(&bytes).expect("parses");
        let errors = raw.validate(&live, NOW).unwrap_err();
        let msgs: Vec<&str> = errors.iter().map(|e| e.msg.as_str()).collect();
        assert!(
            msgs[0].contains("\"Atlantis\"") && msgs[0].contains("Latvia, Peru"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("YYYY-MM-DD HH:MM:SS"), "{msgs:?}");
        assert!(
            msgs[2].contains("'frequent_segment', 'recency_segment'"),
            "{msgs:?}"
        );
    }

    #[test]
    fn a_segment_type_absent_from_the_table_is_refused() {
        let version = crate::publish::Version::parse("20261123T101000Z").expect("v");
        let only_frequent = crate::table::VoucherTable::new(
            crate::fixtures::contract_table()
                .rows()
                .iter()
                .filter(|r| r.segment_name == SegmentType::Frequent)
                .cloned()
                .collect(),
        )
        .expect("table");
        let live = Snapshot::new(version, &only_frequent, None);
        let bytes = body(&[("segment_name", "recency_segment".into())]);
        let errors = VoucherRequest::parse(&bytes)
            .expect("parses")
            .validate(&live, NOW)
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "enum");
        assert!(
            errors[0].msg.ends_with("'frequent_segment'"),
            "{}",
            errors[0].msg
        );
    }

    #[test]
    fn a_field_given_twice_is_refused_naming_it() {
        for body in [
            &br#"{"total_orders": 1, "total_orders": 2}"#[..],
            br#"{"total_orders": 1, "x": 0, "total_orders": {"a": [1]}}"#,
        ] {
            match VoucherRequest::parse(body) {
                Err(BodyError::Duplicate(e)) => {
                    assert_eq!(
                        (e.loc.as_slice(), e.kind),
                        (&["body", "total_orders"][..], "duplicate_field")
                    );
                    assert!(e.msg.contains("total_orders"), "{}", e.msg);
                }
                other => panic!("{other:?}"),
            }
        }
        // An unknown field given twice is still ignored; a door's own fields count too.
        assert!(VoucherRequest::parse(br#"{"x": 1, "x": 2}"#).is_ok());
        let twice = br#"{"event_id": "a", "customer_id": 1, "event_id": "b"}"#;
        match VoucherRequest::parse_with(twice, ["event_id"]) {
            Err(BodyError::Duplicate(e)) => assert_eq!(e.field(), Some("event_id")),
            other => panic!("{other:?}"),
        }
        // A syntax error after the duplicate is a syntax error.
        assert!(matches!(
            VoucherRequest::parse(br#"{"total_orders": 1, "total_orders": 2"#),
            Err(BodyError::Syntax(_))
        ));
    }

    #[test]
    fn a_door_reads_its_own_fields_in_the_same_pass() {
        let body = br#"{"event_id": "e-1", "customer_id": 7, "event_timestamp": 3}"#;
        let (request, [id, at]) =
            VoucherRequest::parse_with(body, ["event_id", "event_timestamp"]).expect("parses");
        assert_eq!(request.customer_id, Json::Int(7));
        assert_eq!(id, Json::Str(Cow::Borrowed("e-1")));
        assert_eq!(at, Json::Int(3));
        assert_eq!(request.country_code, Json::Missing);
    }

    /// A float column of a customer list or a store can hold NaN and infinities, which JSON
    /// cannot: each is called what it is, not a number with a fractional part.
    #[test]
    fn nan_and_infinite_ids_and_counts_are_not_finite_numbers() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for (kind, msg) in [
                customer_id(&Json::Float(f)).unwrap_err(),
                count(&Json::Float(f)).unwrap_err(),
            ] {
                assert_eq!(kind, "finite_number", "{f}");
                assert!(msg.contains("finite number"), "{f}: {msg}");
                assert!(!msg.contains("fractional"), "{f}: {msg}");
            }
        }
        assert!(
            customer_id(&Json::Float(f64::NAN))
                .unwrap_err()
                .1
                .ends_with("got NaN")
        );
    }

    #[test]
    fn customer_id_is_a_signed_64_bit_integer() {
        let id = |value: serde_json::Value| {
            let bytes = body(&[("customer_id", value)]);
            VoucherRequest::parse(&bytes).expect("parses").customer_id()
        };
        assert_eq!(id(i64::MAX.into()), Some(i64::MAX));
        assert_eq!(id(i64::MIN.into()), Some(i64::MIN));
        assert_eq!(id((-1).into()), Some(-1));
        assert_eq!(id(123.0.into()), Some(123));
        for too_large in [
            serde_json::json!(9_223_372_036_854_775_808_u64),
            serde_json::json!(u64::MAX),
            serde_json::json!(1e300),
            serde_json::json!(-1e19),
        ] {
            let e = validate(&body(&[("customer_id", too_large.clone())])).unwrap_err();
            assert_eq!(
                e,
                [("body.customer_id".into(), "int_too_large")],
                "{too_large}"
            );
        }
        let live = sample_live();
        let bytes = body(&[("customer_id", serde_json::json!(1e300))]);
        let errors = VoucherRequest::parse(&bytes)
            .expect("parses")
            .validate(&live, NOW)
            .unwrap_err();
        assert!(
            errors[0].msg.contains("signed 64-bit integer") && errors[0].msg.len() < 200,
            "{}",
            errors[0].msg
        );
    }

    #[test]
    fn a_country_code_must_follow_the_rule_before_it_is_looked_up() {
        for (code, kind) in [
            ("", "string_too_short"),
            (" ", "string_pattern_mismatch"),
            ("Peru ", "string_pattern_mismatch"),
            ("Pe\nru", "string_pattern_mismatch"),
        ] {
            let e = validate(&body(&[("country_code", code.into())])).unwrap_err();
            assert_eq!(e, [("body.country_code".into(), kind)], "{code:?}");
        }
        let live = sample_live();
        let long = "x".repeat(4000);
        let bytes = body(&[("country_code", long.clone().into())]);
        let errors = VoucherRequest::parse(&bytes)
            .expect("parses")
            .validate(&live, NOW)
            .unwrap_err();
        assert_eq!(errors[0].kind, "string_too_long");
        assert!(
            errors[0].msg.contains(COUNTRY_CODE_RULE),
            "{}",
            errors[0].msg
        );
        assert!(errors[0].msg.contains("4000 bytes"), "{}", errors[0].msg);
        assert!(errors[0].msg.len() < 300, "{}", errors[0].msg.len());
    }

    #[test]
    fn every_message_is_bounded_whatever_the_input_and_the_table() {
        // A table with many countries of absurd names, as a broken ETL could publish.
        let version = crate::publish::Version::parse("20261123T101000Z").expect("v");
        let rows = (0..40)
            .flat_map(|i| {
                let peru = crate::fixtures::contract_rows(2640)
                    .into_iter()
                    .filter(|r| r.country_code == "Peru");
                peru.map(move |mut row| {
                    row.country_code = format!("{i:02}{}", "c".repeat(100_000));
                    row
                })
            })
            .collect();
        let table = crate::table::VoucherTable::new(rows).expect("table");
        let live = Snapshot::new(version, &table, None);
        let bytes = body(&[
            ("country_code", "Atlantis".into()),
            ("last_order_ts", "2099-01-01".into()),
            ("total_orders", 1e300.into()),
            ("customer_id", 0.5e-300.into()),
        ]);
        let errors = VoucherRequest::parse(&bytes)
            .expect("parses")
            .validate(&live, NOW)
            .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        for e in &errors {
            assert!(e.msg.len() < 1500, "{}: {} bytes", e.kind, e.msg.len());
        }
        let country = &errors[1].msg;
        assert!(
            country.contains("and 32 more (40 in all)") && country.contains("/api/v1/segments"),
            "{country}"
        );
        // Not an object: the message says what it is, not what it holds.
        let string = format!("\"{}\"", "s".repeat(100_000));
        match VoucherRequest::parse(string.as_bytes()) {
            Err(BodyError::Shape(e)) => assert!(e.msg.ends_with("not a string"), "{}", e.msg),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_and_wrong_shapes_are_told_apart() {
        for bad in [&b""[..], b"{", b"{\"a\":}", b"nul", b"{} x"] {
            assert!(
                matches!(VoucherRequest::parse(bad), Err(BodyError::Syntax(_))),
                "{bad:?}"
            );
        }
        for shape in [&b"[]"[..], b"[1, 2]", b"3", b"\"s\"", b"null"] {
            match VoucherRequest::parse(shape) {
                Err(BodyError::Shape(e)) => assert_eq!(e.loc, ["body"]),
                other => panic!("{shape:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn strings_borrow_from_the_body_and_unknown_fields_are_ignored() {
        let bytes = br#"{"country_code": "Peru", "extra": {"a": [1, 2]}, "segment_name": "a\"b"}"#;
        let raw = VoucherRequest::parse(bytes).expect("parses");
        assert!(matches!(raw.country_code, Json::Str(Cow::Borrowed("Peru"))));
        assert!(matches!(raw.segment_name, Json::Str(Cow::Owned(ref s)) if s == "a\"b"));
        assert_eq!(raw.customer_id, Json::Missing);
    }
}
