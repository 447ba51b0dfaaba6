#!/usr/bin/env bash
# Unpacks Debian's `prometheus` package (prometheus and promtool) into a cache folder and prints
# that folder. The dashboard and alert tests start their own `prometheus` on a free port and run
# `promtool test rules` (e2e/src/prometheus.rs); no service is installed or started, and no root
# is needed when the machine's package lists already know the package (`apt-get download` and
# `dpkg -x` write only to the cache). As root, a missing or stale list is updated once.
#
# The folder is ${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}/prometheus/<version>,
# the version being the candidate apt offers; a second run finds it and downloads nothing.
set -euo pipefail

cache="${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}"

candidate() {
    apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'
}

version="$(candidate)"
if [[ -z "$version" || "$version" == "(none)" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "install-prometheus: apt knows no 'prometheus' package and this user cannot update its lists: run 'apt-get update' as root" >&2
        exit 1
    fi
    apt-get update -q >/dev/null
    version="$(candidate)"
fi
if [[ -z "$version" || "$version" == "(none)" ]]; then
    echo "install-prometheus: no 'prometheus' package in this machine's apt sources" >&2
    exit 1
fi

out="$cache/prometheus/${version//[:+~]/_}"
if [[ -x "$out/bin/prometheus" && -x "$out/bin/promtool" ]]; then
    echo "install-prometheus: prometheus $version already in $out, skipped" >&2
    echo "$out"
    exit 0
fi

tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp/deb" "$tmp/root"
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp/deb" && apt-get download -q "prometheus=$version" >/dev/null); }
# Lists that name a version the mirror no longer has: update once (as root) and try again.
if ! download 2>/dev/null; then
    [[ "$(id -u)" == 0 ]] && apt-get update -q >/dev/null
    download
fi
dpkg -x "$tmp"/deb/prometheus_*.deb "$tmp/root"
mkdir -p "$tmp/bin"
mv "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$tmp/bin/"
rm -rf "$tmp/root" "$tmp/deb"
rm -rf "$out" && mv "$tmp" "$out"
trap - EXIT
echo "install-prometheus: unpacked Debian's prometheus $version into $out" >&2
echo "$out"
