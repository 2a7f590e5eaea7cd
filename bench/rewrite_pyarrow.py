"""Rewrites a history file the way production files are written: by pyarrow, zstd, with
row groups of a chosen size (Spark and pyarrow jobs write 1M-row groups by default).

The memory benchmark reads these, because a reader's peak follows the size of a row group and
our own generator writes small ones.

    python bench/rewrite_pyarrow.py SOURCE.parquet OUTPUT.parquet --row-group-size 1048576
"""

import argparse
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--row-group-size", type=int, required=True)
    args = ap.parse_args()
    if args.row_group_size < 1:
        ap.error("--row-group-size must be at least 1")

    source = pq.ParquetFile(args.source)
    # Plain strings, as pandas and Spark write them (polars' files carry string_view in
    # their Arrow schema, which pyarrow would otherwise keep), and no Arrow schema of ours.
    schema = pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type)
                        for f in source.schema_arrow])
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    pending, pending_rows = [], 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        def flush(rows):
            nonlocal pending, pending_rows
            table = pa.Table.from_batches(pending, schema=schema)
            writer.write_table(table.slice(0, rows), row_group_size=rows)
            rest = table.slice(rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows

        for batch in source.iter_batches(batch_size=256 * 1024):
            pending.append(batch.cast(schema))
            pending_rows += batch.num_rows
            while pending_rows >= args.row_group_size:
                flush(args.row_group_size)
        if pending_rows:
            flush(pending_rows)
    os.replace(tmp, args.output)
    meta = pq.ParquetFile(args.output).metadata
    print(f"wrote {args.output}: {meta.num_rows:,} rows in {meta.num_row_groups} row groups "
          f"(pyarrow {pa.__version__}, zstd)")


if __name__ == "__main__":
    main()
