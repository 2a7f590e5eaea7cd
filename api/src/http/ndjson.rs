//! The NDJSON stream: one answer line per request line, in order, written while the request is
//! still arriving. Memory stays bounded whatever the stream's length: a chunk of input is
//! scored into a chunk of output, and actix reads the next chunk only once the client has taken
//! the previous output.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, DoorCounters};
use voucher_shared::score::{Outcome, now_secs};

use crate::http::batch::{VERSION_HEADER, score_item};
use crate::http::model::{ItemError, ItemResult};
use crate::http::routes::AppState;

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Starts answering an NDJSON stream from what is `served`.
pub fn respond(payload: web::Payload, served: Served, state: &AppState) -> HttpResponse {
    let version = served.live().version_name().to_owned();
    let lines = Lines {
        served,
        counters: state.metrics.door(Door::HttpNdjson).clone(),
        max_line: state.max_body,
        pending: BytesMut::new(),
        line: 0,
        skipping: false,
    };
    let body = futures_util::stream::unfold(
        (payload, lines, false),
        |(mut payload, mut lines, mut done)| async move {
            while !done {
                let out = match payload.next().await {
                    Some(Ok(chunk)) => lines.feed(&chunk),
                    Some(Err(e)) => {
                        // The client went away or sent a broken chunk: nothing more to answer.
                        log::info!("NDJSON stream ended after line {}: {e}", lines.line);
                        return None;
                    }
                    None => {
                        done = true;
                        lines.finish()
                    }
                };
                if !out.is_empty() {
                    return Some((Ok::<_, actix_web::Error>(out), (payload, lines, done)));
                }
            }
            None
        },
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::HeaderName::from_static(VERSION_HEADER), version))
        .streaming(body)
}

/// Splits the input into lines and answers each complete one.
struct Lines {
    served: Served,
    counters: DoorCounters,
    /// The longest line accepted (the single route's body limit).
    max_line: usize,
    /// The start of a line whose end has not arrived yet.
    pending: BytesMut,
    /// The number of the last line seen, counted from 1.
    line: u64,
    /// Whether the rest of the current line is being skipped (it was too long).
    skipping: bool,
}

impl Lines {
    /// Answers every line that `chunk` completes.
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 2);
        let now = now_secs();
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            self.line += 1;
            if self.skipping {
                self.skipping = false;
                self.pending.clear();
            } else if self.pending.is_empty() {
                self.answer(head, now, &mut out);
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(head);
                self.answer(&line, now, &mut out);
            }
        }
        if !self.skipping {
            if self.pending.len() + rest.len() > self.max_line {
                // Answer now, so the client learns of it without waiting for the line's end.
                self.skipping = true;
                self.pending.clear();
                self.too_long(self.line + 1, &mut out);
            } else {
                self.pending.extend_from_slice(rest);
            }
        }
        out.into()
    }

    /// Answers the last line, which has no newline.
    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        if !self.skipping && !self.pending.is_empty() {
            self.line += 1;
            let line = std::mem::take(&mut self.pending);
            self.answer(&line, now_secs(), &mut out);
        }
        out.into()
    }

    fn answer(&self, line: &[u8], now: i64, out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Blank lines separate nothing and ask nothing; they keep their number.
        if line.trim_ascii().is_empty() {
            return;
        }
        // The same limit whether the line came in one chunk or several.
        if line.len() > self.max_line {
            return self.too_long(self.line, out);
        }
        let result = score_item(line, &self.served, now, Some(self.line), &self.counters);
        write_line(&result, out);
    }

    /// A line over the size limit is unreadable (counted as malformed) and answered as an
    /// over-limit body is (413).
    fn too_long(&self, line: u64, out: &mut Vec<u8>) {
        self.counters.count(Outcome::Malformed);
        let result = ItemResult::Error(ItemError {
            line: Some(line),
            status: StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
            detail: format!(
                "line {line} is longer than the limit of {} bytes (--max-body); it is skipped",
                self.max_line
            ),
        });
        write_line(&result, out);
    }
}

fn write_line(result: &ItemResult<'_>, out: &mut Vec<u8>) {
    // Serializing plain strings and numbers into memory cannot fail; if it ever did, the line
    // would be missing rather than half-written.
    let start = out.len();
    if serde_json::to_writer(&mut *out, result).is_err() {
        out.truncate(start);
        return;
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_serve::fixtures::sample_served;
    use voucher_serve::metrics::Metrics;

    fn lines(max_line: usize) -> Lines {
        Lines {
            served: sample_served(),
            counters: Metrics::new()
                .expect("metrics")
                .door(Door::HttpNdjson)
                .clone(),
            max_line,
            pending: BytesMut::new(),
            line: 0,
            skipping: false,
        }
    }

    fn parse(out: &[Bytes]) -> Vec<serde_json::Value> {
        out.iter()
            .flat_map(|b| b.split(|c| *c == b'\n'))
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
            .collect()
    }

    const VALID: &str = r#"{"customer_id": 1, "country_code": "Peru", "last_order_ts": "2021-10-26", "first_order_ts": "2021-10-26", "total_orders": 14, "segment_name": "frequent_segment"}"#;

    #[test]
    fn lines_split_across_chunks_are_answered_once_in_order_with_their_numbers() {
        let input = format!("{VALID}\n\nnot json\r\n[1]\n{VALID}");
        // Every split point: answers must not depend on how the network cut the stream.
        for cut in 0..input.len() {
            let mut l = lines(1024);
            let (a, b) = input.as_bytes().split_at(cut);
            let out = parse(&[l.feed(a), l.feed(b), l.finish()]);
            let summary: Vec<(u64, u64)> = out
                .iter()
                .map(|v| {
                    (
                        v["line"].as_u64().expect("line"),
                        v["status"].as_u64().expect("status"),
                    )
                })
                .collect();
            assert_eq!(
                summary,
                [(1, 200), (3, 400), (4, 422), (5, 200)],
                "cut at {cut}"
            );
            assert_eq!(out[0]["voucher"], 2640);
            assert_eq!(out[0]["version"], "20261123T101000Z");
        }
    }

    #[test]
    fn a_too_long_line_is_answered_and_skipped_and_the_stream_goes_on() {
        let mut l = lines(64);
        let long = format!("{{\"x\": \"{}\"}}", "a".repeat(200));
        let out = parse(&[
            l.feed(&long.as_bytes()[..100]),
            l.feed(format!("{}\n{VALID}\n", &long[100..]).as_bytes()),
            l.finish(),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            (out[0]["line"].as_u64(), out[0]["status"].as_u64()),
            (Some(1), Some(413))
        );
        assert!(
            out[0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("64 bytes"))
        );
        // VALID is longer than 64 bytes too.
        assert_eq!(
            (out[1]["line"].as_u64(), out[1]["status"].as_u64()),
            (Some(2), Some(413))
        );
        let mut l = lines(1024);
        let out = parse(&[l.feed(format!("{VALID}\n").as_bytes()), l.finish()]);
        assert_eq!(out[0]["status"], 200);
    }
}
