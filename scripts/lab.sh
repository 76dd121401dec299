#!/usr/bin/env bash
# A two-cluster lab on this machine, deployed the way a platform team deploys the
# operator: two Kubernetes clusters `east` and `west` (control planes with real nodes:
# kubelet, containerd, kube-proxy), DynamoDB Local, the operator image installed in each
# cluster from the Helm chart (two replicas, leader election, the chart's RBAC only),
# and the demo application (deploy/demo: a web Deployment behind a NodePort with a
# readiness probe, a StatefulSet with a volume, a CronJob) with its FailoverGroup,
# active in east.
#
#   scripts/lab.sh up      build what is missing, start everything, wait until both
#                          operators lead and the group is Ready in both clusters
#   scripts/lab.sh demo    fail the demo over east -> west (consistency) and back
#                          (uptime) with
#                          `kubectl failover request --wait`, printing `status` and
#                          what the application's endpoint answers in each cluster
#   scripts/lab.sh status  `kubectl failover status` and the endpoints
#   scripts/lab.sh env     print the environment for kubectl and kubectl-failover
#   scripts/lab.sh down    stop everything the lab started
#
# Needs root (containerd, kubelet, iptables) and this kind of machine: Debian bookworm,
# no Docker (podman builds the images, which are imported into each node's containerd;
# nothing is pulled). On a machine with Docker and kind, scripts/kind-lab.sh does the
# same with kind clusters. The clusters are the control planes `lab-east` and `lab-west`
# of scripts/kube-control-plane.sh (the tests' own planes are `east` and `west`); the
# lab's files live in .tools/lab/.
#
# Environment: LAB_TABLE (DynamoDB table, default failover-lab).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
lab="$root/.tools/lab"
table="${LAB_TABLE:-failover-lab}"
clusters=(east west)
planes="$root/.tools/control-planes"
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cli="$CARGO_TARGET_DIR/release/kubectl-failover"
demo_image="localhost/failover-demo:0.1.0"
python_base="localhost/failover-python:bookworm"

log() { echo "lab: $*" >&2; }
die() {
    echo "lab: $*" >&2
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

kubeconfig() { echo "$planes/lab-$1/kubeconfig"; }
k() { # cluster kubectl-args...
    local c="$1"
    shift
    kubectl --kubeconfig "$(kubeconfig "$c")" "$@"
}
# The address the cluster's pods reach this host at: the one its API server advertises
# (the host's end of the node's network link).
host_for_pods() {
    k "$1" get endpoints kubernetes -o jsonpath='{.subsets[0].addresses[0].ip}'
}
node_ip() { cat "$planes/lab-$1/node-ip"; }
kf() { "$cli" --config "$lab/kubectl-failover.yaml" "$@"; }

wait_for() { # what seconds command...
    local what="$1" secs="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what: not within ${secs}s"
        sleep 0.5
    done
}

# IMAGE tagged also as IMAGE-<its ID>: a rebuilt image gets a new tag, so applying the
# manifests again rolls the Pods over to it (a tag is never reused for other content).
unique_tag() {
    local id
    id="$(podman image inspect --format '{{.Id}}' "$1" | cut -c1-12)"
    podman tag "$1" "$1-$id"
    echo "$1-$id"
}

images() {
    scripts/podman.sh setup >&2
    if ! podman image exists "$python_base"; then
        log "building $python_base (python3 on the local Debian base)"
        printf '%s\n' 'FROM localhost/debian:bookworm' \
            'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb' |
            podman build -q -t "$python_base" -f - "$lab" >/dev/null
    fi
    podman build -q --build-arg BASE_IMAGE="$python_base" -t "$demo_image" deploy/demo >/dev/null
    operator_image="$(unique_tag "$(scripts/image.sh build | tail -n 1)")"
    demo_image="$(unique_tag "$demo_image")"
    [[ -x "$cli" ]] || cargo build --release --locked -p failover-cli >&2
}

# The operator from the chart, in cluster $1, its DynamoDB endpoint DynamoDB Local on
# this host.
install_operator() {
    local c="$1" endpoint="$2" repo="${operator_image%:*}" tag="${operator_image##*:}"
    k "$c" create namespace failover-system --dry-run=client -o yaml | k "$c" apply -f - >/dev/null
    scripts/chart.sh render --namespace failover-system --include-crds \
        --set "clusterName=$c" \
        --set "image.repository=$repo" --set "image.tag=$tag" --set image.pullPolicy=Never \
        --set "dynamodb.table=$table" --set "dynamodb.region=us-east-1" \
        --set "dynamodb.endpoint=$endpoint" \
        --kube-version "$(k "$c" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1)" \
        --api-versions "$(k "$c" api-versions | paste -sd, -)" \
        >"$lab/operator-$c.yaml"
    k "$c" apply -f "$lab/operator-$c.yaml" >/dev/null
}

# The demo application and its group in cluster $1 ($2: active or standby).
install_demo() {
    local c="$1" role="$2" replicas=1 suspend=false api=batch/v1
    if [[ "$role" == standby ]]; then replicas=0 suspend=true; fi
    # Kubernetes before 1.21 serves CronJobs only as batch/v1beta1.
    if [[ "$(k "$c" get --raw /apis/batch/v1 | grep -c '"cronjobs"')" == 0 ]]; then api=batch/v1beta1; fi
    sed -e "s#\${CLUSTER}#$c#g" -e "s#\${REPLICAS}#$replicas#g" -e "s#\${SUSPEND}#$suspend#g" \
        -e "s#\${CRONJOB_API}#$api#g" -e "s#\${IMAGE}#$demo_image#g" deploy/demo/demo.yaml >"$lab/demo-$c.yaml"
    k "$c" apply -f "$lab/demo-$c.yaml" >/dev/null
}

group_ready() {
    [[ "$(k "$1" -n demo get failovergroup demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

endpoint() { # cluster: what the demo's NodePort answers there
    curl -s --max-time 2 "http://$(node_ip "$1"):30080/" || echo "(no answer)"
}

up() {
    [[ $EUID -eq 0 ]] || die "needs root (containerd, kubelet, iptables)"
    local t0
    t0=$(now)
    mkdir -p "$lab"
    images
    local dynamo port
    dynamo="$(scripts/dynamodb-local.sh start)"
    port="${dynamo##*:}"
    for c in "${clusters[@]}"; do
        scripts/kube-control-plane.sh start "lab-$c" --node >/dev/null
        scripts/kube-control-plane.sh import "lab-$c" "$operator_image" "$demo_image" >&2
    done
    "$cli" create-table --table "$table" --dynamodb-endpoint "$dynamo" --region us-east-1 >&2
    cat >"$lab/kubectl-failover.yaml" <<EOF
namespace: demo
table: $table
dynamodbEndpoint: $dynamo
region: us-east-1
clusters:
- {name: east, kubeconfig: $(kubeconfig east), context: lab-east}
- {name: west, kubeconfig: $(kubeconfig west), context: lab-west}
EOF
    for c in "${clusters[@]}"; do
        install_operator "$c" "http://$(host_for_pods "$c"):$port"
    done
    for c in "${clusters[@]}"; do
        k "$c" -n failover-system rollout status deploy/failover-operator --timeout=180s >&2
    done
    install_demo east active
    install_demo west standby
    for c in "${clusters[@]}"; do
        wait_for "group demo Ready in $c" 180 group_ready "$c"
    done
    wait_for "the demo answering in east" 120 bash -c "curl -sf --max-time 2 http://$(node_ip east):30080/ | grep -q 'cluster east'"
    log "up in $(since "$t0")s"
    env_
}

env_() {
    echo "export KUBECTL_FAILOVER_CONFIG=$lab/kubectl-failover.yaml"
    echo "alias kubectl-east='kubectl --kubeconfig $(kubeconfig east)'"
    echo "alias kubectl-west='kubectl --kubeconfig $(kubeconfig west)'"
    echo "alias kubectl-failover='$cli'"
}

status() {
    kf status
    for c in "${clusters[@]}"; do
        echo "endpoint in $c: $(endpoint "$c")"
    done
}

demo() {
    [[ -f "$lab/kubectl-failover.yaml" ]] || die "the lab is not up: scripts/lab.sh up"
    local t0
    status
    for to in "west consistency" "east uptime"; do
        set -- $to
        echo
        echo "\$ kubectl failover request demo --to $1 --mode $2 --wait"
        t0=$(now)
        kf request demo --to "$1" --mode "$2" --wait
        log "$2 failover to $1 took $(since "$t0")s"
        echo
        status
    done
}

down() {
    for c in "${clusters[@]}"; do
        scripts/kube-control-plane.sh stop "lab-$c" || true
    done
    scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true
    rm -f "$lab/kubectl-failover.yaml"
    log "down"
}

case "${1:-}" in
    up) up ;;
    demo) demo ;;
    status) status ;;
    env) env_ ;;
    down) down ;;
    *)
        echo "usage: $0 up|demo|status|env|down" >&2
        exit 2
        ;;
esac
