#!/usr/bin/env bash
# WebSockets held and echoing through the real gateway:
#
#   TOTAL idle WebSockets opened through the gateway (200 handshakes at a time) and
#   held for HOLD seconds, then ECHOING of them sending a 64-byte message and waiting
#   for its echo, over and over, for ECHO seconds; every one checked still open
#   (ping/pong) and closed at the end.
#
# The client and the echo upstream are `ws-bench` (tests/src/bin/ws-bench.rs), one
# process each. Prints the gateway's RSS before, while the WebSockets are held (peak),
# while echoing (peak) and after they close, and the client's JSON summary (echo
# rate, latency percentiles, connections found closed), then the same client's
# summary straight to the upstream, for comparison. The route has
# `[routes.websocket]` with its defaults and no plugin; `max_connections` is raised
# above TOTAL.
#
#   bench/websockets.sh                        TOTAL=10000 ECHOING=1000 HOLD=10 ECHO=10
#   WASMGATE_BIN=target/release/wasmgate WS_BENCH_BIN=target/release/ws-bench \
#     bench/websockets.sh                      (skip the build)
#
# Loopback only; every step is bounded in time; what it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

total="${TOTAL:-10000}"
echoing="${ECHOING:-1000}"
hold="${HOLD:-10}"
echo_s="${ECHO:-10}"
port_upstream="${PORT_UPSTREAM:-18291}"
port_gateway="${PORT_GATEWAY:-18290}"

step() { printf '\n==> %s\n' "$*" >&2; }

bin="${WASMGATE_BIN:-}"
ws_bench="${WS_BENCH_BIN:-}"
if [ -z "$bin" ] || [ -z "$ws_bench" ]; then
    step "build: wasmgate and ws-bench (release)"
    cargo build --release --locked -p wasmgate -p wasmgate-e2e --bin wasmgate --bin ws-bench >&2
    bin="${CARGO_TARGET_DIR:-target}/release/wasmgate"
    ws_bench="${CARGO_TARGET_DIR:-target}/release/ws-bench"
fi

work="$(mktemp -d /tmp/wasmgate-ws.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Each WebSocket is a descriptor in the client and the upstream, two in the gateway.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

step "upstream: ws-bench echo on 127.0.0.1:$port_upstream"
"$ws_bench" upstream "127.0.0.1:$port_upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)

step "gateway: 127.0.0.1:$port_gateway"
mkdir -p "$work/plugins" "$work/data"
cat >"$work/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port_gateway"
plugin_dir = "$work/plugins"
data_dir = "$work/data"

[limits]
max_connections = $((total + 1000))

[services.realtime]
endpoints = ["http://127.0.0.1:$port_upstream"]

[[routes]]
name = "ws"
prefix = "/"
service = "realtime"
[routes.websocket]
TOML
"$bin" run --config "$work/wasmgate.toml" >"$work/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port_gateway/health" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port_gateway/health"

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$gateway/status"; }
before="$(rss_mib)"

step "clients: $total WebSockets, $echoing echoing"
"$ws_bench" clients "ws://127.0.0.1:$port_gateway/ws" "$total" "$echoing" "$hold" "$echo_s" \
    >"$work/clients.json" 2>"$work/clients.log" &
client=$!
pids+=($client)
phase=opening
held_peak=0
echo_peak=0
deadline=$((SECONDS + 120 + hold + echo_s))
while kill -0 "$client" 2>/dev/null; do
    if [ "$SECONDS" -gt "$deadline" ]; then
        echo "the client did not finish in time" >&2
        exit 1
    fi
    case "$(tail -n 1 "$work/clients.log" 2>/dev/null)" in
        held*) phase=held ;;
        echoing*) phase=echoing ;;
        closing*) phase=closing ;;
    esac
    rss="$(rss_mib)"
    case "$phase" in
        held) held_peak="$(python3 -c "print(max($held_peak, $rss))")" ;;
        echoing) echo_peak="$(python3 -c "print(max($echo_peak, $rss))")" ;;
    esac
    sleep 0.5
done
wait "$client"
sleep 2
after="$(rss_mib)"
open="$(curl -fsS "http://127.0.0.1:$port_gateway/metrics" | awk '/^wasmgate_websockets_open/ {print $2}')"
kill -0 "$gateway" || {
    echo "the gateway died" >&2
    tail -20 "$work/gateway.log" >&2
    exit 1
}

step "the same clients straight to the upstream (no gateway), for comparison"
timeout $((120 + hold + echo_s)) "$ws_bench" clients "ws://127.0.0.1:$port_upstream/ws" \
    "$total" "$echoing" "$hold" "$echo_s" >"$work/direct.json" 2>"$work/direct.log"

cat "$work/clients.log" >&2
echo
echo "gateway RSS MiB: before $before, $total held (peak) $held_peak, $echoing echoing (peak) $echo_peak, after close $after"
echo "open WebSockets the gateway counts after close: ${open:-0}"
echo "through the gateway: $(cat "$work/clients.json")"
echo "direct to the upstream: $(cat "$work/direct.json")"
