#!/usr/bin/env bash
# Builds every plugin (plugins/*, the test guests in tests/guests/*, and the plugin
# template) as wasm32-wasip2 components with the `plugin` profile, in one cargo run.
# With a directory argument, also copies the first-party plugins there as NAME.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 >/dev/null
fi

packages=()
for manifest in plugins/*/Cargo.toml tests/guests/*/Cargo.toml examples/plugin-template/Cargo.toml; do
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
    packages+=(-p "$name")
done
cargo build --locked --profile plugin --target wasm32-wasip2 "${packages[@]}"

out="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/plugin"
echo "plugins built in $out"
if [ $# -ge 1 ]; then
    mkdir -p "$1"
    for manifest in plugins/*/Cargo.toml; do
        name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
        cp "$out/${name//-/_}.wasm" "$1/$name.wasm"
    done
    echo "first-party plugins copied to $1"
fi
