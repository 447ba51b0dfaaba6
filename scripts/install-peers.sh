#!/usr/bin/env bash
# Install the Python MCP peers used by the end-to-end tests.
#
# Creates <repo>/.venv (python3 -m venv) when missing and pip-installs
# e2e/peers/requirements.txt into it, every transitive package pinned by
# e2e/peers/constraints.txt. The sha256 of both is kept in .venv/.peers-stamp, so a
# second run with unchanged requirements skips pip.
# Needs only python3 (3.11+) and PyPI.
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
    exit 0
fi

"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" -c "$constraints"
echo "$want" >"$stamp"
echo "install-peers: ${created}installed e2e/peers/requirements.txt into .venv"
