#!/usr/bin/env bash
# voucher-etl on histories and campaign lists from every common writer: pyarrow (every codec,
# v1/v2 pages, dictionaries, no statistics, page index, INT96, decimals, dictionary strings,
# large_string, string_view, float16), DuckDB (every codec, V2), polars (no statistics,
# Categorical/Enum) and CSV (BOM, CRLF, quoted newlines, a ragged line), all written into a
# temporary directory by etl/tests/interop/interop_test.py and run through the real binary.
#
# Usage: etl/tests/interop_test.sh [--install-only]
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
#   INTEROP_TEST_VENV  the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/interop-test-venv)
# Needs: cargo, python3 with venv, and PyPI to install pyarrow, duckdb and polars once.
set -euo pipefail

# Pinned so that a run is repeatable (the versions bench/ uses); the venv is rebuilt when
# these change.
PACKAGES=(pyarrow==26.0.1 duckdb==2.0.0 polars==2.1.0)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${INTEROP_TEST_VENV:-$TARGET/interop-test-venv}

# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "${PACKAGES[@]}"
[[ ${1:-} == --install-only ]] && exit 0

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
"$VENV/bin/python" "$ROOT/etl/tests/interop/interop_test.py" --etl "$VOUCHER_ETL_BIN"
