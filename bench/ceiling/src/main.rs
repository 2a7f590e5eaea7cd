//! The machine's ceiling for `bench/load_test.sh`: the same actix-web build, worker count and
//! request body as `voucher-api`, with a handler that only deserializes the JSON and answers
//! a constant. Whatever `voucher-api` costs beyond this is its own work.
//!
//! Usage: `voucher-ceiling [port] [workers]`; port 0 (the default) picks a free one. Prints
//! `listening on http://<address>` once bound.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

// The fields are read by serde only: the point is to pay for deserializing them.
#[allow(dead_code)]
#[derive(Deserialize)]
struct VoucherRequest {
    customer_id: i64,
    country_code: String,
    last_order_ts: String,
    first_order_ts: String,
    total_orders: f64,
    segment_name: String,
}

const ANSWER: &str = r#"{"voucher":2640,"country_code":"Peru","segment_name":"frequent_segment","segment":"14-37","version":"20261123T101000Z"}"#;

async fn voucher(_body: web::Json<VoucherRequest>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(ANSWER)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new().service(web::resource("/api/v1/voucher").route(web::post().to(voucher)))
        })
        .workers(workers)
        .bind(("127.0.0.1", port))?;
        for address in server.addrs() {
            println!("listening on http://{address} with {workers} workers");
        }
        server.run().await
    })
}
