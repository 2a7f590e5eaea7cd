#!/usr/bin/env bash
# Reads voucher history from a real S3-compatible server: starts moto's server on 127.0.0.1
# (with authentication on), uploads generated history with boto3, and runs the real
# voucher-etl binary against s3:// inputs (etl/tests/s3/s3_test.py).
#
# Usage: etl/tests/s3_test.sh [--install-only]
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
#   S3_TEST_VENV       the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/s3-test-venv)
# Needs: cargo, python3 with venv, and PyPI to install moto once.
set -euo pipefail

# Pinned so that a run is repeatable; the venv is rebuilt when these change.
PACKAGES=("moto[server]==5.2.1" boto3==1.43.11)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${S3_TEST_VENV:-$TARGET/s3-test-venv}

log() { printf 's3_test.sh: %s\n' "$*" >&2; }

# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "${PACKAGES[@]}"
[[ ${1:-} == --install-only ]] && exit 0

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
"$VENV/bin/python" "$ROOT/etl/tests/s3/s3_test.py" \
    --etl "$VOUCHER_ETL_BIN" --moto "$VENV/bin/moto_server"
