#!/usr/bin/env bash
# voucher-events on a real Kafka-protocol broker: starts tansu on 127.0.0.1 (SQLite storage, in
# a temporary directory), and runs events/tests/events_test.py, which produces events and
# reads results with confluent-kafka, against the real voucher-events, voucher-api and
# voucher-etl binaries. Events by customer id are answered from a real PostgreSQL
# (tools/postgres.sh starts Debian's, as the PostgreSQL tests do).
#
# Usage: events/tests/events_test.sh [--install-only] [unittest arguments, e.g. -k readiness]
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   EVENTS_TEST_VENV   the virtualenv to create/reuse (default: $CARGO_TARGET_DIR/events-test-venv)
#   TANSU              the tansu binary (default: built once into $TANSU_ROOT/bin/tansu)
#   TANSU_ROOT         where to build it (default: ~/.cache/voucher-service/tansu)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries to test (default: built; tools/binaries.sh)
# Needs: cargo, python3 with venv, PyPI to install confluent-kafka once, crates.io to build
# tansu once (about 6 minutes on 2 cores), and Debian's postgresql (installed when missing).
set -euo pipefail

# Pinned so that a run is repeatable; the venv is rebuilt when these change.
PACKAGES=(confluent-kafka==2.16.1 jsonschema==4.26.0)
TANSU_VERSION=0.6.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${EVENTS_TEST_VENV:-$TARGET/events-test-venv}
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/voucher-service/tansu}

log() { printf 'events_test.sh: %s\n' "$*" >&2; }

# shellcheck disable=SC1091
source "$ROOT/tools/pinned_venv.sh"
pinned_venv "$VENV" "${PACKAGES[@]}"

# tansu's default features have no storage engine; its memory engine reports batch counts as
# offsets (a consumer cannot resume inside a producer's batch), so SQLite (libsql) it is.
if [[ -z ${TANSU:-} ]]; then
    TANSU=$TANSU_ROOT/bin/tansu
    if [[ ! -x $TANSU ]] || [[ $(cat "$TANSU_ROOT/version" 2>/dev/null) != "$TANSU_VERSION" ]]; then
        log "building tansu $TANSU_VERSION once into $TANSU_ROOT (about 6 minutes on 2 cores)"
        # Its own temporary target directory, not ours: no lock shared with a running build.
        env -u CARGO_TARGET_DIR cargo install --quiet tansu --version "$TANSU_VERSION" --features libsql --locked \
            --root "$TANSU_ROOT" --force
        echo "$TANSU_VERSION" >"$TANSU_ROOT/version"
    fi
fi
# shellcheck source=tools/postgres.sh disable=SC1091
source "$ROOT/tools/postgres.sh"
if [[ ${1:-} == --install-only ]]; then
    postgres_install
    exit 0
fi

# shellcheck disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
postgres_start
"$VENV/bin/python" "$ROOT/events/tests/events_test.py" --events "$VOUCHER_EVENTS_BIN" \
    --api "$VOUCHER_API_BIN" --etl "$VOUCHER_ETL_BIN" --tansu "$TANSU" \
    --docs "$ROOT/docs/events" --postgres "$VOUCHER_TEST_POSTGRES_URL" \
    --psql "$PG_TEST_BIN/psql" --postgres-ctl "$PG_TEST_CTL" "$@"
