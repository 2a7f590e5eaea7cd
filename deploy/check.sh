#!/usr/bin/env bash
# Static checks of the deployment files, offline: one line per check, exit 1 if any fails.
# Installs its pinned tools (deploy/requirements.txt) into deploy/.venv (or
# $VOUCHER_DEPLOY_VENV) on first use, and again when the requirements change.
#
# Usage: deploy/check.sh [--root DIR] [CHECK...]
#   --root DIR   check the files under DIR instead of this repository (deploy/test_checks.sh
#                points it at a copy with a broken sample in it)
#   CHECK        run only these checks: yamllint, kubernetes-validate, kustomize, checkov,
#                hadolint, shellcheck, kind-schema, refs, config-docs, monitoring (default: all)
# Environment:
#   K8S_VERSION       Kubernetes version to validate against (default: 1.37.0, the newest
#                     kubernetes-validate ships schemas for)
#   VOUCHER_ETL_BIN, VOUCHER_API_BIN   binaries for refs and config-docs (default: built with
#                     `cargo build --bins`); VOUCHER_EVENTS_BIN defaults to voucher-events beside
#                     VOUCHER_API_BIN (where the workspace's builds put it)
#   VERBOSE=1         print each tool's full output, not only on failure
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [[ ${1:-} == --root ]]; then
    ROOT=$(cd "$2" && pwd)
    shift 2
fi
K8S_VERSION=${K8S_VERSION:-1.37.0}
VENV=${VOUCHER_DEPLOY_VENV:-$HERE/.venv}
ALL=(yamllint kubernetes-validate kustomize checkov hadolint shellcheck kind-schema refs config-docs monitoring)
CHECKS=("$@")
((${#CHECKS[@]})) || CHECKS=("${ALL[@]}")

# --- tools ------------------------------------------------------------------------------
stamp=$VENV/.requirements
if ! cmp -s "$HERE/requirements.txt" "$stamp" 2>/dev/null; then
    echo "installing the check tools into $VENV" >&2
    python3 -m venv "$VENV" || { echo "FAIL setup: python3 -m venv" >&2; exit 1; }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2 \
        || { echo "FAIL setup: pip install -r deploy/requirements.txt" >&2; exit 1; }
    cp "$HERE/requirements.txt" "$stamp"
fi
PATH=$VENV/bin:$PATH
PY=$VENV/bin/python

# --- binaries: the route table, --help and segment validation come from the real programs ---
if [[ -z ${VOUCHER_ETL_BIN:-} || -z ${VOUCHER_API_BIN:-} ]]; then
    (cd "$HERE/.." && cargo build --quiet -p voucher-etl -p voucher-api -p voucher-events --bins) \
        || { echo "FAIL setup: cargo build of voucher-etl, voucher-api and voucher-events" >&2; exit 1; }
    TARGET=${CARGO_TARGET_DIR:-$HERE/../target}
    export VOUCHER_ETL_BIN=$TARGET/debug/voucher-etl VOUCHER_API_BIN=$TARGET/debug/voucher-api
fi
export VOUCHER_EVENTS_BIN=${VOUCHER_EVENTS_BIN:-$(dirname "$VOUCHER_API_BIN")/voucher-events}

# --- files --------------------------------------------------------------------------------
for var in VOUCHER_ETL_BIN VOUCHER_API_BIN VOUCHER_EVENTS_BIN; do
    [[ -n ${!var:-} ]] && export "$var=$(realpath "${!var}")"
done
cd "$ROOT" || exit 1
mapfile -t MANIFESTS < <(find k8s -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort
    find k8s/sharded k8s/components/events -name '*.yaml' ! -name kustomization.yaml | sort)
mapfile -t YAMLS < <(find k8s kind -name '*.yaml' | sort; echo docker-compose.yml)
# Every shell script of the repository (and CI's script), but the broken samples.
mapfile -t SCRIPTS < <(
    find . \( -name target -o -name .git -o -name .venv -o -name node_modules -o -path ./deploy/broken \) -prune \
        -o -type f -name '*.sh' -print | sed 's|^\./||' | sort
    [[ -f .ci/run ]] && echo .ci/run
)
DOCKERFILES=(Dockerfile.api Dockerfile.etl Dockerfile.events)

failed=()
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# run NAME SUMMARY COMMAND...: runs the command, prints PASS/FAIL NAME and, on failure, its output.
run() {
    local name=$1 summary=$2
    shift 2
    if "$@" >"$OUT" 2>&1; then
        echo "PASS $name ($summary)"
        [[ ${VERBOSE:-0} == 1 ]] && sed 's/^/    /' "$OUT"
    else
        echo "FAIL $name ($summary)"
        sed 's/^/    /' "$OUT"
        failed+=("$name")
    fi
}

# kubernetes-validate exits 0 on warnings (such as an apiVersion it has no schema for, which is
# how a removed API version shows): any WARN or ERROR line fails here.
kubernetes_validate() {
    local output status
    output=$(kubernetes-validate --strict --kubernetes-version "$K8S_VERSION" "$@" 2>&1)
    status=$?
    printf '%s\n' "$output"
    ((status == 0)) && ! grep -qE '^(WARN|ERROR)' <<<"$output"
}

# The Prometheus Operator's objects (PodMonitor, PrometheusRule) of a rendered stream left out.
without_operator_kinds() {
    "$PY" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and not str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)'
}

# Renders the kustomizations with kubectl (when installed) and validates what they produce.
kustomize_render() {
    local dir status=0 rendered
    command -v kubectl >/dev/null || { echo "kubectl not installed: skipped"; return 0; }
    # k8s/ with the optional events, postgres-history and monitoring components enabled, as an
    # overlay would (kustomize takes only relative paths, hence a directory beside k8s/). The
    # Prometheus Operator's kinds have no schema here: the monitoring check reads them.
    local with_events
    with_events=$(mktemp -d "$PWD/.overlay-events-XXXXXX")
    printf 'resources: [../k8s]\ncomponents: [../k8s/components/events, ../k8s/components/postgres-history, ../k8s/monitoring]\n' \
        >"$with_events/kustomization.yaml"
    for dir in k8s "$with_events" kind; do
        rendered=$(mktemp --suffix=.yaml)
        if ! kubectl kustomize "$dir" | without_operator_kinds >"$rendered"; then
            echo "kubectl kustomize $dir failed"
            status=1
        elif ! kubernetes_validate "$rendered"; then
            echo "(rendered from $dir/kustomization.yaml)"
            status=1
        fi
        rm -f "$rendered"
    done
    rm -rf "$with_events"
    return $status
}

checkov_all() {
    local status=0
    # Components hold patches, not whole manifests: checked through what they patch.
    checkov --directory k8s --skip-path 'k8s/components' --framework kubernetes --skip-download \
        --quiet --compact || status=1
    local files=() dockerfile
    for dockerfile in "${DOCKERFILES[@]}"; do
        files+=(--file "$dockerfile")
    done
    checkov "${files[@]}" --framework dockerfile --skip-download --quiet --compact || status=1
    # A skip must say why, next to it: `checkov.io/skipN: CHECK=reason` annotations in manifests,
    # `# checkov:skip=CHECK: reason` comments in Dockerfiles.
    "$PY" - k8s/*.yaml <<'PYEOF' || status=1
import re, sys, yaml
bad = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        for key, value in ((doc or {}).get("metadata", {}).get("annotations") or {}).items():
            if key.startswith("checkov.io/skip") and not re.match(r"^CKV2?_\w+=\s*\S.{9,}", str(value)):
                print(f"{path}: {key}: {value!r}: a checkov skip needs a reason (CHECK=why)")
                bad = 1
sys.exit(bad)
PYEOF
    if grep -nE 'checkov:skip=CKV2?_[A-Z0-9_]+ *:? *$' Dockerfile.*; then
        echo "a checkov skip above has no reason"
        status=1
    fi
    return $status
}

kind_schema() {
    "$PY" - "$HERE/schemas/kind-cluster-v1alpha4.schema.json" kind/cluster.yaml <<'EOF'
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errors = []
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            errors.append(f"{path}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
}

for check in "${CHECKS[@]}"; do
    case $check in
        yamllint)
            run yamllint "${#YAMLS[@]} files" yamllint --strict -c "$HERE/yamllint.yaml" "${YAMLS[@]}" ;;
        kubernetes-validate)
            run kubernetes-validate "${#MANIFESTS[@]} manifests, Kubernetes $K8S_VERSION, strict" \
                kubernetes_validate "${MANIFESTS[@]}" ;;
        kustomize)
            run kustomize "k8s/ (also with components/events, postgres-history and monitoring) and kind/ rendered, then validated" kustomize_render ;;
        checkov)
            run checkov "k8s/, ${DOCKERFILES[*]}" checkov_all ;;
        hadolint)
            run hadolint "${DOCKERFILES[*]}" hadolint --failure-threshold style "${DOCKERFILES[@]}" ;;
        shellcheck)
            run shellcheck "${#SCRIPTS[@]} scripts" shellcheck --severity=style "${SCRIPTS[@]}" ;;
        kind-schema)
            run kind-schema "kind/cluster.yaml against kind.x-k8s.io/v1alpha4" kind_schema ;;
        refs)
            run refs "cross-references" "$PY" "$HERE/check_refs.py" --root "$ROOT" ;;
        config-docs)
            run config-docs "docs/operations.md against --help" "$PY" "$HERE/check_config_docs.py" --root "$ROOT" ;;
        monitoring)
            run monitoring "k8s/monitoring/: PodMonitors, alerts and runbooks, dashboard; metric prefixes" \
                "$PY" "$HERE/check_monitoring.py" --root "$ROOT" ;;
        *)
            echo "FAIL $check (no such check; checks: ${ALL[*]})"
            failed+=("$check") ;;
    esac
done

if ((${#failed[@]})); then
    echo "deploy checks: ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "deploy checks: all ${#CHECKS[@]} passed"
