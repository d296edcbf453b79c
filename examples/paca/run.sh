#!/usr/bin/env bash
# PACA's API layer (seed 004) on wasmgate: builds wasmgate, its plugins and the
# example's backend, then starts the backend on 127.0.0.1:8100 and the gateway on
# 127.0.0.1:8000 (admin API on 127.0.0.1:9902). The seed's variables work as they
# did (API_PORT, JWT_SECRET_KEY, CORS_ORIGINS, RATE_LIMIT_REQUESTS, RATE_LIMIT_PERIOD,
# LOG_LEVEL); JWT_SECRET_KEY signs tokens (one is made up for this run when it is not
# set). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/lib.sh

build_example paca example-services

ensure_jwt_secret
start "$target/release/paca-service" 127.0.0.1:8100
start "$target/release/wasmgate" run --config examples/paca/wasmgate.toml

api="http://127.0.0.1:${API_PORT:-8000}"
cat <<TRY

PACA API on wasmgate: try these in another terminal

  curl -s -X POST http://127.0.0.1:${ADMIN_PORT:-9902}/api/v1/auth/register -H 'content-type: application/json' \\
       -d '{"username": "paca", "email": "paca@example.com", "password": "change-me-now-1"}'
      makes an account (on the admin API: there is no public registration)

  token=\$(curl -s -X POST $api/api/v1/auth/login -H 'content-type: application/json' \\
       -d '{"username": "paca", "password": "change-me-now-1"}' |
       python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["token"])')
  curl -s -X POST $api/api/v1/cognitive/process -H "Authorization: Bearer \$token" \\
       -H 'content-type: application/json' \\
       -d '{"type": "reasoning", "input": "a hard logic problem", "context": {"domain": "mathematics"}}'
  curl -s $api/api/v1/cognitive/status/task-1 -H "Authorization: Bearer \$token"
  curl -s $api/api/v1/health

Ctrl-C stops the gateway and the backend.

TRY
wait
