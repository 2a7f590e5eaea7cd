"""Writes a campaign's customer list the way a warehouse export is written: by pyarrow, zstd,
1M-row row groups, the request fields as columns, plus a column that rides along.

Mostly valid requests for the countries of a voucher table, some of them in no segment (404),
and a few invalid ones (an unknown country, a time that does not parse, a time after --now, a
bogus segment type: 422), as real lists have. Deterministic: values are drawn from hashes of
the row number (DuckDB's hash), so a seed gives the same file.

    python bench/customers.py OUTPUT.parquet --rows 10000000 --countries Peru,Chile \\
        --now 2026-11-30T12:00:00Z [--time-type string|timestamp]
"""

import argparse
import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from rewrite_pyarrow import write_row_groups  # bench/rewrite_pyarrow.py, beside this script

# One in this many rows gets each kind of invalid value.
INVALID_EVERY = 1000

SQL = """
WITH r AS (SELECT i, hash(i, {seed}) AS h FROM range({rows}) t(i))
SELECT
  i AS customer_id,
  CASE WHEN h % {invalid} = 1 THEN 'Atlantis'
       ELSE ({countries})[1 + ((h >> 8) % {n_countries})::BIGINT] END AS country_code,
  CASE WHEN h % {invalid} = 2 THEN 'yesterday'
       WHEN h % {invalid} = 3 THEN strftime(TIMESTAMP '{now}' + INTERVAL 3 DAY, '%Y-%m-%d %H:%M:%S')
       ELSE strftime(TIMESTAMP '{now}' - to_seconds(((h >> 16) % (400 * 86400))::BIGINT), '%Y-%m-%d %H:%M:%S')
  END AS last_order_ts,
  strftime(TIMESTAMP '{now}' - to_seconds((400 * 86400 + (h >> 24) % (2000 * 86400))::BIGINT), '%Y-%m-%d %H:%M:%S')
    AS first_order_ts,
  ((h >> 40) % 45)::BIGINT AS total_orders,
  CASE WHEN h % {invalid} = 4 THEN 'loyalty_segment'
       WHEN (h >> 4) % 2 = 0 THEN 'frequent_segment' ELSE 'recency_segment' END AS segment_name,
  'winter-' || ((h >> 50) % 7)::VARCHAR AS campaign
FROM r
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("output", type=Path)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--countries", required=True, help="comma-separated, as in the table")
    ap.add_argument("--now", required=True, help="RFC 3339, UTC: the time the list is scored at")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--row-group-size", type=int, default=1 << 20)
    ap.add_argument("--time-type", choices=["string", "timestamp"], default="string",
                    help="the order times as text (as the API takes them) or as timestamps")
    args = ap.parse_args()

    now = datetime.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    now = now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    countries = [c.strip() for c in args.countries.split(",") if c.strip()]
    sql = SQL.format(seed=args.seed, rows=args.rows, invalid=INVALID_EVERY,
                     countries="[" + ", ".join(f"'{c}'" for c in countries) + "]",
                     n_countries=len(countries), now=now.isoformat(sep=" "))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    query = con.sql(sql)
    if args.time_type == "timestamp":
        query = query.select(
            "* REPLACE (TRY_CAST(last_order_ts AS TIMESTAMP) AS last_order_ts, "
            "TRY_CAST(first_order_ts AS TIMESTAMP) AS first_order_ts)")
    reader = query.to_arrow_reader(args.row_group_size)
    meta = write_row_groups(reader, reader.schema, args.output, args.row_group_size)
    print(f"wrote {args.output}: {meta.num_rows:,} customers in {meta.num_row_groups} row groups "
          f"(pyarrow {pa.__version__}, zstd, times as {args.time_type})")


if __name__ == "__main__":
    main()
