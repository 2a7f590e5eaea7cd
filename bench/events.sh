#!/usr/bin/env bash
# Events per second through voucher-events on a local broker (tansu, SQLite storage, on
# 127.0.0.1), side by side with how fast a plain consumer reads the same events from the same
# broker (the ceiling the broker sets). Events are produced beforehand; each round starts a
# fresh consumer group, so every round answers all of them. The median round is appended to
# bench/RESULTS.md under "## Kafka events".
#
# Usage: bench/events.sh
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   EVENTS            events per round (default: 200000)
#   ROUNDS            rounds (default: 3)
#   TANSU, TANSU_ROOT, EVENTS_TEST_VENV   as for events/tests/events_test.sh (which installs them)
# Needs: cargo, python3 with venv; PyPI and crates.io once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${EVENTS_TEST_VENV:-$TARGET/events-test-venv}
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/voucher-service/tansu}
TANSU=${TANSU:-$TANSU_ROOT/bin/tansu}

log() { printf 'events.sh: %s\n' "$*" >&2; }

# The test script installs the client and builds the broker once.
bash "$ROOT/events/tests/events_test.sh" --install-only

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p voucher-events -p voucher-serve \
    --bin voucher-events --example publish_table)
"$VENV/bin/python" "$ROOT/bench/events_bench.py" --events-bin "$TARGET/release/voucher-events" \
    --publish-table "$TARGET/release/examples/publish_table" --tansu "$TANSU" \
    --events "${EVENTS:-200000}" --rounds "${ROUNDS:-3}" --results "$ROOT/bench/RESULTS.md"
