#!/usr/bin/env bash
# Slow and abusive clients against the real gateway, and what the other clients see:
#
#   slowloris    slowhttptest -H: connections that send their headers a line at a time
#   slow-body    slowhttptest -B: POSTs whose bodies trickle in
#   slow-read    slowhttptest -X: clients that read their responses a few bytes at a time
#   idle         IDLE connections opened and left open, sending nothing
#   flood        wrk: a flood of tiny requests on many connections
#
# While each runs (DURATION seconds), a probe sends one ordinary request every 0.2 s
# from another loopback address (127.0.0.2) and records its latency; before and after
# each, the gateway's RSS, open file descriptors and open connections are sampled.
# Prints one row per scenario: probes answered, probe latency (median and max), the
# gateway's peak RSS and descriptors, and its open connections at the end. The gateway
# runs with its default [limits] (the README's), so the table is what users get.
#
#   bench/slow-clients.sh                      DURATION=30 CONNECTIONS=1000 IDLE=4000
#   WASMGATE_BIN=target/release/wasmgate bench/slow-clients.sh   (skip the build)
#
# Loopback only; every step is bounded in time; the servers it starts are stopped on
# exit. Installs slowhttptest and wrk from Debian's packages when missing (as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration="${DURATION:-30}"
connections="${CONNECTIONS:-1000}"
idle="${IDLE:-4000}"
port_upstream="${PORT_UPSTREAM:-18191}"
port_gateway="${PORT_GATEWAY:-18190}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: slowhttptest, wrk"
if ! command -v slowhttptest >/dev/null || ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest wrk >/dev/null
fi

bin="${WASMGATE_BIN:-}"
if [ -z "$bin" ]; then
    step "build: wasmgate (release)"
    cargo build --release --locked -p wasmgate >&2
    bin="${CARGO_TARGET_DIR:-target}/release/wasmgate"
fi

work="$(mktemp -d /tmp/wasmgate-slow.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Allow many descriptors for the attackers (the gateway keeps its own limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

step "upstream: python3 http.server on 127.0.0.1:$port_upstream"
mkdir -p "$work/www"
echo ok >"$work/www/index.html"
head -c $((4 << 20)) /dev/zero >"$work/www/big.bin"
# Files for GET, and a POST that reads its whole body before answering (so that a slow
# body is the gateway's to wait for, not refused by the upstream at once).
python3 - "$port_upstream" "$work/www" >"$work/upstream.log" 2>&1 <<'PY' &
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 1024
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
pids+=($!)

step "gateway: 127.0.0.1:$port_gateway, default [limits]"
mkdir -p "$work/plugins" "$work/data"
cat >"$work/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port_gateway"
plugin_dir = "$work/plugins"
data_dir = "$work/data"

[services.www]
endpoints = ["http://127.0.0.1:$port_upstream"]

[[routes]]
name = "all"
prefix = "/"
service = "www"
TOML
"$bin" run --config "$work/wasmgate.toml" >"$work/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port_gateway/index.html" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port_gateway/index.html"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$gateway/status"; }
fds() { find "/proc/$gateway/fd" -mindepth 1 -maxdepth 1 | wc -l; }
open_connections() {
    curl -fsS "http://127.0.0.1:$port_gateway/metrics" --interface 127.0.0.2 2>/dev/null |
        awk '/^wasmgate_connections_open / {print $2}'
}

# probe OUT SECONDS: one request every 0.2 s from 127.0.0.2; "ok seconds" per line.
probe() {
    local out="$1" until=$((SECONDS + $2))
    : >"$out"
    while [ "$SECONDS" -lt "$until" ]; do
        curl -sS -o /dev/null --interface 127.0.0.2 --max-time 10 \
            -w '%{http_code} %{time_total}\n' \
            "http://127.0.0.1:$port_gateway/index.html" >>"$out" 2>/dev/null ||
            echo "000 10" >>"$out"
        sleep 0.2
    done
}

# sample OUT SECONDS: RSS and descriptors once a second.
sample() {
    local out="$1" until=$((SECONDS + $2))
    : >"$out"
    while [ "$SECONDS" -lt "$until" ]; do
        echo "$(rss_kib) $(fds)" >>"$out"
        sleep 1
    done
}

# idle_clients N SECONDS: opens N connections that send nothing, holds them.
idle_clients() {
    python3 - "$port_gateway" "$1" "$2" <<'PY'
import socket, sys, time
port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
held, refused = [], 0
for _ in range(count):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        held.append(s)
    except OSError:
        refused += 1
time.sleep(hold)
closed = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"idle: opened {len(held)}, failed {refused}, closed by the gateway {closed}", file=sys.stderr)
PY
}

url="http://127.0.0.1:$port_gateway"
results="$work/results.txt"
: >"$results"

run() { # NAME COMMAND...
    local name="$1"
    shift
    step "$name (${duration} s)"
    probe "$work/$name.probe" "$duration" &
    local probe_pid=$!
    sample "$work/$name.sample" "$duration" &
    local sample_pid=$!
    timeout $((duration + 30)) "$@" >"$work/$name.out" 2>&1 || true
    wait "$probe_pid" "$sample_pid"
    sleep 2
    local after
    after="$(open_connections)"
    python3 - "$name" "$work/$name.probe" "$work/$name.sample" "${after:-?}" >>"$results" <<'PY'
import statistics, sys
name, probe, sample, after = sys.argv[1:]
rows = [l.split() for l in open(probe) if l.strip()]
ok = [float(t) * 1000 for code, t in rows if code == "200"]
samples = [tuple(map(int, l.split())) for l in open(sample) if l.strip()]
med = f"{statistics.median(ok):.1f}" if ok else "-"
top = f"{max(ok):.1f}" if ok else "-"
rss = max(s[0] for s in samples) / 1024 if samples else 0
fd = max(s[1] for s in samples) if samples else 0
print(f"| {name} | {len(ok)}/{len(rows)} | {med} | {top} | {rss:.1f} | {fd} | {after} |")
PY
    kill -0 "$gateway" 2>/dev/null || {
        echo "the gateway died during $name" >&2
        tail -20 "$work/gateway.log" >&2
        exit 1
    }
}

run slowloris slowhttptest -H -c "$connections" -r 200 -i 5 -l "$duration" -u "$url/index.html" -p 3
run slow-body slowhttptest -B -c "$connections" -r 200 -i 5 -s 8192 -l "$duration" -u "$url/index.html" -p 3
run slow-read slowhttptest -X -c "$connections" -r 200 -w 16 -y 32 -n 5 -z 16 -l "$duration" -u "$url/big.bin" -p 3
run idle idle_clients "$idle" "$duration"
run flood wrk -t 1 -c 256 -d "${duration}s" "$url/index.html"

baseline_rss="$(rss_kib)"
cat <<EOF

Slow and abusive clients, ${duration} s each, default [limits]; probe: one GET every 0.2 s
from 127.0.0.2 (latency in ms); RSS in MiB and descriptors are the gateway's peaks;
"open after" is wasmgate_connections_open 2 s after the scenario.

| scenario | probes ok | probe median | probe max | peak RSS | peak fds | open after |
|---|---|---|---|---|---|---|
$(cat "$results")

gateway RSS at the end: $((baseline_rss / 1024)) MiB; logs and raw samples in $work
EOF
for name in slowloris slow-body slow-read; do
    grep -E "service available|closed|pending|connected" "$work/$name.out" | tail -4 | sed "s/^/$name: /" || true
done
