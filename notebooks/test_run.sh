#!/usr/bin/env bash
# Checks that notebooks/run.sh fails when it should: missing inputs, a published table whose
# manifest disagrees with the drop rules, a bad argument; and that the committed notebook
# carries no outputs. Needs a voucher-etl binary (see run.sh) for the manifest case.
#
#   bash notebooks/test_run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run="$here/run.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() {
  echo "ok    $1"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL  $1" >&2
  sed 's/^/      /' "$tmp/log" >&2 || true
  failed=$((failed + 1))
}

# expect_failure NAME PATTERN COMMAND...: COMMAND exits non-zero and its output matches PATTERN.
expect_failure() {
  local name="$1" pattern="$2"
  shift 2
  if "$@" >"$tmp/log" 2>&1; then
    fail "$name (exited 0)"
  elif grep -qE "$pattern" "$tmp/log"; then
    pass "$name"
  else
    fail "$name (no line matching /$pattern/)"
  fi
}

# Inputs for the cases: a small generated history published into a tables directory.
history="$tmp/history.parquet"
tables="$tmp/tables"
etl="${VOUCHER_ETL:-}"
if [[ -z "$etl" ]]; then
  for candidate in "$here/../target/release/voucher-etl" "$here/../target/debug/voucher-etl"; do
    if [[ -x "$candidate" ]] && { [[ -z "$etl" ]] || [[ "$candidate" -nt "$etl" ]]; }; then
      etl="$candidate"
    fi
  done
fi
[[ -n "$etl" && -x "$etl" ]] || {
  echo "error: no voucher-etl binary: run \`cargo build -p voucher-etl\` or set VOUCHER_ETL" >&2
  exit 1
}
segments="$here/../data/segments.toml"
"$etl" generate --rows 5000 --seed 3 --output "$history" --segments "$segments" >/dev/null
"$etl" run --input "$history" --output "$tables" --countries all --segments "$segments" >/dev/null 2>&1
version="$(cat "$tables/CURRENT")"
export VOUCHER_NOTEBOOK_OUT="$tmp/out"

# 1. A tables directory with no CURRENT: a clear message that points at `make run`.
mkdir -p "$tmp/empty-tables"
expect_failure "no CURRENT in the tables directory" 'make run' \
  env VOUCHER_HISTORY="$history" VOUCHER_TABLES_DIR="$tmp/empty-tables" bash "$run"

# 2. No history file.
expect_failure "no history file" 'no history file.*|make run' \
  env VOUCHER_HISTORY="$tmp/absent.parquet" VOUCHER_TABLES_DIR="$tables" bash "$run"

# 3. CURRENT names a version directory that is not there.
mkdir -p "$tmp/dangling"
echo 20000101T000000Z >"$tmp/dangling/CURRENT"
expect_failure "CURRENT names a missing version" 'has no vouchers.parquet' \
  env VOUCHER_HISTORY="$history" VOUCHER_TABLES_DIR="$tmp/dangling" bash "$run"

# 4. An unknown argument.
expect_failure "unknown argument" 'unknown argument' bash "$run" --bogus

# 5. A manifest whose drop counts disagree with the rules: the notebook itself must fail.
cp -r "$tables" "$tmp/tampered"
python3 - "$tmp/tampered/$version/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
manifest = json.load(open(path))
manifest["dropped"]["recency"] += 1
manifest["rows_kept"] -= 1
json.dump(manifest, open(path, "w"), indent=2)
PY
expect_failure "manifest disagrees with the recomputed drop rules" \
  "disagrees with the contract's drop rules" \
  env VOUCHER_HISTORY="$history" VOUCHER_TABLES_DIR="$tmp/tampered" bash "$run"

# 6. A tables directory built from another history: caught before any chart is drawn.
"$etl" generate --rows 1000 --seed 4 --output "$tmp/other.parquet" --segments "$segments" >/dev/null
expect_failure "tables built from a different history" 'was not built from this history' \
  env VOUCHER_HISTORY="$tmp/other.parquet" VOUCHER_TABLES_DIR="$tables" bash "$run"

# 7. The committed notebook has no outputs.
if python3 - "$here/voucher_exploration.ipynb" >"$tmp/log" 2>&1 <<'PY'; then
import json, sys
nb = json.load(open(sys.argv[1]))
dirty = [i for i, c in enumerate(nb["cells"])
         if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
if dirty:
    sys.exit(f"cells with outputs: {dirty}; clear them before committing")
PY
  pass "committed notebook has no outputs"
else
  fail "committed notebook has no outputs"
fi

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
