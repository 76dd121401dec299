#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine of this kind: formatting, clippy
# with warnings denied, rustdoc, and the test suite in release mode (the exhaustive
# model-checking tests need release speed). Nothing else needs installing yet; later
# issues add DynamoDB Local and kube-apiserver set-up here, cached under .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release --quiet
cargo test --workspace --release
