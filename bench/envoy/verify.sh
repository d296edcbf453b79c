#!/usr/bin/env bash
# Smoke check of the Envoy peer: starts a tiny Python upstream on 127.0.0.1
# that reports the x-bench-request header it received (as response header
# x-upstream-saw-x-bench-request), runs envoy in plain and wasm mode in front
# of it, checks with curl, and stops everything it started.
# usage: bench/envoy/verify.sh   (runs setup.sh first)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENVOY="$("$here/setup.sh" | tail -1)"
echo "envoy: $ENVOY ($("$ENVOY" --version | grep -o 'version: .*'))"

RUNTIME=${RUNTIME:-envoy.wasm.runtime.v8}   # the only runtime in this build
LISTEN=${LISTEN:-18480} UPSTREAM=${UPSTREAM:-18481} ADMIN=${ADMIN:-18482}
tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

python3 - "$UPSTREAM" >"$tmp/upstream.log" 2>&1 <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive
    def do_GET(self):
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream-saw-x-bench-request",
                         self.headers.get("x-bench-request", "<absent>"))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

wait_ready() {  # port [pid]
    for _ in $(seq 100); do
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    echo "nothing answering on 127.0.0.1:$1" >&2; return 1
}
wait_ready "$UPSTREAM"

fail=0
for mode in plain wasm; do
    "$here/config.sh" "$mode" "$LISTEN" "$UPSTREAM" "$ADMIN" "" "$RUNTIME" >"$tmp/$mode.yaml"
    "$ENVOY" -c "$tmp/$mode.yaml" --concurrency 2 --log-level error \
        >"$tmp/envoy-$mode.log" 2>&1 &
    epid=$!; pids+=($epid)
    wait_ready "$LISTEN" "$epid" || { cat "$tmp/envoy-$mode.log" >&2; exit 1; }
    echo "=== mode=$mode ($RUNTIME): curl -sv http://127.0.0.1:$LISTEN/"
    curl -sv "http://127.0.0.1:$LISTEN/" 2>&1 | grep -E '^(< |> GET|hello)' | tee "$tmp/out"
    status=$(grep -m1 '^< HTTP/' "$tmp/out" | awk '{print $3}')
    resp=$(grep -ci '^< x-bench-response: 1' "$tmp/out" || true)
    saw=$(grep -i '^< x-upstream-saw-x-bench-request:' "$tmp/out" | awk '{print $3}' | tr -d '\r')
    if [ "$mode" = plain ]; then
        [ "$status" = 200 ] && [ "$resp" = 0 ] && [ "$saw" = "<absent>" ] || fail=1
    else
        [ "$status" = 200 ] && [ "$resp" = 1 ] && [ "$saw" = 1 ] || fail=1
    fi
    kill "$epid"; wait "$epid" 2>/dev/null || true
    if [ -s "$tmp/envoy-$mode.log" ]; then echo "--- envoy log ($mode):"; cat "$tmp/envoy-$mode.log"; fi
done
if [ $fail = 0 ]; then echo "verify: OK"; else echo "verify: FAILED"; exit 1; fi
