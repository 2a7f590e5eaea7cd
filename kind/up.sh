#!/usr/bin/env bash
# Brings the local demo up on kind: builds both images, creates the cluster, loads the images,
# applies kind/kustomization.yaml (k8s/ plus a single-node volume), runs the first ETL job at
# once instead of waiting for the schedule, waits for the API's rollout and leaves a
# port-forward to it on http://127.0.0.1:${LOCAL_PORT:-8000} (stop it with kind/down.sh).
#
# Needs: docker, kind, kubectl. Environment:
#   CLUSTER              kind cluster name (default: voucher)
#   TAG                  image tag (default: 0.1.0, the tag the manifests pin)
#   LOCAL_PORT           local port of the port-forward (default: 8000)
#   KIND_METRICS_SERVER  1: also install metrics-server, so the HPA gets CPU figures
#   SKIP_BUILD           1: use voucher-api:$TAG and voucher-etl:$TAG as they are
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${CLUSTER:-voucher}
TAG=${TAG:-0.1.0}
LOCAL_PORT=${LOCAL_PORT:-8000}
NS=voucher
STATE=${XDG_RUNTIME_DIR:-/tmp}/voucher-kind-$CLUSTER
METRICS_SERVER_VERSION=v0.7.2

log() { printf 'kind/up.sh: %s\n' "$*" >&2; }
for tool in docker kind kubectl curl; do
    command -v "$tool" >/dev/null || { log "$tool is missing"; exit 1; }
done

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    for image in api etl; do
        log "building voucher-$image:$TAG"
        docker build -f "$ROOT/Dockerfile.$image" -t "voucher-$image:$TAG" "$ROOT"
    done
fi

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster $CLUSTER exists; reusing it"
else
    log "creating cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config "$ROOT/kind/cluster.yaml" --wait 120s
fi
CTX=kind-$CLUSTER
k() { kubectl --context "$CTX" "$@"; }

for image in api etl; do
    log "loading voucher-$image:$TAG into the cluster"
    kind load docker-image --name "$CLUSTER" "voucher-$image:$TAG"
done

if [[ ${KIND_METRICS_SERVER:-0} == 1 ]]; then
    log "installing metrics-server $METRICS_SERVER_VERSION (kubelet certificates are self-signed on kind)"
    k apply -f "https://github.com/kubernetes-sigs/metrics-server/releases/download/$METRICS_SERVER_VERSION/components.yaml"
    k -n kube-system patch deployment metrics-server --type=json \
        -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi

log "applying kind/kustomization.yaml"
k apply -k "$ROOT/kind"

# The first table now, not at 03:00: a Job from the CronJob's template.
JOB=voucher-etl-initial
if ! k -n "$NS" get job "$JOB" >/dev/null 2>&1; then
    k -n "$NS" create job "$JOB" --from=cronjob/voucher-etl
fi
log "waiting for job/$JOB"
if ! k -n "$NS" wait --for=condition=complete "job/$JOB" --timeout=300s; then
    k -n "$NS" logs "job/$JOB" --tail=50 || true
    log "the first ETL job did not complete"
    exit 1
fi
k -n "$NS" logs "job/$JOB" --tail=5 || true

log "waiting for the API's rollout"
k -n "$NS" rollout status deployment/voucher-api --timeout=180s

mkdir -p "$STATE"
if [[ -f $STATE/port-forward.pid ]] && kill -0 "$(cat "$STATE/port-forward.pid")" 2>/dev/null; then
    kill "$(cat "$STATE/port-forward.pid")" || true
fi
log "port-forward 127.0.0.1:$LOCAL_PORT -> service/voucher-api:8000 (log: $STATE/port-forward.log)"
nohup kubectl --context "$CTX" -n "$NS" port-forward service/voucher-api "$LOCAL_PORT:8000" \
    --address 127.0.0.1 >"$STATE/port-forward.log" 2>&1 &
echo $! >"$STATE/port-forward.pid"
for _ in $(seq 50); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LOCAL_PORT/readyz") == 200 ]]; then
        log "ready: http://127.0.0.1:$LOCAL_PORT (docs at /docs); load test: make load-test-kind"
        exit 0
    fi
    sleep 0.2
done
log "the port-forward does not answer 200 on /readyz; see $STATE/port-forward.log"
exit 1
