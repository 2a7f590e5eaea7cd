#!/usr/bin/env bash
# The PostgreSQL tests on a real server: starts Debian's PostgreSQL on 127.0.0.1 in a
# temporary directory (tools/postgres.sh: installs it when missing, as CI runs as root), points
# the tests at it with VOUCHER_TEST_POSTGRES_URL, and stops it at the end. Runs the tests whose
# names hold "postgres" (voucher-postgres against the server; voucher-etl reading history from
# it, compared with Parquet, and every failure; voucher-api's requests by customer id at every
# door); without the server they skip themselves. Then, alone, the test that stops and starts
# the server under a running API (VOUCHER_TEST_POSTGRES_CTL).
#
# Usage: etl/tests/postgres_test.sh [--install-only] [extra cargo test filter args]
# Environment: CARGO_TARGET_DIR (default: <repo>/target).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/postgres.sh disable=SC1091
source "$ROOT/tools/postgres.sh"
if [[ ${1:-} == --install-only ]]; then
    postgres_install
    exit 0
fi
postgres_start
cd "$ROOT"
# --workspace --tests: the same build as `cargo test --workspace` (no features differ, nothing
# recompiles after `make test`); the filter runs only the PostgreSQL tests.
cargo test --workspace --tests -- postgres --skip postgres_server_restart "$@"
VOUCHER_TEST_POSTGRES_CTL=$PG_TEST_CTL cargo test --workspace --tests -- postgres_server_restart "$@"
