#!/usr/bin/env bash
# ETL benchmark: voucher-etl vs DuckDB SQL on the same files, side by side in one run: files
# our generator writes at three sizes, and the largest rewritten by pyarrow and regenerated
# with 128k, 1M and 4M-row row groups (the shape of production files, where a reader's memory
# shows). Writes the figures to bench/RESULTS.md. Sizes and repeats can be overridden:
#   SIZES="1000000 10000000 28600000" ROW_GROUPS="1048576" REPEATS=3 bash bench/etl.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000000 10000000 28600000"}
# pyarrow-written copies of the largest size with these rows per row group.
ROW_GROUPS=${ROW_GROUPS:-"131072 1048576 4194304"}
REPEATS=${REPEATS:-3}
DATA_DIR=${BENCH_DATA_DIR:-bench/data}
VENV=${BENCH_VENV:-bench/.venv}

# The same package set as `make build`, so both share one set of release artifacts.
cargo build --release -p voucher-etl -p voucher-api
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.0 pyarrow==26.0.1
mkdir -p "$DATA_DIR"
for rows in $SIZES; do
  file="$DATA_DIR/history-$rows.parquet"
  if [ ! -f "$file" ]; then
    target/release/voucher-etl generate --rows "$rows" --seed 2026 --output "$file"
  fi
done
# shellcheck disable=SC2086
largest=$(printf '%s\n' $SIZES | sort -n | tail -n 1)
for rg in $ROW_GROUPS; do
  file="$DATA_DIR/pyarrow-rg$rg.parquet"
  if [ ! -f "$file" ]; then
    "$VENV/bin/python" bench/rewrite_pyarrow.py "$DATA_DIR/history-$largest.parquet" "$file" --row-group-size "$rg"
  fi
  file="$DATA_DIR/generated-rg$rg.parquet"
  if [ ! -f "$file" ]; then
    target/release/voucher-etl generate --rows "$largest" --seed 2026 --row-group-size "$rg" --output "$file"
  fi
done
# shellcheck disable=SC2086
"$VENV/bin/python" bench/etl_bench.py --repeats "$REPEATS" --data-dir "$DATA_DIR" --sizes $SIZES \
  --row-groups $ROW_GROUPS
