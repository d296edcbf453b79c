# What the examples' run.sh scripts share; each sources it from the repository root:
#   cd "$(dirname "$0")/../.." && source examples/lib.sh

# The build's output directory, as cargo uses it.
target="${CARGO_TARGET_DIR:-target}"

# build_example NAME [PACKAGE…]: wasmgate and PACKAGEs (release), and every
# first-party plugin into examples/NAME/plugins (the example's plugin_dir).
build_example() {
    local name="$1"
    shift
    if command -v rustup >/dev/null 2>&1; then
        rustup target add wasm32-wasip2
    fi
    local packages=(-p wasmgate)
    local package
    for package in "$@"; do
        packages+=(-p "$package")
    done
    cargo build --release "${packages[@]}"
    mkdir -p "examples/$name/plugins"
    scripts/build-plugins.sh "examples/$name/plugins"
}

# ensure_jwt_secret: JWT_SECRET_KEY as set, or a random one for this run.
ensure_jwt_secret() {
    if [ -z "${JWT_SECRET_KEY:-}" ]; then
        JWT_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
        export JWT_SECRET_KEY
        echo "JWT_SECRET_KEY is not set: tokens of this run are signed with a random key"
    fi
}

# start COMMAND…: runs it in the background; everything started is stopped when the
# script exits (Ctrl-C included).
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
start() {
    "$@" &
    pids+=($!)
}
