"""Fixtures of the browser tests: one JupyterLab server and one headless Chromium per session.

Everything here is skipped unless ``EFFCOURSE_BROWSER=1`` (``make test-browser`` sets it), so the
plain ``make test`` neither needs Chromium nor imports Playwright.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ENABLED = os.environ.get("EFFCOURSE_BROWSER") == "1"
SKIP_REASON = "browser test: run `make test-browser` (sets EFFCOURSE_BROWSER=1)"
SUMMARY: list[str] = []


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("JupyterLab browser test")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def summary():
    """Lines for the closing report (also written to _artifacts/browser/summary.txt)."""
    import jlab

    yield SUMMARY
    jlab.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (jlab.ARTIFACTS / "summary.txt").write_text("\n".join(SUMMARY) + "\n")


@pytest.fixture(scope="session")
def artifacts():
    import jlab

    for sub in ("work", "state"):
        shutil.rmtree(jlab.ARTIFACTS / sub, ignore_errors=True)
    jlab.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return jlab.ARTIFACTS


@pytest.fixture(scope="session")
def lab_server(artifacts):
    """JupyterLab serving the course checkout (labs/ and the QUICK copies under _artifacts/)."""
    import jlab

    server = jlab.LabServer(jlab.ROOT, artifacts / "state" / "server")
    t0 = time.monotonic()
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(f"JupyterLab server did not start: {err}", pytrace=False)
    SUMMARY.append(f"server: JupyterLab on {server.url} up in {time.monotonic() - t0:.1f} s "
                   f"(log {server.log_path.relative_to(jlab.ROOT)})")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(artifacts):
    """A headless Chromium (Debian's /usr/bin/chromium) context on a fresh user-data dir."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package `playwright` is missing: run `bash scripts/install_browser.sh`", pytrace=False)
    import jlab

    pw = sync_playwright().start()
    try:
        try:
            context = jlab.launch_browser(pw, artifacts / "state" / "chromium-profile")
        except RuntimeError as err:
            pytest.fail(str(err), pytrace=False)
        context.set_default_timeout(jlab.UI_TIMEOUT * 1000)
        try:
            yield context
        finally:
            context.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser, lab_server):
    """A new tab; afterwards it is closed and every kernel of the server shut down."""
    pg = browser.new_page()
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    pg.console_errors = console
    try:
        yield pg
    finally:
        try:
            pg.close()
        finally:
            try:
                lab_server.shutdown_kernels()
            except Exception:  # noqa: BLE001 - the server may already be gone; stop() cleans up
                pass


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
