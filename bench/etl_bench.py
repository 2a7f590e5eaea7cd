"""Times voucher-etl and DuckDB on the same files, checks they agree, writes RESULTS.md.

Wall time is the median of --repeats runs; peak RSS comes from wait4() of each child process
(so it is the process's own high-water mark, not a sampled value).
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ETL = ROOT / "target" / "release" / "voucher-etl"
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- etl-bench:start -->", "<!-- etl-bench:end -->"

# The same table in SQL: the contract's rules, in order, and the contract's segments.
SQL = """
SET TimeZone = 'UTC';
COPY (
WITH src AS (
  SELECT country_code,
         CAST(voucher_amount AS DOUBLE) AS amount,
         TRY_CAST(trim(total_orders) AS DOUBLE) AS orders,
         CAST(TRY_CAST("timestamp" AS TIMESTAMPTZ) AS DATE) AS ts,
         CAST(TRY_CAST(last_order_ts AS TIMESTAMPTZ) AS DATE) AS last_d,
         CAST(first_order_ts AS DATE) AS first_d
  FROM read_parquet('{file}')
  WHERE country_code = 'Peru'
), kept AS (
  SELECT country_code, CAST(amount AS BIGINT) AS amount, CAST(orders AS BIGINT) AS orders,
         date_diff('day', last_d, ts) AS days
  FROM src
  WHERE amount IS NOT NULL AND isfinite(amount) AND amount > 0 AND amount = floor(amount)
    AND orders IS NOT NULL AND isfinite(orders) AND orders >= 0 AND orders = floor(orders)
    AND ts IS NOT NULL AND last_d IS NOT NULL AND ts >= last_d
    AND (first_d IS NULL OR first_d <= last_d)
), seg AS (
  SELECT country_code, 'frequent_segment' AS segment_name,
         CASE WHEN orders BETWEEN 0 AND 4 THEN '0-4' WHEN orders BETWEEN 5 AND 13 THEN '5-13'
              WHEN orders BETWEEN 14 AND 37 THEN '14-37' END AS segment, amount
  FROM kept
  UNION ALL
  SELECT country_code, 'recency_segment',
         CASE WHEN days BETWEEN 30 AND 60 THEN '30-60' WHEN days BETWEEN 61 AND 90 THEN '61-90'
              WHEN days BETWEEN 91 AND 120 THEN '91-120' WHEN days BETWEEN 121 AND 180 THEN '121-180'
              WHEN days >= 181 THEN '180+' END, amount
  FROM kept
), counts AS (
  SELECT country_code, segment_name, segment, amount, count(*) AS n,
         CAST(sum(count(*)) OVER (PARTITION BY country_code, segment_name, segment) AS BIGINT) AS segment_rows
  FROM seg WHERE segment IS NOT NULL
  GROUP BY country_code, segment_name, segment, amount
)
SELECT country_code, segment_name, segment, amount AS voucher_amount, n AS occurrences, segment_rows
FROM counts
QUALIFY row_number() OVER (PARTITION BY country_code, segment_name, segment ORDER BY n DESC, amount) = 1
ORDER BY ALL
) TO '{out}' (FORMAT parquet);
"""


def timed(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024  # KiB -> MiB


def run_etl(file, tables):
    shutil.rmtree(tables, ignore_errors=True)
    return timed([str(ETL), "run", "--input", str(file), "--output", str(tables),
                  "--segments", str(ROOT / "data" / "segments.toml"), "--keep", "1"],
                 env={**os.environ, "RUST_LOG": "warn"})


def run_duckdb(file, out):
    script = SQL.format(file=file, out=out)
    code = f"import duckdb; duckdb.connect().execute({script!r})"
    return timed([sys.executable, "-c", code])


def etl_table(tables):
    import duckdb
    version = (tables / "CURRENT").read_text().strip()
    return duckdb.sql(
        f"SELECT country_code, segment_name, segment, voucher_amount, occurrences, segment_rows "
        f"FROM read_parquet('{tables / version / 'vouchers.parquet'}') ORDER BY ALL").fetchall()


def duck_table(out):
    import duckdb
    return duckdb.sql(f"SELECT * FROM read_parquet('{out}') ORDER BY ALL").fetchall()


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--row-groups", nargs="*", type=int, default=[],
                    help="also time files of the largest size with these rows per row group: "
                         "pyarrow-rg<N>.parquet (pyarrow) and generated-rg<N>.parquet "
                         "(voucher-etl generate --row-group-size N)")
    args = ap.parse_args()

    files = [(size, f"history-{size}.parquet") for size in args.sizes]
    for n in args.row_groups:
        files += [(max(args.sizes), f"pyarrow-rg{n}.parquet"),
                  (max(args.sizes), f"generated-rg{n}.parquet")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, name in files:
            file = (args.data_dir / name).resolve()
            mb = file.stat().st_size / 2**20
            etl, duck = [], []
            for _ in range(args.repeats):
                # Alternate the two so that machine noise hits both alike.
                etl.append(run_etl(file, tmp / "tables"))
                duck.append(run_duckdb(file, tmp / "duck.parquet"))
            same = etl_table(tmp / "tables") == duck_table(tmp / "duck.parquet")
            if not same:
                sys.exit(f"voucher-etl and DuckDB disagree on {file}")
            e_wall = statistics.median(w for w, _ in etl)
            d_wall = statistics.median(w for w, _ in duck)
            row = (size, mb, e_wall, max(m for _, m in etl), d_wall, max(m for _, m in duck), name)
            rows.append(row)
            print(f"{name}: {size:>11,} rows ({mb:,.0f} MiB): voucher-etl {e_wall:6.2f}s {row[3]:6.0f} MiB | "
                  f"DuckDB {d_wall:6.2f}s {row[5]:6.0f} MiB | DuckDB/etl time {d_wall / e_wall:4.2f}x; tables agree",
                  flush=True)

    today = datetime.date.today().isoformat()
    lines = [
        START,
        "## ETL: voucher-etl vs DuckDB SQL",
        "",
        f"Measured {today} on {cpu_model()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.system()} "
        f"{platform.release()}, load average {os.getloadavg()[0]:.2f} at the end; `make bench-etl` (bench/etl.sh). Wall time: median of {args.repeats} runs, "
        "alternating the two engines; peak RSS: the largest of those runs (wait4). Both compute the Peru "
        "table from the same generated file (seed 2026) and the script checks that the tables are "
        "identical. The DuckDB SQL is in bench/etl_bench.py.",
        "",
        "`history-N` files are written by `voucher-etl generate` (polars, 256k-row groups);",
        "`pyarrow-rgN` are the largest of them rewritten by pyarrow (bench/rewrite_pyarrow.py: zstd,",
        "plain strings, N rows per row group), shaped like the files Spark and pandas jobs write;",
        "`generated-rgN` are the same rows from `voucher-etl generate --row-group-size N`.",
        "",
        "| file | rows | size | voucher-etl wall | voucher-etl peak RSS | DuckDB wall | DuckDB peak RSS | voucher-etl / DuckDB time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, mb, ew, em, dw, dm, name in rows:
        lines.append(f"| {name} | {size:,} | {mb:,.0f} MiB | {ew:.2f} s | {em:.0f} MiB | {dw:.2f} s | {dm:.0f} MiB | {ew / dw:.2f}x |")
    generated = [r for r in rows if r[6].startswith("history-")]
    if len(generated) > 1:
        per = ", ".join(f"{r[2] / r[0] * 1e6:.3f}" for r in generated)
        lines += ["", f"voucher-etl seconds per million rows, by size: {per} (linear scaling keeps these equal)."]
    lines.append(END)
    section = "\n".join(lines) + "\n"

    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END) + "\n?", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
