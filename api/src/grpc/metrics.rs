//! The gRPC door's own metrics: calls by method and status code, and their duration, in the
//! process's registry.

use std::time::Instant;

use prometheus::Registry;
use voucher_serve::metrics::Calls;

#[derive(Debug, Clone)]
pub struct GrpcMetrics(Calls);

impl GrpcMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Calls::register(
            registry,
            (
                "grpc_requests_total",
                "gRPC calls by method and status code (a stream counts once, when it ends).",
                &["method", "code"],
            ),
            (
                "grpc_request_duration_seconds",
                "Time to answer gRPC calls (a stream's whole duration), by method.",
                &["method"],
            ),
        )
        .map(GrpcMetrics)
    }

    /// Counts and times one call (a whole stream, for streaming calls).
    pub fn observe(&self, method: &str, code: tonic::Code, started: Instant) {
        let code = match code {
            // As grpc-go and the gRPC docs spell it; tonic's Debug says `Ok`.
            tonic::Code::Ok => "OK".to_owned(),
            other => format!("{other:?}"),
        };
        self.0
            .latency
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
        self.0.count.with_label_values(&[method, &code]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voucher_serve::metrics::{Binary, Metrics};

    #[test]
    fn calls_count_by_method_and_code_as_grpc_spells_it() {
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        let grpc = GrpcMetrics::register(metrics.registry()).expect("grpc metrics");
        grpc.observe("GetVoucher", tonic::Code::Ok, Instant::now());
        grpc.observe("GetVoucher", tonic::Code::NotFound, Instant::now());
        let out = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        for line in [
            r#"voucher_api_grpc_requests_total{code="OK",method="GetVoucher"} 1"#,
            r#"voucher_api_grpc_requests_total{code="NotFound",method="GetVoucher"} 1"#,
            r#"voucher_api_grpc_request_duration_seconds_count{method="GetVoucher"} 2"#,
        ] {
            assert!(out.contains(line), "{line}\n{out}");
        }
    }
}
