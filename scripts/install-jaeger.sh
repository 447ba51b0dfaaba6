#!/usr/bin/env bash
# Builds Jaeger v2 (one binary: OTLP receivers, in-memory storage, the query API) from the Go
# module proxy once per version, for the end-to-end trace tests (e2e/src/jaeger.rs), and
# prints the binary's path.
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` refuses to build: Jaeger's
# go.mod has a replace directive, which binds only a main module. So e2e/jaeger is a module of
# ours that requires Jaeger as a tool (`tool` in go.mod, no Go files of its own, so nothing to
# vet) and repeats that replace. The binary is cached under
# ${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}/jaeger/<hash>, the hash taken over
# go.mod, go.sum and the Go version: a fresh clone on a warm machine builds nothing. The first
# build took 8 minutes on a 2-core VM whose Go module cache already held Jaeger's modules; with
# only the build cache warm (a changed go.mod), 10 s. The binary is 81 MiB.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo/e2e/jaeger"
cache="${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}"

version="$(awk '$1 == "github.com/jaegertracing/jaeger" {print $2}' "$src/go.mod")"
hash="$( (cd "$src" && cat go.mod go.sum && go version) | sha256sum | cut -c1-16)"
out="$cache/jaeger/$hash"

if [[ ! -x "$out/jaeger" ]]; then
    echo "install-jaeger: building Jaeger $version into $out (first time: several minutes)" >&2
    start=$SECONDS
    tmp="$out.partial.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
    rm -rf "$out" && mv "$tmp" "$out"
    echo "install-jaeger: built in $((SECONDS - start)) s" >&2
fi
echo "$out/jaeger"
