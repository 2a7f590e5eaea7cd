#!/usr/bin/env bash
# Proves that each deploy check can fail: every case under deploy/broken/<case>/ is a small
# patch (change.patch, a unified diff against the real files) that breaks one thing, applied
# to a copy of the real files; its EXPECT file says which check must fail on it and with which
# message (one `CHECK REGEX` a line; REGEX is an extended regular expression). A patch that no
# longer applies fails the case, so a sample cannot drift from the files it breaks. The real
# files must pass every check first, so a case fails because of its patch and nothing else.
#
# Usage: deploy/test_checks.sh [CASE...]    (default: every case)
# Closes with "N passed, N failed"; exits 1 if a case did not fail as expected, or if there
# were no cases at all.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BROKEN=$HERE/broken
# What the checks read, besides deploy/ itself (which they use from this repository).
FILES=(k8s kind docker-compose.yml Dockerfile.api Dockerfile.etl Dockerfile.events .dockerignore docs/operations.md
    data/segments.toml Cargo.toml shared/Cargo.toml serve/Cargo.toml postgres/Cargo.toml etl/Cargo.toml
    api/Cargo.toml events/Cargo.toml bench/ceiling/Cargo.toml deploy/check.sh deploy/test_checks.sh deploy/build_images.sh)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
indent() { sed 's/^/    /'; }

# The binaries for config-docs, built once rather than by every run of the check.
if [[ -z ${VOUCHER_ETL_BIN:-} || -z ${VOUCHER_API_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --quiet -p voucher-etl -p voucher-api -p voucher-events --bins) \
        || { echo "FAIL cargo build"; exit 1; }
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

# A patch whose context is not in the files must be refused, so that a drifted sample fails.
probe=$WORK/probe
cp -a "$pristine" "$probe"
printf -- '--- a/k8s/hpa-api.yaml\n+++ b/k8s/hpa-api.yaml\n@@ -1,2 +1,2 @@\n-a line that is not there\n+x\n context\n' >"$WORK/stale.patch"
if patch --directory="$probe" --strip=1 --forward --batch --fuzz=0 --dry-run \
    --input="$WORK/stale.patch" >/dev/null 2>&1; then
    fail "a patch that does not match the files applied"
else
    pass "a patch that does not match the files is refused"
fi
rm -rf "$probe"

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
    if ! out=$(patch --directory="$copy" --strip=1 --forward --batch --no-backup-if-mismatch \
        --fuzz=0 --input="$case_dir/change.patch" 2>&1); then
        fail "$name: change.patch does not apply to the current files; remake it against them:"
        indent <<<"$out"
        rm -rf "$copy"
        continue
    fi
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
