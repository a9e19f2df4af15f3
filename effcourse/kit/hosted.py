"""Hosted notebooks (Colab, a JupyterHub with torch but not effcourse): the set-up cell installs the
kit's ``effcourse`` itself, pinned to the kit's version, without touching the installed torch.

The bootstrap is a code cell of its own just before each lab's set-up cell (the code cell that first
imports ``effcourse``), between two marker comments, so that it can be updated in place::

    # >>> effcourse bootstrap (hosted notebooks: docs/HOSTED.md)
    EFFCOURSE_VERSION, EFFCOURSE_WHEEL = "0.1.0", None   # the wheel's URL or path, if your instructor set one
    import importlib.util
    if importlib.util.find_spec("effcourse") is None:    # not installed: install the kit's wheel, keep torch
        ...
    # <<< effcourse bootstrap

Where effcourse is importable (the kit's virtual environment, the grader) it does nothing. Otherwise
it takes ``EFFCOURSE_WHEEL`` (a URL or path the kit builder wrote in), else a wheel of that version
beside the notebook (what ``nbgrader fetch_assignment`` brings) or in the kit's ``wheels/``; installs
it with ``pip --no-deps``, then the wheel's own requirements except torch, torchvision and the
instructor's tools (JupyterLab, nbgrader, papermill), so the platform's torch stays as it is.

* ``apply_to_source(text, version)``: the percent-script source (``solutions/<lab>/<lab>.py``), idempotent;
* ``apply_to_notebook(nb, version, wheel)``: the same on a notebook's JSON (``nbformat`` node);
* ``configure(source, version, wheel)`` / ``configure_notebook(nb, ...)``: only the version/wheel line
  of a bootstrap already there (what the kit builder sets).
"""
from __future__ import annotations

import json
import re

BEGIN = "# >>> effcourse bootstrap (hosted notebooks: docs/HOSTED.md)"
END = "# <<< effcourse bootstrap"
#: requirements of the wheel a hosted kernel does not need (torch: the platform's; the rest: the instructor's)
SKIP = ("torch", "torchvision", "jupyterlab", "nbgrader", "papermill")
_CONFIG = re.compile(r'^(?P<indent>[ \t]*)EFFCOURSE_VERSION, EFFCOURSE_WHEEL = .*$', re.M)
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)


def config_line(version: str, wheel: str | None = None) -> str:
    return (f"EFFCOURSE_VERSION, EFFCOURSE_WHEEL = {json.dumps(version)}, {json.dumps(wheel) if wheel else 'None'}"
            "  # wheel: a URL or path your instructor may set")


_TEMPLATE = r"""@BEGIN@
# On Colab or a JupyterHub without effcourse this cell installs it; everywhere else it does nothing.
@CONFIG@
import importlib.util
if importlib.util.find_spec("effcourse") is None:  # not installed: install the kit's wheel, keep torch
    import glob, importlib.metadata, re, subprocess, sys
    pattern = f"effcourse-{EFFCOURSE_VERSION}-*.whl"
    found = glob.glob(pattern) + glob.glob(f"../../wheels/{pattern}") + [None]
    wheel = EFFCOURSE_WHEEL or found[0]
    if wheel is None:
        raise ModuleNotFoundError(f"no effcourse here and no {pattern} beside this notebook: docs/HOSTED.md")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", wheel], check=True)
    importlib.invalidate_caches()
    skip = (@SKIP@)  # the platform's torch stays
    needs = [r for r in importlib.metadata.requires("effcourse") or []
             if "extra ==" not in r and re.match(r"[\w.-]+", r)[0].lower() not in skip]
    subprocess.run(pip + needs, check=True)
@END@
"""


def block(version: str, wheel: str | None = None) -> str:
    """The bootstrap lines (ending with a newline)."""
    return (_TEMPLATE.replace("@BEGIN@", BEGIN).replace("@END@", END).replace("@CONFIG@", config_line(version, wheel))
            .replace("@SKIP@", ", ".join(json.dumps(x) for x in SKIP)))


def _replace(source: str, version: str, wheel: str | None) -> str:
    """``source`` of a bootstrap cell with its block rewritten."""
    return _BLOCK.sub(lambda _: block(version, wheel), source, count=1)


def setup_cell_index(sources: list[str]) -> int:
    """Index of the first code cell that imports effcourse (the set-up cell)."""
    for i, src in enumerate(sources):
        if BEGIN in src or re.search(r"^(import effcourse|from effcourse[\w.]* import)", src, re.M):
            return i
    raise ValueError("no code cell imports effcourse: nothing to bootstrap")


# ---- percent scripts ----------------------------------------------------------------------------------
_CELL = re.compile(r"^# %%.*$", re.M)


def apply_to_source(text: str, version: str, wheel: str | None = None) -> str:
    """A jupytext percent script with the bootstrap cell just before its set-up cell; running it
    twice gives the same text."""
    marks = [m for m in _CELL.finditer(text)]
    bodies = []
    for k, m in enumerate(marks):
        start = m.end() + 1
        stop = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        header = m.group(0)
        bodies.append((header, start, stop))
    code = [(h, a, b) for h, a, b in bodies if "[markdown]" not in h and "[md]" not in h]
    i = setup_cell_index([text[a:b] for _, a, b in code])
    header, a, b = code[i]
    if BEGIN in text[a:b]:
        return text[:a] + _replace(text[a:b], version, wheel) + text[b:]
    at = a - len(header) - 1                      # the set-up cell's "# %%" line
    return text[:at] + "# %%\n" + block(version, wheel) + "\n" + text[at:]


# ---- notebooks ----------------------------------------------------------------------------------------
def apply_to_notebook(nb, version: str, wheel: str | None = None):
    """The same on a notebook node (changed in place and returned)."""
    import nbformat

    cells = [c for c in nb.cells if c.cell_type == "code"]
    cell = cells[setup_cell_index([c.source for c in cells])]
    if BEGIN in cell.source:
        cell.source = _replace(cell.source, version, wheel)
    else:
        nb.cells.insert(nb.cells.index(cell), nbformat.v4.new_code_cell(block(version, wheel).rstrip("\n")))
    return nb


def configure(source: str, version: str, wheel: str | None = None) -> str:
    """Set the version and wheel of a bootstrap already in ``source`` (a cell or a script); source
    without one is returned unchanged."""
    line = config_line(version, wheel)
    return _CONFIG.sub(lambda m: m.group("indent") + line, source)


def configure_notebook(nb, version: str, wheel: str | None = None) -> bool:
    """``configure`` every code cell of a notebook node in place; True when something changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and BEGIN in cell.source:
            new = configure(cell.source, version, wheel)
            changed |= new != cell.source
            cell.source = new
    return changed


def has_bootstrap(text: str) -> bool:
    return BEGIN in text
