#!/usr/bin/env bash
# The failover lab on one Docker host: two kind clusters, `east` and `west`
# (deploy/kind/east.yaml, west.yaml), DynamoDB Local in a container both reach, the
# operator's image built from this checkout and installed with its Helm chart in each
# cluster, and a demo that moves an application east -> west and back with
# `kubectl failover`.
#
# It needs Docker (or a Docker-compatible CLI and daemon), kind, kubectl, helm 3 and the
# Rust toolchain (cargo, for the kubectl-failover plugin). It CANNOT run on machines
# without Docker, such as this project's development machines: there, scripts/test.sh
# runs the same operator against local kube-apiservers and DynamoDB Local without
# containers.
#
#   scripts/kind-lab.sh up     # clusters, DynamoDB Local, table, image, CRDs, operator
#   scripts/kind-lab.sh demo   # the demo application, a failover east -> west and back
#   scripts/kind-lab.sh down   # delete the clusters and the DynamoDB Local container
#
# `up` and `demo` may be run again: what exists is reused (the image is rebuilt and the
# chart upgraded). Settings, from the environment:
#
#   LAB_DIR            where the lab keeps its plugin config (default
#                      ~/.cache/failover-rs/kind-lab)
#   LAB_TABLE          the DynamoDB table (default failover)
#   LAB_DYNAMODB_PORT  DynamoDB Local's port on the host's loopback (default 8000)
#   LAB_DYNAMODB_IMAGE DynamoDB Local's image (default amazon/dynamodb-local:latest)
#   LAB_IMAGE          the operator image built and loaded into kind
#                      (default localhost/failover-operator:lab)
#   LAB_BUILD_ARGS     extra `docker build` arguments, e.g.
#                      "--build-arg BUILDER_IMAGE=... --build-arg RUNTIME_IMAGE=..."
#   LAB_SKIP_BUILD=1   use LAB_IMAGE as it is in the local Docker (no docker build)
#   CARGO_TARGET_DIR   where cargo builds kubectl-failover (default ./target)
#
# After `up`, the plugin works from your shell too:
#   export PATH="<target>/release:$PATH" KUBECTL_FAILOVER_CONFIG=<LAB_DIR>/kubectl-failover.yaml
#   kubectl failover status shop
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_DIR=${LAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs/kind-lab}
TABLE=${LAB_TABLE:-failover}
DYNAMODB_PORT=${LAB_DYNAMODB_PORT:-8000}
DYNAMODB_IMAGE=${LAB_DYNAMODB_IMAGE:-amazon/dynamodb-local:latest}
DYNAMODB_CONTAINER=failover-lab-dynamodb
IMAGE=${LAB_IMAGE:-localhost/failover-operator:lab}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CHART=$ROOT/deploy/helm/failover-operator
RELEASE=failover-operator
OPERATOR_NAMESPACE=failover-system
CLUSTERS=(east west)
# The kind Docker network both clusters' nodes join (kind creates it).
KIND_NETWORK=kind
PLUGIN_CONFIG=$LAB_DIR/kubectl-failover.yaml

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'kind-lab: %s\n' "$*" >&2
    exit 1
}

# Each tool on PATH, or a clear error saying where to get it.
need() {
    local tool hint
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        case $tool in
        docker) hint="install Docker (https://docs.docker.com/engine/install/). This lab cannot run without it; on machines without Docker use scripts/test.sh" ;;
        kind) hint="install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, e.g. go install sigs.k8s.io/kind@latest)" ;;
        kubectl) hint="install kubectl (https://kubernetes.io/docs/tasks/tools/)" ;;
        helm) hint="install Helm 3 (https://helm.sh/docs/intro/install/)" ;;
        cargo) hint="install the Rust toolchain (https://rustup.rs): it builds the kubectl-failover plugin" ;;
        *) hint="install it" ;;
        esac
        die "$tool not found on PATH: $hint"
    done
    if [[ " $* " == *" docker "* ]] && ! docker info >/dev/null 2>&1; then
        die "docker cannot reach its daemon (docker info failed): start Docker, or give your user access to it"
    fi
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$1"; }

# DynamoDB Local's address on the kind network, as the operators' pods reach it. The
# address, not the container's name: pods resolve names through the clusters' CoreDNS,
# which does not know Docker's container names. It changes if the container is
# re-created, so `up` passes it to the chart each time.
dynamodb_ip() {
    docker inspect -f "{{(index .NetworkSettings.Networks \"$KIND_NETWORK\").IPAddress}}" \
        "$DYNAMODB_CONTAINER" 2>/dev/null || true
}

# kubectl-failover, built by `up`, first on PATH: `kubectl failover` runs it.
use_plugin() {
    [[ -x $TARGET_DIR/release/kubectl-failover ]] ||
        die "$TARGET_DIR/release/kubectl-failover is missing: run scripts/kind-lab.sh up first (or set CARGO_TARGET_DIR to where it was built)"
    [[ -f $PLUGIN_CONFIG ]] || die "$PLUGIN_CONFIG is missing: run scripts/kind-lab.sh up first"
    export PATH="$TARGET_DIR/release:$PATH"
    export KUBECTL_FAILOVER_CONFIG=$PLUGIN_CONFIG
}

up() {
    need docker kind kubectl helm cargo
    [[ -f $ROOT/deploy/Dockerfile ]] || die "deploy/Dockerfile is missing: this checkout cannot build the operator's image"
    [[ -f $CHART/Chart.yaml ]] || die "$CHART is missing: this checkout has no Helm chart"
    mkdir -p "$LAB_DIR"

    local c
    for c in "${CLUSTERS[@]}"; do
        if cluster_exists "$c"; then
            say "kind cluster $c exists (context kind-$c)"
        else
            say "creating kind cluster $c (deploy/kind/$c.yaml)"
            kind create cluster --config "$ROOT/deploy/kind/$c.yaml" --wait 180s
        fi
    done

    if [[ $(docker inspect -f '{{.State.Running}}' "$DYNAMODB_CONTAINER" 2>/dev/null || true) == true ]]; then
        say "DynamoDB Local runs ($DYNAMODB_CONTAINER)"
    else
        docker rm -f "$DYNAMODB_CONTAINER" >/dev/null 2>&1 || true
        say "starting DynamoDB Local ($DYNAMODB_IMAGE) on the $KIND_NETWORK network, port 127.0.0.1:$DYNAMODB_PORT"
        # -sharedDb: one database whatever the client's region and credentials;
        # -inMemory: gone with the container (`down`).
        docker run -d --name "$DYNAMODB_CONTAINER" --network "$KIND_NETWORK" \
            -p "127.0.0.1:$DYNAMODB_PORT:8000" \
            "$DYNAMODB_IMAGE" -jar DynamoDBLocal.jar -sharedDb -inMemory >/dev/null
    fi
    local ip
    ip=$(dynamodb_ip)
    [[ -n $ip ]] || die "$DYNAMODB_CONTAINER has no address on the $KIND_NETWORK network"
    local pod_endpoint="http://$ip:8000"
    local host_endpoint="http://127.0.0.1:$DYNAMODB_PORT"

    say "building kubectl-failover (cargo build --release -p failover-cli)"
    (cd "$ROOT" && cargo build --release -p failover-cli --bin kubectl-failover)
    cat >"$PLUGIN_CONFIG" <<EOF
# kubectl-failover's config for the kind lab (scripts/kind-lab.sh).
namespace: shop
table: $TABLE
dynamodbEndpoint: $host_endpoint
clusters:
  - {name: east, context: kind-east}
  - {name: west, context: kind-west}
EOF
    use_plugin

    say "creating the DynamoDB table $TABLE (kubectl failover create-table)"
    local try
    for try in $(seq 1 30); do
        if kubectl failover create-table --table "$TABLE" --dynamodb-endpoint "$host_endpoint"; then
            break
        fi
        ((try < 30)) || die "DynamoDB Local at $host_endpoint did not answer (docker logs $DYNAMODB_CONTAINER)"
        sleep 1
    done

    if [[ ${LAB_SKIP_BUILD:-} == 1 ]]; then
        docker image inspect "$IMAGE" >/dev/null 2>&1 || die "LAB_SKIP_BUILD=1 but the image $IMAGE is not in the local Docker"
        say "using the image $IMAGE as it is"
    else
        say "building the operator image $IMAGE (docker build -f deploy/Dockerfile; the Rust build runs in its builder stage and takes minutes)"
        local build_args=()
        read -r -a build_args <<<"${LAB_BUILD_ARGS:-}"
        # (The expansion below also works with bash 3.2's `set -u` and an empty array.)
        docker build -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" ${build_args[@]+"${build_args[@]}"} "$ROOT"
    fi

    for c in "${CLUSTERS[@]}"; do
        say "loading $IMAGE into kind cluster $c"
        kind load docker-image "$IMAGE" --name "$c"
        say "installing the CRDs and the operator in $c (namespace $OPERATOR_NAMESPACE, DynamoDB $pod_endpoint)"
        kubectl --context "kind-$c" apply --server-side -f "$ROOT/deploy/crds/crds.yaml"
        helm upgrade --install "$RELEASE" "$CHART" \
            --kube-context "kind-$c" \
            --namespace "$OPERATOR_NAMESPACE" --create-namespace \
            --set-string clusterName="$c" \
            --set-string dynamodb.table="$TABLE" \
            --set-string dynamodb.endpoint="$pod_endpoint" \
            --set-string image.repository="${IMAGE%:*}" \
            --set-string image.tag="${IMAGE##*:}" \
            --set-string image.pullPolicy=IfNotPresent \
            --wait --timeout 5m
    done

    cat >&2 <<EOF

The lab is up:
  clusters      kind-east (API 127.0.0.1:7443), kind-west (127.0.0.1:7444)
  DynamoDB      $host_endpoint from here, $pod_endpoint from pods; table $TABLE
  operator      $IMAGE, release $RELEASE in $OPERATOR_NAMESPACE of each cluster
Next: scripts/kind-lab.sh demo. Or by hand:
  export PATH="$TARGET_DIR/release:\$PATH" KUBECTL_FAILOVER_CONFIG=$PLUGIN_CONFIG
EOF
}

demo() {
    need kubectl
    use_plugin
    local c
    for c in "${CLUSTERS[@]}"; do
        cluster_exists "$c" || die "kind cluster $c does not exist: run scripts/kind-lab.sh up first"
        say "applying the demo application and its FailoverGroup to $c (deploy/kind/demo.yaml)"
        kubectl --context "kind-$c" apply -f "$ROOT/deploy/kind/demo.yaml"
    done
    for c in "${CLUSTERS[@]}"; do
        say "waiting until $c's operator runs the group (condition Ready)"
        kubectl --context "kind-$c" -n shop wait --for=condition=Ready failovergroup/shop --timeout=180s ||
            die "the group is not Ready in $c: kubectl --context kind-$c -n shop get failovergroup shop -o yaml (status.invalid, status.problems)"
    done
    say "waiting until east serves (its operator starts the application: 2 ready replicas)"
    kubectl --context kind-east -n shop wait --for=jsonpath='{.status.readyReplicas}'=2 deployment/web --timeout=180s

    say "kubectl failover status shop"
    kubectl failover status shop

    say "kubectl failover request shop --to west --wait (consistency: east stops before west starts)"
    kubectl failover request shop --to west --wait ||
        die "the failover to west did not complete (exit $?): kubectl failover status shop"
    kubectl failover status shop

    say "kubectl failover request shop --to east --mode uptime --wait (uptime: east starts before west stops)"
    kubectl failover request shop --to east --mode uptime --wait ||
        die "the failover back to east did not complete (exit $?): kubectl failover status shop"
    kubectl failover status shop

    say "kubectl failover history shop"
    kubectl failover history shop
    say "a picture of the last failover: kubectl failover history shop --timeline shop.html"
}

down() {
    need docker kind
    local c
    for c in "${CLUSTERS[@]}"; do
        if cluster_exists "$c"; then
            say "deleting kind cluster $c"
            kind delete cluster --name "$c"
        fi
    done
    if docker inspect "$DYNAMODB_CONTAINER" >/dev/null 2>&1; then
        say "removing DynamoDB Local ($DYNAMODB_CONTAINER)"
        docker rm -f "$DYNAMODB_CONTAINER" >/dev/null
    fi
    rm -f "$PLUGIN_CONFIG"
}

case ${1:-} in
up) up ;;
demo) demo ;;
down) down ;;
-h | --help | help)
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    ;;
*)
    echo "usage: scripts/kind-lab.sh up|demo|down (help: scripts/kind-lab.sh --help)" >&2
    exit 2
    ;;
esac
