#!/usr/bin/env bash
# Mutation testing of the gateway's pure modules with cargo-mutants: each mutant (an
# operator flipped, a function made to return a default, a condition negated) must
# fail a unit test of the host library. Too slow for CI; part of finishing a change to
# these modules.
#
#   scripts/mutants.sh                      the five modules
#   scripts/mutants.sh --in-diff [BASE]     only the lines of them that differ from BASE
#                                           (default: main), committed or not
#   scripts/mutants.sh host/src/router.rs   the modules named
#
# Accepted survivors are listed in .cargo/mutants.toml (`exclude_re`), each with the
# reason it is harmless; any other survivor makes this exit non-zero, and its diff is
# under target/mutants/mutants.out/ (missed.txt, diff/); a mutant that makes the tests
# hang (timeout.txt) counts as caught. Builds in a copy of the tree
# with its own target dir (debug without debug info, incremental: the first build takes
# ~5 minutes on 2 cores, then ~16 s a mutant). `cargo mutants --iterate` with the same
# arguments goes on from an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debug info only slows each mutant's link.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

modules=(
    host/src/normalize.rs
    host/src/router.rs
    host/src/framing.rs
    host/src/config/validate.rs
    host/src/message_rules.rs
)

if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi

args=(
    --package wasmgate
    --cargo-test-arg=--lib
    --jobs 1
    --output target/mutants
    # The host library's tests take under 10 s; a mutant past this hangs them.
    --timeout "${MUTANTS_TIMEOUT:-30}"
)
case "${1:-}" in
    --in-diff)
        base="${2:-main}"
        diff="$(mktemp)"
        trap 'rm -f "$diff"' EXIT
        git diff "$base" -- "${modules[@]}" >"$diff"
        if [ ! -s "$diff" ]; then
            echo "none of the modules differs from $base" >&2
            exit 0
        fi
        args+=(--in-diff "$diff")
        ;;
    "") ;;
    *) modules=("$@") ;;
esac
for module in "${modules[@]}"; do
    args+=(--file "$module")
done
mkdir -p target/mutants
# cargo-mutants exits 3 when any mutant hung the tests, even when others were missed
# (2): the verdict comes from its lists instead. A hang is a test noticing the mutant
# (an endless loop), so it counts as caught.
status=0
cargo mutants "${args[@]}" || status=$?
out=target/mutants/mutants.out
case "$status" in
    0 | 2 | 3) ;;
    *) exit "$status" ;;
esac
if [ -s "$out/missed.txt" ]; then
    echo "survivors (neither caught nor listed in .cargo/mutants.toml):" >&2
    cat "$out/missed.txt" >&2
    exit 2
fi
if [ -s "$out/timeout.txt" ]; then
    echo "caught by hanging the tests (the ${MUTANTS_TIMEOUT:-30} s timeout):" >&2
    cat "$out/timeout.txt" >&2
fi
