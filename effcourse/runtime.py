"""Notebook runtime helpers: device choice, seeding, run profiles and recorded results.

This is the lowest layer of the package; every other module may import it.

Three run profiles size every experiment:

* ``"full"``  — the notebook's default: reproduces the claim clearly (≤ 15 min CPU, ≤ 5 min GPU).
* ``"quick"`` — ``QUICK = True`` (papermill in CI): ≤ 90 s on 2 cores, claims still hold.
* ``"smoke"`` — grading and tests: under nbgrader (``NBGRADER_EXECUTION``, set by autograde and
  validate) or ``EFFCOURSE_SMOKE=1``. Experiments shrink to the smallest size that still runs
  every line; exercise and grade cells run unchanged. Claims are never asserted on a smoke run.

A notebook sizes its experiments with ``pick(full=..., quick=..., smoke=...)`` after ``setup``.

``record(name, value)`` publishes a result that tests read back from an executed
notebook. The learner sees a short line (numbers to 4 significant digits; rows or records
as a few aligned rows, never a repr); the exact value is stored in the output's metadata
under the key ``effcourse_record`` (no files are written), so
``effcourse.runtime.read_records(notebook)`` recovers every recorded value from a
papermill or nbgrader output notebook.
"""
from __future__ import annotations

import json
import math
import os
import random
from typing import Any

import numpy as np
import torch

RECORD_KEY = "effcourse_record"


PROFILES = ("full", "quick", "smoke")


def is_smoke() -> bool:
    """The smoke profile: nbgrader executes the notebook, or ``EFFCOURSE_SMOKE=1`` is set."""
    return "NBGRADER_EXECUTION" in os.environ or os.environ.get("EFFCOURSE_SMOKE") == "1"


def is_quick(quick: bool = False) -> bool:
    """QUICK is on when the notebook asks for it, or under the smoke profile (nbgrader, tests)."""
    return bool(quick) or is_smoke() or os.environ.get("EFFCOURSE_QUICK") == "1"


def run_profile(quick: bool = False) -> str:
    """``"smoke"``, ``"quick"`` or ``"full"`` for a notebook whose parameters cell says ``quick``."""
    return "smoke" if is_smoke() else "quick" if is_quick(quick) else "full"


_PROFILE: dict[str, str] = {}


def profile() -> str:
    """The profile chosen by the last ``setup`` call (``run_profile(False)`` before any)."""
    return _PROFILE.get("name") or run_profile(False)


_UNSET = object()


def pick(full: Any, quick: Any = _UNSET, smoke: Any = _UNSET) -> Any:
    """The value for the active profile: ``STEPS = pick(full=500, quick=120, smoke=3)``.

    ``quick`` defaults to ``full``; ``smoke`` defaults to ``quick``.
    """
    quick = full if quick is _UNSET else quick
    smoke = quick if smoke is _UNSET else smoke
    return {"full": full, "quick": quick, "smoke": smoke}[profile()]


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; any other value is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but this machine has no CUDA GPU; use DEVICE='auto'")
    return dev


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a CPU ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup(quick: bool = False, seed: int = 0, device: str = "auto",
          threads: int | None = None) -> tuple[bool, torch.device]:
    """One call at the top of every lab: resolve the profile and DEVICE, seed everything, set CPU threads.

    On CPU a lab uses ``threads`` threads (default 1: on a shared 2-core machine one thread timed
    far steadier than two), at most the machine's cores; ``EFFCOURSE_THREADS`` overrides it.
    Returns ``(quick, device)``.
    """
    _PROFILE["name"] = run_profile(quick)
    quick = is_quick(quick)
    dev = get_device(device)
    if "EFFCOURSE_THREADS" in os.environ:
        threads = int(os.environ["EFFCOURSE_THREADS"])
    else:
        threads = min(threads or 1, os.cpu_count() or 1)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, threads))
    seed_everything(seed)
    mode = {"smoke": "smoke (grading)", "quick": "QUICK", "full": "full"}[_PROFILE["name"]]
    print(f"effcourse: {mode} mode on {dev} (torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s))")
    return quick, dev


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_RECORDED: dict[str, Any] = {}

# what the learner sees of a recorded value: numbers to 4 significant digits, a long list cut in the
# middle, a table of at most _ROWS rows (the exact value stays in the output's metadata)
_ROWS, _WIDTH, _LIST = 8, 100, 8


def _num(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.0f}" if 1e4 <= abs(x) < 1e15 else f"{x:.4g}"
    return str(x)


def _scalar(x: Any) -> bool:
    return x is None or isinstance(x, (bool, int, float, str))


def _inline(x: Any) -> str:
    """One value on one line: numbers formatted, a long list as its ends and its length."""
    if isinstance(x, list):
        items = [_inline(v) for v in x]
        if len(items) > _LIST:
            items = [*items[:3], "…", *items[-2:]]
            return f"[{', '.join(items)}] ({len(x)} values)"
        return f"[{', '.join(items)}]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in x.items()) + "}"
    return _num(x)


def _numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def _table(header: list[str] | None, rows: list[list[str]]) -> list[str]:
    """The first ``_ROWS`` rows as aligned text columns (numbers right-aligned), each line cut at
    ``_WIDTH`` characters."""
    more = len(rows) - _ROWS
    rows = rows[:_ROWS]
    grid = ([header] if header else []) + rows
    ncol = max(map(len, grid), default=0)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in grid) for i in range(ncol)]
    right = [all(_numeric(r[i]) for r in rows if i < len(r) and r[i]) for i in range(ncol)]

    def line(r: list[str]) -> str:
        cells = [c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        text = "  " + "  ".join(cells).rstrip()
        return text if len(text) <= _WIDTH else text[:_WIDTH - 1] + "…"

    out = [line(r) for r in grid]
    if header:
        out.insert(1, "  " + "  ".join("-" * w for w in widths)[:_WIDTH - 2])
    if more > 0:
        out.append(f"  … {more} more row{'s' if more > 1 else ''}")
    return out


def _values(data: Any) -> list[Any]:
    return list(data.values()) if isinstance(data, dict) else list(data) if isinstance(data, list) else []


def show_record(name: str, data: Any) -> str:
    """The text ``record`` shows for ``data`` (already JSON-able): a line, or a line and a short table."""
    one = f"recorded {name} = {_inline(data)}"
    if _scalar(data) or (len(one) <= _WIDTH and not any(isinstance(v, (list, dict)) for v in _values(data))):
        return one if len(one) <= _WIDTH + 20 else one[:_WIDTH + 19] + "…"
    rows = list(data.items() if isinstance(data, dict) else enumerate(data))
    if all(isinstance(v, dict) and all(_scalar(x) for x in v.values()) for _, v in rows):   # records
        cols = list(dict.fromkeys(k for _, v in rows for k in v))
        lead = [] if isinstance(data, list) else [""]
        body = [([str(k)] if lead else []) + [_num(v.get(c, "")) for c in cols] for k, v in rows]
        table = _table(lead + cols, body)
    elif isinstance(data, list) and all(isinstance(v, list) and all(map(_scalar, v)) for v in data):  # rows
        table = _table(None, [[_num(x) for x in v] for v in data])
    else:                                                                   # name -> value
        table = _table(None, [[str(k), _inline(v)] for k, v in rows])
    n = len(rows)
    size = f"{n} row{'s' * (n != 1)}" if isinstance(data, list) else f"{n} entr{'ies' if n != 1 else 'y'}"
    return "\n".join([f"recorded {name} ({size}):", *table])



def record(name: str, value: Any) -> Any:
    """Publish a result for the tests (and show it). Returns ``value`` unchanged."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"record name must be an identifier-like string, got {name!r}")
    data = _jsonable(value)
    json.dumps(data)  # fail here, clearly, if the value cannot be stored
    _RECORDED[name] = data
    text = show_record(name, data)
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display({"text/plain": text}, raw=True, metadata={RECORD_KEY: {name: data}})
            return value
    except ImportError:  # pragma: no cover - IPython ships with the lab environment
        pass
    print(text)
    return value


def recorded() -> dict[str, Any]:
    """Everything recorded in this process so far (a copy)."""
    return dict(_RECORDED)


def read_records(notebook: str | os.PathLike | dict) -> dict[str, Any]:
    """Read the values recorded by ``record`` out of an executed notebook (path or nbformat dict)."""
    if not isinstance(notebook, dict):
        with open(notebook, encoding="utf-8") as fh:
            notebook = json.load(fh)
    out: dict[str, Any] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            meta = output.get("metadata") or {}
            if RECORD_KEY in meta:
                out.update(meta[RECORD_KEY])
    return out
