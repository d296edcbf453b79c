#!/usr/bin/env bash
# Two wasmgate replicas sharing one Redis: builds wasmgate, its plugins and the demo
# upstream, installs redis-server from Debian's packages when missing, then starts
# Redis on 127.0.0.1:6390, the echo upstream on 127.0.0.1:9001, replica A on
# 127.0.0.1:8081 (admin 9911) and replica B on 127.0.0.1:8082 (admin 9912).
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2
fi
if ! command -v redis-server >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
cargo build --release -p wasmgate -p echo-upstream
mkdir -p examples/replicas/plugins
scripts/build-plugins.sh examples/replicas/plugins

target="${CARGO_TARGET_DIR:-target}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
"$target/release/echo-upstream" 127.0.0.1:9001 &
pids+=($!)
for replica in a b; do
    "$target/release/wasmgate" run --config "examples/replicas/replica-$replica.toml" &
    pids+=($!)
done

cat <<'TRY'

wasmgate replicas: try these in another terminal

  for i in 1 2 3 4 5 6 7 8; do curl -s -o /dev/null -w '%{http_code} ' \
      http://127.0.0.1:808$((i % 2 + 1))/api/items; done; echo
      alternating between the replicas: five 200s, then 429s (5 a minute in all)

  key=$(curl -s -X POST http://127.0.0.1:9911/admin/api-keys \
      -H 'content-type: application/json' -d '{"consumer": "billing", "role": "service"}' |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["key"])')
  curl -i http://127.0.0.1:8082/keyed/invoices -H "x-api-key: $key"
      a key created through replica A's admin API works on replica B

  curl -s http://127.0.0.1:8081/health
      "state": {"backend": "redis", "status": "healthy", …}; stop Redis and it says
      "down" (and /api answers 503), start it again and both replicas recover alone

Ctrl-C stops Redis, the upstream and both replicas.

TRY
wait
