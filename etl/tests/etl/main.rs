//! voucher-etl's integration tests, in one binary so that it links once. Most run the real
//! binary: publishing is about what survives a process (kill -9, SIGTERM, exit codes).

mod bad_input;
mod canary;
mod common;
mod days;
mod durability;
mod gate;
mod generated;
mod interop;
mod many_files;
mod postgres;
mod promote;
mod real_sample;
mod schedule;
mod score;
mod tables_dir;
mod tallies;
