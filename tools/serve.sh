# shellcheck shell=bash
# Sourced by the scripts that run a server of the project (voucher-api, voucher-events, the
# benchmark ceiling) on port 0: start it, wait for the address it logs, stop it at exit.
#
# Sourcing it makes WORK, a scratch directory for the script (the servers' logs go there too),
# and sets an EXIT trap that stops every server started and removes WORK.
#
# serve_start NAME COMMAND [ARG...]: runs COMMAND in the background (with RUST_LOG=info unless
#   RUST_LOG is set), its output in $WORK/NAME.log, and waits until it logs the address it
#   listens on ("... on http://HOST:PORT", or https), and sets ${NAME}_URL to that URL and
#   ${NAME}_PID. If the server exits first or logs no address within 30 s, prints its log and
#   fails. COMMAND may be `env VAR=value BINARY` to give the server environment of its own.
# serve_grpc NAME: waits until voucher-api NAME logs its gRPC address ("gRPC listening on
#   HOST:PORT") and sets ${NAME}_GRPC to it.
# serve_ready NAME: waits until ${NAME}_URL/readyz answers 200 (30 s at most; needs curl).
# serve_stop_all: stops every server started (SIGINT, then waits for it).

WORK=$(mktemp -d)
SERVE_PIDS=()
trap 'serve_stop_all; rm -rf "$WORK"' EXIT

serve_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

serve_start() {
    local name=$1 pid
    shift
    RUST_LOG=${RUST_LOG:-info} "$@" >"$WORK/$name.log" 2>&1 &
    pid=$!
    SERVE_PIDS+=("$pid")
    printf -v "${name}_PID" '%s' "$pid"
    serve_wait_for "$name" URL 's|.* on \(https\{0,1\}://[^ ]*\).*|\1|p'
}

serve_grpc() {
    serve_wait_for "$1" GRPC 's|.*gRPC listening on \([^ ]*\).*|\1|p'
}

# serve_wait_for NAME SUFFIX SED: waits until SED prints something from NAME's log; sets
# ${NAME}_${SUFFIX} to its first line.
serve_wait_for() {
    local name=$1 suffix=$2 script=$3 log=$WORK/$1.log pid_var=${1}_PID found
    for _ in $(seq 300); do
        found=$(sed -n "$script" "$log" | head -n 1)
        if [[ -n $found ]]; then
            printf -v "${name}_${suffix}" '%s' "$found"
            return 0
        fi
        if ! kill -0 "${!pid_var}" 2>/dev/null; then
            serve_log "$name exited before it logged its address:"
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    serve_log "$name logged no address within 30 s:"
    cat "$log" >&2
    return 1
}

serve_ready() {
    local name=$1 url_var=${1}_URL
    for _ in $(seq 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "${!url_var}/readyz") == 200 ]] && return 0
        sleep 0.1
    done
    serve_log "$name is not ready at ${!url_var}/readyz after 30 s:"
    cat "$WORK/$name.log" >&2
    return 1
}

serve_stop_all() {
    local pid
    for pid in "${SERVE_PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${SERVE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVE_PIDS=()
}
