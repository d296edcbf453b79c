#!/usr/bin/env bash
# SkyClust's API (seed 003) on wasmgate: builds wasmgate, its plugins and the
# example's backend, then starts the backend on 127.0.0.1:8081 and the gateway on
# 127.0.0.1:8080 (the seed's base URL http://localhost:8080/api/v1; admin API on
# 127.0.0.1:9903). JWT_SECRET_KEY signs tokens (one is made up for this run when it
# is not set). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/lib.sh

build_example skyclust example-services

ensure_jwt_secret
start "$target/release/skyclust-service" 127.0.0.1:8081
start "$target/release/wasmgate" run --config examples/skyclust/wasmgate.toml

api="http://127.0.0.1:${PORT:-8080}/api/v1"
cat <<TRY

SkyClust on wasmgate: try these in another terminal

  token=\$(curl -s -X POST $api/auth/register -H 'content-type: application/json' \\
       -d '{"username": "admin", "email": "admin@example.com", "password": "cloud-pass-42"}' |
       python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["token"])')
      the first account registered is admin

  curl -s -X POST $api/workspaces -H "Authorization: Bearer \$token" \\
       -H 'content-type: application/json' -d '{"name": "prod", "description": "production"}'
  curl -s "$api/workspaces?limit=10&offset=0" -H "Authorization: Bearer \$token"
  curl -s -X POST $api/api-keys -H "Authorization: Bearer \$token" \\
       -H 'content-type: application/json' -d '{"consumer": "report-svc", "role": "viewer"}'
  curl -s $api/health -H "Authorization: Bearer \$token"

Ctrl-C stops the gateway and the backend.

TRY
wait
