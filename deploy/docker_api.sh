#!/usr/bin/env bash
# `make docker_api`, the first users' flow, on the images (built by `make docker-build`, or by
# `make image-check` here): the ETL image publishes a table from its bundled sample into a
# volume, the API image serves it on 127.0.0.1:$API_PORT, and the curl to try is printed. Runs
# until Ctrl-C, then removes its containers and volume. Docker, or podman (with a containers.conf
# for this machine, deploy/podman.sh, unless CONTAINERS_CONF is set).
#
# Environment:
#   CONTAINER_ENGINE  docker or podman (default: docker where its daemon answers, else podman)
#   IMAGE_TAG         the images' tag (default: 0.1.0)
#   API_PORT          the host port on 127.0.0.1 (default: 8000)
#   DOCKER_API_SECONDS  stop after this many seconds instead of at Ctrl-C (for scripts)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE=${CONTAINER_ENGINE:-$(docker info >/dev/null 2>&1 && echo docker || echo podman)}
TAG=${IMAGE_TAG:-0.1.0}
PORT=${API_PORT:-8000}
NAME=voucher-docker-api
VOLUME=voucher-docker-api-tables

# shellcheck disable=SC1091
source "$ROOT/deploy/podman.sh"

case $ENGINE in
    docker) ;;
    podman)
        if [[ -z ${CONTAINERS_CONF:-} ]]; then
            CONF_DIR=$(mktemp -d)
            podman_ready "$CONF_DIR" curl || die "podman, runc and curl are needed"
        fi ;;
    *) die "CONTAINER_ENGINE must be docker or podman, not '${ENGINE:0:40}'" ;;
esac
command -v "$ENGINE" >/dev/null || die "$ENGINE is not installed"
for image in api etl; do
    "$ENGINE" image inspect "voucher-$image:$TAG" >/dev/null 2>&1 \
        || die "no image voucher-$image:$TAG: make docker-build IMAGE_TAG=$TAG (or here, make image-check and IMAGE_TAG=check)"
done

remove_run() {
    "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
    "$ENGINE" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
trap 'remove_run; [[ -z ${CONF_DIR:-} ]] || rm -rf "$CONF_DIR"' EXIT
trap 'exit 0' INT TERM
remove_run # a previous run's, if it was killed

HARDENED=(--read-only --cap-drop ALL --security-opt no-new-privileges)
log "$ENGINE: voucher-etl:$TAG publishes a table from its bundled sample into the volume $VOLUME"
"$ENGINE" volume create "$VOLUME" >/dev/null
"$ENGINE" run --rm "${HARDENED[@]}" --tmpfs /tmp -v "$VOLUME:/tables" "voucher-etl:$TAG" run \
    || die "the ETL image failed"
log "$ENGINE: voucher-api:$TAG on 127.0.0.1:$PORT"
"$ENGINE" run -d --name "$NAME" "${HARDENED[@]}" -p "127.0.0.1:$PORT:8000" \
    -v "$VOLUME:/tables:ro" "voucher-api:$TAG" >/dev/null || die "the API image did not start"
deadline=$((SECONDS + 60))
until [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/readyz") == 200 ]]; do
    ((SECONDS < deadline)) || { "$ENGINE" logs --tail 20 "$NAME" >&2; die "the API never answered 200 on /readyz"; }
    sleep 0.5
done
cat <<EOF

voucher-api is serving the sample's table in $ENGINE. Open http://127.0.0.1:$PORT/ or try:
  curl -s -X POST http://127.0.0.1:$PORT/api/v1/voucher -H 'Content-Type: application/json' -d '$README_BODY'
Stop it with Ctrl-C (its container and volume are removed).

EOF
if [[ -n ${DOCKER_API_SECONDS:-} ]]; then
    sleep "$DOCKER_API_SECONDS"
else
    "$ENGINE" logs -f "$NAME" || true
fi
