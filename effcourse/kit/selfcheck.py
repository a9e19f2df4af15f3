"""``make check`` in a student kit: run every lab's visible self-checks against the current answers.

Each notebook is executed in a fresh kernel, in memory (the student's file is not touched), in
the smoke profile (``EFFCOURSE_SMOKE=1``), skipping the cells tagged ``experiment``: the set-up
cells, the student's exercise cells and the grade cells with their visible checks run in order,
as the grader runs them (the hidden tests are not in a released notebook, so passing here is
necessary, not sufficient). Every grade cell is reported: passes, not done yet (the exercise
still raises ``NotImplementedError``) or fails, with the first line of what went wrong.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXPERIMENT_TAG = "experiment"


def find_notebooks(targets: list[str], labs_dir: str | Path = "labs") -> list[Path]:
    """Notebooks to check: ``targets`` may be notebooks, folders or lab names (``labs/<name>/``)."""
    labs_dir = Path(labs_dir)
    found: list[Path] = []
    for t in targets or [str(labs_dir)]:
        p = Path(t)
        if not p.exists() and (labs_dir / t).is_dir():
            p = labs_dir / t
        if p.is_file() and p.suffix == ".ipynb":
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        else:
            raise FileNotFoundError(f"no notebook or lab folder {t!r} (labs: {labs_dir.resolve()})")
    return found


def _error(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = [ln for ln in str(out.get("evalue", "")).strip().splitlines() if ln.strip()]
            return out.get("ename", "Error"), (lines[0] if lines else "")
    return None


def _ipc_config(sockets: str):
    """Kernel-manager settings for local IPC sockets (files under ``sockets``, an absolute path: the
    kernel runs in the notebook's folder) where the platform has them: the check never leaves this
    machine, and ipykernel has no plain-TCP warning to print into the student's terminal. Empty
    (TCP on localhost, nbclient's default) where zmq has no IPC."""
    import zmq
    from traitlets.config import Config

    if not zmq.has("ipc"):
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})


def check_notebook(path: str | Path, timeout: int = 600) -> list[dict]:
    """Run one notebook's non-experiment code cells; ``[{grade_id, points, status, message}]`` for
    every autograded cell, status ``pass``, ``todo`` or ``fail``. A set-up cell that fails is
    reported too (grade_id ``cell N``, status ``fail``)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    keep = [c for c in nb.cells if c.cell_type == "code" and EXPERIMENT_TAG not in c.metadata.get("tags", [])]
    index = {id(c): i for i, c in enumerate(nb.cells)}
    run = nbformat.v4.new_notebook(metadata=nb.metadata)
    run.cells = [nbformat.from_dict(dict(c, outputs=[], execution_count=None)) for c in keep]
    old = {k: os.environ.get(k) for k in ("EFFCOURSE_SMOKE", "MPLBACKEND")}
    os.environ.update(EFFCOURSE_SMOKE="1", MPLBACKEND="Agg")
    try:
        kernel = nb.metadata.get("kernelspec", {}).get("name") or "python3"
        with tempfile.TemporaryDirectory(prefix="effcourse-check-") as sockets:
            NotebookClient(run, config=_ipc_config(sockets), timeout=timeout, kernel_name=kernel, allow_errors=True,
                           resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    rows = []
    for orig, cell in zip(keep, run.cells):
        meta = cell.metadata.get("nbgrader", {})
        err = _error(cell)
        if meta.get("grade") and cell.cell_type == "code":
            status = "pass" if err is None else "todo" if err[0] == "NotImplementedError" else "fail"
            rows.append({"grade_id": meta.get("grade_id", "?"), "points": meta.get("points", 0), "status": status,
                         "message": "" if err is None else f"{err[0]}: {err[1]}".rstrip(": ")})
        elif err is not None and not meta.get("solution"):
            rows.append({"grade_id": f"cell {index[id(orig)]}", "points": 0, "status": "fail",
                         "message": f"{err[0]}: {err[1]} (a set-up cell failed: later checks may fail because of it)"})
    return rows


MARK = {"pass": "✔", "todo": "·", "fail": "✘"}
WORD = {"pass": "passes", "todo": "not done yet", "fail": "fails"}


def report(path: Path, rows: list[dict]) -> str:
    width = max([len(r["grade_id"]) for r in rows] + [10])
    lines = [f"{path.stem}  ({path})"]
    for r in rows:
        pts = f"{r['points']:g} pts" if r["points"] else ""
        msg = f"  {r['message'][:160]}" if r["status"] == "fail" else ""
        lines.append(f"  {MARK[r['status']]} {r['grade_id']:<{width}} {pts:>7}  {WORD[r['status']]}{msg}")
    graded = [r for r in rows if not r["grade_id"].startswith("cell ")]
    ok = sum(r["status"] == "pass" for r in graded)
    lines.append(f"  {ok} of {len(graded)} visible checks pass")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effcourse.kit check", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="notebooks, folders or lab names (default: every lab in labs/)")
    parser.add_argument("--labs-dir", default="labs", help="where the lab folders are (default labs/)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    try:
        notebooks = find_notebooks(args.targets, args.labs_dir)
    except FileNotFoundError as err:
        print(f"check: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print("check: no notebooks found", file=sys.stderr)
        return 2
    print("Visible self-checks only: the hidden tests run when your notebook is graded.\n", flush=True)
    all_pass = True
    for nb in notebooks:
        rows = check_notebook(nb, args.timeout)
        print(report(nb, rows) + "\n", flush=True)
        all_pass &= all(r["status"] == "pass" for r in rows)
    return 0 if all_pass else 1
