#!/usr/bin/env bash
# Executes notebooks/voucher_exploration.ipynb headless and checks that it wrote its charts.
#
#   bash notebooks/run.sh               the history and tables that `make run` produces
#                                       (VOUCHER_HISTORY, VOUCHER_TABLES_DIR override them)
#   bash notebooks/run.sh --generated   a fresh generated history, published with voucher-etl
#                                       into a temporary tables directory (what CI runs)
#
# Environment:
#   VOUCHER_HISTORY         history file       (default data/sample-history.parquet)
#   VOUCHER_TABLES_DIR      tables directory   (default tables)
#   VOUCHER_NOTEBOOK_OUT    executed notebook and PNG charts (default notebooks/output)
#   VOUCHER_NOTEBOOK_VENV   virtual environment (default notebooks/.venv), made on first use
#   VOUCHER_PYTHON          the Python that creates it (default python3)
#   VOUCHER_ETL             voucher-etl binary for --generated (default target/release/voucher-etl
#                           or target/debug/voucher-etl, whichever is newer)
#   VOUCHER_NOTEBOOK_ROWS   rows to generate with --generated (default 50000)
#   VOUCHER_NOTEBOOK_SEED   seed for --generated (default 7)
#   VOUCHER_SEGMENTS        segment definitions for --generated (default data/segments.toml)
#
# Relative paths given in the environment are taken from the current directory; the defaults
# are relative to the repository root. Nothing is installed outside the virtual environment.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
notebook="$here/voucher_exploration.ipynb"
expected_charts=(
  01_rows_per_country
  02_drop_rules
  03_total_orders
  04_days_since_last_order
  05_amount_shares_frequent_segment
  06_amount_shares_recency_segment
  07_mode_margins
  08_amounts_by_country
  09_published_table
)

die() {
  echo "error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# $1 if absolute, else $1 from the current directory.
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

# The environment variable named $1 as an absolute path, or $2 under the repository root.
path_setting() {
  local value="${!1:-}"
  if [[ -n "$value" ]]; then absolute "$value"; else printf '%s\n' "$root/$2"; fi
}

generated=false
case "${1:-}" in
  "") ;;
  --generated) generated=true ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    echo "error: unknown argument: $1" >&2
    exit 2
    ;;
esac
[[ $# -le 1 ]] || {
  usage >&2
  exit 2
}

out="$(path_setting VOUCHER_NOTEBOOK_OUT notebooks/output)"
venv="$(path_setting VOUCHER_NOTEBOOK_VENV notebooks/.venv)"
python="${VOUCHER_PYTHON:-python3}"

tmp=""
cleanup() { [[ -z "$tmp" ]] || rm -rf "$tmp"; }
trap cleanup EXIT

if $generated; then
  etl="${VOUCHER_ETL:-}"
  if [[ -n "$etl" ]]; then
    etl="$(absolute "$etl")"
  else
    # The newer of the two builds: a release binary left from older sources must not win.
    for candidate in "$root/target/release/voucher-etl" "$root/target/debug/voucher-etl"; do
      if [[ -x "$candidate" ]] && { [[ -z "$etl" ]] || [[ "$candidate" -nt "$etl" ]]; }; then
        etl="$candidate"
      fi
    done
  fi
  [[ -n "$etl" && -x "$etl" ]] ||
    die "no voucher-etl binary${etl:+ at $etl}: build it first (\`cargo build -p voucher-etl\` or \`make build\`), or set VOUCHER_ETL"
  segments="$(path_setting VOUCHER_SEGMENTS data/segments.toml)"
  rows="${VOUCHER_NOTEBOOK_ROWS:-50000}"
  seed="${VOUCHER_NOTEBOOK_SEED:-7}"
  tmp="$(mktemp -d)"
  history="$tmp/history.parquet"
  tables="$tmp/tables"
  echo "== generating $rows rows of history (seed $seed) with $etl"
  "$etl" generate --rows "$rows" --seed "$seed" --output "$history" --segments "$segments" \
    >"$tmp/etl.log" 2>&1 || {
    cat "$tmp/etl.log" >&2
    die "voucher-etl generate failed"
  }
  [[ -f "$history" ]] || die "$etl generate exited 0 but wrote no $history (an outdated build? set VOUCHER_ETL)"
  echo "== publishing a table from it with voucher-etl run --countries all"
  "$etl" run --input "$history" --output "$tables" --countries all --segments "$segments" \
    >"$tmp/etl.log" 2>&1 || {
    cat "$tmp/etl.log" >&2
    die "voucher-etl run failed"
  }
  [[ -f "$tables/CURRENT" ]] || die "$etl run exited 0 but published nothing in $tables"
else
  history="$(path_setting VOUCHER_HISTORY data/sample-history.parquet)"
  tables="$(path_setting VOUCHER_TABLES_DIR tables)"
  problems=()
  [[ -f "$history" ]] || problems+=("no history file at $history")
  if [[ ! -f "$tables/CURRENT" ]]; then
    problems+=("no published table: $tables/CURRENT does not exist")
  else
    version="$(head -n 1 "$tables/CURRENT")"
    for f in vouchers.parquet manifest.json; do
      [[ -f "$tables/$version/$f" ]] ||
        problems+=("$tables/CURRENT names version '$version', which has no $f")
    done
  fi
  if ((${#problems[@]})); then
    printf 'error: %s\n' "${problems[@]}" >&2
    echo "Run \`make run\` first: it writes data/sample-history.parquet and publishes tables/." >&2
    echo "Or point VOUCHER_HISTORY and VOUCHER_TABLES_DIR at a history file and a tables directory," >&2
    echo "or run \`bash notebooks/run.sh --generated\` to use freshly generated data." >&2
    exit 1
  fi
fi

# The virtual environment, (re)installed only when requirements.txt changed.
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating a virtual environment in $venv"
  "$python" -m venv "$venv" ||
    die "could not create a virtual environment with $python (on Debian: apt-get install python3-venv)"
fi
if ! cmp -s "$here/requirements.txt" "$venv/.voucher-requirements.txt"; then
  echo "== installing notebooks/requirements.txt into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.voucher-requirements.txt"
fi

mkdir -p "$out"
for chart in "${expected_charts[@]}"; do rm -f "$out/$chart.png"; done
rm -f "$out/charts.txt"
executed="$out/voucher_exploration.executed.ipynb"

echo "== executing the notebook on $history and $tables"
export VOUCHER_HISTORY="$history" VOUCHER_TABLES_DIR="$tables" VOUCHER_NOTEBOOK_OUT="$out"
export PATH="$venv/bin:$PATH"
# The kernel is the venv's own ipykernel: prefer the venv's kernel spec over any user one.
export JUPYTER_PREFER_ENV_PATH=1 JUPYTER_PLATFORM_DIRS=1
export MPLBACKEND="module://matplotlib_inline.backend_inline"
"$venv/bin/python" - "$notebook" "$executed" "$root" <<'PY'
import os
import re
import sys
import tempfile

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

source, executed, cwd = sys.argv[1:4]
nb = nbformat.read(source, as_version=4)
timeout = int(os.environ.get("VOUCHER_NOTEBOOK_TIMEOUT", "900"))
# Talk to the kernel over Unix sockets in a private directory rather than over loopback TCP.
sockets = tempfile.TemporaryDirectory(prefix="voucher-kernel-")
config = Config()
config.KernelManager.transport = "ipc"
config.KernelManager.ip = os.path.join(sockets.name, "kernel")
client = NotebookClient(
    nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": cwd}}, config=config
)
try:
    client.execute()
except CellExecutionError as error:
    nbformat.write(nb, executed)
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    print(message[-6000:], file=sys.stderr)
    print(f"error: the notebook failed; the executed copy up to the failing cell is {executed}", file=sys.stderr)
    sys.exit(1)
nbformat.write(nb, executed)
PY

missing=()
for chart in "${expected_charts[@]}"; do
  [[ -s "$out/$chart.png" ]] || missing+=("$out/$chart.png")
done
if ((${#missing[@]})); then
  printf 'error: the notebook ran but did not write %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "notebook OK: executed copy $executed, ${#expected_charts[@]} charts in $out"
