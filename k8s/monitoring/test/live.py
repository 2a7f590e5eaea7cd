"""The live half of `make monitoring-test`, run by monitoring_test.sh once a real Prometheus
(127.0.0.1, scrape and evaluation interval 1 s, the rules with every `for` shortened to 1 s)
scrapes the real voucher-api, voucher-events and the ETL's metrics file:

  (a) every metric name a rule or a dashboard panel uses is among the scraped series;
  (b) every panel's query returns data through Prometheus' HTTP API;
  (c) no alert fires while all is well, then provoked failures fire their alerts in
      /api/v1/alerts: a run the gate holds (VoucherEtlRunHeld, from the metrics file), a run
      that fails (VoucherEtlRunFailed), a corrupt version published (VoucherTableReloadFailing, from both binaries) and the
      customer store stopped (VoucherCustomerStoreDown).

Standard library only. Prints one line per check; exits 1 on the first failure.
"""

import argparse
import json
import re
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# Grafana's variables, as a dashboard would resolve them over a short range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "${__rate_interval}": "1m"}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "inf", "nan", "atan2"}


def log(message):
    print(f"live.py: {message}", flush=True)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def prometheus(path, **params):
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    body = get_json(f"{ARGS.prometheus}{path}{query}")
    if body.get("status") != "success":
        fail(f"Prometheus {path} {params}: {str(body)[:300]}")
    return body["data"]


def wait_for(what, condition, timeout=60.0, every=0.5):
    """Polls `condition` until it is true; `what` (a string, or a function that says what is
    still missing) names it on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, keywords, label names and
    values, ranges and numbers left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def dashboard_queries(path):
    """(panel title, expr) of every target of every panel, Grafana's variables resolved."""
    dashboard = json.loads(Path(path).read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in expr:
                fail(f"panel {panel['title']!r}: a variable the test cannot resolve: {expr}")
            queries.append((panel["title"], expr))
    return queries


def rules():
    """Every rule Prometheus loaded: (name, query, is_alert)."""
    loaded = []
    for group in prometheus("/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            loaded.append((rule["name"], rule["query"], rule["type"] == "alerting"))
    return loaded


def traffic():
    """Requests at every door the panels show: full and by-id requests (found and unknown), a
    batch, and gRPC calls (curl over h2c, a hand-encoded VoucherRequest)."""
    full = {"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
            "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14,
            "segment_name": "frequent_segment"}
    bodies = [("/api/v1/voucher", full),
              ("/api/v1/voucher", {"customer_id": 1, "segment_name": "frequent_segment"}),
              ("/api/v1/voucher", {"customer_id": 999, "segment_name": "frequent_segment"}),
              ("/api/v1/vouchers", [full, {**full, "customer_id": 2}])]
    for customer in range(1, 40):
        bodies.append(("/api/v1/voucher", {**full, "customer_id": customer}))
    for path, body in bodies:
        request = urllib.request.Request(f"{ARGS.api}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except urllib.error.HTTPError as e:
            if e.code >= 500:
                fail(f"POST {path} answered {e.code}: {e.read()[:200]!r}")
    segment = b"frequent_segment"
    message = b"\x08\x01" + b"\x32" + bytes([len(segment)]) + segment  # customer_id 1, by id
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    for _ in range(3):
        subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                        "-H", "content-type: application/grpc", "-H", "te: trailers",
                        "--data-binary", "@-", "-o", "/dev/null",
                        f"http://{ARGS.grpc}/voucher.v1.VoucherService/GetVoucher"],
                       input=frame, check=True)


def check_names(rule_list, queries):
    """(a): every metric name used is among the scraped series (recorded ones aside)."""
    recorded = {name for name, _, is_alert in rule_list if not is_alert}
    used = {}
    for name, query, _ in rule_list:
        for metric in metric_names(query):
            used.setdefault(metric, f"rule {name}")
    for title, expr in queries:
        for metric in metric_names(expr):
            used.setdefault(metric, f"panel {title!r}")
    wanted = {m: where for m, where in used.items() if m not in recorded}
    missing = {}

    def all_there():
        scraped = set(prometheus("/api/v1/label/__name__/values"))
        missing.clear()
        missing.update({m: w for m, w in wanted.items() if m not in scraped})
        return not missing
    if not ARGS.broker:
        for name in [m for m in wanted if m == "voucher_events_consumer_lag"]:
            log(f"SKIPPED {name} ({wanted.pop(name)}): no broker, so no partition to measure "
                "(tansu is built by make events-test)")
    wait_for(lambda: f"every metric name to be scraped (missing: {missing})", all_there, timeout=60)
    print(f"PASS (a) all {len(wanted)} metric names that {len(rule_list)} rules and "
          f"{len(queries)} panel queries use are among the scraped series", flush=True)


def check_panels(queries):
    """(b): every panel's query returns data."""
    empty = []

    def all_data():
        empty.clear()
        for title, expr in queries:
            if not ARGS.broker and "voucher_events_consumer_lag" in expr:
                continue
            if not prometheus("/api/v1/query", query=expr)["result"]:
                empty.append(f"{title}: {expr}")
        return not empty
    wait_for(lambda: "every panel query to return data (empty: " + "; ".join(empty) + ")",
             all_data, timeout=30, every=1)
    skipped = "" if ARGS.broker else " (the lag panel skipped: no broker)"
    print(f"PASS (b) all {len(queries)} panel queries return data{skipped}", flush=True)


def alerts(state=None):
    return [a for a in prometheus("/api/v1/alerts")["alerts"]
            if state is None or a["state"] == state]


def quiet_while_well():
    """No alert is pending or firing before anything is broken (the broker's aside when
    there is none to reach)."""
    expected = set() if ARGS.broker else {"VoucherEventsBrokerDown"}
    time.sleep(3)  # three evaluations
    noisy = [a for a in alerts() if a["labels"]["alertname"] not in expected]
    if noisy:
        fail(f"alerts while all is well: {json.dumps(noisy)[:1000]}")
    print("PASS (c) no alert pending or firing while all is well"
          + ("" if ARGS.broker else " (but VoucherEventsBrokerDown: no broker)"), flush=True)


def publish_corrupt_version():
    """A new version whose table is not Parquet, named in CURRENT (as a broken publish would)."""
    tables = Path(ARGS.tables)
    live = (tables / "CURRENT").read_text().strip()
    corrupt = tables / "20991231T235959Z"
    shutil.copytree(tables / live, corrupt)
    (corrupt / "vouchers.parquet").write_bytes(b"not a parquet file")
    (tables / "CURRENT.tmp").write_text(f"{corrupt.name}\n")
    (tables / "CURRENT.tmp").rename(tables / "CURRENT")
    return corrupt.name


def fires(alertname, jobs):
    """Waits until `alertname` fires for every job in `jobs`."""
    def firing():
        found = {a["labels"].get("job") for a in alerts("firing")
                 if a["labels"]["alertname"] == alertname}
        return found if jobs <= found else None
    found = wait_for(f"{alertname} to fire for {sorted(jobs)}", firing, timeout=45)
    named = ", ".join(sorted(j for j in found if j)) or "the ETL's metrics file"
    print(f"PASS (c) {alertname} fires in /api/v1/alerts for {named}", flush=True)


def main():
    rule_list = rules()
    if not any(is_alert for _, _, is_alert in rule_list):
        fail("Prometheus loaded no alerting rule")
    queries = dashboard_queries(ARGS.dashboard)
    traffic()
    check_names(rule_list, queries)
    traffic()
    check_panels(queries)
    quiet_while_well()

    held = subprocess.run([ARGS.etl, "run", "--input", ARGS.held_history, "--output", ARGS.tables,
                           "--countries", "all", "--metrics-file", ARGS.metrics_file],
                          capture_output=True, text=True, timeout=120)
    if held.returncode != 3:
        fail(f"the run on {ARGS.held_history} exited {held.returncode}, not 3 (held): "
             f"{held.stderr[-1000:]}")
    log("the gate held a run (exit 3)")
    fires("VoucherEtlRunHeld", {None})

    failed = subprocess.run([ARGS.etl, "run", "--input", os.path.join(ARGS.tables, "missing.parquet"),
                             "--output", ARGS.tables, "--metrics-file", ARGS.metrics_file],
                            capture_output=True, text=True, timeout=120)
    if failed.returncode != 1:
        fail(f"the run on a missing input exited {failed.returncode}, not 1: {failed.stderr[-1000:]}")
    log("a run on a missing input failed (exit 1)")
    fires("VoucherEtlRunFailed", {None})

    version = publish_corrupt_version()
    log(f"published the corrupt version {version}")
    fires("VoucherTableReloadFailing", {"voucher-api", "voucher-events"})

    subprocess.run([ARGS.postgres_ctl, "stop"], check=True)
    log("stopped the customer store")
    for _ in range(3):  # lookups by id find it down at once (else its 5 s check does)
        traffic_by_id()
    fires("VoucherCustomerStoreDown", {"voucher-api"})


def traffic_by_id():
    request = urllib.request.Request(
        f"{ARGS.api}/api/v1/voucher",
        data=json.dumps({"customer_id": 5, "segment_name": "frequent_segment"}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except urllib.error.HTTPError:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--api", required=True, help="voucher-api's URL")
    parser.add_argument("--grpc", required=True, help="voucher-api's gRPC HOST:PORT")
    parser.add_argument("--tables", required=True, help="the tables directory both serve")
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--postgres-ctl", required=True, help="tools/postgres.sh's PG_TEST_CTL")
    parser.add_argument("--etl", required=True, help="voucher-etl")
    parser.add_argument("--held-history", required=True, help="history the gate holds a run of")
    parser.add_argument("--metrics-file", required=True, help="the ETL's --metrics-file")
    parser.add_argument("--broker", action="store_true",
                        help="voucher-events has a broker (else its lag is not there to see)")
    ARGS = parser.parse_args()
    main()
