#!/usr/bin/env bash
# MSA Gateway (seed 002) on wasmgate: builds wasmgate, its plugins and the example's
# services, then starts the gateway on 127.0.0.1:8000 (admin API on 127.0.0.1:9900)
# and the user, order and product services on 127.0.0.1:8001, 8002 and 8003, which
# register themselves with the gateway and send heartbeats. Ctrl-C stops them all.
# GATEWAY_PORT and LOG_LEVEL work as in the seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/lib.sh

build_example msa example-services

gateway="http://127.0.0.1:${GATEWAY_PORT:-8000}"
start "$target/release/wasmgate" run --config examples/msa/wasmgate.toml
port=8001
for service in user-service order-service product-service; do
    start "$target/release/msa-service" "$service" "127.0.0.1:$port" "$gateway"
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
