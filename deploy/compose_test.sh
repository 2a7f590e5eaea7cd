#!/usr/bin/env bash
# docker-compose.yml for real, on podman: podman-compose (pinned, from PyPI) brings the project
# up on the images the image check built (localhost/voucher-{api,etl}:$IMAGE_TAG, no second
# build), then checks that
#   - the ETL publishes a table into the named volume (owned by the images' uid 10001);
#   - the API answers the README's POST /api/v1/voucher with the voucher of that version, and
#     serves /, /healthz, /readyz, /metrics; the compose healthcheck passes;
#   - `hey -n 20000 -c 50` on POST /api/v1/voucher gets no answer but 200 (summary printed);
#   - both containers run with a read-only root, as uid 10001, with no capabilities;
#   - `down -v` removes every container, pod, network and volume the project made.
# Ports are published on 127.0.0.1 only, on free ports; everything is removed on exit.
# The events profile needs apache/kafka, which no registry here can serve: it is tried only
# where that image is in local storage.
#
# Usage: deploy/compose_test.sh [--install-only]   (as root: the images are root's)
#        deploy/compose_test.sh --up   `make compose-up` on podman: the project `voucher` up on
#                                      the images tagged IMAGE_TAG, left running; prints how to stop it
# Environment:
#   IMAGE_TAG          tag of the images to run (default: check, what `make image-check` builds)
#   COMPOSE_TEST_VENV  virtualenv for podman-compose (default: $CARGO_TARGET_DIR/compose-test-venv)
#   HEY_REQUESTS, HEY_CONCURRENCY   the load (default: 20000 requests, 50 at a time)
set -euo pipefail

# Pinned so that a run is repeatable; the venv is rebuilt when these change.
PACKAGES=(podman-compose==1.6.0 PyYAML==6.0.4 python-dotenv==1.2.4)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${COMPOSE_TEST_VENV:-$TARGET/compose-test-venv}
TAG=${IMAGE_TAG:-check}
REQUESTS=${HEY_REQUESTS:-20000}
CONCURRENCY=${HEY_CONCURRENCY:-50}
PROJECT=voucher-compose-test
# shellcheck disable=SC1091
source "$ROOT/deploy/podman.sh"
podman_test_setup "$VENV" "${PACKAGES[*]}" hey curl
[[ ${1:-} == --install-only ]] && exit 0

# make compose-up: the user's project, ports and tag (compose's defaults), left running. Its
# containers.conf stays beside the venv: podman needs it whenever they start again.
if [[ ${1:-} == --up ]]; then
    cp "$CONTAINERS_CONF" "$VENV/containers.conf"
    export CONTAINERS_CONF=$VENV/containers.conf
    compose=("$VENV/bin/podman-compose" -f "$ROOT/docker-compose.yml")
    "${compose[@]}" up -d || die "podman-compose up"
    wait_http "http://127.0.0.1:${API_PORT:-8000}/readyz" 120 || die "the API never answered 200 on /readyz"
    log "voucher-api on http://127.0.0.1:${API_PORT:-8000} (docs at /docs); stop with:"
    log "  CONTAINERS_CONF=$CONTAINERS_CONF ${compose[*]} down -v"
    exit 0
fi

need_images "$TAG"

API_PORT=$(free_port)
API_GRPC_PORT=$(free_port)
export IMAGE_TAG=$TAG PUBLISH_IP=127.0.0.1 API_PORT API_GRPC_PORT
compose() {
    timeout 120 "$VENV/bin/podman-compose" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"
}
# What podman holds of the project, one "kind name" a line: containers, pods, networks, volumes.
leftovers() {
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format 'container {{.Names}}'
    podman pod ps --filter "name=^pod_$PROJECT\$" --format 'pod {{.Name}}'
    podman network ls --filter "label=io.podman.compose.project=$PROJECT" --format 'network {{.Name}}'
    podman volume ls --filter "label=io.podman.compose.project=$PROJECT" --format 'volume {{.Name}}'
}
# Removes the project: `down -v`, then whatever a failed run left, by the project's label only.
remove_project() {
    compose down -v -t 5 >/dev/null 2>&1 || true
    leftovers 2>/dev/null | while read -r kind name; do
        case $kind in
            container) podman rm -f -t 0 "$name" ;;
            pod) podman pod rm -f "$name" ;;
            network) podman network rm -f "$name" ;;
            volume) podman volume rm -f "$name" ;;
        esac >/dev/null 2>&1 || true
    done
}
cleanup() {
    local status=$?
    if [[ -n $(leftovers 2>/dev/null) ]]; then
        if ((status != 0)); then
            log "the containers' last log lines:"
            compose logs --tail 20 >&2 2>&1 || true
        fi
        remove_project
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
[[ -z $(leftovers) ]] || { log "removing a previous run's $PROJECT"; remove_project; }

container_of() { # the container of compose service $1
    podman ps --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=io.podman.compose.service=$1" --format '{{.Names}}' | head -n 1
}

# --- up -----------------------------------------------------------------------------------
start=$SECONDS
log "podman-compose up -d: localhost/voucher-{api,etl}:$TAG, API on 127.0.0.1:$API_PORT (HTTP), :$API_GRPC_PORT (gRPC)"
compose up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "podman-compose up"; }
URL=http://127.0.0.1:$API_PORT
wait_http "$URL/readyz" 120 || die "the API never answered 200 on /readyz (within 120 s)"
log "the API is ready after $((SECONDS - start)) s"
API=$(container_of api)
ETL=$(container_of etl)
[[ -n $API && -n $ETL ]] || die "no running api or etl container (api: '$API', etl: '$ETL')"

# --- the ETL published into the named volume ----------------------------------------------
VOLUME=${PROJECT}_tables
mountpoint=$(podman volume inspect --format '{{.Mountpoint}}' "$VOLUME") \
    || die "no volume $VOLUME: $(podman volume ls --format '{{.Name}}' | tr '\n' ' ')"
version=$(cat "$mountpoint/CURRENT" 2>/dev/null) || die "the volume $VOLUME has no CURRENT"
for file in vouchers.parquet manifest.json; do
    owner=$(stat -c %u "$mountpoint/$version/$file") || die "version $version in $VOLUME has no $file"
    [[ $owner == 10001 ]] || die "$VOLUME: $version/$file is owned by uid $owner, not the images' 10001"
done
log "PASS the ETL published $version into the volume $VOLUME (files of uid 10001)"

# --- the API: the README's request, its pages and probes ----------------------------------
# The README's curl, as the first users ran it.
answer=$(curl -s -X POST "$URL/api/v1/voucher" -H 'Content-Type: application/json' -d "$README_BODY" -w '\n%{http_code}')
[[ ${answer##*$'\n'} == 200 ]] || die "POST /api/v1/voucher answered: ${answer:0:300}"
# The voucher is the published table's for Peru's frequent segment holding 14 orders.
segments=$(curl -s "$URL/api/v1/segments")
python3 - "${answer%$'\n'*}" "$version" "$segments" <<'PYEOF' || die "POST /api/v1/voucher: ${answer:0:300}"
import json, sys
a, table = json.loads(sys.argv[1]), json.loads(sys.argv[3])
assert a.get("version") == sys.argv[2] == table["version"], f"version {a.get('version')!r}, CURRENT is {sys.argv[2]}"
rows = [r for r in table["countries"]["Peru"]["frequent_segment"] if r["lower"] <= 14 <= (r["upper"] or 14)]
assert len(rows) == 1, rows
assert a.get("voucher") == rows[0]["voucher"] and a.get("segment") == rows[0]["segment"], (a, rows[0])
PYEOF
log "PASS POST /api/v1/voucher (README's request) -> ${answer%$'\n'*}"

# get PATH CONTENT-TYPE TEXT: GET PATH answers 200 with that content type and TEXT in its body.
get() {
    local out
    out=$(curl -s -D "$WORK/headers" "$URL$1") || die "GET $1: no answer"
    head -n 1 "$WORK/headers" | grep -q ' 200' || die "GET $1: $(head -n 1 "$WORK/headers")"
    [[ -z $2 ]] || grep -qi "^content-type: $2" "$WORK/headers" || die "GET $1: not $2: $(grep -i '^content-type' "$WORK/headers")"
    [[ $out == *"$3"* ]] || die "GET $1: no '$3' in ${out:0:300}"
    log "PASS GET $1: 200${2:+ $2}"
}
get / text/html '<html'
get /healthz '' ''
get /readyz application/json "$version"
get /metrics text/plain "voucher_api_table_info{version=\"$version\"}"

# The compose file's healthcheck (readiness, by bash's /dev/tcp inside the image). Podman runs
# healthchecks from systemd timers, which a machine without systemd lacks: run it once here.
podman healthcheck run "$API" >/dev/null || die "the compose healthcheck of $API fails"
log "PASS the compose healthcheck of $API (/readyz from inside the container)"

# --- the seed's load test -----------------------------------------------------------------
log "hey -n $REQUESTS -c $CONCURRENCY POST /api/v1/voucher"
timeout 300 hey -n "$REQUESTS" -c "$CONCURRENCY" -m POST -H 'Content-Type: application/json' -d "$README_BODY" \
    "$URL/api/v1/voucher" >"$WORK/hey.txt" || die "hey failed: $(tail -n 5 "$WORK/hey.txt")"
# Its summary, latency and status lines (not the histogram).
sed -n -e '/^Summary:/,/^$/p' -e '/^Latency distribution:/,/^$/p' -e '/^Status code distribution:/,$p' "$WORK/hey.txt" | cat -s
codes=$(sed -n '/^Status code distribution:/,/^$/p' "$WORK/hey.txt" | grep -o '\[[0-9]*\][[:space:]]*[0-9]*' | tr -s '\t ' ' ')
[[ $codes == "[200] $REQUESTS" ]] || die "hey: not all $REQUESTS answers were 200: ${codes:-none}"
! grep -q '^Error distribution:' "$WORK/hey.txt" || die "hey: errors: $(sed -n '/^Error distribution:/,$p' "$WORK/hey.txt" | head -n 5)"
# The API counted them: its own metrics agree with what hey saw.
served=$(curl -s "$URL/metrics" | awk '/^voucher_api_http_requests_total\{/ && /status="200"/ && /\/api\/v1\/voucher"/ {n += $NF} END {print n + 0}')
((served > REQUESTS)) || die "voucher_api_http_requests_total counts $served answers of 200 on /api/v1/voucher, hey made $REQUESTS"
log "PASS hey: $REQUESTS answers, all 200; the API counted $served"

# --- hardening, as the compose file says --------------------------------------------------
for ctr in "$API" "$ETL"; do
    result=$(check_hardened "$ctr") || die "$result"
    log "PASS $result"
done
out=$(podman exec "$API" bash -c ': >/tables/probe' 2>&1) && die "the API could write to the tables volume"
[[ $out == *"Read-only file system"* ]] || die "writing to the API's /tables failed, but not as read-only: ${out:0:200}"
log "PASS the API's tables volume is read-only"

# --- profiles -------------------------------------------------------------------------------
# events: Kafka's image comes from a registry; without it (and no registry reachable here)
# the profile cannot come up (README, "Docker and podman").
kafka=$(awk '/^  kafka:/ {f=1} f && /image:/ {print $2; exit}' "$ROOT/docker-compose.yml")
if podman image exists "$kafka"; then
    log "note: $kafka is here, but this test does not run the events profile (events/tests/events_test.sh tests voucher-events)"
else
    log "SKIP profile events: the image $kafka is not in local storage and no registry is reachable"
fi

# --- down -------------------------------------------------------------------------------------
compose down -v -t 10 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log" >&2; die "podman-compose down -v"; }
left=$(leftovers)
[[ -z $left ]] || die "down -v left: $(tr '\n' ' ' <<<"$left")"
log "PASS down -v removed every container, pod, network and volume of $PROJECT"
log "compose test: OK in $((SECONDS - start)) s"
