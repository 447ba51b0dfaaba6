#!/usr/bin/env bash
# Install redis-server (Debian's package) for the cluster-wide rate limit tests, which start
# their own `redis-server --port N` as a child process (e2e/src/redis.rs). Skipped when
# redis-server is on PATH. No system service is started: a policy-rc.d that refuses every
# start is put in place for the install when the machine has none (Docker images ship one).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "install-redis: $(redis-server --version | cut -d' ' -f1-3) already on PATH, skipped"
    exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-redis: redis-server is missing and this user cannot install it: run 'apt-get install redis-server' as root" >&2
        exit 1
    fi
    sudo="sudo"
fi

policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# put here by manifold scripts/install-redis.sh for one install\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi

install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >/dev/null
}
# A machine whose package lists are missing or stale cannot find the package: update once.
if ! install 2>/dev/null; then
    $sudo apt-get update -q >/dev/null
    install
fi
echo "install-redis: installed $(redis-server --version | cut -d' ' -f1-3) from Debian's packages (no service started)"
