#!/usr/bin/env bash
# Install what the test hub needs (idempotent; a second run does nothing):
#   - the `jupyterhub` package from PyPI into the course venv (the `hub` extra of pyproject.toml);
#   - configurable-http-proxy from the npm registry into a local prefix, $VENV/hub-proxy (never -g).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "scripts/hub/install.sh: $PY not found; run 'make setup' first" >&2
    exit 1
fi
if ! "$PY" -c "import jupyterhub" >/dev/null 2>&1; then
    echo "scripts/hub/install.sh: installing jupyterhub into $VENV"
    "$PY" -m pip install -q "jupyterhub>=5"
fi
CHP="$VENV/hub-proxy/node_modules/.bin/configurable-http-proxy"
if [ ! -x "$CHP" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "scripts/hub/install.sh: npm not found; install Node.js (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "scripts/hub/install.sh: installing configurable-http-proxy into $VENV/hub-proxy"
    npm install --silent --no-audit --no-fund --prefix "$VENV/hub-proxy" "configurable-http-proxy@^4"
fi
"$PY" -c "import jupyterhub; print('jupyterhub', jupyterhub.__version__)"
echo "configurable-http-proxy $("$CHP" --version)"
