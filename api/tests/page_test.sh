#!/usr/bin/env bash
# The page at `/` in a real headless browser: Debian's chromium and chromedriver (installed
# with apt-get when missing), driven by selenium from PyPI, against voucher-api serving a
# table that voucher-etl published from generated history. Screenshots go to $PAGE_OUT.
#
# Usage: api/tests/page_test.sh [--install-only]   (make page-test)
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
#   PAGE_TEST_VENV    the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/page-test-venv)
#   PAGE_OUT          where screenshots go (default: $CARGO_TARGET_DIR/page-test)
# Needs: cargo, python3 with venv, apt-get (or chromium and chromedriver already installed).
set -euo pipefail

PACKAGES=(selenium==4.50.0 axe-selenium-python==2.1.6)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${PAGE_TEST_VENV:-$TARGET/page-test-venv}
export PAGE_OUT=${PAGE_OUT:-$TARGET/page-test}

log() { printf 'page_test.sh: %s\n' "$*" >&2; }

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    log "installing chromium and chromium-driver with apt-get"
    SUDO=
    [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "${PACKAGES[@]}"
[[ ${1:-} == --install-only ]] && exit 0

# Makes WORK, a scratch directory; at exit the servers are stopped and WORK is removed.
# shellcheck disable=SC1091
source "$ROOT/tools/serve.sh"

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
ETL=$VOUCHER_ETL_BIN API=$VOUCHER_API_BIN
"$ETL" generate --rows 20000 --seed 3 --countries Peru,Chile --output "$WORK/history-a.parquet" >/dev/null
"$ETL" generate --rows 20000 --seed 4 --countries Peru,Chile --output "$WORK/history-b.parquet" >/dev/null
"$ETL" run --input "$WORK/history-a.parquet" --output "$WORK/tables" --countries all >/dev/null 2>&1
"$ETL" generate --rows 20000 --seed 5 --countries Peru --output "$WORK/history-peru.parquet" >/dev/null
export PAGE_REPUBLISH="'$ETL' run --input '$WORK/history-b.parquet' --output '$WORK/tables' --countries all >/dev/null 2>&1"
# Chile's segments disappear: the gate holds the version (exit 3) and the page lists it.
export PAGE_HOLD="'$ETL' run --input '$WORK/history-peru.parquet' --output '$WORK/tables' --countries all >/dev/null 2>&1; test \$? -eq 3"

API_FLAGS=(--tables-dir "$WORK/tables" --host 127.0.0.1 --port 0 --grpc-port 0 --reload-interval 200ms)
serve_start PAGE "$API" "${API_FLAGS[@]}"
serve_start PAGE_TOKEN "$API" "${API_FLAGS[@]}" --api-token page-test-token
export PAGE_TOKEN=page-test-token PAGE_URL PAGE_TOKEN_URL
mkdir -p "$PAGE_OUT"
log "testing the page at $PAGE_URL/ (and $PAGE_TOKEN_URL/ with a token) in $(/usr/bin/chromium --version 2>/dev/null)"
"$VENV/bin/python" "$ROOT/api/tests/page/page_test.py"
log "screenshots in $PAGE_OUT"
