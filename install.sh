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

# redis-server runs the stack; chromium (a checkout with tests only) renders the tear sheet in its test.
packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
[ ! -d tests ] || command -v chromium >/dev/null 2>&1 || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
    echo "install.sh: installing ${packages[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e ".[test]"

# The official IB client, old and current, for tests/sim/test_ibapi.py. Both PyPI
# packages install the module `ibapi`, so each goes into a directory of its own
# that the tests put on a subprocess's PYTHONPATH; the venv itself has neither.
install_ibapi() {  # DIR REQUIREMENT DIST_INFO
    local dir=$1 requirement=$2 dist_info=$3
    [ -d "$dir/$dist_info" ] && return 0
    rm -rf "$dir"
    if ! .venv/bin/pip install -q --no-warn-conflicts --disable-pip-version-check --target "$dir" "$requirement"; then
        rm -rf "$dir"
        echo "install.sh: could not install $requirement into $dir: tests/sim/test_ibapi.py will skip it" >&2
    fi
}
if [ -d tests ]; then  # a checkout with its tests (the Docker image has none)
    install_ibapi .venv/ibapi-9.81 "ibapi==9.81.1.post1" ibapi-9.81.1.post1.dist-info  # negotiates 157
    install_ibapi .venv/ibapi-10 "ibapi-stable==10.50.2" ibapi_stable-10.50.2.dist-info
fi
echo "install.sh: ready (.venv/bin/trader)" >&2
