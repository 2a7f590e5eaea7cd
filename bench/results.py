"""Writes a benchmark's figures into bench/RESULTS.md: one section per benchmark, newest first.

A section is `## <benchmark>`, an introduction ending with a table's header, the table's rows
(the newest first) and notes after them. `add_row` puts a new row first in its section's
table, in place: the other sections, the older rows and the notes stay as they are. The
benchmark scripts call it (bench/load_test.sh, bench/doors.sh, bench/customers.sh,
bench/events_bench.py); bench/etl_bench.py rewrites its own table between markers instead.

Usage from a script: add_row(path, intro_lines, row, replace_intro=True), where intro_lines
run from the `## ` heading to the table's `|---|` line.
"""

from __future__ import annotations

import re
from pathlib import Path

SEPARATOR = re.compile(r"^\|[-:| ]+\|$")


def add_row(path: str | Path, intro: list[str], row: str, replace_intro: bool = True) -> None:
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else ["# Benchmark results"]
    heading = intro[0].strip()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *intro, row]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        section = lines[start:end]
        sep = next((i for i, line in enumerate(section) if SEPARATOR.match(line.strip())), None)
        if sep is None:
            head, rows, notes = intro, [], []
        else:
            first_note = next((i for i in range(sep + 1, len(section)) if not section[i].startswith("|")), len(section))
            head = intro if replace_intro else section[: sep + 1]
            rows, notes = section[sep + 1 : first_note], section[first_note:]
        if end < len(lines) and (not notes or notes[-1].strip()):
            notes = [*notes, ""]
        lines[start:end] = [*head, row, *(r for r in rows if r != row), *notes]
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
