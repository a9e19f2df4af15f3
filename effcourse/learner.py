"""Load a learner's functions from their notebook (or a module) into a fresh namespace.

Scripts that run outside the notebook (``torchrun``) and labs that build on an earlier lab's work
need the learner's own code, and the package must never hold an answer. So they read it:

    fns = load("lab7_distributed_training.ipynb", ["scaled_lr", "lr_at"])
    fns["lr_at"](0, 0.1, 5, 100)

From a notebook, ``load`` runs the cells whose nbgrader ``grade_id`` is one of ``names`` (the
exercise cells, under the contract's names) after the notebook's import-only cells, in a namespace
that already has ``math``, ``numpy as np``, ``torch``, ``nn``, ``F`` and ``dist``. From a ``.py`` file
it imports the module. Nothing is cached: edit, save, load again.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["from_module", "from_notebook", "load", "usable"]


def _base_namespace() -> dict[str, Any]:
    return {"__name__": "effcourse_answers", "math": math, "np": np, "torch": torch, "nn": nn, "F": F,
            "dist": dist}


def _is_import_only(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)


def from_notebook(path: str | Path | dict, names: Iterable[str]) -> dict[str, Any]:
    """``{name: object}`` defined by the cells of notebook ``path`` (or its JSON, a dict) whose
    grade_id is in ``names``.

    Raises ``FileNotFoundError`` when the notebook is missing and ``KeyError`` naming the exercise
    cells it lacks or that define nothing under their name.
    """
    if isinstance(path, dict):
        cells, path = path.get("cells", []), Path("notebook.ipynb")
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no notebook at {path}")
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    names = list(names)
    ns = _base_namespace()
    wanted = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in names:
            wanted[gid] = src
        elif _is_import_only(src):
            exec(compile(src, f"{path.name} (imports)", "exec"), ns)  # noqa: S102 - the learner's own notebook
    missing = [n for n in names if n not in wanted]
    if missing:
        raise KeyError(f"{path} has no exercise cell for {missing} (cells are found by their nbgrader grade_id)")
    for name in names:
        exec(compile(wanted[name], f"{path.name} ({name})", "exec"), ns)  # noqa: S102
    undefined = [n for n in names if n not in ns]
    if undefined:
        raise KeyError(f"the exercise cells of {path} do not define {undefined} under those names")
    return {n: ns[n] for n in names}


def from_module(path: str | Path, names: Iterable[str]) -> dict[str, Any]:
    """``{name: object}`` from the Python file ``path`` (imported as a fresh module)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no module at {path}")
    spec = importlib.util.spec_from_file_location(f"effcourse_answers_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = list(names)
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise KeyError(f"{path} does not define {missing}")
    return {n: getattr(mod, n) for n in names}


def load(path: str | Path, names: Iterable[str]) -> dict[str, Any]:
    """From a notebook (``.ipynb``) or a module (``.py``); see the module docstring."""
    if Path(path).suffix == ".ipynb":
        return from_notebook(path, names)
    if Path(path).suffix == ".py":
        return from_module(path, names)
    raise ValueError(f"answers must come from a .ipynb notebook or a .py module, got {path}")


def usable(path: str | Path, names: Iterable[str], probe: Callable[[dict[str, Any]], Any]) -> tuple[dict | None, str]:
    """``(functions, "")`` when ``path`` defines ``names`` and ``probe(functions)`` runs without an
    error; ``(None, why)`` otherwise (missing file or cell, an unimplemented stub, an exception)."""
    try:
        fns = load(path, names)
        probe(fns)
    except NotImplementedError:
        return None, f"{Path(path).name}: not implemented yet (the exercise still raises NotImplementedError)"
    except Exception as err:  # noqa: BLE001 - any failure means: not usable, say why
        return None, f"{Path(path).name}: {type(err).__name__}: {err}"
    return fns, ""
