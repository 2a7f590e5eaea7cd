"""Helpers the benchmark scripts share: timing a child process with its peak RSS, the machine's
description, and rewriting a section of bench/RESULTS.md between markers (bench/etl_bench.py's
table; a script that adds a row to a table uses bench/results.py's add_row)."""

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


# Runs its arguments as a child and prints the child's peak RSS (KiB) on stderr's last line.
# Linux hands a process's peak RSS at exec down from the memory it replaces: a child forked by
# this script (duckdb and pyarrow loaded, ~100 MiB and more) would report at least this
# script's peak, whatever it used itself. Forked from this small interpreter instead, the
# floor is its few MiB.
_PEAK_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\npeak_rss_kib={usage.ru_maxrss}\\n")
sys.exit(min(os.waitstatus_to_exitcode(status) & 0xFF, 255))
"""


def timed(cmd, env=None):
    """Runs `cmd`; its wall time in seconds and peak RSS in MiB (wait4: the process's own
    high-water mark, not a sampled value). Exits with the child's stderr if it fails."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-S", "-c", _PEAK_RSS, *cmd], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    _, _, last = err.rstrip("\n").rpartition("\n")
    if proc.returncode != 0 or not last.startswith("peak_rss_kib="):
        sys.exit(f"{cmd[0]} failed:\n{err}")
    return wall, int(last.split("=", 1)[1]) / 1024  # KiB -> MiB


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine():
    """The machine, for the text above a table."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"{platform.system()} {platform.release()}")


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def commit():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(start, end, lines):
    """Replaces the text between the markers `start` and `end` in RESULTS.md with `lines`, or
    adds them at the end."""
    section = "\n".join([start, *lines, end]) + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end) + "\n?", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)

