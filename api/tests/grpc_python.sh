#!/usr/bin/env bash
# Talks to voucher-api's gRPC door from Python (grpcio), with stubs generated from the .proto:
# a client that shares no code with the server. Starts the real binary on free ports with a
# generated table and a token, runs api/tests/grpc_python/client_test.py, stops the binary.
#
# Usage: api/tests/grpc_python.sh [--install-only]
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
#   GRPC_PYTHON_VENV   the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/grpc-python-venv)
# Needs: cargo, python3 with venv, and PyPI to install grpcio once.
set -euo pipefail

# Pinned so that a run is repeatable; the venv is rebuilt when these change.
PACKAGES=(grpcio==1.85.1 grpcio-tools==1.85.1 grpcio-health-checking==1.85.1
    grpcio-reflection==1.85.1 grpcio-status==1.85.1)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${GRPC_PYTHON_VENV:-$TARGET/grpc-python-venv}

log() { printf 'grpc_python.sh: %s\n' "$*" >&2; }

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
pinned_venv "$VENV" "${PACKAGES[@]}"
[[ ${1:-} == --install-only ]] && exit 0

log "generating Python stubs from api/proto"
mkdir -p "$WORK/stubs"
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/api/proto" \
    --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" \
    "$ROOT/api/proto/voucher/v1/voucher.proto"

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
"$PUBLISH_TABLE_BIN" "$WORK/tables" >/dev/null

TOKEN=python-client-token
VOUCHER_API_TOKEN=$TOKEN RUST_LOG=info "$VOUCHER_API_BIN" --tables-dir "$WORK/tables" \
    --host 127.0.0.1 --port 0 --grpc-port 0 2>"$WORK/api.log" &
API_PID=$!
GRPC=
for _ in $(seq 100); do
    GRPC=$(sed -n 's|.*gRPC listening on \([^ ]*\).*|\1|p' "$WORK/api.log" | head -n 1)
    [[ -n $GRPC ]] && break
    if ! kill -0 "$API_PID" 2>/dev/null; then
        log "voucher-api exited early:"
        cat "$WORK/api.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $GRPC ]]; then
    log "voucher-api did not log its gRPC address:"
    cat "$WORK/api.log" >&2
    exit 1
fi
log "running the Python client against $GRPC"
"$VENV/bin/python" "$ROOT/api/tests/grpc_python/client_test.py" "$GRPC" "$TOKEN" "$WORK/stubs"
