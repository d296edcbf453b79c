#!/usr/bin/env bash
# Cold versus warm start: how long `wasmgate check` (which builds the same snapshot as
# `wasmgate run`: read the config, load and configure every plugin) takes with an
# empty compiled-plugin cache and with a warm one, over every component that
# scripts/build-plugins.sh builds.
#
#   bench/restart-cache.sh [ROUNDS]      (default 7; cold and warm alternate)
#
# Prints every round and the medians. Needs the release binary and the plugins:
#   cargo build --release -p wasmgate && scripts/build-plugins.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-7}"
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/wasmgate"
[ -x "$bin" ] || { echo "missing $bin: cargo build --release -p wasmgate" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
cp "$target"/wasm32-wasip2/plugin/*.wasm "$work/plugins/"
count=$(ls "$work/plugins" | wc -l)
[ "$count" -gt 0 ] || { echo "no plugins: scripts/build-plugins.sh" >&2; exit 1; }
cat >"$work/wasmgate.toml" <<TOML
[gateway]
plugin_dir = "plugins"
data_dir = "data"
TOML

ms() { echo $(( $(date +%s%N) / 1000000 )); }
time_check() {
    local start end
    start=$(ms)
    "$bin" check --config "$work/wasmgate.toml" >/dev/null 2>&1
    end=$(ms)
    echo $((end - start))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "wasmgate check over $count plugins: cold (empty cache) vs warm, $rounds rounds"
# Fail loudly if it cannot start at all.
"$bin" check --config "$work/wasmgate.toml" >/dev/null 2>"$work/first.log" || { cat "$work/first.log" >&2; exit 1; }
cold=()
warm=()
for round in $(seq 1 "$rounds"); do
    rm -rf "$work/data/plugin-cache"
    c=$(time_check)
    w=$(time_check)
    cold+=("$c")
    warm+=("$w")
    echo "round $round: cold ${c} ms, warm ${w} ms"
done
cold_median=$(printf '%s\n' "${cold[@]}" | median)
warm_median=$(printf '%s\n' "${warm[@]}" | median)
echo "median: cold ${cold_median} ms, warm ${warm_median} ms, cold/warm $(awk -v c="$cold_median" -v w="$warm_median" 'BEGIN {printf "%.1f", c / w}')x"
