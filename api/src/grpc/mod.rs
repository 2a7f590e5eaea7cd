//! The gRPC door (tonic): `voucher.v1.VoucherService` with `GetVoucher` and `ScoreVouchers`,
//! `grpc.health.v1` health checking and server reflection, on its own port in the same process
//! and on the same live table, metrics and token as the HTTP door.
//!
//! - [`proto`]: the code generated from `proto/voucher/v1/voucher.proto`;
//! - [`service`]: the service, a thin layer over [`voucher_shared::score`];
//! - [`guard`]: around it, the token check, the count of every call and the status of a
//!   message that cannot be read;
//! - [`server`]: serving it, with health, reflection, TLS and a graceful stop;
//! - [`metrics`]: calls by method and status code.

pub mod guard;
pub mod metrics;
pub mod server;
pub mod service;

/// The code generated from `proto/voucher/v1/voucher.proto` (messages, client and server).
#[allow(clippy::all, clippy::pedantic, unused_qualifications)]
pub mod proto {
    tonic::include_proto!("voucher.v1");

    /// The encoded descriptors of the protocol, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("voucher_v1_descriptor");
}
