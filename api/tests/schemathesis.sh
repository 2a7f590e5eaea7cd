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

WORK=$(mktemp -d)
API_PID=
cleanup() {
    if [[ -n $API_PID ]] && kill -0 "$API_PID" 2>/dev/null; then
        kill -INT "$API_PID" 2>/dev/null || true
        wait "$API_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"
[[ ${1:-} == --install-only ]] && exit 0

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
"$PUBLISH_TABLE_BIN" "$WORK/tables" >/dev/null
RUST_LOG=info "$VOUCHER_API_BIN" --tables-dir "$WORK/tables" --host 127.0.0.1 --port 0 \
    2>"$WORK/api.log" &
API_PID=$!
BASE=
for _ in $(seq 100); do
    ADDRESS=$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1|p' "$WORK/api.log" | head -n 1)
    if [[ -n $ADDRESS ]] && curl -fsS "$ADDRESS/readyz" >/dev/null 2>&1; then
        BASE=$ADDRESS
        break
    fi
    if ! kill -0 "$API_PID" 2>/dev/null; then
        log "voucher-api exited early:"
        cat "$WORK/api.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $BASE ]]; then
    log "voucher-api did not become ready:"
    cat "$WORK/api.log" >&2
    exit 1
fi
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

if grep -q ' -> 5[0-9][0-9]' "$WORK/api.log"; then
    log "the API logged server errors:"
    grep ' -> 5[0-9][0-9]' "$WORK/api.log" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    log "FAILED (exit $status)"
    exit "$status"
fi
log "passed"
