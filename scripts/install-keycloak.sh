#!/usr/bin/env bash
# Fetches Keycloak (org.keycloak:keycloak-quarkus-dist, the server distribution) from Maven
# Central once per version, checks it against the SHA-256 Maven publishes beside it, unpacks
# it and runs Keycloak's build step once, for the outbound identity tests (e2e/src/keycloak.rs);
# prints the folder (its `bin/kc.sh` starts with `start --optimized`).
#
# The build step fixes what cannot change at start: the dev-file database (H2; each start
# points it at a file of its own with --db-url) and the health endpoints. No feature flag:
# standard token exchange (RFC 8693, feature `token-exchange-standard`) is on by default since
# 26.2, and the legacy `token-exchange` preview feature is deliberately left off, so an
# exchange the standard rules refuse is not granted by the old ones. Keycloak needs Java 21+;
# it runs on $KEYCLOAK_JAVA_HOME, default /usr/lib/jvm/temurin-25-jdk-amd64.
#
# The folder is ${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}/keycloak/<version>;
# a second run finds it built and downloads nothing. The first run downloads 176 MB and builds
# for about 30 s: 42 to 60 s in all on a 2-core VM; a warm run takes milliseconds.
set -euo pipefail

version="${KEYCLOAK_VERSION:-26.7.3}"
java_home="${KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
cache="${MANIFOLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/manifold}"
out="$cache/keycloak/$version"
# What `kc.sh build` was given; a changed list rebuilds.
build_options=(--db=dev-file --health-enabled=true)
stamp="built: ${build_options[*]}"

if [[ ! -x "$java_home/bin/java" ]]; then
    echo "install-keycloak: no Java at $java_home (Keycloak $version needs Java 21+; set KEYCLOAK_JAVA_HOME)" >&2
    exit 1
fi

if [[ -x "$out/bin/kc.sh" && -f "$out/.manifold-built" && "$(cat "$out/.manifold-built")" == "$stamp" ]]; then
    echo "install-keycloak: Keycloak $version already built in $out, skipped" >&2
    echo "$out"
    exit 0
fi

start=$SECONDS
name="keycloak-quarkus-dist-$version.tar.gz"
url="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$version/$name"
tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "install-keycloak: fetching $url" >&2
curl -fsSL --retry 3 -o "$tmp/$name" "$url"
want="$(curl -fsSL --retry 3 "$url.sha256" | awk '{print $1}')"
got="$(sha256sum "$tmp/$name" | cut -d' ' -f1)"
if [[ "$want" != "$got" ]]; then
    echo "install-keycloak: $name has SHA-256 $got, Maven Central publishes $want" >&2
    exit 1
fi
tar -xzf "$tmp/$name" -C "$tmp"
rm "$tmp/$name"
mkdir -p "$tmp/dist"
mv "$tmp/keycloak-$version"/* "$tmp/dist/"
rmdir "$tmp/keycloak-$version"
# The build writes only under the distribution (lib/quarkus); no data folder is touched.
JAVA_HOME="$java_home" "$tmp/dist/bin/kc.sh" build "${build_options[@]}" >"$tmp/build.log" 2>&1 || {
    echo "install-keycloak: kc.sh build failed:" >&2
    tail -n 40 "$tmp/build.log" >&2
    exit 1
}
echo "$stamp" >"$tmp/dist/.manifold-built"
rm -rf "$out" && mkdir -p "$(dirname "$out")" && mv "$tmp/dist" "$out"
trap - EXIT
rm -rf "$tmp"
echo "install-keycloak: Keycloak $version fetched, checked and built into $out in $((SECONDS - start)) s" >&2
echo "$out"
