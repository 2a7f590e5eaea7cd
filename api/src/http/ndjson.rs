//! The NDJSON stream: one answer line per request line, in order, written while the request is
//! still arriving. Memory stays bounded whatever the stream's length: a chunk of input is
//! scored into a chunk of output, and actix reads the next chunk only once the client has taken
//! the previous output. The lines a chunk completes are one window: the requests by id among
//! them are resolved with one lookup of the customer store.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use voucher_serve::customers::Customers;
use voucher_serve::live::Served;
use voucher_serve::metrics::{Door, DoorCounters};
use voucher_shared::score::{Outcome, VoucherRequest, now_secs};

use crate::http::batch::{Parsed, VERSION_HEADER, lookup_ids, score_item};
use crate::http::model::{ItemError, ItemResult};
use crate::http::routes::AppState;

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Starts answering an NDJSON stream from what is `served`.
pub fn respond(payload: web::Payload, served: Served, state: &AppState) -> HttpResponse {
    let version = served.live().version_name().to_owned();
    let lines = Lines {
        served,
        customers: state.customers.clone(),
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
                let window = match payload.next().await {
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
                let out = lines.answer(window).await;
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

/// A complete line to answer, with its number.
#[derive(Debug)]
enum Item {
    /// A request line (without its line end).
    Request(u64, Bytes),
    /// A line over the size limit.
    TooLong(u64),
}

/// Splits the input into lines and answers each complete one.
struct Lines {
    served: Served,
    customers: Customers,
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
    /// The lines that `chunk` completes (blank ones ask nothing and are left out).
    fn feed(&mut self, chunk: &Bytes) -> Vec<Item> {
        let mut window = Vec::new();
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &chunk[start..]).map(|at| start + at) {
            self.line += 1;
            if self.skipping {
                self.skipping = false;
                self.pending.clear();
            } else if self.pending.is_empty() {
                self.take(chunk.slice(start..end), &mut window);
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&chunk[start..end]);
                self.take(line.freeze(), &mut window);
            }
            start = end + 1;
        }
        let rest = &chunk[start..];
        if !self.skipping {
            if self.pending.len() + rest.len() > self.max_line {
                // Answer now, so the client learns of it without waiting for the line's end.
                self.skipping = true;
                self.pending.clear();
                window.push(Item::TooLong(self.line + 1));
            } else {
                self.pending.extend_from_slice(rest);
            }
        }
        window
    }

    /// The last line, which has no newline.
    fn finish(&mut self) -> Vec<Item> {
        let mut window = Vec::new();
        if !self.skipping && !self.pending.is_empty() {
            self.line += 1;
            let line = std::mem::take(&mut self.pending).freeze();
            self.take(line, &mut window);
        }
        window
    }

    /// Adds line `self.line` to `window`, unless it is blank.
    fn take(&self, line: Bytes, window: &mut Vec<Item>) {
        let line = match line.strip_suffix(b"\r") {
            Some(stripped) => line.slice(..stripped.len()),
            None => line,
        };
        // Blank lines separate nothing and ask nothing; they keep their number.
        if line.trim_ascii().is_empty() {
            return;
        }
        // The same limit whether the line came in one chunk or several.
        window.push(if line.len() > self.max_line {
            Item::TooLong(self.line)
        } else {
            Item::Request(self.line, line)
        });
    }

    /// The answers to a window's lines, in order, its requests by id resolved with one lookup.
    async fn answer(&self, window: Vec<Item>) -> Bytes {
        if window.is_empty() {
            return Bytes::new();
        }
        let parsed: Vec<(u64, Option<Parsed<'_>>)> = window
            .iter()
            .map(|item| match item {
                Item::Request(line, bytes) => (*line, Some(VoucherRequest::parse(bytes))),
                Item::TooLong(line) => (*line, None),
            })
            .collect();
        let profiles = self
            .customers
            .resolve(lookup_ids(parsed.iter().filter_map(|(_, p)| p.as_ref())))
            .await;
        let now = now_secs();
        let mut out = Vec::with_capacity(window.len() * 160);
        for (line, item) in parsed {
            match item {
                Some(item) => {
                    let result = score_item(
                        item,
                        &self.served,
                        &profiles,
                        now,
                        Some(line),
                        &self.counters,
                    );
                    write_line(&result, &mut out);
                }
                None => self.too_long(line, &mut out),
            }
        }
        out.into()
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
            retry_after: None,
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
    use voucher_serve::metrics::{Binary, Metrics};

    fn lines(max_line: usize) -> Lines {
        Lines {
            served: sample_served(),
            customers: Customers::none(),
            counters: Metrics::new(Binary::Api)
                .expect("metrics")
                .door(Door::HttpNdjson)
                .clone(),
            max_line,
            pending: BytesMut::new(),
            line: 0,
            skipping: false,
        }
    }

    /// Answers what `feed` or `finish` gave.
    fn answered(l: &Lines, window: Vec<Item>) -> Bytes {
        futures_util::FutureExt::now_or_never(l.answer(window))
            .expect("without a customer store, answering never waits")
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
            let a = l.feed(&Bytes::copy_from_slice(a));
            let a = answered(&l, a);
            let b = l.feed(&Bytes::copy_from_slice(b));
            let b = answered(&l, b);
            let end = l.finish();
            let end = answered(&l, end);
            let out = parse(&[a, b, end]);
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
        let mut out = Vec::new();
        for chunk in [
            long[..100].to_owned(),
            format!("{}\n{VALID}\n", &long[100..]),
        ] {
            let window = l.feed(&Bytes::from(chunk));
            out.push(answered(&l, window));
        }
        let end = l.finish();
        out.push(answered(&l, end));
        let out = parse(&out);
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
        let window = l.feed(&Bytes::from(format!("{VALID}\n")));
        let out = parse(&[answered(&l, window)]);
        assert_eq!(out[0]["status"], 200);
    }
}
