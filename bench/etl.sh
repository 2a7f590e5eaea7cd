#!/usr/bin/env bash
# ETL benchmark: voucher-etl vs DuckDB SQL on the same generated files, side by side in one
# run. Writes the figures to bench/RESULTS.md. Sizes and repeats can be overridden:
#   SIZES="1000000 10000000 28600000" REPEATS=3 bash bench/etl.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000000 10000000 28600000"}
REPEATS=${REPEATS:-3}
DATA_DIR=${BENCH_DATA_DIR:-bench/data}
VENV=${BENCH_VENV:-bench/.venv}

# The same package set as `make build`, so both share one set of release artifacts.
cargo build --release -p voucher-etl -p voucher-api
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.0
mkdir -p "$DATA_DIR"
for rows in $SIZES; do
  file="$DATA_DIR/history-$rows.parquet"
  if [ ! -f "$file" ]; then
    target/release/voucher-etl generate --rows "$rows" --seed 2026 --output "$file"
  fi
done
# shellcheck disable=SC2086
"$VENV/bin/python" bench/etl_bench.py --repeats "$REPEATS" --data-dir "$DATA_DIR" --sizes $SIZES
