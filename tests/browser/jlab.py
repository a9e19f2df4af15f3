"""Drive a real JupyterLab server with Debian's headless Chromium (through Playwright).

Used by ``tests/browser/test_jupyterlab.py``; nothing here imports Playwright at import time, so
the module costs nothing where the browser tests are skipped.

* ``LabServer``: JupyterLab from this interpreter's venv on 127.0.0.1, a free port, a random token,
  isolated settings/workspaces/runtime folders; stopped (process group killed) whatever happens.
* ``launch_browser``: /usr/bin/chromium with a fresh user-data dir, never Playwright's own browser.
* ``Notebook``: the few UI gestures the tests need (open, Run All Cells through the Run menu, wait
  for idle, read errors, move sliders), each with a timeout so a broken UI fails instead of hanging.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "_artifacts" / "browser"
CHROMIUM = os.environ.get("EFFCOURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_TIMEOUT = float(os.environ.get("EFFCOURSE_BROWSER_SERVER_TIMEOUT", "120"))
BROWSER_START_TIMEOUT = float(os.environ.get("EFFCOURSE_BROWSER_LAUNCH_TIMEOUT", "60"))
UI_TIMEOUT = float(os.environ.get("EFFCOURSE_BROWSER_UI_TIMEOUT", "60"))      # one UI step, seconds
RUN_TIMEOUT = float(os.environ.get("EFFCOURSE_BROWSER_RUN_TIMEOUT", "900"))   # one notebook, seconds

# JupyterLab user settings for the test: every cell in the DOM (no windowing), no news/update
# checks (no network), no autosave (the copies are saved on purpose, once, at the end).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labextensions() -> str:
    """``jupyter labextension list`` of this venv, colour codes stripped (it prints to stderr)."""
    proc = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True,
                          text=True, timeout=120, env=_env())
    return ANSI.sub("", proc.stdout + proc.stderr)


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # the unit-test conftest sets MPLBACKEND=Agg; a kernel must get ipykernel's inline backend
    env.pop("MPLBACKEND", None)
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("EFFCOURSE_QUICK", None)
    env.pop("EFFCOURSE_LIVE", None)     # papermill runs switch live curves off; a learner's kernel has them
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class LabServer:
    """``jupyter lab`` serving ``root_dir``; use as a context manager (always stopped)."""

    def __init__(self, root_dir: Path, state_dir: Path):
        self.root_dir = Path(root_dir)
        self.state = Path(state_dir)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.state / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def _prepare(self) -> dict:
        settings = self.state / "user-settings"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        for sub in ("workspaces", "runtime", "config", "data"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        return _env({
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.state / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.state / "config"),   # ignore ~/.jupyter; venv config still applies
            # kernels run the smoke profile: every line of every lab runs, experiments at their smallest
            # size (the full QUICK run is papermill's, in make test)
            "EFFCOURSE_SMOKE": "1",
        })

    def start(self) -> "LabServer":
        env = self._prepare()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False",
               f"--ServerApp.root_dir={self.root_dir}",
               f"--LabApp.user_settings_dir={self.state / 'user-settings'}",
               f"--LabApp.workspaces_dir={self.state / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ContentsManager.allow_hidden=False"]
        if hasattr(os, "getuid") and os.getuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the server's log for its life; stop() closes it
        cwd = self.root_dir if self.root_dir.is_dir() else self.state
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"JupyterLab exited with code {code} before serving:\n" + self.log_tail())
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"JupyterLab did not answer on {self.url} within {SERVER_START_TIMEOUT:.0f} s:\n"
                                   + self.log_tail())
            time.sleep(0.5)

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self, notebook: Path) -> str:
        rel = Path(notebook).resolve().relative_to(self.root_dir.resolve()).as_posix()
        for sess in self.api("sessions"):
            if sess.get("path") == rel and sess.get("kernel"):
                return sess["kernel"].get("execution_state", "unknown")
        return "none"

    def shutdown_kernels(self) -> None:
        for sess in self.api("sessions"):
            self.api(f"sessions/{sess['id']}", method="DELETE")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def lab_url(self, path: str | Path) -> str:
        rel = Path(path).resolve().relative_to(self.root_dir.resolve()).as_posix()
        return f"{self.url}/lab/tree/{rel}?token={self.token}&reset"

    def stop(self) -> None:
        """Shut the kernels down, stop the server (SIGINT twice, then SIGTERM, then SIGKILL to its
        process group) and kill any kernel process of this server still alive."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.shutdown_kernels()
            except Exception:  # noqa: BLE001 - a wedged server is killed below
                pass
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)       # the server (kernels run in sessions of their own)
                    if sig == signal.SIGINT:       # jupyter asks for confirmation on the first ^C
                        time.sleep(0.3)
                        os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        for pid in self._kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()

    def _kernel_pids(self) -> list[int]:
        """Processes whose command line names this server's private runtime folder: its kernels."""
        marker = str(self.state / "runtime").encode()
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return [p for p in pids if p != os.getpid()]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def launch_browser(playwright, user_data_dir: Path):
    """A persistent Chromium context on a fresh user-data dir (raises with a clear message)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: run `bash scripts/install_browser.sh` (apt-get install chromium)")
    if user_data_dir.exists():
        shutil.rmtree(user_data_dir)
    user_data_dir.mkdir(parents=True)
    try:
        return playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000}, timeout=BROWSER_START_TIMEOUT * 1000,
            env=_env(), chromium_sandbox=False)
    except Exception as err:   # noqa: BLE001 - re-raised with the cause named
        raise RuntimeError(f"Chromium ({CHROMIUM}) did not start within {BROWSER_START_TIMEOUT:.0f} s: {err}") from err


def quick_copy(src: Path, dst_dir: Path) -> Path:
    """A copy of the notebook ``src`` in ``dst_dir`` with ``QUICK = True`` in its parameters cell
    (and the lab folder's other files beside it); the committed notebook is never touched."""
    if dst_dir.exists():
        shutil.rmtree(dst_dir)
    shutil.copytree(src.parent, dst_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.py"))
    nb = nbformat.read(src, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise AssertionError(f"{src}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source, n = re.subn(r"^QUICK\s*=\s*\w+", "QUICK = True", cells[0].source, flags=re.M)
    if n != 1:
        raise AssertionError(f"{src}: the parameters cell has no `QUICK = ...` line:\n{cells[0].source}")
    cells[0].source = source
    dst = dst_dir / src.name
    nbformat.write(nb, dst)
    return dst


# --- page helpers ---------------------------------------------------------------------------------

JS_STATE = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const cells = [...nb.querySelectorAll(':scope > .jp-Cell, .jp-WindowedPanel-viewport > .jp-Cell')];
  const code = cells.filter(c => c.classList.contains('jp-CodeCell'));
  const prompts = code.map(c => {
    const p = c.querySelector('.jp-InputArea-prompt');
    return p ? p.textContent.trim() : '';
  });
  const status = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {ncells: cells.length, ncode: code.length, prompts,
          indicator: status ? (status.getAttribute('data-status') || '') : null};
}"""


class Notebook:
    """One notebook open in JupyterLab (a Playwright page)."""

    def __init__(self, page, server: LabServer, path: Path):
        self.page, self.server, self.path = page, server, path

    @property
    def panel(self):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    def open(self) -> "Notebook":
        """Load the notebook in a fresh JupyterLab page and wait until all its cells are shown and
        its kernel is started and idle."""
        ncells = len(nbformat.read(self.path, as_version=4).cells)
        self.page.goto(self.server.lab_url(self.path), timeout=UI_TIMEOUT * 1000, wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=UI_TIMEOUT * 1000)
        deadline = time.monotonic() + UI_TIMEOUT * 2
        while self.state().get("ncells", 0) < ncells:
            if time.monotonic() > deadline:
                shown = self.state().get("ncells")
                raise AssertionError(f"{self.path.name}: JupyterLab shows {shown} of {ncells} cells")
            self.page.wait_for_timeout(250)
        self.wait_kernel_idle(UI_TIMEOUT * 2)
        return self

    def dismiss_dialogs(self, allowed: tuple[str, ...] = ("Select Kernel",)) -> list[str]:
        """Accept the modal dialogs whose title is in ``allowed`` (the kernel chooser); raise on any
        other dialog, naming it. Returns the texts of the dialogs accepted."""
        texts = []
        for _ in range(5):
            dlg = self.page.locator(".jp-Dialog")
            if dlg.count() == 0:
                break
            text = dlg.first.inner_text(timeout=5000)
            if not any(a in text for a in allowed):
                raise AssertionError(f"unexpected JupyterLab dialog over {self.path.name}:\n{text}")
            texts.append(text)
            dlg.first.locator(".jp-Dialog-footer button.jp-mod-accept").first.click(timeout=5000)
            self.page.wait_for_timeout(300)
        return texts

    def state(self) -> dict:
        return self.page.evaluate(JS_STATE) or {}

    def kernel_status(self) -> str:
        """The execution state of this notebook's kernel, as the server reports it (``idle``,
        ``busy``, ``starting``), or ``none`` while no kernel session exists."""
        return self.server.kernel_state(self.path)

    def wait_kernel_idle(self, timeout: float) -> None:
        """Wait until the server reports the kernel idle and JupyterLab's status bar says Idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.dismiss_dialogs()
            idle_bar = self.page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle"))
            if self.kernel_status() == "idle" and idle_bar.count():
                return
            self.page.wait_for_timeout(250)
        raise AssertionError(f"kernel of {self.path.name} not idle after {timeout:.0f} s "
                             f"(server says {self.kernel_status()!r})")

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in the menu bar, then ``item`` in the menu it opens."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(top)}$")).first.click(
            timeout=UI_TIMEOUT * 1000)
        label = self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$"))
        entry = self.page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-disabled)", has=label)
        entry.first.click(timeout=UI_TIMEOUT * 1000)

    def run_all(self, timeout: float = RUN_TIMEOUT) -> float:
        """Run > Run All Cells; wait until every code cell has an execution count and the kernel is
        idle. Returns the seconds it took."""
        t0 = time.monotonic()
        self.menu("Run", "Run All Cells")
        deadline = t0 + timeout
        numbered = re.compile(r"\[\d+\]:")
        while time.monotonic() < deadline:
            self.dismiss_dialogs()
            prompts = self.state().get("prompts", [])
            running = any("*" in p for p in prompts)
            if not running and self.kernel_status() == "idle":
                self.page.wait_for_timeout(1000)          # let the last outputs land
                prompts = self.state().get("prompts", [])
                if not any("*" in p for p in prompts) and self.kernel_status() == "idle":
                    missing = [i for i, p in enumerate(prompts) if not numbered.fullmatch(p)]
                    if not missing:
                        return time.monotonic() - t0
                    if time.monotonic() - t0 > 15:        # not a slow start: the queue was aborted
                        raise AssertionError(
                            f"Run All Cells stopped with {len(missing)} of {len(prompts)} code cells not executed "
                            f"(code cells {missing[:10]}); errors shown:\n" + "\n".join(self.errors()))
            self.page.wait_for_timeout(500)
        raise AssertionError(f"Run All Cells did not finish within {timeout:.0f} s; prompts "
                             f"{self.state().get('prompts')}; errors:\n" + "\n".join(self.errors()))

    def errors(self) -> list[str]:
        """Error outputs: tracebacks (error outputs and stderr mentioning Traceback/Error),
        widget rendering failures."""
        return self.page.evaluate("""() => {
          const out = [];
          const root = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
          if (!root) return ['no notebook panel'];
          const stderr = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
          for (const el of root.querySelectorAll(stderr)) {
            const t = el.textContent || '';
            if (/Traceback|Error\\b|Exception\\b/.test(t)) out.push(t.slice(0, 2000));
          }
          for (const el of root.querySelectorAll('.jp-OutputArea-output')) {
            const t = el.textContent || '';
            if (t.includes('Error displaying widget')) out.push('Error displaying widget: ' + t.slice(0, 500));
          }
          return out;
        }""")

    def text(self) -> str:
        return self.panel.inner_text(timeout=UI_TIMEOUT * 1000)

    def save(self) -> None:
        self.menu("File", "Save Notebook")
        self.page.wait_for_function("""() => {
          const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
          const tab = document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');
          return p && tab && !tab.classList.contains('jp-mod-dirty');
        }""", timeout=UI_TIMEOUT * 1000)

    def figures(self) -> int:
        """Rendered raster figures (matplotlib inline) in outputs, widget outputs included."""
        return self.panel.locator(".jp-OutputArea-output img").count()

    def screenshot(self, path: Path, scroll_to=None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if scroll_to is not None:
            scroll_to.scroll_into_view_if_needed(timeout=UI_TIMEOUT * 1000)
        self.page.screenshot(path=str(path), timeout=UI_TIMEOUT * 1000)
        return path


# --- widgets --------------------------------------------------------------------------------------

JS_OUTPUT_SNAPSHOT = """(view) => {
  // what a widget drives: everything in the same cell's output area except the control itself
  const area = view.closest('.jp-OutputArea') || view.parentElement;
  const parts = [];
  const driven = 'img, canvas, svg, .widget-output, .widget-html-content, .jp-RenderedText, '
    + '.jp-RenderedHTMLCommon, .widget-label, .widget-valid, .widget-readout';
  for (const el of area.querySelectorAll(driven)) {
    if (view.contains(el) || el.contains(view)) continue;
    const src = el.getAttribute('src') || '';
    if (el.tagName === 'IMG') parts.push('img:' + src.length + ':' + src.slice(-200));
    else if (el.tagName === 'CANVAS') { try { parts.push('canvas:' + el.toDataURL().slice(-200)); } catch (e) {} }
    else if (el.tagName === 'svg' || el.tagName === 'SVG') {
      parts.push('svg:' + el.innerHTML.length + el.innerHTML.slice(-200));
    }
    else parts.push(el.className + ':' + (el.textContent || '').slice(0, 2000));
  }
  return parts.join('\\n');
}"""

SLIDER = ".widget-slider, .jupyter-widgets.widget-hslider, .jupyter-widgets.widget-vslider"


def widget_report(nb: Notebook) -> dict:
    p = nb.panel
    return {
        "views": p.locator(".jp-OutputArea-output .jupyter-widgets").count(),
        "sliders": p.locator(f".jp-OutputArea-output :is({SLIDER})").count(),
        "dropdowns": p.locator(".jp-OutputArea-output .widget-dropdown select").count(),
        "errors": p.locator(".jp-OutputArea-output", has_text="Error displaying widget").count(),
        "unrendered": p.locator(".jp-OutputArea-output",
                                has_text=re.compile(r"Loading widget|Widget Javascript not detected")).count(),
    }


def _readout(slider) -> str:
    r = slider.locator(".widget-readout")
    if r.count():
        tag = r.first.evaluate("e => e.tagName")
        return r.first.input_value() if tag == "INPUT" else r.first.inner_text()
    return slider.locator(".noUi-handle").first.get_attribute("aria-valuenow") or ""


def _wait_changed(view, before: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = view.evaluate(JS_OUTPUT_SNAPSHOT)
        if now != before:
            # let a re-render finish (interact clears, then draws)
            view.page.wait_for_timeout(500)
            return view.evaluate(JS_OUTPUT_SNAPSHOT)
        view.page.wait_for_timeout(250)
    return None


def move_sliders(nb: Notebook, timeout: float = 120) -> list[dict]:
    """For every slider: focus its handle, press ArrowRight (ArrowLeft if it sits at its maximum)
    and wait until the output it drives (same output area, the slider excluded) changes."""
    results = []
    sliders = nb.panel.locator(f".jp-OutputArea-output :is({SLIDER})")
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        slider.scroll_into_view_if_needed(timeout=UI_TIMEOUT * 1000)
        nb.wait_kernel_idle(timeout)
        labels = slider.locator(".widget-label")
        label = labels.first.inner_text() if labels.count() else f"slider {i}"
        before_value, before = _readout(slider), slider.evaluate(JS_OUTPUT_SNAPSHOT)
        handle = slider.locator(".noUi-handle, input[type=range], .ui-slider-handle").first
        handle.focus(timeout=UI_TIMEOUT * 1000)
        pressed = []
        for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):
            handle.press(key)
            pressed.append(key)
            nb.page.wait_for_timeout(300)
            if _readout(slider) != before_value:
                break
        after_value = _readout(slider)
        after = _wait_changed(slider, before, timeout)
        nb.wait_kernel_idle(timeout)
        results.append({"slider": label.strip(), "keys": pressed, "value": (before_value, after_value),
                        "value_changed": after_value != before_value, "output_changed": after is not None})
    return results


def change_dropdowns(nb: Notebook, timeout: float = 120) -> list[dict]:
    """For every dropdown: pick another option and wait until the output it drives changes."""
    results = []
    selects = nb.panel.locator(".jp-OutputArea-output .widget-dropdown select")
    for i in range(selects.count()):
        sel = selects.nth(i)
        box = sel.locator("xpath=ancestor::*[contains(@class,'widget-dropdown')][1]")
        sel.scroll_into_view_if_needed(timeout=UI_TIMEOUT * 1000)
        options = sel.locator("option").all_inner_texts()
        if len(options) < 2:
            continue
        nb.wait_kernel_idle(timeout)
        current = sel.input_value()
        values = sel.locator("option").evaluate_all("os => os.map(o => o.value)")
        target = next(v for v in values if v != current)
        before = box.evaluate(JS_OUTPUT_SNAPSHOT)
        sel.select_option(value=target)
        after = _wait_changed(box, before, timeout)
        nb.wait_kernel_idle(timeout)
        results.append({"dropdown": i, "to": target, "output_changed": after is not None})
    return results
