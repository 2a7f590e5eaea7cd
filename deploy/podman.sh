#!/usr/bin/env bash
# Sourced by the scripts that run the images on podman (deploy/compose_test.sh,
# deploy/kube_play_test.sh, deploy/docker_api.sh); run directly, it prints the containers.conf
# below for this machine (`deploy/podman.sh > containers.conf; export CONTAINERS_CONF=$PWD/containers.conf`).
#
# Podman 4.3 (Debian 12) runs containers here with two settings, both in a containers.conf
# passed as CONTAINERS_CONF:
#   - runtime runc: crun refuses hybrid cgroups ("cgroups in hybrid mode not supported");
#   - default ulimits at or below the current ones: podman's defaults ask runc to raise
#     RLIMIT_NOFILE and RLIMIT_NPROC, which is refused ("setrlimit `RLIMIT_NPROC`: Operation
#     not permitted").

# Above this, a container's process count is bounded anyway (a fork bomb stays bounded).
PODMAN_NPROC_MAX=4096

# containers_conf: prints a containers.conf whose ulimits are this shell's soft limits (never
# above the hard ones, so runc only ever lowers them), nproc bounded by PODMAN_NPROC_MAX.
containers_conf() {
    local nofile nproc
    nofile=$(ulimit -Sn)
    nproc=$(ulimit -Su)
    [[ $nofile == unlimited ]] && nofile=1048576
    if [[ $nproc == unlimited ]] || ((nproc > PODMAN_NPROC_MAX)); then
        nproc=$PODMAN_NPROC_MAX
    fi
    cat <<EOF
# Written by deploy/podman.sh for this machine: pass it as CONTAINERS_CONF.
[containers]
# This machine's soft limits: runc may lower limits but not raise them here.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
# crun refuses hybrid cgroups.
runtime = "runc"
EOF
}

# podman_ready DIR: installs podman, runc and the other commands given after DIR when missing
# (Debian packages, as root), writes DIR/containers.conf and exports CONTAINERS_CONF.
podman_ready() {
    local dir=$1
    shift
    # shellcheck disable=SC1091
    source "$(dirname "${BASH_SOURCE[0]}")/../tools/need.sh"
    need_tools podman runc "$@" || return 1
    containers_conf >"$dir/containers.conf"
    export CONTAINERS_CONF=$dir/containers.conf
}

# The README's request, as the first users sent it (used by the scripts that source this file).
# shellcheck disable=SC2034
README_BODY='{"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00", "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"}'

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# podman_test_setup VENV "PACKAGE..." COMMAND...: for the test scripts, as root: a scratch
# directory $WORK (removed on exit), podman ready with the COMMANDs (podman_ready), and VENV
# with the pinned packages.
podman_test_setup() {
    local venv=$1 packages
    read -ra packages <<<"$2"
    shift 2
    [[ $(id -u) == 0 ]] || die "needs root (rootful podman, on the images the image check built as root)"
    # shellcheck disable=SC1091
    source "$(dirname "${BASH_SOURCE[0]}")/../tools/pinned_venv.sh"
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    podman_ready "$WORK" "$@" || die "podman, runc and $* are needed"
    pinned_venv "$venv" "${packages[@]}"
}

# need_images TAG: the API's and ETL's images of the image check are in podman's storage.
need_images() {
    local image
    for image in api etl; do
        podman image exists "localhost/voucher-$image:$1" \
            || die "no image localhost/voucher-$image:$1: build it first (make image-check)"
    done
}

# A random free port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS: waits until URL answers 200; fails after SECONDS.
wait_http() {
    local url=$1 deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url") == 200 ]] && return 0
        sleep 0.5
    done
    return 1
}

# check_hardened CONTAINER: the container's root filesystem is read-only and its process runs
# as uid 10001 with no capability and no_new_privs, as seen from the host (/proc of its pid).
check_hardened() {
    local ctr=$1 ro pid status uid caps
    ro=$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$ctr") || return 1
    [[ $ro == true ]] || { echo "$ctr: root filesystem not read-only"; return 1; }
    pid=$(podman inspect --format '{{.State.Pid}}' "$ctr")
    [[ $pid =~ ^[1-9][0-9]*$ ]] || { echo "$ctr: not running (pid '$pid')"; return 1; }
    status=$(cat "/proc/$pid/status") || return 1
    uid=$(awk '/^Uid:/ {print $2 ":" $3 ":" $4 ":" $5}' <<<"$status")
    [[ $uid == 10001:10001:10001:10001 ]] || { echo "$ctr: uids $uid, not 10001"; return 1; }
    caps=$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {printf "%s", $2}' <<<"$status")
    [[ $caps =~ ^0+$ ]] || { echo "$ctr: capabilities left: $(grep ^Cap <<<"$status" | tr '\n' ' ')"; return 1; }
    grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$status" || { echo "$ctr: no_new_privs is off"; return 1; }
    # And the write itself is refused (the images have bash, as their healthchecks rely on).
    local out
    out=$(podman exec "$ctr" bash -c ': >/probe' 2>&1) && { echo "$ctr: could write to its root filesystem"; return 1; }
    [[ $out == *"Read-only file system"* ]] || { echo "$ctr: writing to / failed, but not as read-only: ${out:0:200}"; return 1; }
    echo "$ctr: read-only root, uid 10001, no capabilities, no_new_privs"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    containers_conf
fi
