#!/usr/bin/env bash
# Load-tests the kind demo through the port-forward kind/up.sh left open, with hey: a bounded
# number of voucher requests, then the API's own latency figures from /metrics.
# Environment: LOCAL_PORT (default: 8000), REQUESTS (default: 20000), CONCURRENCY (default: 50).
set -euo pipefail

LOCAL_PORT=${LOCAL_PORT:-8000}
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-50}
URL=http://127.0.0.1:$LOCAL_PORT
BODY='{"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00", "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"}'

command -v hey >/dev/null || { echo "kind/load-test.sh: hey is missing (apt-get install hey)" >&2; exit 1; }
if [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz") != 200 ]]; then
    echo "kind/load-test.sh: $URL/readyz is not 200; run kind/up.sh (make kind-up) first" >&2
    exit 1
fi
hey -n "$REQUESTS" -c "$CONCURRENCY" -t 10 -m POST -T application/json -d "$BODY" "$URL/api/v1/voucher"
echo "--- voucher-api latency histogram (one replica, the one the port-forward reached)"
curl -s "$URL/metrics" | grep 'voucher_api_http_request_duration_seconds_.*route="/api/v1/voucher"' | tail -n 4
