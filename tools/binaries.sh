# shellcheck shell=bash
# Sourced by the test scripts that run the project's binaries.
#
# voucher_binaries ROOT TARGET: sets VOUCHER_ETL_BIN, VOUCHER_API_BIN, VOUCHER_EVENTS_BIN and
# PUBLISH_TABLE_BIN (serve/examples/publish_table). CI sets VOUCHER_ETL_BIN and VOUCHER_API_BIN to
# what `make test` (cargo test --workspace) built, and the others are found beside them: a
# `cargo build -p ...` here would unify features differently from the workspace's test build and
# recompile a good part of the tree on a fresh machine. Run by hand, the script builds them.
voucher_binaries() {
    local root=$1 target=$2
    if [[ -z ${VOUCHER_ETL_BIN:-} || -z ${VOUCHER_API_BIN:-} ]]; then
        printf '%s: building voucher-etl, voucher-api and voucher-events\n' "$(basename "$0")" >&2
        (cd "$root" && cargo build --quiet -p voucher-etl -p voucher-api -p voucher-events \
            -p voucher-serve --bins --example publish_table)
        VOUCHER_ETL_BIN=$target/debug/voucher-etl VOUCHER_API_BIN=$target/debug/voucher-api
    fi
    local dir
    dir=$(dirname "$VOUCHER_API_BIN")
    VOUCHER_EVENTS_BIN=${VOUCHER_EVENTS_BIN:-$dir/voucher-events}
    PUBLISH_TABLE_BIN=${PUBLISH_TABLE_BIN:-$dir/examples/publish_table}
    local bin
    for bin in "$VOUCHER_ETL_BIN" "$VOUCHER_API_BIN" "$VOUCHER_EVENTS_BIN" "$PUBLISH_TABLE_BIN"; do
        [[ -x $bin ]] || { printf '%s: %s is missing (unset VOUCHER_ETL_BIN and VOUCHER_API_BIN to build it)\n' "$(basename "$0")" "$bin" >&2; return 1; }
    done
    export VOUCHER_ETL_BIN VOUCHER_API_BIN VOUCHER_EVENTS_BIN PUBLISH_TABLE_BIN
}
