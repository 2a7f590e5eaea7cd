#!/usr/bin/env bash
# Fuzzes voucher-api against its own /openapi.json with schemathesis: no response may be a 5xx,
# and every response must match the schema, status, content type and headers the document
# declares. Exits non-zero on any failure.
#
# Usage: api/tests/schemathesis.sh [--install-only]
# Environment:
#   CARGO_TARGET_DIR           where cargo builds (default: <repo>/target)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
#   SCHEMATHESIS_VENV          the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/schemathesis-venv)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation (default: 200)
#   SCHEMATHESIS_MAX_TIME      seconds for the fuzzing run (default: 60)
# Needs: cargo, python3 with venv, and PyPI to install schemathesis once.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${SCHEMATHESIS_VENV:-$TARGET/schemathesis-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-200}
MAX_TIME=${SCHEMATHESIS_MAX_TIME:-60}

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

# Makes WORK, a scratch directory; at exit the servers are stopped and WORK is removed.
# shellcheck disable=SC1091
source "$ROOT/tools/serve.sh"

# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"
[[ ${1:-} == --install-only ]] && exit 0

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
"$PUBLISH_TABLE_BIN" "$WORK/tables" >/dev/null
serve_start API "$VOUCHER_API_BIN" --tables-dir "$WORK/tables" --host 127.0.0.1 --port 0 \
    --grpc-port 0
serve_ready API
BASE=$API_URL
log "fuzzing $BASE (at most $MAX_EXAMPLES examples per operation, ${MAX_TIME}s)"

status=0
# Run from the scratch directory: schemathesis keeps a cache in ./.schemathesis.
cd "$WORK"
timeout --signal=INT "$((MAX_TIME + 60))" "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --request-timeout 10 \
    --seed 20261123 \
    --report junit --report-dir "$WORK/report" \
    || status=$?

if grep -q ' -> 5[0-9][0-9]' "$WORK/API.log"; then
    log "the API logged server errors:"
    grep ' -> 5[0-9][0-9]' "$WORK/API.log" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    log "FAILED (exit $status)"
    exit "$status"
fi
log "passed"
