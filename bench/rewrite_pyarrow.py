"""Rewrites a history file the way production files are written: by pyarrow, zstd, with
row groups of a chosen size (Spark and pyarrow jobs write 1M-row groups by default).

The memory benchmark reads these, because a reader's peak follows the size of a row group and
our own generator writes small ones.

    python bench/rewrite_pyarrow.py SOURCE.parquet OUTPUT.parquet --row-group-size 1048576 \
        [--timestamp timestamp]

With --timestamp COLUMN (repeatable), that column is written as a timestamp (UTC) instead of
text, as in real files where a time column is typed among text ones; values that are not a
time become nulls (converted by DuckDB's TRY_CAST, so DuckDB must be installed).
"""

import argparse
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_batches(source, timestamps):
    """The source's record batches and schema, with the `timestamps` columns as timestamps."""
    if not timestamps:
        file = pq.ParquetFile(source)
        return file.iter_batches(batch_size=256 * 1024), file.schema_arrow
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    casts = ", ".join(f'TRY_CAST("{c}" AS TIMESTAMPTZ) AS "{c}"' for c in timestamps)
    reader = con.sql(f"SELECT * REPLACE ({casts}) FROM read_parquet('{source}')").to_arrow_reader(256 * 1024)
    return reader, reader.schema


def write_row_groups(batches, source_schema, output, row_group_size):
    """Writes `batches` to `output` (replaced atomically) as pyarrow jobs do: zstd, row groups
    of `row_group_size` rows, plain strings (polars' files carry string_view in their Arrow
    schema, and DuckDB hands large_string, which pyarrow would otherwise keep) and no Arrow
    schema of ours. Returns the written file's metadata."""
    schema = pa.schema([pa.field(f.name, pa.string() if f.type in (pa.string_view(), pa.large_string())
                                 else f.type) for f in source_schema])
    tmp = output.with_name(f".{output.name}.tmp")
    pending, pending_rows = [], 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        def flush(rows):
            nonlocal pending, pending_rows
            table = pa.Table.from_batches(pending, schema=schema)
            writer.write_table(table.slice(0, rows), row_group_size=rows)
            rest = table.slice(rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows

        for batch in batches:
            pending.append(batch.cast(schema))
            pending_rows += batch.num_rows
            while pending_rows >= row_group_size:
                flush(row_group_size)
        if pending_rows:
            flush(pending_rows)
    os.replace(tmp, output)
    return pq.ParquetFile(output).metadata


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--row-group-size", type=int, required=True)
    ap.add_argument("--timestamp", action="append", default=[], metavar="COLUMN",
                    help="write this column as a timestamp (UTC); repeatable")
    args = ap.parse_args()
    if args.row_group_size < 1:
        ap.error("--row-group-size must be at least 1")

    batches, source_schema = read_batches(args.source, args.timestamp)
    meta = write_row_groups(batches, source_schema, args.output, args.row_group_size)
    print(f"wrote {args.output}: {meta.num_rows:,} rows in {meta.num_row_groups} row groups "
          f"(pyarrow {pa.__version__}, zstd)")


if __name__ == "__main__":
    main()
