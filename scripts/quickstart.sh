#!/usr/bin/env bash
# Builds wasmgate, its plugins and the demo upstream, then starts the quickstart:
# the echo upstream on 127.0.0.1:9001 and the gateway on 127.0.0.1:8080.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2
fi
cargo build --release -p wasmgate -p echo-upstream
mkdir -p examples/quickstart/plugins
scripts/build-plugins.sh examples/quickstart/plugins

target="${CARGO_TARGET_DIR:-target}"
"$target/release/echo-upstream" 127.0.0.1:9001 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT

cat <<'TRY'

wasmgate quickstart: try these in another terminal

  curl -i http://127.0.0.1:8080/hello
      the echo shows "x-hello: from-wasmgate" (added by the headers plugin on the way in)
      and the response carries "x-powered-by: wasmgate" (added on the way out);
      the gateway's console shows the access-log plugin's JSON line for it

  curl -i http://127.0.0.1:8080/admin/settings
      403 with the JSON error envelope from the deny plugin; nothing reaches the upstream

  curl -i http://127.0.0.1:8080/a/../hello -H 'X-Request-Id: my-id-1' --path-as-is
      the path is normalised to /hello before routing; your request id comes back

  curl -s http://127.0.0.1:8080/health
      gateway status and the echo service's latest probe; /metrics has Prometheus metrics

  curl -s http://127.0.0.1:9901/admin/plugins
      the admin API (loopback only): loaded plugins, their hashes, calls and errors

  edit examples/quickstart/wasmgate.toml (say, the x-hello value) and save
      the gateway reloads by itself: the next /hello shows the change; a broken edit
      is refused with one log line and the running config keeps serving

Ctrl-C stops the gateway and the echo upstream.

TRY
"$target/release/wasmgate" run --config examples/quickstart/wasmgate.toml
