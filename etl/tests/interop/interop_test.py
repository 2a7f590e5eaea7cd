"""voucher-etl on histories and campaign lists from every common writer.

Writes one history and one campaign list in every form the matrix names (pyarrow with every
codec, version 1 and 2 pages, dictionaries on and off, without statistics, with a page index,
INT96 times, decimals, dictionary strings, large_string, string_view, float16 and all-null
columns; DuckDB with every codec and V2 pages; polars without statistics; CSV with a BOM, CRLF
line ends, quoted newlines and a ragged line) into a temporary directory, runs the real
voucher-etl binary on each, and checks that

- each history publishes the same table (byte for byte) and counts as the reference history;
- each list scores to the same answers as the reference list, and its own columns come out
  as they went in;
- nothing panics, and the ragged CSV line is named in the error.

The Rust `parquet` crate's files are tested in `etl/tests/etl/interop.rs` (`make test`).

    python interop_test.py --etl target/debug/voucher-etl
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ETL = None
WORK = None
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
CODECS = ["NONE", "SNAPPY", "GZIP", "BROTLI", "ZSTD", "LZ4"]
DUCKDB_CODECS = ["uncompressed", "snappy", "gzip", "zstd", "lz4", "brotli"]
RESULTS = ["status", "voucher", "segment", "detail", "table_version"]
COUNTS = ("rows_read", "rows_kept", "dropped")
COUNTRIES = ["Peru", "Chile", "Colombia", "Mexico"]
AMOUNTS = [1760.0, 2640.0, 3520.0, 4400.0, 5280.0]


def etl(*args, timeout=120):
    return subprocess.run([ETL, *args], capture_output=True, text=True, timeout=timeout)


def text(t):
    return t.strftime("%Y-%m-%d %H:%M:%S")


# --- the reference data --------------------------------------------------------------------

def base_history(rows=4000, seed=5):
    """A history with rows every drop rule drops, times as text, numbers as int64/float64."""
    rng = random.Random(seed)
    cols = {k: [] for k in ("timestamp", "country_code", "last_order_ts", "first_order_ts",
                            "total_orders", "voucher_amount")}
    for i in range(rows):
        sent = NOW - timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86_400))
        last = sent - timedelta(days=rng.randrange(0, 400), seconds=rng.randrange(86_400))
        first = last - timedelta(days=rng.randrange(0, 300))
        if i % 97 == 5:
            first = last + timedelta(days=3)  # first order after the last
        if i % 89 == 7:
            last = sent + timedelta(days=2)  # last order after the voucher
        cols["timestamp"].append(text(sent))
        cols["country_code"].append(None if i % 83 == 3 else COUNTRIES[i % 4])
        cols["last_order_ts"].append(None if i % 79 == 2 else text(last))
        cols["first_order_ts"].append(None if i % 11 == 0 else text(first))
        cols["total_orders"].append(None if i % 73 == 1 else rng.randrange(0, 45))
        cols["voucher_amount"].append(None if i % 71 == 4 else rng.choice(AMOUNTS))
    return pa.table({
        "timestamp": pa.array(cols["timestamp"], pa.string()),
        "country_code": pa.array(cols["country_code"], pa.string()),
        "last_order_ts": pa.array(cols["last_order_ts"], pa.string()),
        "first_order_ts": pa.array(cols["first_order_ts"], pa.string()),
        "total_orders": pa.array(cols["total_orders"], pa.int64()),
        "voucher_amount": pa.array(cols["voucher_amount"], pa.float64()),
    })


def base_list(rows=3000, seed=9):
    """A campaign list with valid and invalid rows of every request field."""
    rng = random.Random(seed)
    ids, countries, lasts, firsts, orders, segments = [], [], [], [], [], []
    for i in range(rows):
        last = NOW - timedelta(days=rng.randrange(0, 500), seconds=rng.randrange(86_400))
        if i % 53 == 9:
            last = NOW + timedelta(days=5)  # in the future: 422
        ids.append(None if i % 61 == 6 else 10_000 + i)
        countries.append(None if i % 67 == 8 else (COUNTRIES + ["Atlantis"])[i % 5])
        lasts.append(None if i % 59 == 1 else text(last))
        firsts.append(text(last - timedelta(days=rng.randrange(0, 300))))
        orders.append(None if i % 43 == 2 else rng.randrange(-2, 45))
        segments.append(["frequent_segment", "recency_segment", "bogus"][i % 3 if i % 29 == 0
                                                                          else i % 2])
    return pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "country_code": pa.array(countries, pa.string()),
        "last_order_ts": pa.array(lasts, pa.string()),
        "first_order_ts": pa.array(firsts, pa.string()),
        "total_orders": pa.array(orders, pa.int64()),
        "segment_name": pa.array(segments, pa.string()),
    })


# --- the forms -----------------------------------------------------------------------------

def with_column(table, name, array):
    return table.set_column(table.schema.get_field_index(name), name, array)


def times_as_timestamps(table, names):
    for name in names:
        parsed = pc.strptime(table[name], format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
        table = with_column(table, name, parsed)
    return table


def strings_as(table, dtype):
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, table[field.name].cast(dtype))
    return table


def dictionaries(table):
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table[field.name]))
    return table


def extra_columns(table):
    """Columns the job does not use, of types polars cannot hold, and one of nulls only."""
    n = table.num_rows
    spend = pa.array([Decimal(i * 12345) / 100 for i in range(n)], pa.decimal128(22, 2))
    ratio = pa.array([(i % 7) / 4 for i in range(n)], pa.float64()).cast(pa.float16())
    table = table.append_column("spend", spend).append_column("ratio", ratio)
    return table.append_column("nothing", pa.nulls(n, pa.string()))


def decimals(table, numbers):
    for name, dtype in numbers.items():
        values = [None if v is None else Decimal(str(v)) for v in table[name].to_pylist()]
        table = with_column(table, name, pa.array(values, dtype))
    return extra_columns(table)


def pyarrow_forms(table, times, numbers):
    """(name, writer) pairs: each writes `table` in one pyarrow form to a path."""
    forms = []
    for i, codec in enumerate(CODECS):
        for version in ("1.0", "2.0"):
            dictionary = (i + len(version)) % 2 == 0
            forms.append((f"pyarrow {codec} v{version} pages dictionary={dictionary}",
                          lambda p, c=codec, v=version, d=dictionary: pq.write_table(
                              table, p, compression=c, data_page_version=v, use_dictionary=d)))
    forms += [
        ("pyarrow without statistics",
         lambda p: pq.write_table(table, p, write_statistics=False)),
        ("pyarrow with a page index",
         lambda p: pq.write_table(table, p, write_page_index=True)),
        ("pyarrow small pages and row groups",
         lambda p: pq.write_table(table, p, data_page_size=512, row_group_size=700)),
        ("pyarrow INT96 times",
         lambda p: pq.write_table(times_as_timestamps(table, times), p,
                                  use_deprecated_int96_timestamps=True)),
        ("pyarrow timestamps",
         lambda p: pq.write_table(times_as_timestamps(table, times), p)),
        ("pyarrow decimals, float16 and all-null columns",
         lambda p: pq.write_table(decimals(table, numbers), p)),
        ("pyarrow dictionary strings (as pandas writes categoricals)",
         lambda p: pq.write_table(dictionaries(table), p)),
        ("pyarrow large_string",
         lambda p: pq.write_table(strings_as(table, pa.large_string()), p)),
        ("pyarrow string_view",
         lambda p: pq.write_table(strings_as(table, pa.string_view()), p)),
    ]
    return forms


def duckdb_forms(reference):
    forms = []
    for codec in DUCKDB_CODECS:
        for version in ("V1", "V2"):
            forms.append((f"duckdb {codec} {version}",
                          lambda p, c=codec, v=version: duckdb.execute(
                              f"COPY (SELECT * FROM read_parquet('{reference}')) TO '{p}' "
                              f"(FORMAT parquet, COMPRESSION {c}, PARQUET_VERSION {v})")))
    return forms


def polars_forms(reference):
    return [
        ("polars without statistics",
         lambda p: pl.read_parquet(reference).write_parquet(p, statistics=False)),
        ("polars Categorical and Enum",
         lambda p: pl.read_parquet(reference)
         .with_columns(pl.col("country_code").cast(pl.Categorical),
                       pl.col("last_order_ts").cast(pl.Enum(
                           pl.read_parquet(reference)["last_order_ts"].drop_nulls().unique()
                           .to_list())))
         .write_parquet(p)),
    ]


# --- the checks ----------------------------------------------------------------------------

class Matrix:
    def __init__(self):
        self.passed = []
        self.failed = []

    def case(self, name, check):
        started = time.monotonic()
        try:
            check()
        except Exception as e:  # noqa: BLE001: every failure is reported, then the next runs
            self.failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
        else:
            self.passed.append(name)
            print(f"ok   {name} ({time.monotonic() - started:.1f}s)", flush=True)


def no_panic(out, what):
    if out.returncode == 101 or "panicked" in out.stderr:
        raise AssertionError(f"{what} panicked: {out.stderr[-2000:]}")


def published(tables):
    version = (tables / "CURRENT").read_text().strip()
    manifest = json.loads((tables / version / "manifest.json").read_text())
    return (tables / version / "vouchers.parquet").read_bytes(), manifest


def run_history(path, tables):
    out = etl("run", "--input", str(path), "--output", str(tables), "--countries", "all")
    no_panic(out, f"run on {path.name}")
    if out.returncode != 0:
        raise AssertionError(f"run on {path.name} exited {out.returncode}: {out.stderr[-2000:]}")
    return published(tables)


def score(path, tables, output, *extra):
    out = etl("score", "--customers", str(path), "--tables", str(tables), "--output",
              str(output), "--now", NOW.isoformat(), *extra)
    no_panic(out, f"score on {path.name}")
    return out


def scored(path, tables, output, *extra):
    out = score(path, tables, output, *extra)
    if out.returncode != 0:
        raise AssertionError(f"score on {path.name} exited {out.returncode}: "
                             f"{out.stderr[-2000:]}")
    return pq.read_table(output)


def same_results(got, want, what):
    for column in RESULTS:
        if not got[column].equals(want[column]):
            diff = next(i for i, (a, b) in enumerate(zip(got[column].to_pylist(),
                                                        want[column].to_pylist())) if a != b)
            raise AssertionError(f"{what}: column {column} differs first at row {diff}: "
                                 f"{got[column][diff]} != {want[column][diff]}")


def check_histories(matrix, work):
    reference = work / "history.parquet"
    pq.write_table(base_history(), reference)
    want_table, want_manifest = run_history(reference, work / "tables")
    numbers = {"voucher_amount": pa.decimal128(12, 2), "total_orders": pa.decimal128(10, 0)}
    forms = (pyarrow_forms(pq.read_table(reference), ["timestamp", "last_order_ts",
                                                      "first_order_ts"], numbers)
             + duckdb_forms(reference) + polars_forms(reference))
    for i, (name, write) in enumerate(forms):
        def check(name=name, write=write, i=i):
            path = work / f"history-{i}.parquet"
            write(str(path))
            table, manifest = run_history(path, work / f"tables-{i}")
            for count in COUNTS:
                if manifest[count] != want_manifest[count]:
                    raise AssertionError(f"{count}: {manifest[count]} != {want_manifest[count]}")
            if table != want_table:
                raise AssertionError("the published table differs from the reference's")
        matrix.case(f"history: {name}", check)
    return work / "tables"


def check_lists(matrix, work, tables):
    reference = work / "list.parquet"
    pq.write_table(base_list(), reference)
    want = scored(reference, tables, work / "scored.parquet")
    statuses = set(want["status"].to_pylist())
    if statuses != {200, 404, 422}:
        raise AssertionError(f"the reference list covers every outcome, not {statuses}")
    numbers = {"customer_id": pa.decimal128(18, 0), "total_orders": pa.decimal128(10, 0)}
    forms = (pyarrow_forms(pq.read_table(reference), ["last_order_ts", "first_order_ts"], numbers)
             + duckdb_forms(reference) + polars_forms(reference))
    for i, (name, write) in enumerate(forms):
        def check(name=name, write=write, i=i):
            path = work / f"list-{i}.parquet"
            write(str(path))
            got = scored(path, tables, work / f"scored-{i}.parquet", "--window-rows", "1000")
            same_results(got, want, name)
            listed = pq.read_table(path)
            for column in listed.column_names:
                if column.startswith("__"):
                    continue  # pandas' index
                # The values, not the Arrow type: the output's Arrow schema is polars' (a
                # string may come back as a string_view).
                if got[column].to_pylist() != listed[column].to_pylist():
                    raise AssertionError(f"the list's column {column} came out changed")
        matrix.case(f"list: {name}", check)
    check_small_lists(matrix, work, tables, reference)


def check_small_lists(matrix, work, tables, reference):
    """One-row and id-only lists from DuckDB, each against the same rows from pyarrow."""
    cases = {
        "one row": "SELECT * FROM read_parquet('{r}') LIMIT 1",
        "id-only": "SELECT customer_id, segment_name FROM read_parquet('{r}')",
        "all-null column": "SELECT *, NULL::VARCHAR AS note FROM read_parquet('{r}')",
    }
    for name, query in cases.items():
        def check(name=name, query=query):
            stem = name.replace(" ", "-")
            plain = work / f"small-{stem}-pyarrow.parquet"
            rows = duckdb.sql(query.format(r=reference)).arrow()
            pq.write_table(rows.read_all() if hasattr(rows, "read_all") else rows, plain)
            want = scored(plain, tables, work / f"small-{stem}-want.parquet")
            for codec in ("zstd", "snappy"):
                path = work / f"small-{stem}-{codec}.parquet"
                duckdb.execute(f"COPY ({query.format(r=reference)}) TO '{path}' "
                           f"(FORMAT parquet, COMPRESSION {codec}, PARQUET_VERSION V2)")
                got = scored(path, tables, work / f"small-{stem}-{codec}-scored.parquet")
                same_results(got, want, f"{name} {codec}")
        matrix.case(f"list: duckdb {name}", check)


def csv_text(table, newline="\n"):
    lines = [",".join(table.column_names)]
    for row in table.to_pylist():
        cells = []
        for value in row.values():
            cell = "" if value is None else str(value)
            if any(c in cell for c in ',"\n\r'):
                cell = '"' + cell.replace('"', '""') + '"'
            cells.append(cell)
        lines.append(",".join(cells))
    return newline.join(lines) + newline


def check_csv(matrix, work, tables):
    table = base_list(rows=500, seed=3)
    plain = work / "list.csv"
    plain.write_text(csv_text(table))
    want = scored(plain, tables, work / "csv-want.parquet")
    noted = table.append_column("note", pa.array([f"line one\nline \"two\"\r\n{i}"
                                                  for i in range(table.num_rows)]))
    forms = {
        "BOM": "\ufeff" + csv_text(table),
        "CRLF": csv_text(table, "\r\n"),
        "BOM and CRLF": "\ufeff" + csv_text(table, "\r\n"),
        "quoted newlines": csv_text(noted),
    }
    for name, content in forms.items():
        def check(name=name, content=content):
            path = work / f"list-{name.replace(' ', '-')}.csv"
            path.write_bytes(content.encode())
            got = scored(path, tables, work / f"csv-{name.replace(' ', '-')}.parquet")
            same_results(got, want, name)
            if name == "quoted newlines" and got["note"].to_pylist() != noted["note"].to_pylist():
                raise AssertionError("the quoted newlines came out changed")
        matrix.case(f"csv list: {name}", check)

    def ragged(extra, line):
        def check():
            lines = csv_text(table).splitlines()
            lines[line - 1] = lines[line - 1] + extra
            path = work / f"ragged{len(extra)}.csv"
            path.write_text("\n".join(lines) + "\n")
            out = score(path, tables, work / "ragged.parquet")
            if out.returncode == 0:
                raise AssertionError("a ragged line was scored")
            if f"line {line}" not in out.stderr:
                raise AssertionError(f"the error does not name line {line}: {out.stderr}")
            if "truncate_ragged_lines" in out.stderr:
                raise AssertionError(f"the error names polars' option: {out.stderr}")
            if (work / "ragged.parquet").exists():
                raise AssertionError("a failed scoring left an output")
        return check
    matrix.case("csv list: a line with a field too many", ragged(",surplus", 40))


def main():
    global ETL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etl", required=True, help="the voucher-etl binary")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    args = parser.parse_args()
    ETL = args.etl
    work = Path(tempfile.mkdtemp(prefix="interop-test-"))
    matrix = Matrix()
    started = time.monotonic()
    try:
        tables = check_histories(matrix, work)
        check_lists(matrix, work, tables)
        check_csv(matrix, work, tables)
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"interop matrix in {time.monotonic() - started:.0f}s")
    for name in matrix.failed:
        print(f"failed: {name}")
    print(f"{len(matrix.passed)} passed, {len(matrix.failed)} failed")
    return 1 if matrix.failed else 0


if __name__ == "__main__":
    sys.exit(main())
