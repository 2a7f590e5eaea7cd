# shellcheck shell=bash
# Sourced by the test scripts that need Python packages from PyPI.
#
# pinned_venv VENV PACKAGE...: makes VENV a virtualenv with exactly these pinned packages. It is
# built once and reused while the pins are the same (they are recorded in VENV/pins), and built
# again from scratch when they change, so a run never mixes old and new versions.
pinned_venv() {
    local venv=$1
    shift
    if [[ ! -f $venv/pins ]] || [[ $(cat "$venv/pins") != "$*" ]]; then
        printf '%s: installing %s into %s\n' "$(basename "$0")" "$*" "$venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
        echo "$*" >"$venv/pins"
    fi
}
