#!/usr/bin/env bash
# Requests by customer id against requests with every field, side by side on one voucher-api
# (2 workers, release build) whose customer store is a throwaway PostgreSQL (tools/postgres.sh)
# holding CUSTOMERS customers: the NDJSON stream (curl uploading a file of distinct ids, in
# random order) and the single route (wrk, random ids). The cache is off, so every id is a
# lookup in the database (the worst case; with the cache on, a repeated id costs no query).
# Rounds alternate the four runs; the medians go first in the table of bench/RESULTS.md's
# "## Requests by customer id" (bench/results.py's add_row).
#
# Usage: bench/customers.sh
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   CUSTOMERS         customers in the table (default: 1000000)
#   STREAM_LINES      requests per stream run (default: CUSTOMERS)
#   WRK_DURATION      wrk run length (default: 10s)
#   ROUNDS            rounds (default: 3)
# Needs: cargo, and curl, wrk, python3 and Debian's postgresql (installed when missing, as root).
# Targets: NDJSON >= 200,000 requests by id per second; the single route by id >= 0.5x its
# rate with every field.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CUSTOMERS=${CUSTOMERS:-1000000}
STREAM_LINES=${STREAM_LINES:-$CUSTOMERS}
WRK_DURATION=${WRK_DURATION:-10s}
ROUNDS=${ROUNDS:-3}
RESULTS=$ROOT/bench/RESULTS.md

log() { printf 'customers.sh: %s\n' "$*" >&2; }

# shellcheck source=tools/need.sh disable=SC1091
source "$ROOT/tools/need.sh"
need_tools curl wrk python3 || exit 1
(( STREAM_LINES <= CUSTOMERS )) || { log "STREAM_LINES must not exceed CUSTOMERS"; exit 1; }

# shellcheck disable=SC1091
source "$ROOT/tools/serve.sh"
# shellcheck source=tools/postgres.sh disable=SC1091
source "$ROOT/tools/postgres.sh"

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p voucher-api -p voucher-serve --bin voucher-api \
    --example publish_table)
"$TARGET/release/examples/publish_table" "$WORK/tables" >/dev/null

postgres_start
# Both scripts stop what they started at exit.
trap 'serve_stop_all; postgres_stop; rm -rf "$WORK"' EXIT
log "loading $CUSTOMERS customers"
# Text, timestamptz, timestamp and integer columns; every customer is in Peru with 0 to 37
# orders, so that every frequent_segment request is answered (200).
postgres_psql -c "CREATE TABLE customers (customer_id bigint PRIMARY KEY, country_code text,
        last_order_ts timestamptz, first_order_ts timestamp, total_orders integer)" \
    -c "INSERT INTO customers SELECT g, 'Peru', now() - (g % 400) * interval '1 day',
        '2020-01-01', g % 38 FROM generate_series(1, $CUSTOMERS) AS g" \
    -c "VACUUM ANALYZE customers"

log "writing $STREAM_LINES NDJSON requests of each form"
python3 - "$WORK" "$STREAM_LINES" "$CUSTOMERS" <<'EOF'
import json, random, sys
from datetime import datetime, timedelta, timezone
work, count, customers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ids = random.Random(26).sample(range(1, customers + 1), count)
today = datetime.now(timezone.utc)
with open(f"{work}/by_id.ndjson", "w") as by_id, open(f"{work}/full.ndjson", "w") as full:
    for i in ids:
        by_id.write(json.dumps({"customer_id": i, "segment_name": "frequent_segment"}) + "\n")
        last = (today - timedelta(days=i % 400)).strftime("%Y-%m-%d %H:%M:%S")
        full.write(json.dumps({"customer_id": i, "country_code": "Peru", "last_order_ts": last,
                               "first_order_ts": "2020-01-01 00:00:00", "total_orders": i % 38,
                               "segment_name": "frequent_segment"}) + "\n")
EOF

RUST_LOG=warn,voucher_api=info,voucher_serve=info serve_start API "$TARGET/release/voucher-api" \
    --tables-dir "$WORK/tables" --host 127.0.0.1 --port 0 --grpc-port 0 --workers 2 \
    --customers-db "$VOUCHER_TEST_POSTGRES_URL" --customers-cache-size 0
serve_ready API
HTTP=$API_URL

# ndjson FILE: requests per second through the stream, every answer a 200.
ndjson() {
    local seconds answered
    seconds=$(curl -sS -X POST -H 'Content-Type: application/x-ndjson' -T "$WORK/$1.ndjson" \
        -o "$WORK/answers.ndjson" -w '%{time_total}' "$HTTP/api/v1/vouchers")
    answered=$(grep -c '"status":200' "$WORK/answers.ndjson")
    [[ $answered == "$STREAM_LINES" ]] || { log "NDJSON $1: $answered of $STREAM_LINES answered"; head -3 "$WORK/answers.ndjson" >&2; exit 1; }
    python3 -c "print(round($STREAM_LINES / $seconds))"
}

# single SCRIPT: requests per second of the single route under wrk, every answer a 200.
single() {
    CUSTOMERS=$CUSTOMERS wrk -t2 -c64 -d"$WRK_DURATION" -s "$ROOT/bench/$1" "$HTTP/api/v1/voucher" \
        | python3 -c "import re,sys; t=sys.stdin.read(); assert 'Non-2xx' not in t, t; print(round(float(re.search(r'Requests/sec:\s+([\d.]+)', t).group(1))))"
}

metric() {
    curl -s "$HTTP/metrics" | sed -n "s/^$1 //p"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
NI=() NF=() SI=() SF=()
for round in $(seq "$ROUNDS"); do
    ni=$(ndjson by_id); nf=$(ndjson full)
    si=$(single wrk_by_id.lua); sf=$(single wrk_voucher.lua)
    log "round $round of $ROUNDS: NDJSON by id $ni/s, full $nf/s; single route by id $si/s, full $sf/s"
    NI+=("$ni") NF+=("$nf") SI+=("$si") SF+=("$sf")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
NDJSON_ID=$(median "${NI[@]}") NDJSON_FULL=$(median "${NF[@]}")
SINGLE_ID=$(median "${SI[@]}") SINGLE_FULL=$(median "${SF[@]}")
QUERIES=$(metric 'voucher_api_customer_query_ids_count')
IDS=$(metric 'voucher_api_customer_query_ids_sum')

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$RESULTS" <<EOF
import sys
ni, nf, si, sf = $NDJSON_ID, $NDJSON_FULL, $SINGLE_ID, $SINGLE_FULL
queries, ids = float("${QUERIES:-0}"), float("${IDS:-0}")
per_query = ids / queries if queries else 0
met = ni >= 200_000 and si >= 0.5 * sf
print(f"NDJSON by id {ni}/s (full {nf}/s), single route by id {si}/s (full {sf}/s, {si / sf:.2f}x); {per_query:.0f} ids per query")
print("targets (NDJSON by id >= 200k/s, single by id >= 0.5x full):", "MET" if met else "NOT MET")
path = sys.argv[1]
heading = "## Requests by customer id"
intro = [
    heading,
    "",
    "\`bench/customers.sh\` (\`make bench-customers\`): one voucher-api (2 workers, release build)",
    "with its customer store on a throwaway PostgreSQL 15 holding $CUSTOMERS customers (text,",
    "timestamptz, timestamp and integer columns), the cache off so that every id is a database",
    "lookup. NDJSON: curl uploads $STREAM_LINES distinct ids in random order (by id), or the same",
    "customers with every field (full). Single route: wrk \`-t2 -c64 -d$WRK_DURATION\`, random ids (by",
    "id) or the contract's request (full). $ROUNDS alternating rounds, medians; clients, API and",
    "PostgreSQL share the 2 cores. Targets: NDJSON by id >= 200,000/s, single route by id >= 0.5x",
    "full. ids/query: the mean of \`voucher_api_customer_query_ids\` over the whole run.",
    "",
    "| date (UTC) | commit | cores | CPU | load avg before / after | NDJSON by id/s | NDJSON full/s | single by id req/s | single full req/s | single by id / full | ids/query | targets |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
row = (f"| $DATE | $COMMIT | $(nproc) | $CPU | $LOAD_BEFORE / $LOAD_AFTER | {ni} | {nf} | {si} | {sf} | "
       f"{si / sf:.2f}x | {per_query:.0f} | {'met' if met else 'NOT met'} |")
sys.path.insert(0, "$ROOT/bench")
from results import add_row
add_row(path, intro, row)
EOF
