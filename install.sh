#!/usr/bin/env bash
# Install what the platform needs on a Debian machine: redis-server, a venv, the package with its test extras.
# Idempotent: a second run only checks. Usage: ./install.sh
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: Python 3.11 or newer is required ($("$python" --version 2>&1) found)" >&2
    exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "install.sh: installing redis-server" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e ".[test]"
echo "install.sh: ready (.venv/bin/trader)" >&2
