#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks: Debian's PostgreSQL, started on
# 127.0.0.1 on a free port in a temporary directory, and removed at exit. Source it, then:
#
#   postgres_start        installs PostgreSQL when missing (apt-get, as root), runs initdb and
#                         the server (as the `postgres` user when root: initdb refuses root),
#                         sets an EXIT trap that stops it, and exports:
#     VOUCHER_TEST_POSTGRES_URL   postgresql://voucher@127.0.0.1:PORT/vouchers (a superuser,
#                                 logging in without a password)
#     VOUCHER_TEST_POSTGRES_CERT  the certificate of the test authority that signed the
#                                 server's (which names 127.0.0.1); unset when openssl is
#                                 missing (then the server has no TLS)
#     PG_TEST_DIR, PG_TEST_PORT, PG_TEST_BIN (the server's bin directory)
#     PG_TEST_CTL                 a script that stops (`$PG_TEST_CTL stop`) and starts again
#                                 (`$PG_TEST_CTL start`) the same server, for tests that take
#                                 it away under a running service
#   postgres_psql ARGS... psql on that server as `voucher`, database vouchers ($PG_TEST_DB)
#   postgres_stop         stops the server and deletes its directory (the trap calls it)
#
# Roles made members of the group `password_login` must log in over TCP with a password
# (scram-sha-256); every other role is trusted, from 127.0.0.1 only.
# Environment: PG_TEST_PORT to choose the port.

pg_log() { printf 'postgres.sh: %s\n' "$*" >&2; }

postgres_install() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
    if [[ $(id -u) != 0 ]]; then
        pg_log "PostgreSQL is not installed; install Debian's postgresql package (as root)"
        return 1
    fi
    pg_log "installing PostgreSQL (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# as_postgres CMD...: runs CMD as the owner of the server's files.
as_postgres() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

postgres_start() {
    postgres_install || return 1
    local bins
    bins=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)
    PG_TEST_BIN=$bins
    PG_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/voucher-pg-XXXXXX")
    PG_TEST_PORT=${PG_TEST_PORT:-$(free_port)}
    export PG_TEST_BIN PG_TEST_DIR PG_TEST_PORT
    trap postgres_stop EXIT
    [[ $(id -u) == 0 ]] && chown postgres: "$PG_TEST_DIR"
    local data=$PG_TEST_DIR/data
    as_postgres "$bins/initdb" -D "$data" -A trust -U voucher --no-sync -E UTF8 --locale C.UTF-8 \
        >"$PG_TEST_DIR/initdb.log" 2>&1 || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
    cat >"$data/pg_hba.conf" <<'EOF'
local all all                       trust
host  all +password_login 127.0.0.1/32 scram-sha-256
host  all all             127.0.0.1/32 trust
EOF
    local tls=()
    unset VOUCHER_TEST_POSTGRES_CERT
    if command -v openssl >/dev/null; then
        # A test authority and a server certificate it signs (verifiers refuse a CA certificate
        # as the server's own), naming 127.0.0.1.
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -days 2 -subj /CN=voucher-test-ca \
            -keyout "$PG_TEST_DIR/ca.key" -out "$PG_TEST_DIR/ca.crt" 2>/dev/null
        openssl req "${ec[@]}" -subj /CN=127.0.0.1 -keyout "$data/server.key" \
            -out "$PG_TEST_DIR/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$PG_TEST_DIR/server.ext"
        openssl x509 -req -in "$PG_TEST_DIR/server.csr" -CA "$PG_TEST_DIR/ca.crt" \
            -CAkey "$PG_TEST_DIR/ca.key" -CAcreateserial -days 2 -extfile "$PG_TEST_DIR/server.ext" \
            -out "$data/server.crt" 2>/dev/null
        chmod 600 "$data/server.key"
        [[ $(id -u) == 0 ]] && chown postgres: "$data/server.key" "$data/server.crt"
        tls=(-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key)
        export VOUCHER_TEST_POSTGRES_CERT=$PG_TEST_DIR/ca.crt
    fi
    # Durability is of no use to a throwaway server; without it loading test data is quick.
    local options="-p $PG_TEST_PORT -k $PG_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${tls[*]}"
    local as=()
    [[ $(id -u) == 0 ]] && as=(runuser -u postgres --)
    export PG_TEST_CTL=$PG_TEST_DIR/ctl
    {
        echo '#!/usr/bin/env bash'
        echo '# Stops or starts the test server of tools/postgres.sh: ctl stop|start'
        echo 'set -euo pipefail'
        # The script's own $1 and $0, written literally.
        # shellcheck disable=SC2016
        printf 'case ${1:-} in\n'
        printf '    start) exec %s -D %q -l %q -w -t 60 -o %q start >/dev/null ;;\n' \
            "${as[*]} $bins/pg_ctl" "$data" "$PG_TEST_DIR/server.log" "$options"
        printf '    stop) exec %s -D %q -m fast -w stop >/dev/null ;;\n' "${as[*]} $bins/pg_ctl" "$data"
        # shellcheck disable=SC2016
        printf '    *) echo "usage: $0 stop|start" >&2; exit 2 ;;\nesac\n'
    } >"$PG_TEST_CTL"
    chmod 755 "$PG_TEST_CTL"
    "$PG_TEST_CTL" start || { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
    PG_TEST_DB=postgres postgres_psql -c "CREATE ROLE password_login NOLOGIN" -c "CREATE DATABASE vouchers" \
        >/dev/null || return 1
    export VOUCHER_TEST_POSTGRES_URL="postgresql://voucher@127.0.0.1:$PG_TEST_PORT/vouchers"
    pg_log "PostgreSQL $("$bins/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_TEST_PORT ($PG_TEST_DIR)"
}

postgres_psql() {
    "$PG_TEST_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_TEST_PORT" -U voucher \
        -d "${PG_TEST_DB:-vouchers}" "$@"
}

postgres_stop() {
    [[ -n ${PG_TEST_DIR:-} && -d $PG_TEST_DIR ]] || return 0
    as_postgres "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
    PG_TEST_DIR=
}
