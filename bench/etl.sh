#!/usr/bin/env bash
# ETL benchmark: voucher-etl vs DuckDB SQL on the same files, side by side in one run, for Peru
# and for every country: files our generator writes at three sizes, and the largest rewritten
# by pyarrow (plain strings, and with `timestamp` as a timestamp column among the strings) and
# regenerated with 128k, 1M and 4M-row row groups (the shape of production files, where a
# reader's memory shows); then a directory of MANY copies of the pyarrow 1M-row-group file
# (every country). Writes the figures to bench/RESULTS.md. Overridable:
#   SIZES="1000000 10000000 28600000" ROW_GROUPS="1048576" REPEATS=3 MANY=10 bash bench/etl.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000000 10000000 28600000"}
# pyarrow-written copies of the largest size with these rows per row group.
ROW_GROUPS=${ROW_GROUPS:-"131072 1048576 4194304"}
REPEATS=${REPEATS:-3}
# Copies of pyarrow-rg1048576 in the many-file directory (0: none).
MANY=${MANY:-10}
# shellcheck source=bench/duckdb_prelude.sh
source bench/duckdb_prelude.sh
for rows in $SIZES; do
  file="$DATA_DIR/history-$rows.parquet"
  if [ ! -f "$file" ]; then
    "$ETL" generate --rows "$rows" --seed 2026 --output "$file"
  fi
done
# shellcheck disable=SC2086
largest=$(printf '%s\n' $SIZES | sort -n | tail -n 1)
for rg in $ROW_GROUPS $([ "$MANY" -gt 0 ] && echo 1048576); do
  file="$DATA_DIR/pyarrow-rg$rg.parquet"
  if [ ! -f "$file" ]; then
    "$VENV/bin/python" bench/rewrite_pyarrow.py "$DATA_DIR/history-$largest.parquet" "$file" --row-group-size "$rg"
  fi
  file="$DATA_DIR/pyarrow-mixed-rg$rg.parquet"
  if [ ! -f "$file" ]; then
    "$VENV/bin/python" bench/rewrite_pyarrow.py "$DATA_DIR/history-$largest.parquet" "$file" \
      --row-group-size "$rg" --timestamp timestamp
  fi
  file="$DATA_DIR/generated-rg$rg.parquet"
  if [ ! -f "$file" ]; then
    "$ETL" generate --rows "$largest" --seed 2026 --row-group-size "$rg" --output "$file"
  fi
done
many_args=()
if [ "$MANY" -gt 0 ]; then
  # Links, not copies: the same bytes MANY times, as MANY files of one history.
  many="$DATA_DIR/many-$MANY"
  mkdir -p "$many"
  for i in $(seq 1 "$MANY"); do
    ln -sf "$(realpath "$DATA_DIR/pyarrow-rg1048576.parquet")" "$many/part-$i.parquet"
  done
  many_args=(--many "$many")
fi
# shellcheck disable=SC2086
"$VENV/bin/python" bench/etl_bench.py --repeats "$REPEATS" --data-dir "$DATA_DIR" --sizes $SIZES \
  --row-groups $ROW_GROUPS "${many_args[@]}"
