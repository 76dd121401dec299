#!/usr/bin/env bash
# Real Kubernetes control planes for the integration tests (envtest style): etcd, the
# kube-apiserver and the kube-controller-manager, built from Debian's Kubernetes source
# package and run on loopback (the controller manager runs the Deployment, ReplicaSet,
# StatefulSet, CronJob, Job and garbage-collector controllers). There is no kubelet: the
# test harness plays kubelet and the csi-addons driver itself. With --node, a cluster
# gets a real node instead (see "Nodes" below).
#
#   scripts/kube-control-plane.sh build        install the build tools and build the
#                                              binaries once (cached, see below)
#   scripts/kube-control-plane.sh build --node the same plus the node's binaries
#   scripts/kube-control-plane.sh start NAME   build if needed, start control plane NAME
#                                              (a cluster), wait until it serves, print the
#                                              path of its kubeconfig; when it already
#                                              runs, only print the path
#   scripts/kube-control-plane.sh start NAME --no-deployment-controller
#                                              the same without the Deployment and
#                                              ReplicaSet controllers: a harness agent keeps
#                                              Deployments' status (the scale benchmarks,
#                                              where the cluster must take no time)
#   scripts/kube-control-plane.sh start NAME --node
#                                              a cluster with a real node NAME-node (root):
#                                              waits until the node is Ready and the default
#                                              ServiceAccount has its token; writes the
#                                              node's IP to .tools/control-planes/NAME/node-ip
#   scripts/kube-control-plane.sh import NAME IMAGE...
#                                              load podman images into the node of NAME
#                                              (skipped when the same podman image ID was
#                                              imported before; images survive stop/start)
#   scripts/kube-control-plane.sh stop NAME    stop control plane NAME (and its node)
#   scripts/kube-control-plane.sh stop-all     stop every control plane this script started
#   scripts/kube-control-plane.sh pause NAME   freeze control plane NAME (SIGSTOP): it stops
#                                              answering and keeps its state (a node's
#                                              kubelet and pods keep running)
#   scripts/kube-control-plane.sh resume NAME  thaw it (SIGCONT)
#   scripts/kube-control-plane.sh bin          print the directory holding the binaries
#
# Typical use:
#   export FAILOVER_KUBECONFIG_EAST="$(scripts/kube-control-plane.sh start east)"
# With nodes (two at once work):
#   export FAILOVER_KUBECONFIG_EAST="$(scripts/kube-control-plane.sh start east --node)"
#   scripts/kube-control-plane.sh import east localhost/debian:bookworm
#   curl "http://$(cat .tools/control-planes/east/node-ip):<nodePort>/"
#
# The build needs root (apt) once: a deb-src entry for bookworm, golang-go, rsync and
# etcd-server; then one `make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"` for
# the missing binaries (about 6 minutes on 2 cores), GOFLAGS="-mod=vendor
# -tags=dockerless", CGO_ENABLED=0. The node's kube-scheduler, kubelet and kube-proxy are
# built (one make, about 5 minutes more) only when a node is asked for, with the static
# pause binary (gcc -static of the source's build/pause/linux/pause.c). The binaries are
# kept in ~/.cache/failover-rs/kubernetes-<version>-<patch>/bin (FAILOVER_CACHE_DIR
# overrides the directory) and reused by every later run; the source is deleted after a
# build. Running control planes live in .tools/control-planes/<name>/ (pids, logs,
# kubeconfig).
#
# Nodes (--node; needs root, installs containerd, containernetworking-plugins, iptables,
# iproute2, conntrack; podman for `import`). The differences from a plain control plane:
# the API server listens on all addresses and advertises the node's gateway address
# (pods reach it through the `kubernetes` Service, 10.96.0.1:443; the self-signed
# certificate, which pods get as their ServiceAccount CA, covers both), keeps the
# ServiceAccount admission plugin, authorizes Node,RBAC and reaches kubelets by
# InternalIP; the controller manager runs every controller ('*') with the ServiceAccount
# key and CA (token controller); a kube-scheduler runs. The node: containerd (own root,
# state, socket and config; cgroupfs, no AppArmor; sandbox image localhost/failover-pause
# made from the cached pause binary), a bridge CNI network, a kubelet (cgroupfs,
# cgroupsPerQOS false, oomScoreAdj 0 and maxOpenFiles = the hard limit because these
# machines lack CAP_SYS_RESOURCE, no image garbage collection) and kube-proxy (iptables).
# Each node runs in its own network namespace fo-NAME and mount namespace (see node_vars
# for the addresses: slot K = 0, 1, ... in start order):
#   node IP 10.250.K.2 (host end 10.250.K.1, a veth pair fo-hK/fo-nK), pods
#   10.(244+K).0.0/24 on bridge fo-brK, Services 10.96.0.0/16 in every cluster;
#   the host routes to each pod network and reaches NodePorts at <node IP>:<nodePort>;
#   pods of one node reach the other node's IP, pods and its API server (10.250.J.1).
# So two nodes do not share iptables chains, ports or the kubelet's fixed paths
# (/var/log/pods, /var/lib/kubelet). Pods have no DNS (no CoreDNS) and no way out of the
# machine; nothing can be pulled: pods use imported images with a tag other than :latest
# or imagePullPolicy Never. stop kills the pods' containers, stops the node's processes
# (and any left in its namespaces, also after a crash), deletes the namespaces (with the
# bridge, the veth pair, the KUBE-* chains and the kubelet's mounts) and, when the last
# node stops, restores the kernel settings the kubelet changed (vm.overcommit_memory,
# kernel.panic, ...). Node names are machine-wide (fo-NAME,
# /run/failover-kube-node/NAME): one node NAME per machine, whatever the checkout.
#
# Kubernetes 1.20 has no batch/v1 CronJob (only batch/v1beta1) and no CEL validation.
#
# Environment: KUBE_CONTROL_PLANE_START_TIMEOUT (seconds, default 90),
# KUBE_NODE_READY_TIMEOUT (seconds from the kubelet's start, default 120).
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
node_timeout="${KUBE_NODE_READY_TIMEOUT:-120}"
reflect2="/usr/share/gocode/src/github.com/modern-go/reflect2"

die() {
    echo "kube-control-plane: $*" >&2
    exit 1
}

log() {
    echo "kube-control-plane: $*" >&2
}

# The binaries a plain control plane needs, and those a node needs on top ("pause" is
# the static pause binary compiled from the source's build/pause/linux/pause.c).
plane_bins=(kube-apiserver kube-controller-manager)
node_bins=(kube-scheduler kubelet kube-proxy pause)

# The binaries among "$@" that are not in the cache.
missing_bins() {
    local b
    for b in "$@"; do
        [[ -x "$bin/$b" ]] || echo "$b"
    done
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
            *) dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
                || need+=("$pkg") ;;
        esac
    done
    if ((${#need[@]})); then
        [[ $EUID -eq 0 ]] || die "need root to install ${need[*]}"
        log "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            "${need[@]}" >&2
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

# Builds the missing binaries: those of a plain control plane, and with --node also the
# node's. All Go binaries still missing are built by one `make WHAT="cmd/a cmd/b ..."`, so
# the packages they share compile once.
build() {
    local want=("${plane_bins[@]}")
    [[ "${1:-}" == --node ]] && want+=("${node_bins[@]}")
    local missing
    missing="$(missing_bins "${want[@]}")"
    [[ -n "$missing" ]] || return 0
    local pkgs=(golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev)
    # pause is compiled static: gcc and libc6-dev (libc.a).
    [[ "$missing" == *pause* ]] && pkgs+=(gcc libc6-dev)
    install_packages "${pkgs[@]}"
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
    local what=() b
    for b in $missing; do
        [[ "$b" == pause ]] || what+=("cmd/$b")
    done
    if ((${#what[@]})); then
        log "building ${what[*]} (several minutes)"
        local t0=$SECONDS
        (
            cd "$src"
            # dockerless: no dockershim in the kubelet, and cAdvisor does not probe for
            # Docker (which delays the kubelet's start by 5 s); no effect on the others.
            export HOME="$kdir/home" CGO_ENABLED=0 GOFLAGS="-mod=vendor -tags=dockerless" \
                GO111MODULE=on
            make WHAT="${what[*]}" >"$kdir/build.log" 2>&1
        ) || die "building ${what[*]} failed; see $kdir/build.log"
        log "built ${what[*]} in $((SECONDS - t0))s"
        for b in "${what[@]}"; do
            b="${b#cmd/}"
            cp "$src/_output/bin/$b" "$bin/$b.tmp"
            mv "$bin/$b.tmp" "$bin/$b"
        done
    fi
    if [[ "$missing" == *pause* ]]; then
        # Kubernetes' own pause (reaps zombies, exits on SIGTERM), static, for the pod
        # sandbox image (FROM scratch, see pause_image).
        gcc -Os -static -DVERSION="v$version-local" -o "$bin/pause.tmp" \
            "$src/build/pause/linux/pause.c" || die "compiling pause.c failed"
        mv "$bin/pause.tmp" "$bin/pause"
    fi
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

# ---------------------------------------------------------------------------- nodes
# A node (start NAME --node) runs its containerd, kubelet and kube-proxy inside a network
# namespace and a mount namespace of its own, so that two nodes on one machine do not
# share iptables (kube-proxy rewrites the KUBE-* chains of its network namespace), ports
# (the kubelet's 10250, 10248), nor the paths the kubelet 1.20 hard-codes
# (/var/log/pods, whose orphans each kubelet deletes, and
# /var/lib/kubelet/device-plugins). The API server, etcd, the controller manager and the
# scheduler stay on the host.
#
#   host                                   netns fo-NAME (slot K = 0, 1, ...)
#   fo-hK 10.250.K.1/30  <--- veth --->    fo-nK 10.250.K.2/30 = the node IP
#   route 10.(244+K).0.0/24 via the node   bridge fo-brK, pods 10.(244+K).0.0/24,
#   API server on 0.0.0.0, advertised      default route via 10.250.K.1; kube-proxy
#   as 10.250.K.1 (the `kubernetes`        sends 10.96.0.1:443 to 10.250.K.1:<port>
#   Service's endpoint)

# Host-wide state of the nodes: per node its containerd state and socket and its mount
# namespace; the kernel settings saved before the first kubelet changed them; the host
# directories created as mount points.
nodes_run=/run/failover-kube-node
node_packages=(containerd containernetworking-plugins iptables iproute2 conntrack)
cni_bin=/usr/lib/cni
pause_image="localhost/failover-pause:$version"
# What the kubelet changes host-wide (setupKernelTunables): saved before the first node
# starts, restored when the last one stops. kube-proxy's route_localnet belongs to the
# node's network namespace and goes with it.
kubelet_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# The paths the node's processes see replaced by directories of the node (bind mounts in
# its mount namespace). The host gets empty directories as mount points if it lacks them.
node_mounts=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers)

# Sets the node variables of plane $1 from slot $2.
node_vars() {
    node_netns="fo-$1"
    node_host_if="fo-h$2"
    node_if="fo-n$2"
    node_host_ip="10.250.$2.1"
    node_ip="10.250.$2.2"
    node_pod_cidr="10.$((244 + $2)).0.0/24"
    node_bridge="fo-br$2"
    node_state="$nodes_run/$1"
    node_sock="$nodes_run/$1/containerd.sock"
    node_mnt="$nodes_run/$1/mnt"
    # Kept across stops: containerd's root (imported images) and the import marks.
    node_images="$tools/kube-node-images/$1"
}

# Loads the node variables of plane $1; fails if it has no node (running or not stopped).
load_node() {
    local f="$planes/$1/node.env"
    [[ -s "$f" ]] || return 1
    node_vars "$1" "$(cat "$f")"
}

# The first free slot: no fo-hK link and no route into its addresses.
free_slot() {
    local k
    for k in $(seq 0 9); do
        ip link show "fo-h$k" >/dev/null 2>&1 && continue
        [[ -z "$(ip -4 route show match "10.250.$k.1" | grep -v '^default')" ]] || continue
        [[ -z "$(ip -4 route show match "10.$((244 + k)).0.1" | grep -v '^default')" ]] || continue
        echo "$k"
        return
    done
    die "no free node slot (10 nodes at most)"
}

in_netns() {
    nsenter --net="/run/netns/$node_netns" -- "$@"
}

# Runs a command in the node's network and mount namespaces.
in_node() {
    nsenter --mount="$node_mnt" --net="/run/netns/$node_netns" -- "$@"
}

node_ctr() {
    ctr --address "$node_sock" -n k8s.io "$@"
}

# Starts "$@" in the background as process $1 of plane dir $d (pid and log files there).
spawn() {
    local proc="$1"
    shift
    (
        exec 9>&-
        exec setsid "$@" </dev/null >"$d/$proc.log" 2>&1
    ) &
    echo "$!" >"$d/$proc.pid"
}

# Dies with the log of process $1 of plane dir $d unless it still runs.
check_alive() {
    started "$d/$1.pid" || die "$1 of control plane $name exited; its log:
$(tail -n 25 "$d/$1.log")"
}

# Network namespace, veth pair, routes; mount namespace with the node's directories.
node_namespaces() {
    ip netns add "$node_netns"
    ip link add "$node_host_if" type veth peer name "$node_if" netns "$node_netns"
    ip addr add "$node_host_ip/30" dev "$node_host_if"
    ip link set "$node_host_if" up
    # Forwards what comes from this node (towards another node), without switching on
    # the host-wide net.ipv4.ip_forward.
    echo 1 >"/proc/sys/net/ipv4/conf/$node_host_if/forwarding"
    ip route add "$node_pod_cidr" via "$node_ip" dev "$node_host_if"
    ip -n "$node_netns" link set lo up
    ip -n "$node_netns" addr add "$node_ip/30" dev "$node_if"
    ip -n "$node_netns" link set "$node_if" up
    ip -n "$node_netns" route add default via "$node_host_ip"
    # bridge-nf-call-iptables: Service traffic between two pods of the bridge.
    in_netns sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
    # The mount namespace is kept by a bind mount of it on $node_mnt, which must sit on
    # a mount with private propagation.
    mkdir -p "$nodes_run"
    mountpoint -q "$nodes_run" || mount --bind "$nodes_run" "$nodes_run"
    mount --make-private "$nodes_run"
    mkdir -p "$node_state"
    touch "$node_mnt"
    unshare --mount="$node_mnt" --propagation slave true
    local m
    for m in "${node_mounts[@]}"; do
        if [[ ! -d "$m" ]]; then
            mkdir -p "$m"
            echo "$m" >>"$nodes_run/created-dirs"
        fi
        mkdir -p "$d/node$m"
        in_node mount --bind "$d/node$m" "$m"
    done
}

node_containerd() {
    mkdir -p "$node_images/containerd" "$d/node/cni"
    cat >"$d/node/containerd.toml" <<EOF
version = 2
root = "$node_images/containerd"
state = "$node_state/containerd"
[grpc]
  address = "$node_sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$d/node/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "$node_state/runc"
EOF
    cat >"$d/node/cni/10-fo-$name.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "fo-$name",
  "plugins": [
    {"type": "bridge", "bridge": "$node_bridge", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$node_pod_cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    spawn containerd nsenter --mount="$node_mnt" --net="/run/netns/$node_netns" -- \
        containerd --config "$d/node/containerd.toml"
    local deadline=$((SECONDS + timeout))
    until node_ctr version >/dev/null 2>&1; do
        check_alive containerd
        ((SECONDS < deadline)) || die "containerd of $name did not answer within ${timeout}s"
        sleep 0.2
    done
    # Containers a crashed earlier run left in containerd's (kept) metadata: this
    # cluster is new, none of them is wanted.
    local id
    for id in $(node_ctr containers ls -q 2>/dev/null); do
        node_ctr tasks delete -f "$id" >/dev/null 2>&1 || true
        node_ctr containers rm "$id" >/dev/null 2>&1 || true
    done
    import_pause
}

# Imports the pod sandbox image into the node's containerd unless there: the cached
# static pause binary alone in a layer (FROM scratch), as a Docker archive made here.
import_pause() {
    if node_ctr images ls -q | grep -qxF "$pause_image"; then
        return
    fi
    local t arch diff cfg
    t="$(mktemp -d)"
    mkdir "$t/rootfs"
    cp "$bin/pause" "$t/rootfs/pause"
    tar -C "$t/rootfs" --owner=0 --group=0 --numeric-owner -cf "$t/layer.tar" pause
    diff="$(sha256sum "$t/layer.tar" | cut -d' ' -f1)"
    case "$(uname -m)" in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        *) arch="$(uname -m)" ;;
    esac
    printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$arch" "$diff" >"$t/config.json"
    cfg="$(sha256sum "$t/config.json" | cut -d' ' -f1)"
    mv "$t/config.json" "$t/$cfg.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' \
        "$cfg" "$pause_image" >"$t/manifest.json"
    tar -C "$t" -cf - manifest.json "$cfg.json" layer.tar | node_ctr images import - >/dev/null \
        || die "importing the pause image into $name's containerd failed"
    rm -rf "$t"
}

node_kubelet() {
    local port="$1" token="$2" nofile
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited ]] && nofile=1048576
    # The node's components reach the API server at the host end of the veth.
    sed "s#https://127.0.0.1:$port#https://$node_host_ip:$port#" "$d/kubeconfig" >"$d/node/kubeconfig"
    cat >"$d/node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# Test clusters only: the API server has no kubelet client certificate.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
# No kubepods cgroup hierarchy (no systemd here); limits are still set per container.
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# -999 and 1000000 open files need CAP_SYS_RESOURCE, which these machines may lack.
oomScoreAdj: 0
maxOpenFiles: $nofile
podCIDR: $node_pod_cidr
resolvConf: /etc/resolv.conf
hairpinMode: hairpin-veth
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
# Never garbage-collect images: they are imported, nothing can be pulled.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
runtimeRequestTimeout: 2m
EOF
    # AWS_EC2_METADATA_DISABLED: the in-tree ECR credential provider would otherwise ask
    # the EC2 metadata address for credentials first, which delays the start by 6 s.
    spawn kubelet nsenter --mount="$node_mnt" --net="/run/netns/$node_netns" -- \
        env AWS_EC2_METADATA_DISABLED=true "$bin/kubelet" --config "$d/node/kubelet.yaml" --kubeconfig "$d/node/kubeconfig" \
        --container-runtime remote --container-runtime-endpoint "unix://$node_sock" \
        --hostname-override "$name-node" --node-ip "$node_ip" --root-dir /var/lib/kubelet \
        --v 1
    spawn kube-proxy nsenter --mount="$node_mnt" --net="/run/netns/$node_netns" -- \
        "$bin/kube-proxy" --kubeconfig "$d/node/kubeconfig" --hostname-override "$name-node" \
        --proxy-mode iptables --cluster-cidr "$node_pod_cidr" \
        --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 \
        --conntrack-tcp-timeout-close-wait 0 \
        --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249
}

# Waits until the node is Ready and the default ServiceAccount has its token (pods are
# refused before).
node_wait() {
    local port="$1" token="$2" t0="$3" deadline=$((SECONDS + node_timeout)) ready="" sa=""
    # The API server pretty-prints JSON for curl: without white space.
    api() {
        curl -sk --max-time 5 -H "Authorization: Bearer $token" "https://127.0.0.1:$port$1" 2>/dev/null \
            | tr -d ' \n'
    }
    until [[ -n "$ready" && -n "$sa" ]]; do
        for c in containerd kubelet kube-proxy scheduler; do
            check_alive "$c"
        done
        ((SECONDS < deadline)) \
            || die "node $name-node not Ready with a default ServiceAccount within ${node_timeout}s (see $d/*.log)"
        sleep 0.3
        if [[ -z "$ready" ]] && api "/api/v1/nodes/$name-node" | grep -q '"type":"Ready","status":"True"'; then
            ready=1
            log "node $name-node Ready $(((SECONDS - t0)))s after the kubelet started"
        fi
        if [[ -z "$sa" ]] && api /api/v1/namespaces/default/serviceaccounts/default | grep -q '"secrets":\[{'; then
            sa=1
        fi
    done
}

# The pids of processes whose namespace of kind $1 (mnt, net) is the one bound at $2.
ns_pids() {
    local ino p
    ino="$(stat -L -c %i "$2" 2>/dev/null)" || return 0
    for p in /proc/[0-9]*; do
        [[ "$(readlink "$p/ns/$1" 2>/dev/null)" == "$1:[$ino]" ]] && echo "${p#/proc/}"
    done
    return 0
}

# The ids of the node's containers, also when its containerd is gone: containerd's list,
# runc's state directory, the shims serving its socket.
node_container_ids() {
    local p
    {
        if live_pid "$d/containerd.pid" containerd >/dev/null; then
            node_ctr containers ls -q 2>/dev/null || true
        fi
        ls "$node_state/runc/k8s.io" 2>/dev/null || true
        for p in /proc/[0-9]*; do
            { tr '\0' ' ' 2>/dev/null <"$p/cmdline" && echo; } \
                | sed -n "s#.*containerd-shim.* -id \([0-9a-f]*\) -address $node_sock\( .*\)\?\$#\1#p"
        done
    } | sort -u
}

# Stops the node of plane $1 and undoes everything its start did on the host. The pods
# are killed (SIGKILL through containerd), not deleted through the API server and the
# kubelet: what they set up (volume mounts, CNI addresses and rules) lives in the
# node's namespaces and directories and goes with them, and the next start begins with
# an empty etcd.
node_down() {
    local name="$1" d="$planes/$1" ids id p f
    load_node "$name" || return 0
    stop_pid "$d/kube-proxy.pid" kube-proxy
    stop_pid "$d/kubelet.pid" kubelet
    ids="$(node_container_ids)"
    if live_pid "$d/containerd.pid" containerd >/dev/null; then
        for id in $(node_ctr tasks ls -q 2>/dev/null); do
            node_ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        for id in $ids; do
            node_ctr tasks delete -f "$id" >/dev/null 2>&1 || true
            node_ctr containers rm "$id" >/dev/null 2>&1 || true
        done
    fi
    stop_pid "$d/containerd.pid" containerd
    # Container processes still there (their cgroups are named by container id), then
    # whatever is left in the node's namespaces (shims, ...).
    for id in $ids; do
        for f in /sys/fs/cgroup/*/k8s.io/"$id"/cgroup.procs /sys/fs/cgroup/k8s.io/"$id"/cgroup.procs; do
            [[ -f "$f" ]] || continue
            for p in $(cat "$f"); do
                kill -9 "$p" 2>/dev/null || true
            done
        done
    done
    for p in $(ns_pids mnt "$node_mnt") $(ns_pids net "/run/netns/$node_netns"); do
        kill -9 "$p" 2>/dev/null || true
    done
    sleep 0.2
    for id in $ids; do
        rmdir /sys/fs/cgroup/*/k8s.io/"$id" /sys/fs/cgroup/k8s.io/"$id" 2>/dev/null || true
    done
    # The mount namespace (with the kubelet's and containerd's mounts) goes with its last
    # process and this bind mount; the network namespace takes the bridge, the pods'
    # veths and the node's iptables chains along.
    if mountpoint -q "$node_mnt" 2>/dev/null; then
        umount "$node_mnt" || umount -l "$node_mnt" || true
    fi
    ip link del "$node_host_if" 2>/dev/null || true
    ip netns del "$node_netns" 2>/dev/null || true
    rm -rf "$node_state"
    mv "$d/node.env" "$d/node.stopped"
    # The last node: restore what the kubelets changed host-wide.
    if ! ip netns list 2>/dev/null | grep -q '^fo-'; then
        if [[ -s "$nodes_run/sysctl.saved" ]]; then
            while read -r f; do
                sysctl -qw "$f" || true
            done <"$nodes_run/sysctl.saved"
        fi
        if [[ -s "$nodes_run/created-dirs" ]]; then
            sort -ru "$nodes_run/created-dirs" | while read -r f; do
                rmdir "$f" 2>/dev/null || true
            done
        fi
        rm -f "$nodes_run/sysctl.saved" "$nodes_run/created-dirs"
        # runc's parent cgroups of the pods' containers (gone if empty).
        rmdir /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io 2>/dev/null || true
        if mountpoint -q "$nodes_run"; then
            umount "$nodes_run" 2>/dev/null || true
        fi
        rmdir "$nodes_run" 2>/dev/null || true
    fi
}

node_running() {
    local d="$planes/$1"
    live_pid "$d/scheduler.pid" kube-scheduler >/dev/null \
        && live_pid "$d/containerd.pid" containerd >/dev/null \
        && live_pid "$d/kubelet.pid" kubelet >/dev/null \
        && live_pid "$d/kube-proxy.pid" kube-proxy >/dev/null
}

# scripts/kube-control-plane.sh import NAME IMAGE...
import_images() {
    local name="$1" img id mark ref out
    shift
    load_node "$name" && live_pid "$planes/$name/containerd.pid" containerd >/dev/null \
        || die "control plane $name runs no node (start $name --node)"
    install_packages podman
    mkdir -p "$node_images/imported"
    for img in "$@"; do
        id="$(podman image inspect --format '{{.Id}}' "$img" 2>/dev/null)" \
            || die "no podman image $img"
        mark="$node_images/imported/$(echo "$img" | tr '/:@' '___')"
        if [[ -s "$mark" ]] && read -r _ ref <"$mark" && [[ "$(cut -d' ' -f1 "$mark")" == "$id" ]] \
            && node_ctr images ls -q | grep -qxF "$ref"; then
            continue
        fi
        out="$(podman save --format docker-archive "$img" 2>/dev/null | node_ctr images import -)" \
            || die "importing $img into $name's containerd failed"
        ref="$(sed -n 's/^unpacking \([^ ]*\) .*/\1/p' <<<"$out" | head -n 1)"
        echo "$id ${ref:-$img}" >"$mark"
        log "imported $img into $name"
    done
}

# ---------------------------------------------------------------------------- start/stop
start() {
    local name="$1" controllers="deployment,replicaset,statefulset,cronjob,job,garbagecollector"
    local node="" no_deployment="" opt
    shift
    for opt in "$@"; do
        case "$opt" in
            --no-deployment-controller) no_deployment=1 ;;
            --node) node=1 ;;
            "") ;;
            *) die "unknown option '$opt'" ;;
        esac
    done
    if [[ -n "$no_deployment" ]]; then
        controllers="statefulset,cronjob,job,garbagecollector"
    fi
    if [[ -n "$node" ]]; then
        # Every controller (the serviceaccount and token ones among them).
        controllers='*'
        [[ -n "$no_deployment" ]] && controllers='*,-deployment,-replicaset'
    fi
    [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "a control plane name is lowercase letters, digits and '-', not '$name'"
    local d="$planes/$name"
    local same_mode=""
    if [[ -z "$node" && ! -f "$d/node.env" ]]; then
        same_mode=1
    elif [[ -n "$node" && -f "$d/node.env" ]] && node_running "$name"; then
        same_mode=1
    fi
    if [[ -n "$same_mode" ]] && plane_running "$name"; then
        wait_ready "$name" "$(cat "$d/apiserver.port")"
        echo "$d/kubeconfig"
        return
    fi
    stop "$name"
    if [[ -n "$node" ]]; then
        [[ $EUID -eq 0 ]] || die "a node needs root"
        build --node
        install_packages "${node_packages[@]}"
        if ip netns list 2>/dev/null | grep -qE "^fo-$name( |\$)"; then
            die "network namespace fo-$name exists: a node $name of another checkout? (stop it there, or: ip netns del fo-$name)"
        fi
        # Undo whatever this start did if it fails.
        trap 'if [[ -n "${starting:-}" ]]; then stop "$starting" >/dev/null 2>&1 || true; fi' EXIT
        starting="$name"
    else
        build
    fi
    install_packages
    local etcd
    etcd="$(etcd_bin)"
    [[ -n "$etcd" ]] || die "etcd not found"
    command -v curl >/dev/null || die "curl not found"
    if [[ -d "$d" ]] && findmnt -rn -o TARGET | grep -q "^$d/"; then
        die "mounts left under $d; not deleting it"
    fi
    rm -rf "$d"
    mkdir -p "$d/certs" "$d/etcd"
    local api_bind=127.0.0.1 api_node_flags=() sa_flags=(--disable-admission-plugins ServiceAccount)
    local auth_mode=RBAC
    if [[ -n "$node" ]]; then
        local slot
        slot="$(free_slot)"
        node_vars "$name" "$slot"
        echo "$slot" >"$d/node.env"
        echo "$node_ip" >"$d/node-ip"
        mkdir -p "$nodes_run"
        if [[ ! -s "$nodes_run/sysctl.saved" ]]; then
            local k
            for k in "${kubelet_sysctls[@]}"; do
                echo "$k=$(sysctl -n "$k")"
            done >"$nodes_run/sysctl.saved"
        fi
        node_namespaces
        node_containerd
        # Reachable from the node (and pods) at the host end of the veth; the
        # self-signed serving certificate covers that address and 10.96.0.1.
        api_bind=0.0.0.0
        # shellcheck disable=SC2054 # a comma-separated flag value
        api_node_flags=(--advertise-address "$node_host_ip"
            --kubelet-preferred-address-types InternalIP,Hostname)
        sa_flags=()
        auth_mode=Node,RBAC
    fi
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
            --bind-address "$api_bind" --secure-port "$api_port" --insecure-port 0 \
            "${api_node_flags[@]}" \
            --cert-dir "$d/certs" \
            --token-auth-file "$d/tokens.csv" \
            --authorization-mode "$auth_mode" \
            --service-account-issuer "https://kubernetes.default.svc" \
            --service-account-key-file "$d/sa.pub" \
            --service-account-signing-key-file "$d/sa.key" \
            "${sa_flags[@]}" \
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
    local cm_node_flags=()
    if [[ -n "$node" ]]; then
        # The token controller signs ServiceAccount tokens and hands out the CA.
        cm_node_flags=(--service-account-private-key-file "$d/sa.key"
            --root-ca-file "$d/certs/apiserver.crt")
    fi
    (
        exec 9>&-
        exec setsid "$bin/kube-controller-manager" \
            --kubeconfig "$d/kubeconfig" \
            --controllers "$controllers" \
            --leader-elect=false --port 0 --secure-port 0 \
            --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 \
            "${cm_node_flags[@]}" \
            </dev/null >"$d/controller-manager.log" 2>&1
    ) &
    echo "$!" >"$d/controller-manager.pid"
    if [[ -n "$node" ]]; then
        spawn scheduler "$bin/kube-scheduler" --kubeconfig "$d/kubeconfig" \
            --leader-elect=false --port 0 --secure-port 0
        local t0=$SECONDS
        node_kubelet "$api_port" "$token"
        node_wait "$api_port" "$token" "$t0"
        starting=""
    fi
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
    if [[ -f "$d/node.env" ]]; then
        stop_pid "$d/scheduler.pid" kube-scheduler
        node_down "$1"
    fi
    stop_pid "$d/apiserver.pid" kube-apiserver
    stop_pid "$d/etcd.pid" etcd
}

# Freeze (SIGSTOP) or thaw (SIGCONT) every process of control plane $2: a cluster that
# stops answering without losing its state, as a dead or cut-off cluster looks from
# outside, and comes back as it was. A node's kubelet, kube-proxy and containers keep
# running (and keep retrying the API server).
signal_plane() {
    local sig="$1" d="$planes/$2" p
    [[ -d "$d" ]] || die "no control plane $2"
    for pair in etcd.pid:etcd apiserver.pid:kube-apiserver controller-manager.pid:kube-controller-manager \
        scheduler.pid:kube-scheduler; do
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
    build) build "${2:-}" ;;
    start)
        [[ -n "${2:-}" ]] || die "usage: $0 start NAME [--node] [--no-deployment-controller]"
        lock
        start "$2" "${@:3}"
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
    import)
        [[ -n "${3:-}" ]] || die "usage: $0 import NAME IMAGE..."
        lock
        import_images "$2" "${@:3}"
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
        echo "usage: $0 build [--node]|start NAME [--node]|stop NAME|stop-all|import NAME IMAGE...|pause NAME|resume NAME|bin" >&2
        exit 2
        ;;
esac
