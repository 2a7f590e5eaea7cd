#!/usr/bin/env bash
# The monitoring component's tests (`make monitoring-test`), with Debian's Prometheus
# (installed when missing: apt-get, as root):
#   1. promtool check rules on prometheusrule.yaml's spec, and promtool test rules: every alert
#      fires and stays quiet (rules_test.yaml), and the objective is a parameter
#      (objective_test.yaml runs on the rules with 99 % in place of 99.9 %);
#   2. live: a real Prometheus on 127.0.0.1 (scrape and evaluation interval 1 s, every `for`
#      shortened to 1 s) scrapes the real voucher-api and voucher-events (on a tansu broker when
#      one is built, else without one: then the lag series are skipped, and said so) and the
#      ETL's --metrics-file served over HTTP as node-exporter's textfile collector would; with
#      a real PostgreSQL as the customer store; then live.py checks (a), (b) and (c).
#
# Usage: k8s/monitoring/test/monitoring_test.sh [--unit-only]
# Environment:
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN  the binaries (default: built; tools/binaries.sh)
#   TANSU_ROOT   where events/tests/events_test.sh built tansu (default:
#                ~/.cache/voucher-service/tansu); TANSU names the binary itself
# Bounded: every wait has a time limit, the whole live part 3 minutes; everything it starts
# listens on 127.0.0.1 and is stopped at exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TANSU=${TANSU:-${TANSU_ROOT:-$HOME/.cache/voucher-service/tansu}/bin/tansu}

log() { printf 'monitoring_test.sh: %s\n' "$*" >&2; }

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    if [[ $(id -u) != 0 ]]; then
        log "Prometheus is not installed: apt-get install prometheus (as root)"
        exit 1
    fi
    log "installing Prometheus (apt-get install prometheus)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null
fi

# shellcheck source=tools/serve.sh disable=SC1091
source "$ROOT/tools/serve.sh"

# --- 1. promtool ----------------------------------------------------------------------------
# The PrometheusRule's spec is a Prometheus rule file, two spaces in.
sed -n '/^spec:/,$p' "$HERE/../prometheusrule.yaml" | tail -n +2 | sed 's/^  //' >"$WORK/rules.yaml"
sed 's/vector(0\.999)/vector(0.99)/' "$WORK/rules.yaml" >"$WORK/rules-objective-99.yaml"
cmp -s "$WORK/rules.yaml" "$WORK/rules-objective-99.yaml" \
    && { log "the availability objective vector(0.999) is not in the rules"; exit 1; }
cp "$HERE/rules_test.yaml" "$HERE/objective_test.yaml" "$WORK/"
promtool check rules "$WORK/rules.yaml"
(cd "$WORK" && promtool test rules rules_test.yaml objective_test.yaml)
alerts=$(grep -c '^ *- alert:' "$WORK/rules.yaml")
tested=$(grep -ho 'alertname: [A-Za-z]*' "$HERE/rules_test.yaml" | sort -u | wc -l)
((alerts == tested)) || { log "$alerts alerts, but rules_test.yaml tests $tested"; exit 1; }
log "PASS promtool: $alerts alerts, each fired and kept quiet by rules_test.yaml"
[[ ${1:-} == --unit-only ]] && exit 0

# --- 2. live --------------------------------------------------------------------------------
# shellcheck source=tools/binaries.sh disable=SC1091
source "$ROOT/tools/binaries.sh"
voucher_binaries "$ROOT" "$TARGET"
# shellcheck source=tools/postgres.sh disable=SC1091
source "$ROOT/tools/postgres.sh"
OTHER_PIDS=()
cleanup() {
    local pid
    for pid in "${OTHER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${OTHER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    serve_stop_all
    postgres_stop
    rm -rf "$WORK"
}
started_at=$SECONDS

tables=$WORK/tables textfile=$WORK/textfile
mkdir -p "$textfile"
for _ in 1 2; do  # a live version and a previous one, for the canary
    "$VOUCHER_ETL_BIN" run --input "$ROOT/data/sample-history.parquet" --output "$tables" \
        --countries all --metrics-file "$textfile/voucher-etl.prom" >"$WORK/etl.log" 2>&1 \
        || { cat "$WORK/etl.log" >&2; exit 1; }
done
# A history without Chile's segments, for a run the gate holds.
"$VOUCHER_ETL_BIN" generate --rows 5000 --seed 5 --countries Peru --output "$WORK/peru.parquet" >/dev/null
previous=$(find "$tables" -mindepth 1 -maxdepth 1 -type d -name '2*' -printf '%f\n' | sort | head -n 1)
"$VOUCHER_ETL_BIN" canary --tables-dir "$tables" "$previous" --percent 50 --reason "monitoring test" \
    >/dev/null

postgres_start
trap cleanup EXIT
postgres_psql -c "CREATE TABLE customers (customer_id bigint PRIMARY KEY, country_code text,
        last_order_ts timestamptz, first_order_ts timestamp, total_orders integer)" \
    -c "INSERT INTO customers SELECT g, 'Peru', now() - interval '30 days', '2020-01-01', 20
        FROM generate_series(1, 3) AS g"

broker=127.0.0.1:$(free_port)  # nothing listens there unless tansu does
broker_flag=()
if [[ -x $TANSU ]]; then
    mkdir -p "$WORK/tansu"
    (cd "$WORK/tansu" && RUST_LOG=warn exec "$TANSU" broker --listener-url "tcp://$broker" \
        --advertised-listener-url "tcp://$broker" --storage-engine sqlite://tansu.db) \
        >"$WORK/tansu.log" 2>&1 &
    OTHER_PIDS+=($!)
    for topic in voucher-requests voucher-results voucher-dead-letters; do
        for _ in $(seq 60); do
            (cd "$WORK/tansu" && timeout 20 "$TANSU" topic create "$topic" --broker "tcp://$broker" \
                --partitions 2) >>"$WORK/tansu.log" 2>&1 && break
            sleep 0.5
        done
    done
    broker_flag=(--broker)
else
    log "no tansu at $TANSU (make events-test builds it): voucher-events runs without a broker"
fi

customers=(--customers-db "$VOUCHER_TEST_POSTGRES_URL")
serve_start API "$VOUCHER_API_BIN" --tables-dir "$tables" --port 0 --grpc-port 0 \
    --reload-interval 200ms "${customers[@]}"
serve_grpc API
serve_start EVENTS "$VOUCHER_EVENTS_BIN" --tables-dir "$tables" --port 0 --kafka-brokers "$broker" \
    --check-interval 1s --reload-interval 200ms "${customers[@]}"

# node-exporter's textfile collector would serve the file with the host's metrics; a static
# server of the same file is what Prometheus sees of it.
textfile_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$textfile" "$textfile_port" \
    >"$WORK/textfile.log" 2>&1 &
OTHER_PIDS+=($!)

# The rules as shipped, every `for` shortened so that an alert fires within seconds.
sed -E 's/^( *)for: .*/\1for: 1s/' "$WORK/rules.yaml" >"$WORK/rules-live.yaml"
prometheus_port=$(free_port)
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}
rule_files: [rules-live.yaml]
scrape_configs:
  - job_name: voucher-api
    static_configs: [{targets: ["${API_URL#http://}"]}]
  - job_name: voucher-events
    static_configs: [{targets: ["${EVENTS_URL#http://}"]}]
  - job_name: voucher-etl
    metrics_path: /voucher-etl.prom
    static_configs: [{targets: ["127.0.0.1:$textfile_port"]}]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
OTHER_PIDS+=($!)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null && break
    sleep 0.2
done

status=0
timeout 180 python3 "$HERE/live.py" --prometheus "http://127.0.0.1:$prometheus_port" \
    --api "$API_URL" --grpc "$API_GRPC" --tables "$tables" --dashboard "$HERE/../dashboard.json" \
    --postgres-ctl "$PG_TEST_CTL" "${broker_flag[@]}" \
    --etl "$VOUCHER_ETL_BIN" --held-history "$WORK/peru.parquet" \
    --metrics-file "$textfile/voucher-etl.prom" || status=$?
if ((status != 0)); then
    for name in prometheus EVENTS API tansu; do
        [[ -f $WORK/$name.log ]] && { log "$name.log:"; tail -n 30 "$WORK/$name.log" >&2; }
    done
    exit "$status"
fi
log "PASS live: $((SECONDS - started_at)) s"
