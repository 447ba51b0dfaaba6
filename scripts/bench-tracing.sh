#!/usr/bin/env bash
# make bench-tracing: what tracing costs one `tools/call` (issue 18: at most 2 µs of gateway
# CPU at 1% sampling), in instructions, which callgrind counts the same on every run. The bench
# binary sends CALLS calls through a gateway without tracing, through one tracing at 1%
# (no traceparent: 1 call in 100 is recorded), and through that one with every call sampled by
# its client's traceparent, under callgrind, collecting only while code of OpenTelemetry or of
# `manifold_gateway::traces` is on the stack, and prints the instructions per call. The spans go
# over OTLP/HTTP to a sink in the bench process. Setting tracing up (the exporter's HTTP client
# and its TLS roots) costs millions of instructions once, so each case runs twice, with CALLS
# and with 2 x CALLS calls, and the difference is what CALLS calls cost. Needs valgrind. See
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${CALLS:-2000}"
command -v valgrind >/dev/null || { echo "bench-tracing: valgrind is not installed, nothing measured"; exit 1; }
cargo build --release -q -p manifold-e2e --bin bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# What is counted: OpenTelemetry's own code (the SDK's sampler, spans, batching and export, the
# OTLP encoding, contexts and propagators) and the gateway's `traces` module, except the four
# functions there that run a piece of the request inside a span (`authenticating`, `traced`,
# `traced_with`, `instant`) and the futures adapter that carries a context through the request
# (`WithContext`): with those on the stack, callgrind would count the request's own work too.
toggles=(
    '*opentelemetry_sdk::*' '*opentelemetry_otlp::*' '*opentelemetry_proto::*' '*opentelemetry_http::*'
    'opentelemetry::context::Context*' '*opentelemetry::context::ContextGuard*' '*opentelemetry::propagation::*'
    '*opentelemetry::trace::*' '*opentelemetry::baggage::*' '*opentelemetry::global::*'
)
for name in enable Arrival jwks_fetched propagator internal relay Message meta_parent server refused between \
    network request_id Target ended outcome_of_error is_tool_error client annotate failed propagating \
    inject_headers inject_meta HeaderExtractor; do
    toggles+=("*manifold_gateway::traces::$name*")
done
collected() {
    local args=()
    for toggle in "${toggles[@]}"; do args+=("--toggle-collect=$toggle"); done
    valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2.out" "${args[@]}" \
        target/release/bench --calls "$2" --route "$1" 2>"$out/$1-$2.log" >/dev/null
    # The file's `summary:` line: instructions collected (Ir) while tracing code was on the stack.
    awk '/^summary:/ {print $2}' "$out/$1-$2.out"
}
# Instructions per call: what CALLS more calls cost, divided by CALLS.
per_call() {
    local once twice
    once="$(collected "$1" "$calls")"
    twice="$(collected "$1" $((2 * calls)))"
    echo $(((twice - once) / calls))
}
echo "instructions in tracing code per tools/call (calls $calls to $((2 * calls))):"
echo "  tracing off:                    $(per_call route)"
echo "  tracing on, 1% sampled:         $(per_call traced)"
echo "  tracing on, every call sampled: $(per_call traced-sampled)"
