"""Drive the course's test JupyterHub (``scripts/hub/``) in headless Chromium.

Used by ``tests/browser/test_hub.py``; reuses ``jlab`` (Chromium path and flags, the JupyterLab
``Notebook`` gestures). Nothing here imports Playwright at import time.

* ``Hub``: ``scripts/hub/launch.py`` on a temporary root and a free port; stopped (its process
  group, the single-user servers and their kernels) whatever happens.
* ``User``: one hub user in a browser context of their own (their own cookies): log in, wait for
  their server, open JupyterLab, formgrader or the assignment list.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jlab

ROOT = jlab.ROOT
ARTIFACTS = ROOT / "_artifacts" / "hub"
LAUNCH = ROOT / "scripts" / "hub" / "launch.py"
PROXY = Path(sys.executable).parent.parent / "hub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_START_TIMEOUT = float(os.environ.get("EFFCOURSE_HUB_START_TIMEOUT", "120"))
SPAWN_TIMEOUT = float(os.environ.get("EFFCOURSE_HUB_SPAWN_TIMEOUT", "180"))
UI = jlab.UI_TIMEOUT * 1000


def _free_ports(n: int) -> int:
    """A base port p with p, p+1, p+2 free (proxy, hub API, proxy API)."""
    for _ in range(50):
        p = jlab.free_port()
        if p < 65000 and all(_is_free(p + i) for i in range(1, n)):
            return p
    raise RuntimeError("no three consecutive free ports")


def _is_free(port: int) -> bool:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Hub:
    """The test hub on ``root``; use as a context manager (always stopped)."""

    def __init__(self, root: Path, labs: list[str], students=("alice", "bob"), instructor="instructor"):
        self.root = Path(root)
        self.labs = list(labs)
        self.students = list(students)
        self.instructor = instructor
        self.password = secrets.token_urlsafe(9)
        self.port = _free_ports(3)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root / "hub.log"
        self.proc: subprocess.Popen | None = None

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    @property
    def course(self) -> Path:
        return self.home(self.instructor)

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    def start(self) -> "Hub":
        if not PROXY.exists():
            raise RuntimeError(f"{PROXY} is missing: run `bash scripts/hub/install.sh`")
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(LAUNCH), "--root", str(self.root), "--port", str(self.port),
               "--password", self.password, "--instructor", self.instructor, "--students", ",".join(self.students)]
        for lab in self.labs:
            cmd += ["--lab", lab]
        env = jlab._env()
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the hub's log for its life; stop() closes it
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"the hub exited with code {code} before serving:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub did not answer within {HUB_START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the hub (it stops the servers it spawned and the proxy), then SIGKILL to
        whatever of its process group and of the servers' groups is left."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        groups = {proc.pid} | self._server_groups()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in self._pids_under_root():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()
        marker = self.root / "hub" / "kernel_dir"          # the grading kernel's socket folder in /tmp
        if marker.exists():
            shutil.rmtree(marker.read_text().strip(), ignore_errors=True)

    def _pids_under_root(self) -> list[int]:
        """Processes whose environment or command line names this hub's root (servers, kernels)."""
        marker = str(self.root).encode()
        out = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (entry / "cmdline").read_bytes() or marker in (entry / "environ").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                continue
        return [p for p in out if p != os.getpid()]

    def _server_groups(self) -> set[int]:
        groups = set()
        for pid in self._pids_under_root():
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
        groups.discard(os.getpgid(0))
        return groups

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class User:
    """One hub user in a browser context of their own."""

    def __init__(self, hub: Hub, browser, name: str, shots: Path):
        self.hub, self.name, self.shots = hub, name, shots
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.context.set_default_timeout(UI)
        self.page = self.context.new_page()
        self.page.console_errors = []
        self.page.on("pageerror", lambda err: self.page.console_errors.append(str(err)))
        self.base = f"{hub.url}/user/{name}"

    def shot(self, name: str, page=None) -> Path:
        path = self.shots / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        (page or self.page).screenshot(path=str(path), timeout=UI)
        return path

    def login(self) -> float:
        """Log in at /hub/login and wait until JupyterLab of the user's own server has loaded."""
        t0 = time.monotonic()
        self.login_start()
        self.login_wait()
        return time.monotonic() - t0

    def login_start(self) -> None:
        """Submit the login form (the hub starts the user's server); ``login_wait`` waits for it."""
        page = self.page
        page.goto(f"{self.hub.url}/hub/login", timeout=UI)
        page.fill("input[name=username]", self.name)
        page.fill("input[name=password]", self.hub.password)
        with page.expect_navigation(timeout=UI):
            page.click("input[type=submit], button[type=submit]")

    def login_wait(self) -> None:
        page = self.page
        page.wait_for_url(re.compile(rf"/user/{re.escape(self.name)}/lab"), timeout=SPAWN_TIMEOUT * 1000)
        page.locator(".jp-LabShell, #jp-main-dock-panel").first.wait_for(timeout=SPAWN_TIMEOUT * 1000)

    def api(self, path: str, method: str = "GET", data=None):
        """The user's server's REST API through the browser's cookies (XSRF header from the cookie)."""
        xsrf = next((c["value"] for c in self.context.cookies() if c["name"] == "_xsrf"), "")
        r = self.context.request.fetch(f"{self.base}/{path.lstrip('/')}", method=method,
                                       headers={"X-XSRFToken": xsrf}, data=data, timeout=UI)
        assert r.ok, f"{method} {path} as {self.name}: HTTP {r.status} {r.text()[:300]}"
        return r.json() if r.text() else None

    def close(self) -> None:
        self.context.close()
