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

step "tools: redis-server (the Redis state backend's tests)"
if ! command -v redis-server >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

step "tools: chromium (a real headless browser for the dashboard's test)"
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
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

step "server: redis-server on a loopback port, for the whole run"
redis_dir="$(mktemp -d)"
redis_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$redis_dir" --daemonize yes --pidfile "$redis_dir/redis.pid" \
    --logfile "$redis_dir/redis.log"
stop_redis() {
    if [ -f "$redis_dir/redis.pid" ]; then
        kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true
    fi
    rm -rf "$redis_dir"
}
trap stop_redis EXIT
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping
export WASMGATE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

step "test: unit, harness and end-to-end tests"
cargo test --release --locked --workspace
