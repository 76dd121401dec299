#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine of this kind: formatting, clippy
# with warnings denied, rustdoc, and the test suite in release mode (the exhaustive
# model-checking tests need release speed). It installs and starts what the tests need
# and stops it after:
#   - rootful podman, a local Debian base image (debootstrap) and DynamoDB Local's
#     image, and podman's Docker API: the DynamoDB adapter's tests run first against
#     DynamoDB Local started through testcontainers;
#   - DynamoDB Local (npm package) as a process for the other tests;
#   - two Kubernetes control planes, `east` and `west` (etcd, kube-apiserver and
#     kube-controller-manager 1.20, built from Debian's source package on first use,
#     then cached) for the integration tests;
#   - the lab (scripts/lab.sh up): two more clusters with real nodes (kubelet,
#     containerd, kube-proxy, kube-scheduler from the same source), the operator image
#     built with podman and installed from the Helm chart in each, and the demo
#     application, for the deployed tests (integration/tests/deployed.rs);
#   - Helm's library (PyPI helm-python-sdk, in a venv) for the chart tests;
#   - kubectl (Debian's kubernetes-client), if missing, for the plugin test.
# Slow things are cached in ~/.cache/failover-rs (FAILOVER_CACHE_DIR): the built
# binaries, the npm install, the venv, and the cargo target directory (unless
# CARGO_TARGET_DIR is set), so a fresh clone on the same machine does not rebuild the
# world.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
# kubectl, for the plugin test (`kubectl failover ...`): Debian's kubernetes-client.
if ! command -v kubectl >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q kubernetes-client >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q kubernetes-client >/dev/null; }
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release --quiet
cleanup() {
    scripts/lab.sh down >/dev/null 2>&1 || true
    scripts/kube-control-plane.sh stop-all >/dev/null 2>&1 || true
    scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true
    scripts/podman.sh service stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
# One release build of everything the tests run, the binaries too (the image and the lab
# take them from it): a `cargo build -p` or `cargo test -p` of a few packages resolves
# other features and compiles much of the tree again.
cargo test --workspace --release --no-run
scripts/chart.sh setup
# Every Kubernetes binary in one build on a fresh machine (the nodes' too, for the lab).
scripts/kube-control-plane.sh build --node
scripts/podman.sh setup
scripts/podman.sh dynamodb-image >/dev/null
DOCKER_HOST="$(scripts/podman.sh service start)"
export DOCKER_HOST
# The DynamoDB adapter's tests against DynamoDB Local in a container (testcontainers).
FAILOVER_DYNAMODB=container cargo test --workspace --release --test dynamo
DYNAMODB_ENDPOINT="$(scripts/dynamodb-local.sh start)"
FAILOVER_KUBECONFIG_EAST="$(scripts/kube-control-plane.sh start east)"
FAILOVER_KUBECONFIG_WEST="$(scripts/kube-control-plane.sh start west)"
export DYNAMODB_ENDPOINT FAILOVER_KUBECONFIG_EAST FAILOVER_KUBECONFIG_WEST
# The deployed tests' lab (it builds the image from the release binaries), and its demo:
# a failover there and back with `kubectl failover request --wait`, printed.
FAILOVER_IMAGE_BUILT=1 scripts/lab.sh up >/dev/null
scripts/lab.sh demo
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --release --no-fail-fast
# The kill matrix's table (the operator tests write it; a passing test's output is
# captured).
cat "$CARGO_TARGET_DIR/kill-matrix.txt" 2>/dev/null || true
