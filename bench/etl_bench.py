"""Times voucher-etl and DuckDB on the same files, for Peru and for every country, checks they
agree, writes RESULTS.md.

Wall time is the median of --repeats runs; peak RSS comes from wait4() of each child process
(so it is the process's own high-water mark, not a sampled value).
"""

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, load_average, machine, timed, write_section

ETL = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "voucher-etl"
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
  WHERE {countries}
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


# Which rows each engine reads, by the `--countries` value voucher-etl is given.
# Every country: the country-code rule of shared/src/country.rs (1 to 64 bytes, no leading or
# trailing whitespace, no control characters).
COUNTRIES = {
    "Peru": "country_code = 'Peru'",
    "all": "country_code IS NOT NULL AND octet_length(encode(country_code)) BETWEEN 1 AND 64 "
           "AND NOT regexp_matches(country_code, '^[\\s\\pZ]|[\\s\\pZ]$|[\\x00-\\x1f\\x7f-\\x{9f}]')",
}


def run_etl(file, tables, countries):
    shutil.rmtree(tables, ignore_errors=True)
    return timed([str(ETL), "run", "--input", str(file), "--output", str(tables),
                  "--segments", str(ROOT / "data" / "segments.toml"), "--keep", "1",
                  "--countries", countries],
                 env={**os.environ, "RUST_LOG": "warn"})


def run_duckdb(file, out, countries):
    # A directory of files is read as one input, as voucher-etl reads it.
    source = f"{file}/*.parquet" if file.is_dir() else str(file)
    script = SQL.format(file=source, out=out, countries=COUNTRIES[countries])
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


def measure(file, countries, repeats, tmp):
    """Median walls and largest peaks of both engines on `file`; exits if their tables differ."""
    etl, duck = [], []
    for _ in range(repeats):
        # Alternate the two so that machine noise hits both alike.
        etl.append(run_etl(file, tmp / "tables", countries))
        duck.append(run_duckdb(file, tmp / "duck.parquet", countries))
    if etl_table(tmp / "tables") != duck_table(tmp / "duck.parquet"):
        sys.exit(f"voucher-etl and DuckDB disagree on {file} ({countries})")
    return (statistics.median(w for w, _ in etl), max(m for _, m in etl),
            statistics.median(w for w, _ in duck), max(m for _, m in duck))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--countries", nargs="+", default=["Peru", "all"], choices=sorted(COUNTRIES))
    ap.add_argument("--row-groups", nargs="*", type=int, default=[],
                    help="also time files of the largest size with these rows per row group: "
                         "pyarrow-rg<N>.parquet (pyarrow), pyarrow-mixed-rg<N>.parquet (pyarrow, "
                         "`timestamp` typed) and generated-rg<N>.parquet (voucher-etl generate "
                         "--row-group-size N)")
    ap.add_argument("--many", type=Path, action="append", default=[],
                    help="also time this directory of files (every country, --many-repeats runs)")
    ap.add_argument("--many-repeats", type=int, default=1)
    args = ap.parse_args()

    files = [(size, f"history-{size}.parquet") for size in args.sizes]
    for n in args.row_groups:
        files += [(max(args.sizes), f"pyarrow-rg{n}.parquet"),
                  (max(args.sizes), f"pyarrow-mixed-rg{n}.parquet"),
                  (max(args.sizes), f"generated-rg{n}.parquet")]
    runs = [(args.data_dir / name, countries, args.repeats) for _, name in files for countries in args.countries]
    runs += [(many, "all", args.many_repeats) for many in args.many]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for file, countries, repeats in runs:
            file = file.resolve()
            parts = sorted(file.glob("*.parquet")) if file.is_dir() else [file]
            mb = sum(p.stat().st_size for p in parts) / 2**20
            n_rows = sum(parquet_rows(p) for p in parts)
            e_wall, e_rss, d_wall, d_rss = measure(file, countries, repeats, tmp)
            name = f"{file.name}/ ({len(parts)} files)" if file.is_dir() else file.name
            rows.append((name, countries, n_rows, mb, e_wall, e_rss, d_wall, d_rss, repeats))
            print(f"{name} {countries}: {n_rows:>11,} rows ({mb:,.0f} MiB): voucher-etl {e_wall:6.2f}s "
                  f"{e_rss:6.0f} MiB | DuckDB {d_wall:6.2f}s {d_rss:6.0f} MiB | voucher-etl/DuckDB time "
                  f"{e_wall / d_wall:4.2f}x; tables agree", flush=True)

    today = datetime.date.today().isoformat()
    lines = [
        "## ETL: voucher-etl vs DuckDB SQL",
        "",
        f"Measured {today} on {machine()}, load average {load_average()} at the end (the machine "
        f"is shared); `make bench-etl` (bench/etl.sh). Wall time: median of {args.repeats} runs "
        "(the many-file rows: of the runs in their `runs` column), alternating the two engines; "
        "peak RSS: the largest of those runs (wait4). Both compute the table of the countries in "
        "the `countries` column (Peru, or every country) from the same file and the script checks "
        "that the tables are identical. The DuckDB SQL is in bench/etl_bench.py. voucher-etl runs "
        "with its defaults: no memory limit (none is set on this machine), two windows in flight.",
        "",
        "`history-N` files are written by `voucher-etl generate` (polars, 256k-row groups);",
        "`pyarrow-rgN` are the largest of them rewritten by pyarrow (bench/rewrite_pyarrow.py: zstd,",
        "plain strings, N rows per row group), shaped like the files Spark and pandas jobs write;",
        "`pyarrow-mixed-rgN` the same with `timestamp` written as a timestamp column among the",
        "strings (values that are not a time become nulls), as in real exports;",
        "`generated-rgN` are the same rows from `voucher-etl generate --row-group-size N`.",
        "",
        "| file | countries | rows | size | runs | voucher-etl wall | voucher-etl peak RSS | DuckDB wall | DuckDB peak RSS | voucher-etl / DuckDB time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, countries, n, mb, ew, em, dw, dm, repeats in rows:
        lines.append(f"| {name} | {countries} | {n:,} | {mb:,.0f} MiB | {repeats} | {ew:.2f} s | {em:.0f} MiB | "
                     f"{dw:.2f} s | {dm:.0f} MiB | {ew / dw:.2f}x |")
    generated = [r for r in rows if r[0].startswith("history-") and r[1] == args.countries[0]]
    if len(generated) > 1:
        per = ", ".join(f"{r[4] / r[2] * 1e6:.3f}" for r in generated)
        lines += ["", f"voucher-etl seconds per million rows, by size ({args.countries[0]}): {per} "
                      "(linear scaling keeps these equal)."]
    write_section(START, END, lines)
    print("wrote bench/RESULTS.md")


def parquet_rows(path):
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    main()
