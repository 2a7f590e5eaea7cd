#!/usr/bin/env bash
# Proves that each deploy check can fail: every case under deploy/broken/ is a deliberately
# broken copy of one or more deployment files, laid over a copy of the real ones, and its
# EXPECT file says which check must fail on it and with which message (one `CHECK REGEX` a
# line; REGEX is an extended regular expression). The real files must pass every check first,
# so a case fails because of its sample and nothing else.
#
# Usage: deploy/test_checks.sh [CASE...]    (default: every case)
# Closes with "N passed, N failed"; exits 1 if a case did not fail as expected, or if there
# were no cases at all.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BROKEN=$HERE/broken
# What the checks read, besides deploy/ itself (which they use from this repository).
FILES=(k8s kind docker-compose.yml Dockerfile.api Dockerfile.etl .dockerignore docs/operations.md
    api/src/routes.rs data/segments.toml deploy/check.sh deploy/test_checks.sh deploy/build_images.sh)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
indent() { sed 's/^/    /'; }

# The binaries for config-docs, built once rather than by every run of the check.
if [[ -z ${VOUCHER_ETL_BIN:-} || -z ${VOUCHER_API_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --quiet -p voucher-etl -p voucher-api --bins) || { echo "FAIL cargo build"; exit 1; }
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    export VOUCHER_ETL_BIN=$TARGET/debug/voucher-etl VOUCHER_API_BIN=$TARGET/debug/voucher-api
fi

pristine=$WORK/pristine
mkdir -p "$pristine"
(cd "$ROOT" && cp -a --parents "${FILES[@]}" "$pristine/")

# The real files: every check passes.
if "$HERE/check.sh" --root "$pristine" >"$WORK/baseline.log" 2>&1; then
    pass "baseline: every check passes on the real files"
else
    fail "baseline: the real files fail a check, so the broken samples prove nothing:"
    indent <"$WORK/baseline.log"
    echo "$passed passed, $failed failed"
    exit 1
fi

cases=("$@")
if ((${#cases[@]} == 0)); then
    for dir in "$BROKEN"/*/; do
        cases+=("$(basename "$dir")")
    done
fi
if ((${#cases[@]} == 0)) || [[ ${cases[0]} == '*' ]]; then
    fail "no broken samples under $BROKEN"
    echo "$passed passed, $failed failed"
    exit 1
fi

for name in "${cases[@]}"; do
    case_dir=$BROKEN/$name
    if [[ ! -s $case_dir/EXPECT ]]; then
        fail "$name: no EXPECT file"
        continue
    fi
    copy=$WORK/case-$name
    cp -a "$pristine" "$copy"
    # Lay the sample's files over the copy; each must replace an existing file.
    while IFS= read -r -d '' file; do
        rel=${file#"$case_dir"/}
        [[ -e $copy/$rel ]] || fail "$name: $rel replaces no file of the repository"
        mkdir -p "$(dirname "$copy/$rel")"
        cp "$file" "$copy/$rel"
    done < <(find "$case_dir" -type f ! -name EXPECT -print0)
    while read -r check regex; do
        [[ -z $check ]] && continue
        out=$("$HERE/check.sh" --root "$copy" "$check" 2>&1)
        status=$?
        if ((status == 0)); then
            fail "$name: check $check passed on the broken sample"
            indent <<<"$out"
        elif ! grep -qE -- "$regex" <<<"$out"; then
            fail "$name: check $check failed, but without /$regex/:"
            indent <<<"$out"
        else
            pass "$name: $check fails ($(grep -m1 -oE -- "$regex" <<<"$out"))"
        fi
    done <"$case_dir/EXPECT"
    rm -rf "$copy"
done

echo "$passed passed, $failed failed"
((failed == 0))
