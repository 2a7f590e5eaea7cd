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
    pub const OK: GrpcCode = GrpcCode {
        number: 0,
        name: "OK",
    };
    pub const INVALID_ARGUMENT: GrpcCode = GrpcCode {
        number: 3,
        name: "INVALID_ARGUMENT",
    };
    pub const NOT_FOUND: GrpcCode = GrpcCode {
        number: 5,
        name: "NOT_FOUND",
    };
}

impl Outcome {
    /// Every outcome, in declaration order (`outcome as usize` indexes this).
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::NoSegment,
        Outcome::Malformed,
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
        }
    }

    /// The label of the `outcome` of the scoring metrics, and the `reason` of a dead letter.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::NoSegment => "no_segment",
            Outcome::Malformed => "malformed",
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
        }
    }

    /// The gRPC status of the answer (a message that cannot be decoded never reaches the
    /// service: the gRPC library refuses it).
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            Outcome::Ok => GrpcCode::OK,
            Outcome::Invalid | Outcome::Malformed => GrpcCode::INVALID_ARGUMENT,
            Outcome::NoSegment => GrpcCode::NOT_FOUND,
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
            ]
        );
        for (index, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, index);
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
    }
}
