#!/usr/bin/env bash
# Real Kubernetes control planes for the integration tests (envtest style): etcd, the
# kube-apiserver and the kube-controller-manager, built from Debian's Kubernetes source
# package and run on loopback (the controller manager runs the Deployment, ReplicaSet,
# StatefulSet, CronJob, Job and garbage-collector controllers). There is no kubelet: the test harness plays kubelet and
# the csi-addons driver itself.
#
#   scripts/kube-control-plane.sh build        install the build tools and build the
#                                              binaries once (cached, see below)
#   scripts/kube-control-plane.sh start NAME   build if needed, start control plane NAME
#                                              (a cluster), wait until it serves, print the
#                                              path of its kubeconfig; when it already
#                                              runs, only print the path
#   scripts/kube-control-plane.sh start NAME --no-deployment-controller
#                                              the same without the Deployment and
#                                              ReplicaSet controllers: a harness agent keeps
#                                              Deployments' status (the scale benchmarks,
#                                              where the cluster must take no time)
#   scripts/kube-control-plane.sh stop NAME    stop control plane NAME
#   scripts/kube-control-plane.sh stop-all     stop every control plane this script started
#   scripts/kube-control-plane.sh pause NAME   freeze control plane NAME (SIGSTOP): it stops
#                                              answering and keeps its state
#   scripts/kube-control-plane.sh resume NAME  thaw it (SIGCONT)
#   scripts/kube-control-plane.sh bin          print the directory holding the binaries
#
# Typical use:
#   export FAILOVER_KUBECONFIG_EAST="$(scripts/kube-control-plane.sh start east)"
#
# The build needs root (apt) once: a deb-src entry for bookworm, golang-go, rsync and
# etcd-server; then `make WHAT=cmd/kube-apiserver` and `make WHAT=cmd/kube-controller-manager`
# (about 6 minutes on 2 cores). The binaries are kept in
# ~/.cache/failover-rs/kubernetes-<version>-<patch>/bin (FAILOVER_CACHE_DIR overrides the
# directory) and reused by every later run; running control planes live in
# .tools/control-planes/<name>/ (pids, logs, kubeconfig).
#
# Kubernetes 1.20 has no batch/v1 CronJob (only batch/v1beta1) and no CEL validation.
#
# Environment: KUBE_CONTROL_PLANE_START_TIMEOUT (seconds, default 90).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="1.20.2"
tools="$root/.tools"
# Built binaries are cached outside the checkout, so a fresh clone on the same machine
# (CI) reuses them.
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
# The cache key names the patch level: 1.20.2 with reflect2 1.0.2 (see build()).
kdir="$cache/kubernetes-$version-reflect2-1.0.2"
bin="$kdir/bin"
planes="$tools/control-planes"
timeout="${KUBE_CONTROL_PLANE_START_TIMEOUT:-90}"
reflect2="/usr/share/gocode/src/github.com/modern-go/reflect2"

die() {
    echo "kube-control-plane: $*" >&2
    exit 1
}

log() {
    echo "kube-control-plane: $*" >&2
}

built() {
    [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" ]]
}

etcd_bin() {
    command -v etcd 2>/dev/null || true
}

# Installs the Debian packages among "$@" (and always the runtime ones: etcd, openssl,
# curl) that are missing.
install_packages() {
    local need=() pkg
    [[ -n "$(etcd_bin)" ]] || need+=(etcd-server)
    command -v openssl >/dev/null || need+=(openssl)
    command -v curl >/dev/null || need+=(curl)
    for pkg in "$@"; do
        case "$pkg" in
            golang-go) command -v go >/dev/null || need+=(golang-go) ;;
            rsync) command -v rsync >/dev/null || need+=(rsync) ;;
            dpkg-dev) command -v dpkg-source >/dev/null || need+=(dpkg-dev) ;;
            golang-github-modern-go-reflect2-dev)
                [[ -f "$reflect2/unsafe_map.go" ]] || need+=("$pkg") ;;
        esac
    done
    if ((${#need[@]})); then
        [[ $EUID -eq 0 ]] || die "need root to install ${need[*]}"
        log "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    fi
}

# Adds a deb-src entry mirroring the bookworm binary entry, if there is none.
enable_sources() {
    if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ \
        || grep -qs '^deb-src' /etc/apt/sources.list; then
        return
    fi
    [[ $EUID -eq 0 ]] || die "need root to add a deb-src entry"
    log "adding a deb-src entry for bookworm"
    cat >/etc/apt/sources.list.d/failover-deb-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
}

build() {
    if built; then
        return
    fi
    install_packages golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev
    enable_sources
    local src="$kdir/src"
    mkdir -p "$kdir"
    if [[ ! -f "$src/Makefile" ]]; then
        log "downloading the kubernetes $version source package"
        local dl="$kdir/download"
        rm -rf "$dl" "$src"
        mkdir -p "$dl"
        # Debian's version string is 1.20.5+really1.20.2-...: the 1.20.2 source.
        (cd "$dl" && apt-get source --download-only kubernetes >&2) \
            || die "apt-get source kubernetes failed"
        local orig
        orig="$(find "$dl" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)"
        [[ -n "$orig" ]] || die "no kubernetes .orig tarball in $dl"
        mkdir -p "$src"
        tar -xf "$orig" -C "$src" --strip-components=1
        [[ -f "$src/Makefile" ]] || die "unexpected layout of $orig"
        # Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, whose map iteration crashes
        # (SIGSEGV in mapiternext) when built with Go 1.18 or later, as soon as the API
        # server encodes a map with sorted keys (e.g. serving a CRD). 1.0.2 is the fix,
        # API compatible; Debian packages it.
        local vendored="$src/vendor/github.com/modern-go/reflect2"
        [[ -d "$vendored" ]] || die "no vendored reflect2 in the source"
        rm -rf "$vendored"
        mkdir -p "$vendored"
        cp "$reflect2"/*.go "$reflect2"/*.s "$vendored"/
    fi
    mkdir -p "$kdir/home" "$bin"
    for what in kube-apiserver kube-controller-manager; do
        if [[ ! -x "$bin/$what" ]]; then
            log "building $what (a few minutes)"
            (
                cd "$src"
                export HOME="$kdir/home" CGO_ENABLED=0 GOFLAGS=-mod=vendor GO111MODULE=on
                make WHAT="cmd/$what" >"$kdir/build-$what.log" 2>&1
            ) || die "building $what failed; see $kdir/build-$what.log"
            cp "$src/_output/bin/$what" "$bin/$what.tmp"
            mv "$bin/$what.tmp" "$bin/$what"
        fi
    done
    # The source tree and Go caches are large; only the binaries are needed.
    rm -rf "$src" "$kdir/download" "$kdir/home"
}

# Something accepts TCP connections on the port.
answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free TCP port on loopback.
# A free TCP port on loopback, below Linux's ephemeral range (32768+) and other than
# the ones already given out by this start ($taken).
taken=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        if [[ "$taken" != *" $p "* ]] && ! answers "$p"; then
            taken+="$p "
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# The pid in file $1 if that process still runs the command matching $2.
live_pid() {
    [[ -s "$1" ]] || return 1
    local p
    p="$(cat "$1")"
    [[ "$p" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "$2" || return 1
    echo "$p"
}

# The process in pid file $1 exists and is not a zombie. Right after a start it may not
# have exec'd its binary yet, so this does not check the command line.
started() {
    [[ -s "$1" ]] || return 1
    local state
    state="$(sed -E 's/^.*\) //' "/proc/$(cat "$1")/stat" 2>/dev/null | cut -c1)"
    [[ -n "$state" && "$state" != Z ]]
}

plane_running() {
    local d="$planes/$1"
    live_pid "$d/apiserver.pid" kube-apiserver >/dev/null \
        && live_pid "$d/etcd.pid" etcd >/dev/null \
        && live_pid "$d/controller-manager.pid" kube-controller-manager >/dev/null
}

# Waits until the API server of plane $1 answers /readyz with ok.
wait_ready() {
    local d="$planes/$1" port="$2" deadline=$((SECONDS + timeout))
    local token
    token="$(cut -d, -f1 "$d/tokens.csv")"
    until [[ "$(curl -sk -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz" 2>/dev/null)" == ok ]]; do
        for c in etcd apiserver; do
            if ! started "$d/$c.pid"; then
                stop "$1"
                die "$c of control plane $1 exited during start-up; its log:
$(tail -n 30 "$d/$c.log")"
            fi
        done
        if ((SECONDS >= deadline)); then
            stop "$1"
            die "control plane $1 did not become ready within ${timeout}s (see $d/*.log)"
        fi
        sleep 0.3
    done
}

start() {
    local name="$1" controllers="deployment,replicaset,statefulset,cronjob,job,garbagecollector"
    if [[ "${2:-}" == --no-deployment-controller ]]; then
        controllers="statefulset,cronjob,job,garbagecollector"
    elif [[ -n "${2:-}" ]]; then
        die "unknown option '$2'"
    fi
    [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "a control plane name is lowercase letters, digits and '-', not '$name'"
    local d="$planes/$name"
    if plane_running "$name"; then
        wait_ready "$name" "$(cat "$d/apiserver.port")"
        echo "$d/kubeconfig"
        return
    fi
    stop "$name"
    build
    install_packages
    local etcd
    etcd="$(etcd_bin)"
    [[ -n "$etcd" ]] || die "etcd not found"
    command -v curl >/dev/null || die "curl not found"
    rm -rf "$d"
    mkdir -p "$d/certs" "$d/etcd"
    local etcd_port peer_port api_port
    # Not in $(...): the subshell would not remember the ports already taken.
    free_port >"$d/port" && etcd_port="$(cat "$d/port")"
    free_port >"$d/port" && peer_port="$(cat "$d/port")"
    free_port >"$d/port" && api_port="$(cat "$d/port")"
    rm -f "$d/port"
    local token
    token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$token,admin,admin,system:masters" >"$d/tokens.csv"
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
    (
        exec 9>&-
        exec setsid "$etcd" --name "$name" --data-dir "$d/etcd" \
            --listen-client-urls "http://127.0.0.1:$etcd_port" \
            --advertise-client-urls "http://127.0.0.1:$etcd_port" \
            --listen-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-cluster "$name=http://127.0.0.1:$peer_port" \
            --unsafe-no-fsync </dev/null >"$d/etcd.log" 2>&1
    ) &
    echo "$!" >"$d/etcd.pid"
    local deadline=$((SECONDS + timeout))
    until answers "$etcd_port"; do
        started "$d/etcd.pid" || die "etcd exited; its log:
$(tail -n 20 "$d/etcd.log")"
        ((SECONDS < deadline)) || die "etcd did not answer within ${timeout}s"
        sleep 0.2
    done
    (
        exec 9>&-
        exec setsid "$bin/kube-apiserver" \
            --etcd-servers "http://127.0.0.1:$etcd_port" \
            --etcd-prefix "/$name" \
            --bind-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
            --cert-dir "$d/certs" \
            --token-auth-file "$d/tokens.csv" \
            --authorization-mode RBAC \
            --service-account-issuer "https://kubernetes.default.svc" \
            --service-account-key-file "$d/sa.pub" \
            --service-account-signing-key-file "$d/sa.key" \
            --disable-admission-plugins ServiceAccount \
            --service-cluster-ip-range 10.96.0.0/16 \
            --allow-privileged \
            --runtime-config batch/v2alpha1=false \
            </dev/null >"$d/apiserver.log" 2>&1
    ) &
    echo "$!" >"$d/apiserver.pid"
    echo "$api_port" >"$d/apiserver.port"
    cat >"$d/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: $name
  context:
    cluster: $name
    user: admin
    namespace: default
current-context: $name
EOF
    wait_ready "$name" "$api_port"
    (
        exec 9>&-
        exec setsid "$bin/kube-controller-manager" \
            --kubeconfig "$d/kubeconfig" \
            --controllers "$controllers" \
            --leader-elect=false --port 0 --secure-port 0 \
            --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 \
            </dev/null >"$d/controller-manager.log" 2>&1
    ) &
    echo "$!" >"$d/controller-manager.pid"
    sleep 0.5
    started "$d/controller-manager.pid" || {
        stop "$name"
        die "kube-controller-manager of $name exited; its log:
$(tail -n 20 "$d/controller-manager.log")"
    }
    echo "$d/kubeconfig"
}

stop_pid() {
    local file="$1" pattern="$2" p
    if p="$(live_pid "$file" "$pattern")"; then
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do
            live_pid "$file" "$pattern" >/dev/null || break
            sleep 0.1
        done
        if live_pid "$file" "$pattern" >/dev/null; then
            kill -9 "$p" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

stop() {
    local d="$planes/$1"
    [[ -d "$d" ]] || return 0
    # A paused plane would not act on SIGTERM.
    signal_plane CONT "$1"
    stop_pid "$d/controller-manager.pid" kube-controller-manager
    stop_pid "$d/apiserver.pid" kube-apiserver
    stop_pid "$d/etcd.pid" etcd
}

# Freeze (SIGSTOP) or thaw (SIGCONT) every process of control plane $2: a cluster that
# stops answering without losing its state, as a dead or cut-off cluster looks from
# outside, and comes back as it was.
signal_plane() {
    local sig="$1" d="$planes/$2" p
    [[ -d "$d" ]] || die "no control plane $2"
    for pair in etcd.pid:etcd apiserver.pid:kube-apiserver controller-manager.pid:kube-controller-manager; do
        if p="$(live_pid "$d/${pair%%:*}" "${pair#*:}")"; then
            kill "-$sig" "$p"
        fi
    done
}

stop_all() {
    [[ -d "$planes" ]] || return 0
    for d in "$planes"/*/; do
        if [[ -d "$d" ]]; then
            stop "$(basename "$d")"
        fi
    done
}

# One caller at a time per machine checkout: two concurrent starts of the same plane
# would otherwise each stop and wipe what the other just started.
lock() {
    mkdir -p "$planes"
    exec 9>"$planes/.lock"
    flock 9
}

case "${1:-}" in
    build) build ;;
    start)
        [[ -n "${2:-}" ]] || die "usage: $0 start NAME"
        lock
        start "$2" "${3:-}"
        ;;
    stop)
        [[ -n "${2:-}" ]] || die "usage: $0 stop NAME"
        lock
        stop "$2"
        ;;
    stop-all)
        lock
        stop_all
        ;;
    pause)
        [[ -n "${2:-}" ]] || die "usage: $0 pause NAME"
        signal_plane STOP "$2"
        ;;
    resume)
        [[ -n "${2:-}" ]] || die "usage: $0 resume NAME"
        signal_plane CONT "$2"
        ;;
    bin) echo "$bin" ;;
    *)
        echo "usage: $0 build|start NAME|stop NAME|stop-all|pause NAME|resume NAME|bin" >&2
        exit 2
        ;;
esac
