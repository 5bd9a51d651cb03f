#!/usr/bin/env bash
# Create or update .venv-peers: gridlib plus the peer systems bench/peers.py compares it with.
#
# Usage: bench/peers_env.sh [PYTHON]   (default: python3; `make bench-peers` calls it)
#
# The peers live in their own git-ignored virtualenv so that none of them ever
# becomes a dependency of gridlib: pyproject.toml is not touched, and .venv
# (the development env) stays as it is.  Each peer is installed on its own, so
# one that has no wheel for this platform (or fails to build) is reported and
# skipped; bench/peers.py then prints "not measured: not installed" for it.
set -u

PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-peers"
PY="$VENV/bin/python"
STAMP="$VENV/.installed"  # written when everything installed; newer than its inputs = up to date

cd "$ROOT" || exit 1
if [ -x "$PY" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt bench/peers_env.sh ]; then
    echo "peers_env: $VENV is up to date (delete $STAMP to reinstall)"
    exit 0
fi
if [ ! -x "$PY" ]; then
    echo "peers_env: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV" || exit 1
    "$PY" -m pip install -q --upgrade pip || exit 1
fi

# gridlib itself (editable, so the lead's current runtime code is what gets measured)
# and matplotlib for bench/plot.py are required; the peers are optional.
"$PY" -m pip install -q -e . || { echo "peers_env: could not install gridlib" >&2; exit 1; }
"$PY" -m pip install -q matplotlib || { echo "peers_env: could not install matplotlib" >&2; exit 1; }

skipped=()
install_peer() {  # install_peer NAME REQUIREMENT...
    local name=$1
    shift
    if "$PY" -m pip install -q "$@"; then
        echo "peers_env: $name installed"
    else
        echo "peers_env: $name NOT installed (pip failed, e.g. no wheel for" \
             "$(uname -m) / Python $("$PY" -c 'import platform; print(platform.python_version())')):" \
             "it will be reported as 'not measured'" >&2
        skipped+=("$name")
    fi
}

install_peer dask 'dask[distributed]'
install_peer ray ray
install_peer ipyparallel ipyparallel
install_peer dispy dispy pycos

"$PY" -m pip freeze --exclude-editable | grep -iE '^(dask|distributed|ray|ipyparallel|dispy|pycos|matplotlib)==' \
    | sed 's/^/peers_env: /'
if [ ${#skipped[@]} -gt 0 ]; then
    echo "peers_env: skipped: ${skipped[*]} (tried again next time)"
else
    touch "$STAMP"
fi
exit 0
