#!/usr/bin/env bash
# PostgreSQL history benchmark (`make bench-postgres`): the same rows read three ways, side by
# side in one run, on a throwaway Debian PostgreSQL on 127.0.0.1 (tools/postgres.sh):
#   - psql's binary COPY to /dev/null: the server's own floor for the query;
#   - voucher-etl run --input postgresql://... --query: reading and building the table;
#   - polars.read_database_uri (connectorx): reading into a DataFrame only.
# Loads generated history (28.6M rows, seed 2026, text for the messy columns, timestamp for
# first_order_ts, double for amounts) once, checks that the table from the database equals the
# one from the Parquet file, and writes the figures to bench/RESULTS.md.
#   ROWS=28600000 REPEATS=3 bash bench/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-28600000}
REPEATS=${REPEATS:-3}
DATA_DIR=${BENCH_DATA_DIR:-bench/data}
VENV=${BENCH_PG_VENV:-bench/.venv-postgres}
ETL=${CARGO_TARGET_DIR:-target}/release/voucher-etl

# The same package set as `make build`, so both share one set of release artifacts.
cargo build --release -p voucher-etl -p voucher-api
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    polars==2.1.0 connectorx==0.4.6 pyarrow==26.0.1
mkdir -p "$DATA_DIR"
history=$DATA_DIR/history-$ROWS-rg1048576.parquet
[[ -f $history ]] || "$ETL" generate --rows "$ROWS" --seed 2026 --row-group-size 1048576 \
    --output "$history"

# shellcheck source=tools/postgres.sh disable=SC1091
source tools/postgres.sh
postgres_start
"$VENV/bin/python" bench/postgres_bench.py load --parquet "$history" --psql "$PG_TEST_BIN/psql" \
    --url "$VOUCHER_TEST_POSTGRES_URL"
"$VENV/bin/python" bench/postgres_bench.py run --parquet "$history" --psql "$PG_TEST_BIN/psql" \
    --url "$VOUCHER_TEST_POSTGRES_URL" --etl "$ETL" --repeats "$REPEATS" --results bench/RESULTS.md
