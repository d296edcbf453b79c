#!/usr/bin/env bash
# Builds every plugin as a wasm32-wasip2 component with the workspace's `plugin`
# profile, in one cargo run: the first-party plugins (plugins/*), the test guests
# (tests/guests/*) and the plugin template (examples/plugin-template).
#
#   scripts/build-plugins.sh [DIR]
#
# The components land in $CARGO_TARGET_DIR/wasm32-wasip2/plugin/CRATE.wasm (default
# target dir: target/ in the repository; a crate name's '-' becomes '_'). With DIR,
# the first-party plugins (plugins/* only) are also copied there as CRATE.wasm.
# Runs from any directory; relative paths are taken from the caller's directory.
set -euo pipefail

# Resolve the caller's relative paths before moving to the repository root.
copy_to=""
if [ $# -ge 1 ]; then
    mkdir -p "$1"
    copy_to="$(cd "$1" && pwd)"
fi
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    mkdir -p "$CARGO_TARGET_DIR"
    CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd)"
    export CARGO_TARGET_DIR
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 >/dev/null
fi

# The package name of a crate: the first `name = "…"` line of its manifest.
crate_name() {
    sed -n 's/^name = "\(.*\)"/\1/p' "$1" | head -n 1
}

# Each crate is named by its path (`path+file://…`), not its name: a dependency may
# share a guest's name (the `spin` guest and the `spin` crate, say).
specs=()
names=()
first_party=()
for manifest in plugins/*/Cargo.toml tests/guests/*/Cargo.toml examples/plugin-template/Cargo.toml; do
    [ -f "$manifest" ] || continue
    name="$(crate_name "$manifest")"
    specs+=(-p "path+file://$PWD/$(dirname "$manifest")#$name")
    names+=("$name")
    case "$manifest" in
        plugins/*) first_party+=("$name") ;;
    esac
done

cargo build --locked --profile plugin --target wasm32-wasip2 "${specs[@]}"

out="$target_dir/wasm32-wasip2/plugin"
echo "components in $out:"
for name in "${names[@]}"; do
    file="$out/${name//-/_}.wasm"
    printf '  %-32s %7d bytes\n' "$(basename "$file")" "$(wc -c <"$file")"
done

if [ -n "$copy_to" ]; then
    for name in "${first_party[@]}"; do
        cp "$out/${name//-/_}.wasm" "$copy_to/$name.wasm"
    done
    echo "first-party plugins copied to $copy_to: ${first_party[*]/%/.wasm}"
fi
