"""Authoring: the solution notebooks are written as jupytext percent scripts.

``solutions/<lab>/<lab>.py`` (percent format, nbgrader metadata in the ``# %%`` headers) and
``solutions/<lab>/<lab>.ipynb`` are a pair; the ``.ipynb`` is what nbgrader reads. ``build`` writes
the notebook from the script (no outputs, deterministic cell ids); ``pair_differences`` is what the
test uses to keep the pair identical.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_DROP_META = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "execution")


def _cell_id(i: int, cell) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    base = gid or f"cell-{i:03d}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", base)[:64]


def script_to_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read a percent script into a clean notebook (no outputs, stable ids, python3 kernel)."""
    import jupytext

    nb = jupytext.read(str(path), fmt="py:percent")
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    seen = set()
    for i, cell in enumerate(nb.cells):
        for key in _DROP_META:
            cell.metadata.pop(key, None)
        cid = _cell_id(i, cell)
        if cid in seen:
            raise ValueError(f"{path}: two cells share the grade_id / id {cid!r}")
        seen.add(cid)
        cell["id"] = cid
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def build(path: str | Path) -> Path:
    """Write ``<lab>.ipynb`` next to the percent script ``<lab>.py``; returns the notebook path."""
    path = Path(path)
    out = path.with_suffix(".ipynb")
    nb = script_to_notebook(path)
    nbformat.validate(nb)
    out.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return out


def _key(cell) -> tuple:
    meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in _DROP_META}
    return cell["cell_type"], cell["source"].rstrip(), repr(sorted(meta.items()))


def pair_differences(script: str | Path) -> list[str]:
    """Differences between a percent script and its ``.ipynb`` twin (empty when identical)."""
    script = Path(script)
    nb_path = script.with_suffix(".ipynb")
    if not nb_path.exists():
        return [f"{nb_path} is missing: run `effcourse build`"]
    a = script_to_notebook(script).cells
    b = nbformat.read(nb_path, as_version=4).cells
    diffs = []
    if len(a) != len(b):
        diffs.append(f"{script.name} has {len(a)} cells, {nb_path.name} has {len(b)}")
    for i, (ca, cb) in enumerate(zip(a, b)):
        if _key(ca) != _key(cb):
            diffs.append(f"cell {i} ({ca.get('id')}) differs between {script.name} and {nb_path.name}")
    return diffs
