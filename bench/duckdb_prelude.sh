# shellcheck shell=bash
# Sourced by the benchmarks that measure voucher-etl against DuckDB (bench/etl.sh,
# bench/score.sh): release binaries, the Python environment with DuckDB and pyarrow, the data
# directory. Sets DATA_DIR, VENV and ETL.
# shellcheck disable=SC2034  # read by the scripts that source this one
DATA_DIR=${BENCH_DATA_DIR:-bench/data}
VENV=${BENCH_VENV:-bench/.venv}
ETL="${CARGO_TARGET_DIR:-target}/release/voucher-etl"

# The same package set as `make build`, so both share one set of release artifacts.
cargo build --release -p voucher-etl -p voucher-api
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.0 pyarrow==26.0.1
mkdir -p "$DATA_DIR"
