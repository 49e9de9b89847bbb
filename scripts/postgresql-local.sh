#!/usr/bin/env bash
# A private PostgreSQL cluster on 127.0.0.1, for tests and benchmarks.
#
#   scripts/postgresql-local.sh up [STATE_DIR]     install (Debian's postgresql), initdb, start;
#                                                  prints the URL (also in STATE_DIR/url)
#   scripts/postgresql-local.sh down [STATE_DIR]   stop it (pg_ctl, by its data directory)
#
# The cluster runs as the unprivileged `postgres` user in STATE_DIR (a temporary directory
# by default), on a spare port, listening on loopback only, with a role `gangamon` whose
# password is made at initdb; nothing of the system's own clusters is touched. Idempotent: a
# running cluster is left alone and its URL printed again. Tests read the URL from
# $GANGAMON_TEST_POSTGRESQL: `export GANGAMON_TEST_POSTGRESQL=$(scripts/postgresql-local.sh up)`.
set -euo pipefail

action=${1:-up}
state=${2:-${TMPDIR:-/tmp}/gangamon-postgresql}
data=$state/data

log() { printf 'postgresql-local: %s\n' "$*" >&2; }

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bin_dir() {  # the newest installed server's binaries
    local found
    found=$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] && dirname "$found"
}

install_packages() {
    if [ -z "$(bin_dir)" ]; then
        log "installing postgresql"
        apt-get update -qq
        # policy-rc.d keeps the package's own cluster from starting where there is one.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql >/dev/null
    fi
}

running() {
    [ -s "$data/postmaster.pid" ] && as_postgres "$(bin_dir)/pg_ctl" status -D "$data" >/dev/null 2>&1
}

spare_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
    umask 077  # the password file and the URL, which holds it, are for this user alone
    install_packages
    local bin
    bin=$(bin_dir)
    if running && [ -s "$state/url" ]; then
        cat "$state/url"
        return 0
    fi
    install -d -m 0700 "$state"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$state"; fi
    if [ ! -s "$data/PG_VERSION" ]; then
        local password
        password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
        printf '%s\n' "$password" > "$state/password"
        if [ "$(id -u)" -eq 0 ]; then chown postgres: "$state/password"; fi
        as_postgres "$bin/initdb" -D "$data" -U postgres --auth-local=peer \
            --auth-host=scram-sha-256 --pwfile="$state/password" -E UTF8 >/dev/null
    fi
    local port
    port=$(spare_port)
    as_postgres "$bin/pg_ctl" start -D "$data" -w -t 30 -l "$state/server.log" \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$state" \
        >/dev/null
    local password
    password=$(cat "$state/password")
    as_postgres "$bin/psql" -h "$state" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gangamon') THEN
                CREATE ROLE gangamon LOGIN CREATEDB PASSWORD '$password'; END IF; END \$\$;" \
        >/dev/null
    if ! as_postgres "$bin/psql" -h "$state" -p "$port" -U postgres -qAt \
        -c "SELECT 1 FROM pg_database WHERE datname = 'gangamon'" | grep -q 1; then
        as_postgres "$bin/createdb" -h "$state" -p "$port" -U postgres -O gangamon gangamon
    fi
    printf 'postgresql://gangamon:%s@127.0.0.1:%s/gangamon\n' "$password" "$port" > "$state/url"
    log "up on 127.0.0.1:$port, data in $data"
    cat "$state/url"
}

down() {
    if running; then
        as_postgres "$(bin_dir)/pg_ctl" stop -D "$data" -m fast -w >/dev/null
        log "stopped"
    fi
}

case $action in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [STATE_DIR]" >&2; exit 2 ;;
esac
