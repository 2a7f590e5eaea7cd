#!/usr/bin/env bash
# Scoring throughput through the streaming doors, side by side with the single route, on one
# voucher-api: the NDJSON stream (curl uploading a file), the gRPC stream (api/examples/
# grpc_stream_client, two streams) and POST /api/v1/voucher (wrk, one request per call).
# Rounds alternate the three; the median of each is reported and added to bench/RESULTS.md
# under "## Scoring doors".
#
# Usage: bench/doors.sh
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   STREAM_LINES      requests per stream run (default: 2000000)
#   WRK_DURATION      wrk run length (default: 10s)
#   ROUNDS            rounds (default: 3)
# Needs: cargo, and curl, wrk and python3 (Debian packages, installed when missing as root).
# Targets: a stream door >= 500k requests/s and >= 4x the single route's requests/s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STREAM_LINES=${STREAM_LINES:-2000000}
WRK_DURATION=${WRK_DURATION:-10s}
ROUNDS=${ROUNDS:-3}
RESULTS=$ROOT/bench/RESULTS.md

log() { printf 'doors.sh: %s\n' "$*" >&2; }

# shellcheck source=tools/need.sh disable=SC1091
source "$ROOT/tools/need.sh"
need_tools curl wrk python3 || exit 1

# Makes WORK, a scratch directory; at exit the servers are stopped and WORK is removed.
# shellcheck disable=SC1091
source "$ROOT/tools/serve.sh"

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p voucher-api -p voucher-serve --bin voucher-api \
    --example publish_table --example grpc_stream_client)
"$TARGET/release/examples/publish_table" "$WORK/tables" >/dev/null

log "writing $STREAM_LINES NDJSON requests"
python3 - "$WORK/requests.ndjson" "$STREAM_LINES" <<'EOF'
import json, sys
path, count = sys.argv[1], int(sys.argv[2])
# Both segment types and a spread of order counts, as a campaign list would have.
lines = []
for i in range(64):
    lines.append(json.dumps({
        "customer_id": 1000 + i, "country_code": "Peru",
        "last_order_ts": f"2021-{1 + i % 12:02d}-{1 + i % 28:02d} 00:00:00",
        "first_order_ts": "2020-01-01 00:00:00", "total_orders": i % 38,
        "segment_name": "frequent_segment" if i % 2 else "recency_segment",
    }) + "\n")
with open(path, "w") as out:
    for i in range(count):
        out.write(lines[i % 64])
EOF

RUST_LOG=warn,voucher_api=info serve_start API "$TARGET/release/voucher-api" \
    --tables-dir "$WORK/tables" --host 127.0.0.1 --port 0 --grpc-port 0 --workers 2
serve_grpc API
serve_ready API
HTTP=$API_URL GRPC=$API_GRPC

ndjson() {
    local seconds answered
    seconds=$(curl -sS -X POST -H 'Content-Type: application/x-ndjson' -T "$WORK/requests.ndjson" \
        -o "$WORK/answers.ndjson" -w '%{time_total}' "$HTTP/api/v1/vouchers")
    answered=$(grep -c '"status":200' "$WORK/answers.ndjson")
    [[ $answered == "$STREAM_LINES" ]] || { log "NDJSON: $answered of $STREAM_LINES answered"; exit 1; }
    python3 -c "print(round($STREAM_LINES / $seconds))"
}

grpc() {
    "$TARGET/release/examples/grpc_stream_client" "$GRPC" "$STREAM_LINES" 2 \
        | python3 -c "import json,sys; r=json.load(sys.stdin); assert r['answers']==$STREAM_LINES, r; print(round(r['per_second']))"
}

single() {
    wrk -t2 -c64 -d"$WRK_DURATION" -s "$ROOT/bench/wrk_voucher.lua" "$HTTP/api/v1/voucher" \
        | python3 -c "import re,sys; t=sys.stdin.read(); assert 'Non-2xx' not in t, t; print(round(float(re.search(r'Requests/sec:\s+([\d.]+)', t).group(1))))"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
N=() G=() S=()
for round in $(seq "$ROUNDS"); do
    n=$(ndjson); g=$(grpc); s=$(single)
    log "round $round of $ROUNDS: NDJSON $n/s, gRPC stream $g/s, single route $s req/s"
    N+=("$n") G+=("$g") S+=("$s")
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
NDJSON=$(median "${N[@]}") GRPC_RATE=$(median "${G[@]}") SINGLE=$(median "${S[@]}")

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$RESULTS" <<EOF
import sys
ndjson, grpc, single = $NDJSON, $GRPC_RATE, $SINGLE
best = max(ndjson, grpc)
met = best >= 500_000 and best >= 4 * single
print(f"NDJSON {ndjson}/s ({ndjson / single:.1f}x), gRPC stream {grpc}/s ({grpc / single:.1f}x), single route {single} req/s")
print("targets (a stream >= 500k/s and >= 4x the single route):", "MET" if met else "NOT MET")
path = sys.argv[1]
heading = "## Scoring doors"
intro = [
    heading,
    "",
    "\`bench/doors.sh\` (\`make bench-doors\`): one voucher-api (2 workers, release build) scores",
    "$STREAM_LINES requests per stream run through the NDJSON stream (curl uploading a file) and",
    "the gRPC stream (api/examples/grpc_stream_client, 2 streams), and wrk (\`-t2 -c64 -d$WRK_DURATION\`)",
    "measures the single route; $ROUNDS alternating rounds, medians. Clients share the 2 cores.",
    "Targets: a stream door >= 500k requests/s and >= 4x the single route.",
    "",
    "| date (UTC) | commit | cores | CPU | load avg | NDJSON req/s | gRPC stream req/s | single route req/s | NDJSON / single | gRPC / single | targets |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
row = (f"| $DATE | $COMMIT | $(nproc) | $CPU | $LOAD_BEFORE | {ndjson} | {grpc} | {single} | "
       f"{ndjson / single:.1f}x | {grpc / single:.1f}x | {'met' if met else 'NOT met'} |")
sys.path.insert(0, "$ROOT/bench")
from results import add_row
add_row(path, intro, row)
EOF
