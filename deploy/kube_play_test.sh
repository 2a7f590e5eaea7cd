#!/usr/bin/env bash
# The Kubernetes manifests for real, on `podman kube play`: renders the kustomization in k8s/
# (kubectl kustomize, as deploy/check.sh does; without kubectl, kube_play_prepare.py --render),
# plays what podman supports on the images the image check built (deploy/kube_play_prepare.py:
# the tables PVC, the ETL's ConfigMap, the ETL CronJob's pod template as a pod that runs once,
# the API Deployment) and checks that
#   - the ETL pod publishes a table into the claim's volume and exits 0;
#   - the API answers through its published port, and its readiness probe passes: the gRPC
#     health check of voucher.v1.VoucherService the kubelet would make (podman runs no
#     readiness probe), and /readyz;
#   - the API container runs with a read-only root, as uid 10001, with no capabilities;
#   - `podman kube down` and the volume's removal leave nothing behind.
# It prints which objects podman played and which it cannot (they stay checked statically by
# `make deploy-check`). Ports on 127.0.0.1 only; everything is removed on exit.
#
# Usage: deploy/kube_play_test.sh [--install-only]   (as root: the images are root's)
# Environment:
#   IMAGE_TAG            tag of the images to run (default: check, what `make image-check` builds)
#   KUBE_PLAY_TEST_VENV  virtualenv for PyYAML and the gRPC health client
#                        (default: $CARGO_TARGET_DIR/kube-play-test-venv)
set -euo pipefail

# Pinned so that a run is repeatable; the venv is rebuilt when these change.
PACKAGES=(PyYAML==6.0.4 grpcio==1.85.1 grpcio-health-checking==1.85.1)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${KUBE_PLAY_TEST_VENV:-$TARGET/kube-play-test-venv}
TAG=${IMAGE_TAG:-check}
CLAIM=kube-play-test-tables
# shellcheck disable=SC1091
source "$ROOT/deploy/podman.sh"
podman_test_setup "$VENV" "${PACKAGES[*]}" curl
[[ ${1:-} == --install-only ]] && exit 0

need_images "$TAG"

HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
PLAY=$WORK/play.yaml
if command -v kubectl >/dev/null; then
    kubectl kustomize "$ROOT/k8s" >"$WORK/rendered.yaml" || die "kubectl kustomize k8s"
else
    log "kubectl is not installed: rendering k8s/ with deploy/kube_play_prepare.py --render"
    "$VENV/bin/python" "$ROOT/deploy/kube_play_prepare.py" --render "$ROOT/k8s" >"$WORK/rendered.yaml" \
        || die "rendering k8s/"
fi
"$VENV/bin/python" "$ROOT/deploy/kube_play_prepare.py" "$WORK/rendered.yaml" "$PLAY" \
    --api-image "localhost/voucher-api:$TAG" --etl-image "localhost/voucher-etl:$TAG" \
    --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --claim "$CLAIM" >"$WORK/report.txt" \
    || die "preparing the rendered manifests"
log "the rendered k8s/, object by object:"
sed 's/^/    /' "$WORK/report.txt" >&2

# The pods of the play (their names: Pod names, and a Deployment's "<name>-pod-0").
play_pods() { podman pod ps --filter "label=app.kubernetes.io/part-of=voucher-service" --format '{{.Name}}'; }
# The network kube play makes on first use: removed at the end if this run made it.
KUBE_NETWORK=podman-default-kube-network
podman network exists "$KUBE_NETWORK" && KUBE_NETWORK=
remove_play() {
    timeout 60 podman kube down "$PLAY" >/dev/null 2>&1 || true
    for pod in $(play_pods); do
        [[ $pod == voucher-etl-once || $pod == voucher-api-pod-* ]] && podman pod rm -f "$pod" >/dev/null 2>&1
    done
    podman volume rm -f "$CLAIM" >/dev/null 2>&1 || true
}
cleanup() {
    local status=$? ctr
    if ((status != 0)); then
        for ctr in $(podman ps -a --filter "volume=$CLAIM" --format '{{.Names}}' 2>/dev/null); do
            log "last log lines of $ctr:"
            podman logs --tail 15 "$ctr" >&2 2>&1 || true
        done
    fi
    remove_play
    # Not forced: it stays while anything else uses it.
    [[ -z $KUBE_NETWORK ]] || podman network rm "$KUBE_NETWORK" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
remove_play # a previous run's, if it was killed

# --- play -------------------------------------------------------------------------------------
start=$SECONDS
log "podman kube play (API on 127.0.0.1:$HTTP_PORT, gRPC :$GRPC_PORT)"
# From $WORK: podman 4.3 takes a directory named like an image in the current one for its build
# context, even without --build.
(cd "$WORK" && timeout 120 podman kube play "$PLAY" >"$WORK/play.log" 2>&1) \
    || { cat "$WORK/play.log" >&2; die "podman kube play"; }

# --- the ETL pod publishes once ---------------------------------------------------------------
ETL=$(podman ps -a --filter pod=voucher-etl-once --format '{{.Names}} {{.IsInfra}}' | awk '$2 == "false" {print $1; exit}')
[[ -n $ETL ]] || die "no ETL container in pod voucher-etl-once"
code=$(timeout 120 podman wait "$ETL") || die "the ETL container $ETL did not finish within 120 s"
[[ $code == 0 ]] || die "the ETL container $ETL exited $code"
mountpoint=$(podman volume inspect --format '{{.Mountpoint}}' "$CLAIM") || die "no volume $CLAIM"
version=$(cat "$mountpoint/CURRENT" 2>/dev/null) || die "the volume $CLAIM has no CURRENT"
owner=$(stat -c %u "$mountpoint/$version/vouchers.parquet") || die "$CLAIM: $version has no vouchers.parquet"
[[ $owner == 10001 ]] || die "$CLAIM: $version/vouchers.parquet is owned by uid $owner, not 10001"
read -r ro user caps < <(podman inspect --format '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{.EffectiveCaps}}' "$ETL")
[[ $ro == true && $user == 10001* && $caps == "[]" ]] || die "$ETL: read-only root $ro, user '$user', capabilities $caps"
log "PASS the ETL pod ran once (exit 0; read-only root, user $user, no capabilities) and published $version into $CLAIM"

# --- the API, through its published port --------------------------------------------------------
URL=http://127.0.0.1:$HTTP_PORT
# The API reads CURRENT every 5 s (VOUCHER_RELOAD_INTERVAL): ready within that once published.
wait_http "$URL/readyz" 60 || die "the API never answered 200 on /readyz (within 60 s)"
# The Deployment's readiness probe, as the kubelet makes it: grpc.health.v1 Check of the service
# it names, within its timeoutSeconds.
"$VENV/bin/python" - "$WORK/rendered.yaml" "$GRPC_PORT" <<'PYEOF' || die "the readiness probe fails"
import sys, grpc, yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
deploy = next(d for d in yaml.safe_load_all(open(sys.argv[1]))
              if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "voucher-api")
probe = deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
assert probe["grpc"]["port"] == 50051, probe
channel = grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}")
try:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=probe["grpc"]["service"]), timeout=probe["timeoutSeconds"])
except grpc.RpcError as e:
    sys.exit(f"readiness probe grpc {probe['grpc']['service']}: {e.code().name}: {e.details()}")
status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
print(f"readiness probe grpc {probe['grpc']['service']} on :50051 -> {status}", file=sys.stderr)
assert status == "SERVING", status
PYEOF
answer=$(curl -s -X POST "$URL/api/v1/voucher" -H 'Content-Type: application/json' -d "$README_BODY" -w '\n%{http_code}')
[[ ${answer##*$'\n'} == 200 && ${answer%$'\n'*} == *'"voucher":'* && $answer == *"\"$version\""* ]] \
    || die "POST /api/v1/voucher answered: ${answer:0:300}"
log "PASS the API answers through 127.0.0.1:$HTTP_PORT: ${answer%$'\n'*}"
API=$(podman ps --filter "volume=$CLAIM" --filter status=running --format '{{.Names}} {{.IsInfra}}' \
    | awk '$2 == "false" {print $1; exit}')
[[ -n $API ]] || die "no running API container"
result=$(check_hardened "$API") || die "$result"
log "PASS $result"
# The liveness probe, as the kubelet makes it: GET /healthz on the port named http.
[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz") == 200 ]] || die "GET /healthz (the liveness probe)"
log "PASS the liveness probe: GET /healthz 200"
# Podman's own rendering of that probe cannot pass: it says so, so that nobody relies on it.
health=$(podman inspect --format '{{join .Config.Healthcheck.Test " "}}' "$API" 2>/dev/null || true)
[[ -z $health ]] || log "note: podman made the liveness probe the healthcheck '$health'; the image has no curl (and 4.3 leaves a named port at 0), so podman's healthcheck of it fails"

# --- down -------------------------------------------------------------------------------------
timeout 60 podman kube down "$PLAY" >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log" >&2; die "podman kube down"; }
podman volume rm "$CLAIM" >/dev/null || die "removing the volume $CLAIM"
left=$(play_pods)
[[ -z $left ]] || die "kube down left pods: $left"
log "PASS podman kube down removed the pods; the volume $CLAIM removed"
objects() { grep "^$1" "$WORK/report.txt" | cut -d' ' -f2 | tr -d : | paste -sd' '; }
log "played: $(objects play) and Pod/voucher-etl-once (the CronJob's pod template, once)"
log "not played (checked statically by make deploy-check): $(objects skip)"
log "kube play test: OK in $((SECONDS - start)) s"
