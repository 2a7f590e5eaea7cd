//! What became of one item at any door, and how each door says it: the HTTP status, the gRPC
//! status code, the label of the scoring metrics and the reason of a dead letter. One table, so
//! that no door decides on its own that a refusal is a 404 or a `no_segment`.
//!
//! This crate knows no protocol library: gRPC codes are given by their canonical numbers and
//! names (as in `google.rpc.Code`), and each door converts them to its own types.

use serde::Serialize;

use super::{Refusal, Scored};

/// The outcome of one item (a request, a batch item, a stream line, an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered with a voucher.
    Ok,
    /// Bad fields ([`Refusal::Invalid`]).
    Invalid,
    /// Valid, but no segment covers it ([`Refusal::NoSegment`]).
    NoSegment,
    /// Not readable as a request at all: not JSON (or, in a stream, a line too long to read;
    /// or, for events, a payload that is not a JSON object).
    Malformed,
    /// An id-only request for a customer the store does not hold
    /// ([`Refusal::UnknownCustomer`]).
    UnknownCustomer,
    /// An id-only request while the customer store cannot answer
    /// ([`Refusal::CustomersUnavailable`]): worth retrying, so never a dead letter.
    CustomersUnavailable,
}

/// A gRPC status code, by its canonical number and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCode {
    /// The number on the wire (`grpc-status`).
    pub number: i32,
    /// The canonical name, e.g. `INVALID_ARGUMENT`.
    pub name: &'static str,
}

impl GrpcCode {
    const fn new(number: i32, name: &'static str) -> GrpcCode {
        GrpcCode { number, name }
    }

    pub const OK: GrpcCode = GrpcCode::new(0, "OK");
    pub const INVALID_ARGUMENT: GrpcCode = GrpcCode::new(3, "INVALID_ARGUMENT");
    pub const NOT_FOUND: GrpcCode = GrpcCode::new(5, "NOT_FOUND");
    pub const UNAVAILABLE: GrpcCode = GrpcCode::new(14, "UNAVAILABLE");
}

impl Outcome {
    /// Every outcome, in declaration order (`outcome as usize` indexes this).
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::NoSegment,
        Outcome::Malformed,
        Outcome::UnknownCustomer,
        Outcome::CustomersUnavailable,
    ];

    /// The outcome of the scoring core's answer.
    pub fn of(scored: &Scored<'_>) -> Outcome {
        match scored {
            Ok(_) => Outcome::Ok,
            Err(refusal) => Outcome::of_refusal(refusal),
        }
    }

    pub fn of_refusal(refusal: &Refusal) -> Outcome {
        match refusal {
            Refusal::Invalid(_) => Outcome::Invalid,
            Refusal::NoSegment(_) => Outcome::NoSegment,
            Refusal::UnknownCustomer(_) => Outcome::UnknownCustomer,
            Refusal::CustomersUnavailable(_) => Outcome::CustomersUnavailable,
        }
    }

    /// Whether the item is refused only for now (the customer store cannot answer): the HTTP
    /// answer carries `Retry-After`, and an event is retried rather than dead-lettered.
    pub fn is_transient(self) -> bool {
        matches!(self, Outcome::CustomersUnavailable)
    }

    /// The label of the `outcome` of the scoring metrics, and the `reason` of a dead letter.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::NoSegment => "no_segment",
            Outcome::Malformed => "malformed",
            Outcome::UnknownCustomer => "unknown_customer",
            Outcome::CustomersUnavailable => "customers_unavailable",
        }
    }

    /// The HTTP status of the answer: the single route's, and each batch item's and stream
    /// line's `status`.
    pub fn http_status(self) -> u16 {
        match self {
            Outcome::Ok => 200,
            Outcome::Invalid => 422,
            Outcome::NoSegment => 404,
            Outcome::Malformed => 400,
            Outcome::UnknownCustomer => 404,
            Outcome::CustomersUnavailable => 503,
        }
    }

    /// The gRPC status of the answer (a message that cannot be decoded never reaches the
    /// service: the gRPC library refuses it).
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            Outcome::Ok => GrpcCode::OK,
            Outcome::Invalid | Outcome::Malformed => GrpcCode::INVALID_ARGUMENT,
            Outcome::NoSegment | Outcome::UnknownCustomer => GrpcCode::NOT_FOUND,
            Outcome::CustomersUnavailable => GrpcCode::UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::NoSegment;

    #[test]
    fn each_outcome_has_one_label_status_and_code() {
        let table: Vec<_> = Outcome::ALL
            .iter()
            .map(|o| (o.label(), o.http_status(), o.grpc_code().name))
            .collect();
        assert_eq!(
            table,
            [
                ("ok", 200, "OK"),
                ("invalid", 422, "INVALID_ARGUMENT"),
                ("no_segment", 404, "NOT_FOUND"),
                ("malformed", 400, "INVALID_ARGUMENT"),
                ("unknown_customer", 404, "NOT_FOUND"),
                ("customers_unavailable", 503, "UNAVAILABLE"),
            ]
        );
        for (index, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, index);
            assert_eq!(
                outcome.is_transient(),
                outcome.http_status() == 503,
                "{outcome:?}"
            );
            assert_eq!(
                serde_json::to_value(outcome).expect("json"),
                serde_json::json!(outcome.label()),
                "the serialized form is the label"
            );
        }
    }

    #[test]
    fn refusals_map_to_their_outcome() {
        let invalid = Refusal::Invalid(vec![]);
        let none = Refusal::NoSegment(NoSegment {
            message: String::new(),
        });
        assert_eq!(Outcome::of(&Err(invalid)), Outcome::Invalid);
        assert_eq!(Outcome::of(&Err(none)), Outcome::NoSegment);
        let unknown = Refusal::UnknownCustomer(7);
        assert_eq!(Outcome::of(&Err(unknown)), Outcome::UnknownCustomer);
        let down = Refusal::CustomersUnavailable("down".into());
        assert_eq!(Outcome::of(&Err(down)), Outcome::CustomersUnavailable);
    }
}
