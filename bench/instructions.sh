#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by callgrind (valgrind): a
# figure that this shared machine's noise does not move, for A/Bs of a few per cent
# that the wall-clock benchmarks (bench/run.sh) cannot resolve. perf's hardware
# counters are not available on these virtual machines; callgrind counts in software.
#
#   bench/instructions.sh REV [REV ...]      e.g. bench/instructions.sh 60669be HEAD
#   REQUESTS=4000 ROUNDS=3 CONNECTIONS=8 ROUTE=p0 bench/instructions.sh 60669be HEAD
#   DUMPS=/tmp/dumps bench/instructions.sh 60669be HEAD
#       also keeps each revision's dump of the last round (DIR/REV.callgrind), for
#       `callgrind_annotate --inclusive=yes DIR/REV.callgrind` to say where they differ
#
# Each revision's tree (`git archive`, kept under the target dir) is built in release,
# in one target dir for all of them (`INSTRUCTIONS_TARGET`, default
# target/instructions: a full build the first time; `cp -a target/release
# target/instructions/` first saves most of it), with one change made to every tree
# alike: wasmtime's pooling allocator replaced by on-demand allocation, because
# valgrind cannot map the pool's terabytes of address space. The routes measured run
# no plugin, so no instance is ever allocated; what is counted is the
# gateway's own path: accept, parse, route, forward, answer.
#
# The gateways run side by side under callgrind with instrumentation off until their
# load window; an upstream (nginx answering from memory) serves them all. In each of
# ROUNDS rounds every gateway is started afresh and warmed up (500 requests), then, in
# an order that rotates, gets REQUESTS requests from h2load (HTTP/1.1, CONNECTIONS
# keep-alive connections) with its counters zeroed before and dumped after:
# instructions per request, the medians over the rounds, and each revision's ratio to
# the first within each round.
#
# The first revision is the baseline: it serves route p0 with its own defaults. The
# others serve ROUTE, with RETRIES:
#   ROUTE=p0    (default) a route with no plugins to a one-endpoint service: round-robin
#               balancing and outlier detection, as configured by default
#   ROUTE=prb   the same upstream as a service with least-request balancing and a
#               circuit breaker
#   RETRIES=on  (default) the route's retries as configured by default (two attempts
#               for idempotent methods: a copy of each request's head is kept for a
#               second try); RETRIES=off gives the route `[routes.retry] attempts = 1`,
#               to count balancing and breaker bookkeeping alone
#   HYPER_HEADER_TIMER=off  builds every revision that still arms hyper's header read
#               timer (before 2eae803, which clocks request heads in the gateway's own
#               framing tracker) with that timer off, so that such a baseline and a
#               later build differ in what is being measured, not in that timer (a
#               timer-wheel entry per request head: ~1,500 instructions)
# Loopback only; every step is bounded in time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

[ "$#" -ge 1 ] || { sed -n 2,46p "$0" >&2; exit 2; }
revs=("$@")
requests="${REQUESTS:-4000}"
rounds="${ROUNDS:-3}"
connections="${CONNECTIONS:-8}"
route="${ROUTE:-p0}"
retries="${RETRIES:-on}"
case "$route/$retries" in
    p0/on | p0/off | prb/on | prb/off) ;;
    *) echo "ROUTE must be p0 or prb, RETRIES on or off" >&2; exit 2 ;;
esac
target="${INSTRUCTIONS_TARGET:-$repo/target/instructions}"
hyper_header_timer="${HYPER_HEADER_TIMER:-on}"
case "$hyper_header_timer" in
    on | off) ;;
    *) echo "HYPER_HEADER_TIMER must be on or off" >&2; exit 2 ;;
esac
base_port="${BASE_PORT:-19180}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: valgrind, h2load, nginx"
if ! command -v valgrind >/dev/null || ! command -v h2load >/dev/null || ! command -v nginx >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nghttp2-client nginx-light >/dev/null
fi

work="$(mktemp -d /tmp/wasmgate-instructions.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

binaries=()
for rev in "$@"; do
    commit="$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
    # One source tree per commit, and its build, kept for the next run.
    tree="$target/sources/$commit"
    timer_armed=""
    if [ "$hyper_header_timer" = off ] &&
        git -C "$repo" show "$commit:host/src/server.rs" |
        grep -q '\.header_read_timeout(Duration::from_millis(limits\.header_read_timeout_ms))'; then
        tree="$tree-no-hyper-header-timer"
        timer_armed=yes
    fi
    if [ ! -d "$tree" ]; then
        step "sources: $rev ($commit), on-demand instance allocation${timer_armed:+, with the header timer of hyper off}"
        mkdir -p "$tree.partial"
        git -C "$repo" archive "$commit" | tar -x -C "$tree.partial"
        sed -i 's/InstanceAllocationStrategy::Pooling(pool)/InstanceAllocationStrategy::OnDemand/' \
            "$tree.partial/host/src/plugin/mod.rs"
        grep -q 'InstanceAllocationStrategy::OnDemand' "$tree.partial/host/src/plugin/mod.rs" ||
            { echo "$rev: no pooling allocator to replace in host/src/plugin/mod.rs" >&2; exit 1; }
        if [ -n "$timer_armed" ]; then
            sed -i 's/\.header_read_timeout(Duration::from_millis(limits\.header_read_timeout_ms))/.header_read_timeout(None)/' \
                "$tree.partial/host/src/server.rs"
            grep -q '\.header_read_timeout(None)' "$tree.partial/host/src/server.rs" ||
                { echo "$rev: hyper's header timer not turned off" >&2; exit 1; }
        fi
        mv "$tree.partial" "$tree"
    fi
    if [ ! -x "$tree.wasmgate" ]; then
        step "build: $rev"
        # The trees of all revisions build to the same artifacts, and cargo would take
        # the last one built as fresh for another tree: the gateway's fingerprints go.
        rm -rf "$target"/release/.fingerprint/wasmgate-*
        (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p wasmgate >&2)
        cp "$target/release/wasmgate" "$tree.wasmgate.partial"
        mv "$tree.wasmgate.partial" "$tree.wasmgate"
    fi
    cp "$tree.wasmgate" "$work/wasmgate-${#binaries[@]}"
    for other in "${binaries[@]}"; do
        cmp -s "$other" "$work/wasmgate-${#binaries[@]}" &&
            { echo "$rev: the same binary as an earlier revision" >&2; exit 1; }
    done
    binaries+=("$work/wasmgate-${#binaries[@]}")
done

port_upstream=$base_port
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port_upstream;
        location / { default_type text/plain; return 200 'hello from the upstream\n'; }
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)

ports=()
paths=()
for i in "${!binaries[@]}"; do
    port=$((base_port + 1 + i))
    mkdir -p "$work/gw-$i/plugins"
    # The baseline (the first revision) serves p0 as it is; the others what is asked.
    served="$route"
    retry=""
    if [ "$i" -gt 0 ] && [ "$retries" = off ]; then
        retry=$'[routes.retry]\nattempts = 1'
    fi
    if [ "$i" -eq 0 ]; then
        served=p0
        retry=""
    fi
    cat >"$work/gw-$i/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port"
plugin_dir = "plugins"
data_dir = "data"

[admin]
enabled = false

[services.upstream]
endpoints = ["http://127.0.0.1:$port_upstream"]

[services.guarded]
endpoints = ["http://127.0.0.1:$port_upstream"]
TOML
    if [ "$served" = prb ]; then
        cat >>"$work/gw-$i/wasmgate.toml" <<TOML
balance = "least_request"
[services.guarded.breaker]
min_requests = 20
TOML
    fi
    cat >>"$work/gw-$i/wasmgate.toml" <<TOML

[[routes]]
name = "served"
prefix = "/$served"
service = "$([ "$served" = prb ] && echo guarded || echo upstream)"
$retry
TOML
    paths+=("$served")
    ports+=("$port")
done

load() { # INDEX COUNT OUT
    timeout 600 h2load --h1 -t1 -c"$connections" -n "$2" \
        "http://127.0.0.1:${ports[$1]}/${paths[$1]}/items" >"$3"
    local ok
    ok="$(awk '/^status codes:/ {print $3}' "$3")"
    [ "$ok" = "$2" ] || { echo "gateway $1: $ok of $2 requests answered 2xx" >&2; cat "$3" >&2; exit 1; }
}

# Every round starts each gateway afresh: how a process's allocator and connections
# happen to settle moves its count by a per cent or two, so one process per revision
# would measure its luck.
gateway_pids=()
start_gateways() {
    gateway_pids=()
    for i in "${!binaries[@]}"; do
        rm -f "$work/gw-$i"/callgrind.out*
        (cd "$work/gw-$i" && LOG_LEVEL=warn exec valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$work/gw-$i/callgrind.out" \
            "${binaries[$i]}" run --config wasmgate.toml >"$work/gw-$i/out.log" 2>&1) &
        gateway_pids+=($!)
        pids+=($!)
    done
    for i in "${!binaries[@]}"; do
        ok=""
        for _ in $(seq 1 240); do # up to two minutes
            code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
                "http://127.0.0.1:${ports[$i]}/${paths[$i]}/items" || true)"
            if [ "$code" = 200 ]; then ok=1; break; fi
            sleep 0.5
        done
        [ -n "$ok" ] || { echo "${revs[$i]} (gateway $i) does not answer 200 (last: $code)" >&2; cat "$work/gw-$i/out.log" >&2; exit 1; }
        load "$i" 500 "$work/warm-up-$i.txt"
    done
}
stop_gateways() {
    for pid in "${gateway_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${gateway_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

step "count: $rounds rounds x ${#binaries[@]} gateways x $requests requests, $connections connections, route $route, retries $retries"
count=${#binaries[@]}
for round in $(seq 1 "$rounds"); do
    start_gateways
    for k in $(seq 0 $((count - 1))); do
        i=$(((k + round - 1) % count))
        pid="${gateway_pids[$i]}"
        callgrind_control -z "$pid" >/dev/null
        callgrind_control -i on "$pid" >/dev/null
        load "$i" "$requests" "$work/h2load-$i-$round.txt"
        callgrind_control -i off "$pid" >/dev/null
        callgrind_control -d "round-$round" "$pid" >/dev/null
        dump="$(ls -t "$work/gw-$i"/callgrind.out.* | head -n 1)"
        total="$(awk '/^totals:/ {print $2; exit}' "$dump")"
        echo "$i $round $total" >>"$work/counts.txt"
        printf '  round %d  %-12s %d instructions/request\n' "$round" "${revs[$i]}" \
            $((total / requests)) >&2
        if [ -n "${DUMPS:-}" ]; then
            mkdir -p "$DUMPS"
            mv "$dump" "$DUMPS/${revs[$i]}.callgrind"
        fi
    done
    stop_gateways
done

python3 - "$work/counts.txt" "$requests" "$@" <<'PY'
import statistics, sys
from collections import defaultdict
path, n, revs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
per = defaultdict(dict)
for line in open(path):
    i, r, total = line.split()
    per[int(i)][r] = int(total) / n
print(f"| revision | instructions/request (median of {len(per[0])}) | min–max | ratio to {revs[0]} (median of rounds) |")
print("|---|---|---|---|")
for i, rev in enumerate(revs):
    counts = list(per[i].values())
    ratios = [per[i][r] / per[0][r] for r in per[i] if r in per[0]]
    print(f"| {rev} | {statistics.median(counts):,.0f} | {min(counts):,.0f}–{max(counts):,.0f} "
          f"| {statistics.median(ratios):.4f} ({min(ratios):.4f}–{max(ratios):.4f}) |")
PY
