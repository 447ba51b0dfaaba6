#!/usr/bin/env bash
# Builds helm v4 from the Go module proxy once per version and prints the binary's path.
#
# helm.sh/helm/v4 has no replace directives, so `go install` works; it is built apart from the
# test API server's module (e2e/apiserver), whose k8s.io versions it must not move. The binary
# is cached under ${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}/helm/<version>.
set -euo pipefail

version="v4.3.2"
cache="${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}"
out="$cache/helm/$version"

if [[ ! -x "$out/helm" ]]; then
    echo "build-helm: building helm $version into $out (first time: a few minutes)" >&2
    start=$SECONDS
    tmp="$out.partial.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
        "helm.sh/helm/v4/cmd/helm@$version"
    rm -rf "$out" && mv "$tmp" "$out"
    echo "build-helm: built in $((SECONDS - start)) s" >&2
fi
echo "$out/helm"
