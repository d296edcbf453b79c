#!/usr/bin/env bash
# TS Portal API Gateway (seed 001) on wasmgate: builds wasmgate, its plugins and the
# example's services, then starts the gateway on 127.0.0.1:8080 (admin API on
# 127.0.0.1:9901), the member, customer, calendar and notice services on
# 127.0.0.1:8001-8004 and HoneyBox on 127.0.0.1:8000. The seed's variables work as
# they did (PORT, JWT_SECRET_KEY, *_SERVICE_URL, RATE_LIMIT_REQUESTS, LOG_LEVEL…);
# JWT_SECRET_KEY signs tokens (one is made up for this run when it is not set).
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/lib.sh

build_example ts-portal example-services

ensure_jwt_secret
port=8001
for service in member-service customer-service calendar-service notice-service; do
    start "$target/release/ts-portal-service" "$service" "127.0.0.1:$port"
    port=$((port + 1))
done
start "$target/release/ts-portal-service" honeybox 127.0.0.1:8000
start "$target/release/wasmgate" run --config examples/ts-portal/wasmgate.toml

gateway="http://127.0.0.1:${PORT:-8080}"
cat <<TRY

TS Portal API Gateway on wasmgate: try these in another terminal

  curl -s -X POST http://127.0.0.1:${ADMIN_PORT:-9901}/api/auth/register -H 'content-type: application/json' \\
       -d '{"username": "seungdobae", "email": "seungdo@example.com", "password": "change-me-now-1"}'
      makes an account (on the admin API: there is no public registration); the first is admin

  token=\$(curl -s -X POST $gateway/api/auth/login -H 'content-type: application/json' \\
       -d '{"username": "seungdobae", "password": "change-me-now-1"}' |
       python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["token"])')
  curl -s $gateway/api/members -H "Authorization: Bearer \$token"
  curl -s $gateway/api/feeds/latest -H "Authorization: Bearer \$token"
  curl -s $gateway/api/members          (401: no token)
  curl -s $gateway/health

Ctrl-C stops the gateway and the five services.

TRY
wait
