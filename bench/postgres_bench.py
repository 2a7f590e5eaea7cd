"""PostgreSQL history benchmark (bench/postgres.sh): loads history into the server, then times
psql's binary COPY, voucher-etl and connectorx on the same query, side by side.

  load: creates voucher_history (text for the messy columns, timestamp for first_order_ts,
        double precision for amounts) and copies a Parquet file into it.
  run:  --repeats rounds, each running the three in turn; wall time is the median, peak RSS
        the largest (wait4 of each child). Checks that the table voucher-etl builds from the
        database equals the one it builds from the Parquet file, then writes bench/RESULTS.md.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from results import add_row  # bench/results.py, beside this script

TABLE = "voucher_history"
QUERY = f"SELECT * FROM {TABLE}"


def psql(args, url, *extra, **kw):
    return subprocess.run([args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *extra],
                          check=True, **kw)


def load(args):
    psql(args, args.url, "-c", f"DROP TABLE IF EXISTS {TABLE}", "-c",
         f"CREATE TABLE {TABLE} (timestamp text, country_code text, last_order_ts text, "
         "first_order_ts timestamp, total_orders text, voucher_amount double precision)")
    started = time.perf_counter()
    copy = subprocess.Popen(
        [args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", args.url, "-c",
         f"\\copy {TABLE} FROM STDIN WITH (FORMAT csv)"], stdin=subprocess.PIPE)
    frame = pl.scan_parquet(args.parquet).select(
        "timestamp", "country_code", "last_order_ts",
        pl.col("first_order_ts").dt.strftime("%Y-%m-%d %H:%M:%S%.6f"),
        "total_orders", "voucher_amount")
    rows = 0
    # Strings always quoted: an empty one stays empty, a null (unquoted, empty) stays NULL.
    for batch in frame.collect_batches(chunk_size=1 << 20):
        batch.write_csv(copy.stdin, include_header=False, quote_style="non_numeric")
        rows += batch.height
    copy.stdin.close()
    if copy.wait() != 0:
        sys.exit("loading the history failed")
    # Frozen and analysed, so that no read pays for hint bits the load left unset.
    psql(args, args.url, "-c", f"VACUUM (FREEZE, ANALYZE) {TABLE}")
    print(f"loaded {rows} rows into {TABLE} in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)


def timed(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024  # KiB -> MiB


def run_psql(args):
    return timed([args.psql, "-X", "-q", args.url, "-c",
                  f"\\copy ({QUERY}) to /dev/null with (format binary)"])


def run_etl(args, tables, source):
    extra = ["--query", QUERY] if source == args.url else []
    return timed([args.etl, "run", "--input", source, *extra, "--output", str(tables),
                  "--countries", "Peru", "--keep", "1"], env={**os.environ, "RUST_LOG": "warn"})


def run_connectorx(args):
    code = ("import polars as pl, sys; "
            f"df = pl.read_database_uri({QUERY!r}, {args.url!r}, engine='connectorx'); "
            f"assert df.height == {args.rows}, df.height")
    return timed([sys.executable, "-c", code])


def table(tables):
    version = (tables / "CURRENT").read_text().strip()
    return pl.read_parquet(tables / version / "vouchers.parquet")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run(args):
    args.rows = pl.scan_parquet(args.parquet).select(pl.len()).collect().item()
    load_before = os.getloadavg()
    times = {"psql": [], "etl": [], "cx": []}
    rss = {"psql": 0.0, "etl": 0.0, "cx": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        from_db, from_file = Path(tmp) / "db", Path(tmp) / "file"
        for i in range(args.repeats):
            for name, step in [("psql", lambda: run_psql(args)),
                               ("etl", lambda: run_etl(args, from_db, args.url)),
                               ("cx", lambda: run_connectorx(args))]:
                wall, peak = step()
                times[name].append(wall)
                rss[name] = max(rss[name], peak)
                print(f"round {i + 1}: {name} {wall:.2f} s, {peak:.0f} MiB", file=sys.stderr)
        run_etl(args, from_file, args.parquet)
        if not table(from_db).equals(table(from_file)):
            sys.exit("the table from PostgreSQL differs from the one from the Parquet file")
    med = {k: statistics.median(v) for k, v in times.items()}
    row = (f"| {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ} | {cpu_model()}, "
           f"{os.cpu_count()} cores | {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} | "
           f"{args.rows:,} | {med['psql']:.2f} s | {med['etl']:.2f} s | {rss['etl']:.0f} MiB | "
           f"{med['cx']:.2f} s | {rss['cx']:.0f} MiB | {med['etl'] / med['psql']:.2f}x | "
           f"{med['cx'] / med['etl']:.2f}x |")
    print(row)
    write_results(Path(args.results), row, args.repeats)


def write_results(path, row, repeats):
    intro = f"""## PostgreSQL history: voucher-etl vs psql's binary COPY and connectorx

`make bench-postgres` (bench/postgres.sh): generated history (seed 2026) in a table of a
throwaway Debian PostgreSQL on 127.0.0.1 (text for the messy columns, timestamp for
`first_order_ts`, double precision for amounts), read with the query `{QUERY}`: psql's
`\\copy (QUERY) to /dev/null with (format binary)` (the server's floor), `voucher-etl run`
(reading and building the Peru table, which the script checks equals the table from the Parquet
file), and `polars.read_database_uri` with connectorx (reading into a DataFrame only). Wall
time: median of {repeats} rounds, the three in turn; peak RSS: the largest (wait4). The server
shares the 2 cores with the reader; the load average (1 min, before / after) shows other work
on the machine. Targets: voucher-etl <= 1.5x psql, faster than connectorx, <= 300 MiB.

| date (UTC) | CPU | load avg | rows | psql COPY | voucher-etl | voucher-etl peak RSS | connectorx | connectorx peak RSS | voucher-etl / psql | connectorx / voucher-etl |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|""".splitlines()
    add_row(path, intro, row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["load", "run"])
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--psql", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--etl")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", default="bench/RESULTS.md")
    args = ap.parse_args()
    load(args) if args.command == "load" else run(args)


if __name__ == "__main__":
    main()
