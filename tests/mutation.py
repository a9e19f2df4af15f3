"""Grade mutants of a lab's exercises with the lab's own grade cells (visible and hidden).

A lab's mutants live in ``tests/mutants/<lab>.py`` as ``EXERCISES``::

    EXERCISES = {
        "temporal_shift": {                                  # the exercise's solution cell (grade_id)
            "grades": ["test_temporal_shift"],               # the grade cells that judge it
            "correct": {"roll": '''def temporal_shift(...): ...''', ...},   # must score full points
            "wrong": {"swapped_directions": '''...''', ...},                # must lose points
        },
    }

A mutant's source replaces the exercise's solution cell. For an exercise that spans several
solution cells, a mutant may be a dict ``{grade_id: source}`` instead of a string.

How a lab is graded here: a worker process runs the notebook's leading context cells (imports,
parameters, setup) once, under the smoke profile (``EFFCOURSE_SMOKE=1``). Then, for every mutant,
it forks a fresh child that runs the rest of the notebook in order — solution cells (one replaced
by the mutant), grade cells and the context cells between them — skipping every cell tagged
``experiment``. Grade cells are judged as autograding judges them (effcourse/judge/): the child
runs only ``answer("<grade id>")`` in the cell's place, and a judge (a thread of the child that
runs no student code) runs the cell's hidden tests against it through remote proxies. A grade cell
scores its points when the judge's verdict is a pass.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = Path(__file__).resolve().parent / "mutants"
EXPERIMENT_TAG = "experiment"


def cells(lab: str) -> list[dict]:
    """The source notebook's code cells that grading needs, in order: ``{"kind", "id", "source",
    "points"}`` with kind ``context`` (set-up, given code), ``solution`` or ``grade``."""
    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or EXPERIMENT_TAG in cell.metadata.get("tags", []):
            continue
        meta = cell.metadata.get("nbgrader", {})
        kind = "grade" if meta.get("grade") else "solution" if meta.get("solution") else "context"
        out.append({"kind": kind, "id": meta.get("grade_id") or f"cell {i}", "source": cell.source,
                    "points": float(meta.get("points", 0) or 0)})
    return out


def load(lab: str) -> dict:
    """``EXERCISES`` of ``tests/mutants/<lab>.py``."""
    path = MUTANTS / f"{lab}.py"
    spec = importlib.util.spec_from_file_location(f"mutants_{lab}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EXERCISES


def _as_patch(exercise: str, mutant) -> dict[str, str]:
    return dict(mutant) if isinstance(mutant, dict) else {exercise: mutant}


_WORKER = r'''
import io, json, os, signal, sys, traceback
spec = json.load(sys.stdin)
os.chdir(spec["cwd"])
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
cfg = Config()
cfg.HistoryManager.enabled = False
shell = InteractiveShell.instance(config=cfg)
import torch
torch.set_num_threads(1)
cells = spec["cells"]
first = next((i for i, c in enumerate(cells) if c["kind"] != "context"), len(cells))

def run(src, grade=False):
    """None if the cell ran cleanly; else why not. A grade cell that writes to stderr (Python's or
    the process's fd 2) fails too: nbgrader scores such a cell 0. Python warnings are ignored in
    grade cells, as the grading kernel ignores them."""
    import tempfile, warnings
    out, err = io.StringIO(), io.StringIO()
    so, se = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    fd_err = tempfile.TemporaryFile() if grade else None
    if fd_err is not None:
        sys.__stderr__.flush()
        saved = os.dup(2)
        os.dup2(fd_err.fileno(), 2)
    try:
        with warnings.catch_warnings():
            if grade:
                warnings.simplefilter("ignore")   # as the grading kernel does (effcourse/grading/kernel.py)
            res = shell.run_cell(src, store_history=False, silent=True)
    finally:
        sys.stdout, sys.stderr = so, se
        if fd_err is not None:
            os.dup2(saved, 2)
            os.close(saved)
    exc = res.error_before_exec or res.error_in_exec
    if exc is not None:
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return msg[-600:]
    if grade:
        fd_err.seek(0)
        text = err.getvalue() + fd_err.read().decode("utf-8", "replace")
        if text.strip():
            return "wrote to stderr (nbgrader scores such a cell 0): " + text.strip()[-400:]
    return None

for c in cells[:first]:
    e = run(c["source"])
    if e:
        print(json.dumps({"setup_error": f"{c['id']}: {e}"}), flush=True)
        sys.exit(0)
import gc
gc.collect()
gc.freeze()          # the parent's objects stay shared with every fork (no copy-on-write by the collector)
from effcourse.judge.server import Judge, judge_code
from effcourse.judge.nbgrader import kernel_stub
codes = {c["id"]: judge_code(c["source"]) for c in cells if c["kind"] == "grade"}
for name, patch, only in spec["mutants"]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        result = {}
        judge = Judge(codes, timeout=spec["timeout"]).start()
        os.environ["EFFCOURSE_JUDGE_SOCKET"] = judge.path
        left = None if only is None else set(only)
        for c in cells[first:]:
            if left is not None and not left:
                break                              # every grade cell this mutant is judged on is done
            if c["kind"] == "grade":
                if left is not None and c["id"] not in left:
                    continue
                if left is not None:
                    left.discard(c["id"])
                run(kernel_stub(c["id"]))
                v = judge.verdicts.get(c["id"])
                result[c["id"]] = "never reached the judge" if v is None else None if v.passed else v.message
                continue
            src = patch.get(c["id"], c["source"]) if c["kind"] == "solution" else c["source"]
            run(src)
        judge.close()
        with os.fdopen(w, "w") as fh:
            json.dump(result, fh)
        os._exit(0)
    os.close(w)
    import select, time
    deadline = time.monotonic() + spec["timeout"]
    chunks = []
    with os.fdopen(r) as fh:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fh], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                chunks = None
                break
            data = fh.read()
            chunks.append(data)
            break
    os.waitpid(pid, 0)
    if chunks is None or not "".join(chunks):
        print(json.dumps({"mutant": name, "result": None, "why": "timed out or crashed"}), flush=True)
    else:
        print(json.dumps({"mutant": name, "result": json.loads("".join(chunks))}), flush=True)
'''


def grade(lab: str, mutants: list[tuple], timeout: float = 300) -> dict[str, dict]:
    """Grade ``mutants`` (``[(name, {solution grade_id: source})]``, or ``(name, patch, only)`` to
    judge only the grade cells in ``only`` and stop after the last of them; ``{}`` is the solution).

    Returns ``{name: {grade_id: None if it passed else the error}}``; a mutant that timed out or
    crashed its process maps to ``None``.
    """
    mutants = [(m[0], m[1], m[2] if len(m) > 2 else None) for m in mutants]
    spec = {"cwd": str(ROOT / "solutions" / lab), "cells": cells(lab), "mutants": mutants, "timeout": timeout}
    env = {**os.environ, "EFFCOURSE_SMOKE": "1", "MPLBACKEND": "Agg", "EFFCOURSE_THREADS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("NBGRADER_EXECUTION", None)
    proc = subprocess.run([sys.executable, "-c", _WORKER], input=json.dumps(spec), text=True, capture_output=True,
                          env=env, timeout=timeout * (len(mutants) + 2))
    results: dict[str, dict] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if "setup_error" in msg:
            raise RuntimeError(f"{lab}: a set-up cell failed under the smoke profile: {msg['setup_error']}")
        results[msg["mutant"]] = msg["result"]
    missing = [m[0] for m in mutants if m[0] not in results]
    if missing:
        raise RuntimeError(f"{lab}: the mutant worker stopped before {missing[:3]}:\n{proc.stderr[-2000:]}")
    return results


def judge(lab: str, timeout: float = 300) -> tuple[list[str], dict]:
    """Grade the solution and every mutant of ``lab``; returns ``(problems, counts)``.

    Problems: the solution or a correct mutant that loses any point (on any grade cell), a wrong
    mutant that keeps every point of its exercise's grade cells. Counts: ``{exercise: (correct, wrong)}``.
    A wrong mutant is judged on its own exercise's grade cells only (the verdict asked of it), and
    its run stops after the last of them: the lab's later cells cost nothing for it.
    """
    exercises = load(lab)
    points = {c["id"]: c["points"] for c in cells(lab) if c["kind"] == "grade"}
    todo: list[tuple[str, dict]] = [("solution", {})]
    meta = {"solution": (None, "correct")}
    for ex, spec in exercises.items():
        for verdict in ("correct", "wrong"):
            for name, src in spec.get(verdict, {}).items():
                key = f"{ex}/{verdict}/{name}"
                todo.append((key, _as_patch(ex, src), spec["grades"] if verdict == "wrong" else None))
                meta[key] = (ex, verdict)
    results = grade(lab, todo, timeout)
    problems = []
    for key, res in results.items():
        ex, verdict = meta[key]
        if res is None:
            if verdict == "correct":
                problems.append(f"{key}: timed out or crashed")
            continue
        if verdict == "correct":
            lost = {g: e for g, e in res.items() if e is not None}
            for g, e in lost.items():
                problems.append(f"{key}: correct but lost {points[g]:g} points on {g}: "
                                + textwrap.shorten(e, 400))
        else:
            own = exercises[ex]["grades"]
            unknown = [g for g in own if g not in points]
            if unknown:
                problems.append(f"{ex}: unknown grade cells {unknown}")
                continue
            if all(res.get(g) is None for g in own):
                problems.append(f"{key}: wrong but kept every point of {', '.join(own)}")
    counts = {ex: (len(s.get("correct", {})), len(s.get("wrong", {}))) for ex, s in exercises.items()}
    return problems, counts


def available() -> list[str]:
    return sorted(p.stem for p in MUTANTS.glob("lab*.py"))
