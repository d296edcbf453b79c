#!/usr/bin/env bash
# AIMS API Gateway (seed 000) on wasmgate: builds wasmgate and its plugins, then
# starts the gateway on 127.0.0.1:8000 (admin API on 127.0.0.1:9900) with this
# directory's wasmgate.toml. The seed's variables work as they did: set OS_AUTH_URL
# (and KEYSTONE_ENDPOINT, its scheme://host:port) to your Keystone, SERVER_PORT,
# LOG_LEVEL, JSON_LOGS, LOG_TO_FILE… JWT_SECRET_KEY signs tokens (one is made up for
# this run when it is not set). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/lib.sh

build_example aims

ensure_jwt_secret
port="${SERVER_PORT:-8000}"
cat <<TRY

AIMS API Gateway on wasmgate: try these in another terminal

  curl -s -X POST http://127.0.0.1:${ADMIN_PORT:-9900}/auth/register -H 'content-type: application/json' \\
       -d '{"username": "admin", "email": "admin@example.com", "password": "change-me-now-1"}'
      makes a user (on the admin API: there is no public registration); the first is admin

  token=\$(curl -s -X POST http://127.0.0.1:$port/auth/login -H 'content-type: application/json' \\
       -d '{"username": "admin", "password": "change-me-now-1"}' |
       python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["token"])')
  curl -s http://127.0.0.1:$port/auth/me -H "Authorization: Bearer \$token"

  curl -s -X POST http://127.0.0.1:$port/openstack/connect -H 'content-type: application/json' \\
       -d '{"username": "demo", "password": "secret", "project_name": "demo"}'
      asks the Keystone at OS_AUTH_URL (default http://127.0.0.1:5000/v3; 502 when
      none answers there)

  curl -s http://127.0.0.1:$port/health

Ctrl-C stops the gateway.

TRY
exec "$target/release/wasmgate" run --config examples/aims/wasmgate.toml
