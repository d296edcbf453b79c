#!/usr/bin/env bash
# TLS termination against nginx, in one run: the same loads on
#
#   nginx      nginx terminating TLS (ssl, http2) as a reverse proxy
#   wasmgate   wasmgate with [gateway.tls], a route with no plugins
#
# both in front of the same upstream (nginx answering 200 from memory over plain
# HTTP), both with the same certificate (ECDSA P-256, self-signed) and TLS 1.2/1.3:
#
#   h1         keep-alive HTTP/1.1 over TLS: wrk, CONNECTIONS connections
#   h2         HTTP/2 over TLS (ALPN h2): h2load, CONNECTIONS connections × 10 streams
#   handshake  a new TLS connection for every request (`Connection: close`): wrk,
#              CONNECTIONS connections; its rate is the full handshakes a second
#
# in ROUNDS rounds, each measuring every target once in an order that rotates, so
# that drift on this shared machine falls on both. Prints requests/s per load and
# target (medians over the rounds) and wasmgate's ratio to nginx.
#
#   bench/tls.sh                 ROUNDS=3 DURATION=6 CONNECTIONS=32 by default
#   WASMGATE_BIN=target/release/wasmgate bench/tls.sh     (skip the build)
#
# Installs wrk, h2load and nginx from Debian's packages when missing (apt-get, as
# root). Loopback only; every step is bounded in time; what it starts is stopped on
# exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${ROUNDS:-3}"
duration="${DURATION:-6}"
connections="${CONNECTIONS:-32}"
base_port="${BASE_PORT:-18480}"
port_upstream=$((base_port + 1))
port_nginx=$((base_port + 2))
port_gateway=$((base_port + 3))

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: wrk, h2load, nginx, openssl"
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null || ! command -v nginx >/dev/null ||
    ! command -v openssl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client nginx-light openssl >/dev/null
fi
nginx_bin="$(command -v nginx)"

bin="${WASMGATE_BIN:-}"
if [ -z "$bin" ]; then
    step "build: wasmgate (release)"
    cargo build --release --locked -p wasmgate >&2
    bin="${CARGO_TARGET_DIR:-target}/release/wasmgate"
fi

work="$(mktemp -d /tmp/wasmgate-tls.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step "certificate: ECDSA P-256, self-signed for 127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

step "upstream and nginx"
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
    client_body_temp_path $work/$1/body;
    proxy_temp_path $work/$1/proxy;
    keepalive_requests 1000000;
    $3
}
CONF
}
nginx_conf upstream 1 "server {
        listen 127.0.0.1:$port_upstream;
        location / { return 200 'ok'; }
    }"
nginx_conf proxy 2 "upstream backend { server 127.0.0.1:$port_upstream; keepalive 64; }
    server {
        listen 127.0.0.1:$port_nginx ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
"$nginx_bin" -c "$work/upstream/nginx.conf" -e "$work/upstream/error.log" &
pids+=($!)
"$nginx_bin" -c "$work/proxy/nginx.conf" -e "$work/proxy/error.log" &
pids+=($!)

step "wasmgate: https://127.0.0.1:$port_gateway"
mkdir -p "$work/plugins" "$work/data"
cat >"$work/wasmgate.toml" <<TOML
[gateway]
listen = "127.0.0.1:$port_gateway"
plugin_dir = "$work/plugins"
data_dir = "$work/data"

[gateway.tls]
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]

[admin]
enabled = false

[services.backend]
endpoints = ["http://127.0.0.1:$port_upstream"]

[[routes]]
name = "all"
prefix = "/"
service = "backend"
TOML
"$bin" run --config "$work/wasmgate.toml" >"$work/gateway.log" 2>&1 &
pids+=($!)

for port in "$port_nginx" "$port_gateway"; do
    for _ in $(seq 100); do
        curl -fsSk -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsSk -o /dev/null "https://127.0.0.1:$port/" || {
        echo "nothing answers https://127.0.0.1:$port/" >&2
        tail -n 5 "$work/gateway.log" "$work/proxy/error.log" >&2
        exit 1
    }
done

# measure LOAD PORT: requests/s, or "fail".
measure() {
    local url="https://127.0.0.1:$2/" out
    case "$1" in
        h1) out="$(timeout $((duration + 20)) wrk -t1 -c"$connections" -d"${duration}s" "$url" 2>&1)" || true
            awk '/^Requests\/sec:/ {print $2; found=1} END {if (!found) print "fail"}' <<<"$out" ;;
        handshake) out="$(timeout $((duration + 20)) wrk -t1 -c"$connections" -d"${duration}s" \
                -H "Connection: close" "$url" 2>&1)" || true
            awk '/^Requests\/sec:/ {print $2; found=1} END {if (!found) print "fail"}' <<<"$out" ;;
        h2) out="$(timeout $((duration + 20)) h2load -c"$connections" -m10 -D"$duration" "$url" 2>&1)" || true
            awk '/^finished in/ {gsub(",", "", $4); print $4; found=1} END {if (!found) print "fail"}' <<<"$out" ;;
    esac
}

loads=(h1 h2 handshake)
targets=(nginx wasmgate)
port_of() { if [ "$1" = nginx ]; then echo "$port_nginx"; else echo "$port_gateway"; fi; }
results="$work/results"
: >"$results"
for round in $(seq "$rounds"); do
    for load in "${loads[@]}"; do
        order=("${targets[@]}")
        if [ $(((round + ${#load}) % 2)) -eq 1 ]; then order=(wasmgate nginx); fi
        for target in "${order[@]}"; do
            value="$(measure "$load" "$(port_of "$target")")"
            echo "$load $target $value" >>"$results"
            step "round $round: $load $target: $value req/s"
        done
    done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
def median(load, target):
    values = [float(v) for l, t, v in rows if l == load and t == target and v != "fail"]
    fails = sum(1 for l, t, v in rows if l == load and t == target and v == "fail")
    return (statistics.median(values) if values else None), fails
print("| load | nginx req/s | wasmgate req/s | wasmgate / nginx |")
print("|---|---|---|---|")
names = {"h1": "HTTP/1.1 keep-alive over TLS", "h2": "HTTP/2 over TLS (10 streams each)",
         "handshake": "a new TLS connection per request"}
for load in ("h1", "h2", "handshake"):
    n, nf = median(load, "nginx")
    w, wf = median(load, "wasmgate")
    ratio = f"{w / n:.2f}" if n and w else "-"
    fail = f" ({nf + wf} failed runs)" if nf + wf else ""
    print(f"| {names[load]}{fail} | {n or 0:.0f} | {w or 0:.0f} | {ratio} |")
PY
