//! Test helpers for the serving binaries' tests (feature `fixtures`).

use std::sync::Arc;

use voucher_shared::fixtures::{CONTRACT_VERSION, contract_table};
use voucher_shared::publish::Version;

use crate::live::{LiveTable, Served};

/// The contract table (`voucher_shared::fixtures`) as live version `CONTRACT_VERSION`, without
/// a manifest.
pub fn sample_live() -> LiveTable {
    let version = Version::parse(CONTRACT_VERSION).expect("a valid version name");
    LiveTable::new(version, contract_table(), None)
}

/// [`sample_live`], served.
pub fn sample_served() -> Served {
    Served::new(Arc::new(sample_live()))
}

/// Asserts that every flag of `command` has an environment twin named `VOUCHER_<FLAG>` (the
/// convention of every binary's configuration).
pub fn assert_env_twins(command: &clap::Command) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
        assert_eq!(env, format!("VOUCHER_{}", id.to_uppercase()), "{id}");
    }
}
