#!/usr/bin/env bash
# Builds the test API server (e2e/apiserver: kube-apiserver, etcd in testenv, kubectl) once per
# source, and prints the folder holding the binaries.
#
# The binaries are cached outside the work tree, under
# ${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}/apiserver/<hash>, the hash taken
# over go.mod, go.sum and the Go version: a fresh clone on a warm machine builds nothing.
# testenv (our few files) is rebuilt there alone when its sources change.
# `go vet` runs on every call (it is part of the test command); it is quick with a warm cache.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo/e2e/apiserver"
cache="${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}"

# The version kube-apiserver reports at /version: helm refuses `v0.0.0-master`.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$src/go.mod")"
hash="$( (cd "$src" && cat go.mod go.sum && go version) | sha256sum | cut -c1-16)"
testenv_hash="$(cat "$src"/*.go | sha256sum | cut -c1-16)"
out="$cache/apiserver/$hash"

(cd "$src" && CGO_ENABLED=0 go vet .)

if [[ ! -x "$out/kube-apiserver" || ! -x "$out/kubectl" ]]; then
    echo "build-apiserver: building kube-apiserver $k8s_version, kubectl and testenv into $out (first time: several minutes)" >&2
    start=$SECONDS
    minor="${k8s_version#v1.}"
    minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
        ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    tmp="$out.partial.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    (
        cd "$src"
        export CGO_ENABLED=0
        go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
        go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
    )
    rm -rf "$out" && mkdir -p "$(dirname "$out")" && mv "$tmp" "$out"
    echo "build-apiserver: built in $((SECONDS - start)) s" >&2
fi
if [[ ! -x "$out/testenv" || "$(cat "$out/testenv.stamp" 2>/dev/null)" != "$testenv_hash" ]]; then
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/testenv.partial" .)
    mv "$out/testenv.partial" "$out/testenv"
    echo "$testenv_hash" >"$out/testenv.stamp"
fi
echo "$out"
