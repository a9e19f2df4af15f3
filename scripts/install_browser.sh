#!/usr/bin/env bash
# Install what the browser test needs (idempotent; a second run does nothing):
#   - Debian's chromium (apt-get), used at /usr/bin/chromium;
#   - the Python `playwright` package in the course venv, which drives that chromium.
# Playwright's own browser download is never used (`playwright install` is not run): the tests
# launch /usr/bin/chromium through executable_path.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
CHROMIUM="${EFFCOURSE_CHROMIUM:-/usr/bin/chromium}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ ! -x "$PY" ]; then
    echo "install_browser.sh: $PY not found; run 'make setup' first" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_browser.sh: $CHROMIUM missing and apt-get not available; install Chromium" \
             "and set EFFCOURSE_CHROMIUM to its path" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    echo "install_browser.sh: installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
"$CHROMIUM" --version 2>/dev/null   # (the Debian wrapper prints a harmless shell warning on stderr)

if ! "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
    echo "install_browser.sh: installing playwright into $VENV"
    "$PY" -m pip install -q "playwright>=1.40,<2"
fi
"$PY" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
