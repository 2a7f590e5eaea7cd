//! Generates the gRPC code of `proto/voucher/v1/voucher.proto`, and its descriptor set for
//! server reflection, with a vendored `protoc` (no system protobuf compiler needed).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/voucher/v1/voucher.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("voucher_v1_descriptor.bin"))
        .compile_with_config(config, &[proto], &["proto"])?;
    Ok(())
}
