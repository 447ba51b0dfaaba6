# The two commands that matter are `make quickstart` and `make test` (see README.md).
.PHONY: quickstart test peers crds bench bench-sessions bench-openapi bench-publish

# Runs Manifold on its embedded default: two sample MCP servers mounted behind one route.
quickstart:
	cargo run -q -p manifold-samples --bin manifold-quickstart

# Installs the test peers, then format check, lints, and every test.
test: peers
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked

# The real MCP peers the tests drive (a Python venv in .venv).
peers:
	scripts/install-peers.sh

# Regenerates crds/manifests/ from the Rust types.
crds:
	cargo run -q -p manifold-api --bin crdgen

# Gateway overhead against calling the upstream directly (see docs/benchmarks.md).
bench:
	cargo run --release -q -p manifold-e2e --bin bench

# Cost of sealed session tokens and memory per idle session (see docs/benchmarks.md).
bench-sessions:
	cargo run --release -q -p manifold-e2e --bin bench_sessions

# Compile time and memory of a 1,000-operation OpenAPI document (see docs/benchmarks.md).
bench-openapi:
	cargo run --release -q -p manifold-e2e --bin bench_openapi

# World to published bytes: compile and shard 1,000 tenants (see docs/benchmarks.md).
bench-publish:
	cargo run --release -q -p manifold-e2e --bin bench_publish
