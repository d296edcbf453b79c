#!/usr/bin/env bash
# MSA Gateway (seed 002) on wasmgate: builds wasmgate, its plugins and the example's
# services, then starts the gateway on 127.0.0.1:8000 (admin API on 127.0.0.1:9900)
# and the user, order and product services on 127.0.0.1:8001, 8002 and 8003, which
# register themselves with the gateway and send heartbeats. Ctrl-C stops them all.
# GATEWAY_PORT and LOG_LEVEL work as in the seed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2
fi
cargo build --release -p wasmgate -p example-services
mkdir -p examples/msa/plugins
scripts/build-plugins.sh examples/msa/plugins

target="${CARGO_TARGET_DIR:-target}"
gateway="http://127.0.0.1:${GATEWAY_PORT:-8000}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
"$target/release/wasmgate" run --config examples/msa/wasmgate.toml &
pids+=($!)
port=8001
for service in user-service order-service product-service; do
    "$target/release/msa-service" "$service" "127.0.0.1:$port" "$gateway" &
    pids+=($!)
    port=$((port + 1))
done

cat <<TRY

MSA Gateway on wasmgate: try these in another terminal (the seed's own examples)

  curl $gateway/health
  curl $gateway/discovery/services
  curl $gateway/api/user-service/users
  curl $gateway/api/product-service/products
  curl $gateway/services

Ctrl-C stops the gateway and the three services.

TRY
wait
