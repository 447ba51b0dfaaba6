# The two commands that matter are `make quickstart` and `make test` (see README.md).
.PHONY: quickstart test cycles peers apiserver-build apiserver charts-lint crds bench bench-sessions bench-openapi bench-publish bench-lists bench-policy bench-tracing bench-kube e2e-kind check-image

# Runs Manifold on its embedded default: two sample MCP servers mounted behind one route.
quickstart:
	cargo run -q -p manifold-samples --bin manifold-quickstart

# Installs the test peers and builds the test API server and helm, then format check, lints
# (Rust, Go, the charts, module import circles), and every test.
test: peers apiserver-build charts-lint cycles
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked

# Lists import circles between sibling modules in every crate; fails when there is one.
cycles:
	python3 scripts/module-cycles.py

# The real MCP peers the tests drive (a Python venv in .venv, the npm peers), redis-server,
# Debian's prometheus and promtool unpacked into a cache (scripts/install-prometheus.sh), and
# Jaeger (the trace backend, built from the Go module proxy once).
peers:
	scripts/install-peers.sh

# Builds (once: cached by source hash) and vets the test API server: kube-apiserver, etcd and
# kubectl from Go modules (e2e/apiserver; docs/testing.md).
apiserver-build:
	scripts/build-apiserver.sh >/dev/null

# helm lint of both charts, the main one with default values and with every option on.
charts-lint:
	H=$$(scripts/build-helm.sh) && $$H lint --strict charts/manifold-crds && $$H lint --strict charts/manifold \
		&& $$H lint --strict charts/manifold -f charts/manifold/ci/all-options-values.yaml

# Starts the test API server by hand and prints the KUBECONFIG to use; Ctrl-C stops it.
apiserver:
	"$$(scripts/build-apiserver.sh)/testenv" serve --dir target/apiserver

# The kind scenarios where pods really run (docker, kind and kubectl needed; skips without).
e2e-kind:
	scripts/e2e-kind.sh

# Builds the images' final stages from the release binaries and runs them as the chart does
# (podman and runc, as root; skips in one line without them). See docs/images.md.
check-image:
	scripts/check-image.sh

# Regenerates crds/manifests/ and charts/manifold-crds/templates/ from the Rust types.
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

# Instructions policy configured but not hit adds to a tools/call, counted by callgrind (see
# docs/benchmarks.md).
bench-policy:
	scripts/bench-policy.sh

# Tracing's cost per tools/call at 1% sampling and with every call sampled, counted in
# instructions by callgrind (see docs/benchmarks.md).
bench-tracing:
	scripts/bench-tracing.sh

# A merged tools/list over 10 mounts, each 20 ms away: the first through a fresh gateway, then
# the p50 (see docs/benchmarks.md).
bench-lists:
	cargo run --release -q -p manifold-e2e --bin bench_lists

# The operator at scale on the test API server: 1,000 McpServers and 200 McpRoutes over 50
# namespaces (see docs/benchmarks.md).
bench-kube: apiserver-build
	cargo run --release -q -p manifold-e2e --bin bench_kube
