#!/usr/bin/env bash
# What the `cache` plugin buys: a cache HIT against going to the upstream, side by
# side in one run, with the same load (wrk, as bench/run.sh uses it: fixed
# concurrency, keep-alive) on one gateway:
#
#   direct        the upstream itself (nginx answering from memory, with
#                 Cache-Control: max-age=3600 and a BODY_BYTES body)
#   upstream      wasmgate, a route with no plugins: every request goes to nginx
#   cache-hit     wasmgate, the same path on a route with `cache`: every request is
#                 answered from kv (one MISS before the warm-up stored it)
#   cache-bypass  the cache route with `Cache-Control: no-store` on every request: what
#                 the plugin costs when it cannot help (both phases, the body buffered)
#   plugin-answer wasmgate, a route where `deny` answers every request itself (a 403
#                 envelope, no kv): the floor for any answer a plugin makes
#
# in ROUNDS rounds; each round measures every target once, in an order that rotates
# from round to round, so that drift on a shared machine falls on all of them. Prints
# the medians over the rounds of requests/s and of wrk's median latency.
#
#   bench/cache.sh                          ROUNDS=3 DURATION=5 CONNECTIONS=16 BODY_BYTES=1024
#   WASMGATE_BIN=/work/bin/wasmgate bench/cache.sh      (skip building the gateway)
#   CACHE_WASM=cache.wasm DENY_WASM=deny.wasm bench/cache.sh   (skip building the plugins)
#
# nginx answers from memory, so the upstream side here is as cheap as an upstream
# gets: a real upstream's own time adds to `upstream` and `cache-bypass`, never to
# `cache-hit`. Loopback only; every step is bounded in time; the servers it starts are
# stopped on exit. Installs wrk and nginx from Debian's packages when missing (as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

rounds="${ROUNDS:-3}"
duration="${DURATION:-5}"
connections="${CONNECTIONS:-16}"
threads="${WRK_THREADS:-1}"
body_bytes="${BODY_BYTES:-1024}"
base_port="${BASE_PORT:-18280}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: wrk, nginx"
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
nginx_bin="$(command -v nginx)"

bin="${WASMGATE_BIN:-}"
if [ -z "$bin" ]; then
    step "build: wasmgate (release)"
    cargo build --release --locked -p wasmgate >&2
    bin="$target_dir/release/wasmgate"
fi
cache_wasm="${CACHE_WASM:-}"
deny_wasm="${DENY_WASM:-}"
if [ -z "$cache_wasm" ] || [ -z "$deny_wasm" ]; then
    step "build: the cache and deny plugins (wasm32-wasip2, plugin profile)"
    cargo build --locked --profile plugin --target wasm32-wasip2 -p cache -p deny >&2
    cache_wasm="${cache_wasm:-$target_dir/wasm32-wasip2/plugin/cache.wasm}"
    deny_wasm="${deny_wasm:-$target_dir/wasm32-wasip2/plugin/deny.wasm}"
fi

work="$(mktemp -d /tmp/wasmgate-cache-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_upstream=$((base_port + 1))
port_gateway=$((base_port + 2))
port_admin=$((base_port + 3))

step "upstream: nginx on 127.0.0.1:$port_upstream, $body_bytes-byte answers, max-age=3600"
mkdir -p "$work/nginx"
body="$(head -c "$body_bytes" /dev/zero | tr '\0' 'x')"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
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
        location / {
            default_type text/plain;
            add_header Cache-Control "max-age=3600" always;
            return 200 '$body';
        }
    }
}
CONF
"$nginx_bin" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)

step "gateway: 127.0.0.1:$port_gateway, routes /plain (no plugins) and /cached (cache)"
mkdir -p "$work/plugins" "$work/data"
cp "$cache_wasm" "$work/plugins/cache.wasm"
cp "$deny_wasm" "$work/plugins/deny.wasm"
cat >"$work/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port_gateway"
plugin_dir = "plugins"
data_dir = "data"

[admin]
listen = "127.0.0.1:$port_admin"

[services.upstream]
endpoints = ["http://127.0.0.1:$port_upstream"]

[[routes]]
name = "plain"
prefix = "/plain"
strip_prefix = true
service = "upstream"

[[routes]]
name = "cached"
prefix = "/cached"
strip_prefix = true
service = "upstream"
[[routes.plugins]]
name = "cache"
config = { max_ttl_seconds = 3600 }

[[routes]]
name = "denied"
prefix = "/denied"
[[routes.plugins]]
name = "deny"
config = { rules = [{}] }
TOML
LOG_LEVEL=warn "$bin" run --config "$work/wasmgate.toml" >/dev/null 2>"$work/wasmgate.err" &
pids+=($!)

url() {
    case "$1" in
        direct) echo "http://127.0.0.1:$port_upstream/items" ;;
        upstream) echo "http://127.0.0.1:$port_gateway/plain/items" ;;
        cache-hit | cache-bypass) echo "http://127.0.0.1:$port_gateway/cached/items" ;;
        plugin-answer) echo "http://127.0.0.1:$port_gateway/denied/items" ;;
    esac
}
headers() { # extra wrk/curl header for a target
    case "$1" in
        cache-bypass) echo "Cache-Control: no-store" ;;
        *) echo "X-Bench: 1" ;;
    esac
}
targets=(direct upstream cache-hit cache-bypass plugin-answer)
expected() { if [ "$1" = plugin-answer ]; then echo 403; else echo 200; fi; }

step "waiting for every server to answer"
for t in "${targets[@]}"; do
    code=""
    for _ in $(seq 1 100); do
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "$(headers "$t")" "$(url "$t")" || true)"
        [ "$code" = "$(expected "$t")" ] && break
        sleep 0.1
    done
    if [ "$code" != "$(expected "$t")" ]; then
        echo "$t ($(url "$t")) does not answer $(expected "$t") (last: $code)" >&2
        cat "$work/wasmgate.err" "$work/nginx/error.log" >&2 || true
        exit 1
    fi
done
# The cache really answers the cache-hit target, and really does not answer the other.
x_cache() { curl -s -D - -o /dev/null --max-time 2 -H "$(headers "$1")" "$(url "$1")" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" {print $2}'; }
[ "$(x_cache cache-hit)" = HIT ] || { echo "cache-hit: no X-Cache: HIT" >&2; cat "$work/wasmgate.err" >&2; exit 1; }
[ "$(x_cache cache-bypass)" = BYPASS ] || { echo "cache-bypass: no X-Cache: BYPASS" >&2; exit 1; }

run_wrk() { # TARGET SECONDS OUT
    timeout $(($2 + 30)) wrk -t"$threads" -c"$connections" -d"$2s" --latency \
        -H "$(headers "$1")" "$(url "$1")" >"$3"
}

step "warm-up: 2 s per target"
for t in "${targets[@]}"; do run_wrk "$t" 2 /dev/null; done

step "measure: $rounds rounds x ${#targets[@]} targets x ${duration}s, $connections connections"
count=${#targets[@]}
for round in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((count - 1))); do
        t="${targets[$(((i + round - 1) % count))]}"
        run_wrk "$t" "$duration" "$work/wrk-$t-$round.txt"
        printf '  round %d %-13s %s\n' "$round" "$t" \
            "$(grep 'Requests/sec' "$work/wrk-$t-$round.txt")" >&2
    done
done
[ "$(x_cache cache-hit)" = HIT ] || { echo "the entry was lost during the run" >&2; exit 1; }

cores="$(nproc)"
cpu="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $cores cores ($cpu), load average at the end $load"
echo "wrk -t$threads -c$connections, ${duration}s x $rounds rounds, $body_bytes-byte body; medians over rounds"
echo "per round (requests/s):"
for t in "${targets[@]}"; do
    printf '  %-13s' "$t"
    for round in $(seq 1 "$rounds"); do
        printf ' %s' "$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$t-$round.txt")"
    done
    echo
done
python3 - "$work" "$rounds" "${targets[@]}" <<'PY'
import re, statistics, sys
work, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rows = {}
for t in targets:
    rps, p50 = [], []
    for r in range(1, rounds + 1):
        text = open(f"{work}/wrk-{t}-{r}.txt").read()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
        p50.append(ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)))
    rows[t] = (statistics.median(rps), statistics.median(p50))
base = rows.get("upstream")
print()
print("| target | requests/s | median latency | vs upstream route |")
print("|---|---:|---:|---:|")
for t in targets:
    rps, p50 = rows[t]
    ratio = f"{rps / base[0]:.2f}x" if base else ""
    print(f"| {t} | {rps:,.0f} | {p50:.3f} ms | {ratio} |")
PY
