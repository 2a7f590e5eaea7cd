#!/usr/bin/env bash
# Sourced by the benchmark scripts: `need_tools TOOL...` makes sure each command is there,
# installing the Debian package of the same name when it is missing and we are root (as the
# test scripts install what they need); otherwise it says what to install and fails.
need_tools() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        printf 'installing %s (apt-get)\n' "${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            && return 0
    fi
    printf '%s missing: apt-get install %s\n' "${missing[*]}" "${missing[*]}" >&2
    return 1
}
