#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the wasm target, builds the
# gateway and every plugin (first-party and the hostile test guests), then runs
# the unit tests, the plugins' harness tests and the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Traps in hostile test plugins are expected; a host backtrace for each costs time.
export RUST_BACKTRACE=0

step() { printf '\n==> %s\n' "$*"; }

# A fresh clone (CI) builds every crate once: incremental compilation would only add
# its own bookkeeping to the workspace's crates, and line tables (for backtraces with
# lines) cost CPU time: cranelift-codegen alone took 434 s of CPU with them, 407 s
# without. Both kept as they are for a tree built before.
if [ ! -d "${CARGO_TARGET_DIR:-target}/release" ]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"
fi

step "toolchain: wasm32-wasip2 target"
if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2
fi

step "tools: curl (a real client in the TLS tests)"
if ! command -v curl >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

step "format check"
cargo fmt --all -- --check

# One cargo invocation builds the gateway and every test with one feature set: a
# separate `cargo build -p wasmgate` would resolve features differently from the
# workspace's test build and compile wasmtime twice (10 of CI's minutes).
step "build: the wasmgate binary and every test"
cargo test --release --locked --workspace --no-run

step "build: plugins and test guests (wasm32-wasip2)"
scripts/build-plugins.sh

step "test: unit, harness and end-to-end tests"
cargo test --release --locked --workspace
