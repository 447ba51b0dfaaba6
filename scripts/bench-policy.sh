#!/usr/bin/env bash
# make bench-policy: what policy configured but not hit (issue 17: a rate limit every call
# draws on without reaching it, caching rules the called tool matches none of) adds to one
# `tools/call`, in instructions, which callgrind counts the same on every run whatever else the
# machine does. The bench binary sends CALLS calls through the plain route and through the
# policed one under callgrind, collecting only while code of `manifold_gateway::policy` or
# `manifold_gateway::globs` (which the compiler may inline into the request path's callers
# of policy) is on the stack, and prints the instructions per call. (Counting a whole call instead varies by
# ~20,000 instructions between identical runs: how often a future is polled depends on timing.) Needs valgrind. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${CALLS:-2000}"
command -v valgrind >/dev/null || { echo "bench-policy: valgrind is not installed, nothing measured"; exit 1; }
cargo build --release -q -p manifold-e2e --bin bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
count() {
    valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" --toggle-collect='manifold_gateway::policy::*' \
        --toggle-collect='manifold_gateway::globs::*' \
        target/release/bench --calls "$calls" --route "$1" 2>"$out/$1.log" >/dev/null
    # The file's `summary:` line: instructions collected (Ir) while policy code was on the stack.
    awk '/^summary:/ {print $2}' "$out/$1.out"
}
plain="$(count route)"
policed="$(count policed)"
echo "instructions in policy code per tools/call, over $calls calls:"
echo "  route without policy:           $((plain / calls))"
echo "  route with policy, not hit:     $((policed / calls))"
