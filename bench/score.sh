#!/usr/bin/env bash
# Campaign scoring benchmark (`make bench-score`): `voucher-etl score` against DuckDB's range
# join (bench/score.sql) on the same generated customer list and table, side by side in one
# run; checks both give the same vouchers and adds a row to bench/RESULTS.md. Overridable:
#   CUSTOMERS=10000000 TIME_TYPE=string REPEATS=3 bash bench/score.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-10000000}
# How the list holds its order times: `string` (as the API takes them) or `timestamp`.
TIME_TYPE=${TIME_TYPE:-string}
REPEATS=${REPEATS:-3}
NOW=${NOW:-2026-11-30T12:00:00Z}
# shellcheck source=bench/duckdb_prelude.sh
source bench/duckdb_prelude.sh

# A real table: every country of 1M rows of generated history.
history="$DATA_DIR/history-1000000.parquet"
if [ ! -f "$history" ]; then
  "$ETL" generate --rows 1000000 --seed 2026 --output "$history"
fi
tables="$DATA_DIR/score-tables"
if [ ! -f "$tables/CURRENT" ]; then
  "$ETL" run --input "$history" --output "$tables" --countries all --segments data/segments.toml
fi
countries=$("$VENV/bin/python" -c "
import duckdb, pathlib, sys
d = pathlib.Path(sys.argv[1]); v = (d / 'CURRENT').read_text().strip()
print(','.join(r[0] for r in duckdb.sql(f\"SELECT DISTINCT country_code FROM read_parquet('{d / v / 'vouchers.parquet'}') ORDER BY 1\").fetchall()))
" "$tables")

customers="$DATA_DIR/customers-$CUSTOMERS-$TIME_TYPE.parquet"
if [ ! -f "$customers" ]; then
  "$VENV/bin/python" bench/customers.py "$customers" --rows "$CUSTOMERS" --countries "$countries" \
    --now "$NOW" --time-type "$TIME_TYPE"
fi
"$VENV/bin/python" bench/score_bench.py --customers "$customers" --tables "$tables" --now "$NOW" \
  --repeats "$REPEATS" --time-type "$TIME_TYPE"
