#!/usr/bin/env bash
# The kind scenarios, where pods really run: creates a kind cluster (or reuses
# $KIND_CLUSTER), builds the three images (Dockerfile targets operator, gateway, samples),
# loads them into it, installs the test peers and runs tests/kind_*.rs against it.
# Without docker and kind it says so in one line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in docker kind kubectl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIPPED make e2e-kind: no \`$tool\` on PATH (the kind scenarios need docker, kind and kubectl)"
        exit 0
    fi
done
if ! docker info >/dev/null 2>&1; then
    echo "SKIPPED make e2e-kind: docker is installed but no Docker engine answers"
    exit 0
fi

cluster="${KIND_CLUSTER:-manifold-e2e}"
kind get clusters 2>/dev/null | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 180s
for target in operator gateway samples; do
    image="ghcr.io/manifold-dev/manifold-$target:dev"
    docker build --target "$target" -t "$image" .
    kind load docker-image "$image" --name "$cluster"
done
scripts/install-peers.sh
MANIFOLD_E2E_CONTEXT="kind-$cluster" cargo test --locked -p manifold-e2e --test kind_crds --test kind_install -- --nocapture
