#!/usr/bin/env bash
# The main job: the chaos simulator (`failover-sim`) with the given arguments, e.g.
# `scripts/sim.sh run --seeds 10000`. It builds only what the simulator runs (the model,
# the engine's core without its Kubernetes and DynamoDB adapters, the simulator) into
# the same cargo target directory as scripts/test.sh (~/.cache/failover-rs/target, or
# FAILOVER_CACHE_DIR, or CARGO_TARGET_DIR), so the two commands never build twice.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
exec cargo run --quiet --release -p failover-sim --bin failover-sim -- "$@"
