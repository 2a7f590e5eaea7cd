//! voucher-api's integration tests, in one binary so that it links once. Most run the app
//! in-process on a free port and talk HTTP to it; `e2e` starts the real binary.

mod canary;
mod contract;
mod customers;
mod doors;
mod e2e;
mod grpc;
mod helpers;
mod reload;
mod versions;
