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

# Makes WORK, a scratch directory; at exit the servers are stopped and WORK is removed.
# shellcheck disable=SC1091
source "$ROOT/tools/serve.sh"

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
serve_start API env VOUCHER_API_TOKEN=$TOKEN "$VOUCHER_API_BIN" --tables-dir "$WORK/tables" \
    --host 127.0.0.1 --port 0 --grpc-port 0
serve_grpc API
log "running the Python client against $API_GRPC"
"$VENV/bin/python" "$ROOT/api/tests/grpc_python/client_test.py" "$API_GRPC" "$TOKEN" "$WORK/stubs"
