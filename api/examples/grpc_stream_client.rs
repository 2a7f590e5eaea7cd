//! Streams requests through `ScoreVouchers` and reports the rate, for `bench/doors.sh`.
//!
//! Usage: grpc_stream_client ADDRESS COUNT [STREAMS]
//!
//! Sends COUNT copies of the contract's request, split over STREAMS concurrent streams
//! (default 1), counts the vouchers that come back and prints one JSON line:
//! `{"requests": N, "answers": N, "seconds": S, "per_second": R}`.

use std::time::Instant;

use voucher_api::grpc::proto::voucher_service_client::VoucherServiceClient;
use voucher_api::grpc::proto::{VoucherRequest, score_result::Outcome};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: grpc_stream_client ADDRESS COUNT [STREAMS]";
    let address = args.next().ok_or(usage)?;
    let count: u64 = args.next().ok_or(usage)?.parse()?;
    let streams: u64 = args.next().map_or(Ok(1), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = VoucherServiceClient::connect(format!("http://{address}")).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for stream in 0..streams {
            let share = count / streams + u64::from(stream < count % streams);
            tasks.push(tokio::spawn(one_stream(client.clone(), share)));
        }
        let mut answers = 0;
        for task in tasks {
            answers += task.await??;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{{\"requests\": {count}, \"answers\": {answers}, \"seconds\": {seconds:.3}, \"per_second\": {:.0}}}",
            answers as f64 / seconds
        );
        Ok::<(), Error>(())
    })
}

/// Sends `count` requests on one stream; returns how many vouchers came back.
async fn one_stream(
    mut client: VoucherServiceClient<tonic::transport::Channel>,
    count: u64,
) -> Result<u64, Error> {
    let request = VoucherRequest {
        customer_id: Some(123),
        country_code: Some("Peru".into()),
        last_order_ts: Some("2021-10-26 00:00:00".into()),
        first_order_ts: Some("2021-10-26 00:00:00".into()),
        total_orders: Some(14),
        segment_name: Some("frequent_segment".into()),
    };
    let requests = futures_util::stream::iter((0..count).map(move |_| request.clone()));
    let mut results = client.score_vouchers(requests).await?.into_inner();
    let mut answers = 0;
    while let Some(result) = results.message().await? {
        if matches!(result.outcome, Some(Outcome::Voucher(_))) {
            answers += 1;
        }
    }
    Ok(answers)
}
