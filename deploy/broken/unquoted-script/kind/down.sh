#!/usr/bin/env bash
# Stops the demo's port-forward and deletes the kind cluster.
# Environment: CLUSTER (default: voucher).
set -euo pipefail

CLUSTER=${CLUSTER:-voucher}
STATE=${XDG_RUNTIME_DIR:-/tmp}/voucher-kind-$CLUSTER

if [[ -f $STATE/port-forward.pid ]]; then
    kill $(cat $STATE/port-forward.pid) 2>/dev/null || true
    rm -f "$STATE/port-forward.pid"
fi
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
else
    printf 'kind/down.sh: no cluster %s\n' "$CLUSTER" >&2
fi
