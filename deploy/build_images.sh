#!/usr/bin/env bash
# Image check: builds Dockerfile.api, Dockerfile.etl and Dockerfile.events for real, without a
# Docker daemon, then runs them: the ETL image publishes a table into a directory, the API image
# serves it, and curl checks /readyz and a voucher; the events image's binary starts. All run as
# the images' non-root user.
#
# No registry is reachable here, so the base images are STAND-INS built locally under the
# Dockerfiles' names:
#   debian:12.11-slim          a `debootstrap --variant=minbase bookworm` root filesystem
#   rust:1.95.0-slim-bookworm  the same plus gcc, libc6-dev, ca-certificates and this machine's
#                              Rust toolchain (rustc/cargo from `rustup`, the version in the tag)
# The crates come from this machine's cargo registry, mounted into the build with cargo in
# offline mode (crates.io is not reachable from inside a build here); the builder's target
# directory is a cache mounted from $CACHE/target, so later runs rebuild only our crates.
#
# Usage: deploy/build_images.sh          (as root; installs buildah, runc, debootstrap, curl)
#        deploy/build_images.sh --prepare-only   installs the tools and makes the stand-in base
#                                          images, then stops (CI runs it in the background)
# Environment:
#   VOUCHER_IMAGE_CACHE  cache directory (default: ~/.cache/voucher-images): root filesystem
#                        tarballs, the builder's target directory, logs
#   IMAGE_TAG            tag of the built images (default: check)
#   IMAGE_CHECK_PROFILE  quick (default): the release profile without LTO, at opt-level 0, to
#                        keep the check within CI's time; release: Cargo.toml's release profile,
#                        as a real `docker build` compiles (thin LTO; ~20 minutes more on 2 cores)
#   SKIP_BUILD=1         run the images already built under IMAGE_TAG
#   KEEP_IMAGES=0        remove the built images at the end (default: kept, as
#                        localhost/voucher-{api,etl,events}:$IMAGE_TAG)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VOUCHER_IMAGE_CACHE:-$HOME/.cache/voucher-images}
TAG=${IMAGE_TAG:-check}
PROFILE=${IMAGE_CHECK_PROFILE:-quick}
[[ $PROFILE == quick || $PROFILE == release ]] || { echo "IMAGE_CHECK_PROFILE must be quick or release" >&2; exit 2; }
KEEP_IMAGES=${KEEP_IMAGES:-1}
RUNTIME_BASE=docker.io/library/debian:12.11-slim
BUILDER_BASE=docker.io/library/rust:1.95.0-slim-bookworm
RUST_VERSION=1.95.0
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BODY='{"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00", "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"}'

export STORAGE_DRIVER=overlay
export BUILDAH_ISOLATION=oci
export BUILDAH_RUNTIME=runc

log() { printf 'build_images.sh: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
step_start=$SECONDS
step() { log "[$((SECONDS - step_start))s] $*"; }

[[ $(id -u) == 0 ]] || die "needs root (buildah with runc, debootstrap)"

# --- tools ------------------------------------------------------------------------------
missing=()
for tool in buildah runc debootstrap curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    step "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        buildah runc debootstrap curl ca-certificates >/dev/null
fi
command -v cargo >/dev/null || die "cargo is needed (its toolchain goes into the stand-in rust image)"

mkdir -p "$CACHE" "$CACHE/target"
WORK=$(mktemp -d)
CONTAINERS=()
PIDS=()
PORT=
# The voucher-api processes serving $PORT (the API container's, seen from the host).
api_pids() {
    local pid
    [[ -n $PORT ]] || return 0
    for pid in $(pgrep -x voucher-api); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "VOUCHER_PORT=$PORT"; then
            echo "$pid"
        fi
    done
}
cleanup() {
    local pid ctr
    # `buildah run` does not pass signals on: stop the API itself, then wait for its runner.
    for pid in $(api_pids); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for ctr in "${CONTAINERS[@]}"; do
        buildah rm "$ctr" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- stand-in base images -----------------------------------------------------------------
# debootstrap once; the tarballs are cached. $1: tarball, $2: extra packages (comma list).
rootfs_tarball() {
    local tarball=$1 include=$2 dir
    [[ -s $tarball ]] && return
    dir=$WORK/rootfs-$(basename "$tarball" .tar)
    step "debootstrap --variant=minbase $SUITE ${include:+(+ $include)} -> $tarball"
    debootstrap --variant=minbase ${include:+--include="$include"} "$SUITE" "$dir" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar --numeric-owner -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
}

# Imports a tarball as image $1 with extra `buildah config` arguments.
import_image() {
    local name=$1 tarball=$2 ctr
    shift 2
    ctr=$(buildah from scratch)
    CONTAINERS+=("$ctr")
    buildah add --quiet "$ctr" "$tarball" / >/dev/null
    buildah config "$@" "$ctr"
    buildah commit --quiet --rm "$ctr" "$name" >/dev/null
}

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

if ! have_image "$RUNTIME_BASE"; then
    rootfs_tarball "$CACHE/$SUITE-minbase.tar" ""
    step "importing the stand-in $RUNTIME_BASE"
    import_image "$RUNTIME_BASE" "$CACHE/$SUITE-minbase.tar" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash
fi

if ! have_image "$BUILDER_BASE"; then
    rootfs_tarball "$CACHE/$SUITE-build.tar" "gcc,libc6-dev,ca-certificates"
    # The toolchain: this machine's rustc and cargo of the tag's version, without docs and
    # sources, in the layout of the official image (RUSTUP_HOME, CARGO_HOME under /usr/local).
    toolchain=$(rustup +"$RUST_VERSION" which rustc 2>/dev/null || true)
    [[ -n $toolchain ]] || toolchain=$(rustup which rustc)
    sysroot=$(dirname "$(dirname "$toolchain")")
    [[ $("$sysroot/bin/rustc" --version) == "rustc $RUST_VERSION "* ]] \
        || die "the stand-in $BUILDER_BASE needs rustc $RUST_VERSION; this machine has $("$sysroot/bin/rustc" --version)"
    step "packing the toolchain from $sysroot"
    tc=$WORK/toolchain
    mkdir -p "$tc/usr/local/rust/lib/rustlib" "$tc/usr/local/cargo/bin"
    cp -a "$sysroot/bin" "$tc/usr/local/rust/"
    find "$sysroot/lib" -maxdepth 1 -type f -name "lib*" -exec cp -a {} "$tc/usr/local/rust/lib/" \;
    cp -a "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu" "$tc/usr/local/rust/lib/rustlib/"
    cp -a "$sysroot"/lib/rustlib/{rust-installer-version,components} "$tc/usr/local/rust/lib/rustlib/" 2>/dev/null || true
    tar --numeric-owner --owner=0 --group=0 -C "$tc" -cf "$WORK/toolchain.tar" .
    step "importing the stand-in $BUILDER_BASE"
    ctr=$(buildah from scratch)
    CONTAINERS+=("$ctr")
    buildah add --quiet "$ctr" "$CACHE/$SUITE-build.tar" / >/dev/null
    buildah add --quiet "$ctr" "$WORK/toolchain.tar" / >/dev/null
    buildah config \
        --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env RUST_VERSION="$RUST_VERSION" --cmd bash "$ctr"
    buildah commit --quiet --rm "$ctr" "$BUILDER_BASE" >/dev/null
fi

if [[ ${1:-} == --prepare-only ]]; then
    log "tools and stand-in base images ready"
    exit 0
fi

# --- build ----------------------------------------------------------------------------------
# Offline cargo against this machine's registry (every crate of Cargo.lock must be there:
# `cargo fetch` on the host, which needs crates.io, fills it).
step "cargo fetch on the host (fills the registry the build mounts)"
(cd "$ROOT" && cargo fetch --locked --quiet) || die "cargo fetch failed"
REGISTRY=${CARGO_HOME:-$HOME/.cargo}/registry
printf '[net]\noffline = true\n' >"$CACHE/cargo-config.toml"
if [[ $PROFILE == quick ]]; then
    # Same Dockerfiles, cheaper code generation: thin LTO of the polars-heavy ETL alone takes
    # over 10 minutes on 2 cores, and opt-level 0 compiles in half the CPU time of 1 (the images
    # only publish the 20,000-row sample and answer a few requests here). Cargo gives a
    # config's profile precedence over Cargo.toml's.
    printf '[profile.release]\nlto = false\ncodegen-units = 16\nopt-level = 0\n' >>"$CACHE/cargo-config.toml"
fi
MOUNTS=(
    -v "$REGISTRY:/usr/local/cargo/registry"
    -v "$CACHE/cargo-config.toml:/usr/local/cargo/config.toml:ro"
    -v "$CACHE/target:/src/target"
)

build() { # $1: api|etl|events
    local log=$CACHE/build-$1.log
    step "buildah bud -f Dockerfile.$1 -t voucher-$1:$TAG, $PROFILE profile (log: $log)"
    if ! buildah bud --pull=never --isolation=oci --network=host --layers=false \
        "${MOUNTS[@]}" -f "$ROOT/Dockerfile.$1" -t "localhost/voucher-$1:$TAG" "$ROOT" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "building Dockerfile.$1"
    fi
}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    build api
    build etl
    build events
    buildah rmi --prune >/dev/null 2>&1 || true # the previous run's images, now untagged
fi
buildah images --filter reference="localhost/voucher-*:$TAG" >&2

# --- run ------------------------------------------------------------------------------------
# Runs image $1 like `docker run` would: its entrypoint, command, environment and user.
# The rest of the arguments go to `buildah run` (mounts, environment).
config_of() { buildah inspect --type image "$1"; }
json_get() {
    python3 -c 'import json,sys; c=json.load(sys.stdin)["OCIv1"]["config"]; v=c.get(sys.argv[1]) or ""; print(" ".join(v) if isinstance(v, list) else v)' "$1"
}

user_of() {
    local user
    user=$(config_of "$1" | json_get User)
    case ${user%%:*} in
        "" | 0 | root) die "$1 runs as root (USER '${user}')" ;;
    esac
    echo "$user"
}

# new_container IMAGE: a working container of IMAGE, in $CTR (made here, not in a background
# subshell, so that cleanup knows it).
new_container() {
    CTR=$(buildah from --pull=never "$1")
    CONTAINERS+=("$CTR")
}

# run_image CONTAINER IMAGE [buildah run options]
run_image() {
    local ctr=$1 image=$2 user entry cmd
    shift 2
    user=$(user_of "$image")
    entry=$(config_of "$image" | json_get Entrypoint)
    cmd=$(config_of "$image" | json_get Cmd)
    # shellcheck disable=SC2086 # entrypoint and command are word lists
    buildah run --isolation=oci --network=host --user "$user" "$@" "$ctr" -- $entry $cmd
}

TABLES=$WORK/tables
mkdir -p "$TABLES"
chown 10001:10001 "$TABLES"

API_USER=$(user_of "localhost/voucher-api:$TAG")
ETL_USER=$(user_of "localhost/voucher-etl:$TAG")
step "running the ETL image as user $ETL_USER: publishing a table from the bundled sample"
new_container "localhost/voucher-etl:$TAG"
run_image "$CTR" "localhost/voucher-etl:$TAG" -v "$TABLES:/tables" >"$WORK/etl.log" 2>&1 \
    || { cat "$WORK/etl.log" >&2; die "the ETL image failed"; }
[[ -s $TABLES/CURRENT ]] || { cat "$WORK/etl.log" >&2; die "the ETL image published no table"; }
version=$(cat "$TABLES/CURRENT")
[[ -f $TABLES/$version/vouchers.parquet ]] || die "CURRENT names $version, which has no vouchers.parquet"
owner=$(stat -c %u "$TABLES/$version/vouchers.parquet")
[[ $owner == 10001 ]] || die "the table was written by uid $owner, not the image's user 10001"
step "the ETL image published $version (files owned by uid $owner)"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "running the API image as user $API_USER on port $PORT, tables mounted read-only"
new_container "localhost/voucher-api:$TAG"
run_image "$CTR" "localhost/voucher-api:$TAG" -v "$TABLES:/tables:ro" \
    -e VOUCHER_HOST=127.0.0.1 -e VOUCHER_PORT="$PORT" >"$WORK/api.log" 2>&1 &
PIDS+=($!)
URL=http://127.0.0.1:$PORT
ready=
for _ in $(seq 100); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz") == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.2
done
[[ -n $ready ]] || { cat "$WORK/api.log" >&2; die "the API image never answered 200 on /readyz"; }
answer=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' -d "$BODY" "$URL/api/v1/voucher")
[[ $answer == *'"voucher"'*' 200' ]] || { cat "$WORK/api.log" >&2; die "POST /api/v1/voucher answered: $answer"; }
step "API image: /readyz 200, POST /api/v1/voucher -> $answer"

# The API process's user, seen from the host: the voucher-api serving our port.
api_pid=$(api_pids | head -n 1)
[[ -n $api_pid ]] || die "found no voucher-api process serving port $PORT"
api_uid=$(stat -c %u "/proc/$api_pid")
[[ $api_uid != 0 ]] || die "voucher-api runs as root"
step "voucher-api runs as uid $api_uid"

# The Kafka consumer's image: its binary must start in the runtime (its librdkafka is linked in
# statically; the slim image has no other libraries for it). The API image carries no consumer.
EVENTS_USER=$(user_of "localhost/voucher-events:$TAG")
new_container "localhost/voucher-events:$TAG"
events_version=$(buildah run --isolation=oci --user "$EVENTS_USER" "$CTR" -- voucher-events --version 2>&1) \
    || die "voucher-events does not run in its image: $events_version"
step "events image, as user $EVENTS_USER: $events_version"
new_container "localhost/voucher-api:$TAG"
if buildah run --isolation=oci --user "$API_USER" "$CTR" -- sh -c 'command -v voucher-events' >/dev/null 2>&1; then
    die "the API image still carries voucher-events"
fi

if [[ $KEEP_IMAGES == 0 ]]; then
    buildah rmi "localhost/voucher-api:$TAG" "localhost/voucher-etl:$TAG" \
        "localhost/voucher-events:$TAG" >/dev/null
fi
log "image check: OK (stand-in base images; built voucher-api:$TAG, voucher-etl:$TAG and voucher-events:$TAG, ETL published $version, API answered as uid $api_uid, $events_version runs)"
