"""Shared machinery for the notebook tests of every lab.

* ``executed(lab)``: the solution notebook executed by papermill with ``QUICK=True`` (once per test
  session and worker; all of a lab's notebook tests share an xdist group, so they share this run).
* ``records(lab)``: the values that notebook published with ``effcourse.record``.
* ``roundtrip(lab, wrong)``: one nbgrader autograde of three submissions (the solution, the untouched
  release, the solution with exactly one exercise replaced by ``wrong``), returning their scores.
  Autograding runs the notebooks in the smoke profile (nbgrader sets ``NBGRADER_EXECUTION``), in the
  sandbox, under the tamper guard — exactly as for a class.
"""
from __future__ import annotations

import csv
import functools
import re
import tempfile
from pathlib import Path

import nbformat
import papermill as pm

from effcourse import grading
from effcourse.runtime import read_records
from effcourse.training import no_live_kernels

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_executed" / "tests"
CELL_TIMEOUT = 600


def solution_path(lab: str) -> Path:
    return ROOT / "solutions" / lab / f"{lab}.ipynb"


def release_path(lab: str) -> Path:
    return ROOT / "labs" / lab / f"{lab}.ipynb"


@functools.lru_cache(maxsize=None)
def executed(lab: str) -> Path:
    """Path of the papermill-executed QUICK solution notebook (raises if any cell fails)."""
    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / f"{lab}.ipynb"
    src = solution_path(lab)
    with no_live_kernels():
        pm.execute_notebook(str(src), str(dst), parameters={"QUICK": True}, kernel_name="python3",
                            cwd=str(src.parent), execution_timeout=CELL_TIMEOUT, progress_bar=False)
    return dst


def records(lab: str) -> dict:
    return read_records(executed(lab))


def replace_solution(nb: nbformat.NotebookNode, cell_id: str, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cell ``cell_id`` (its nbgrader grade_id) has ``source``."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == cell_id:
            cell.source = source
            return nb
    raise KeyError(f"no cell with grade_id {cell_id!r}")


def strip_solution_markers(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a student who solved everything submits: the solution with the markers and hidden tests gone."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        kept, hidden = [], False                  # line by line, as nbgrader's ClearHiddenTests removes them
        for line in cell.source.split("\n"):
            if "### BEGIN HIDDEN TESTS" in line:
                hidden = True
            elif "### END HIDDEN TESTS" in line:
                hidden = False
            elif not hidden:
                kept.append(line)
        cell.source = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", "\n".join(kept), flags=re.M)
    return nb


@functools.lru_cache(maxsize=None)
def _roundtrip(lab: str, wrong_cell: str, wrong_source: str) -> tuple[dict, dict]:
    tmp = Path(tempfile.mkdtemp(prefix=f"roundtrip-{lab}-"))
    subs = tmp / "submissions"
    solution = strip_solution_markers(nbformat.read(solution_path(lab), as_version=4))
    release = nbformat.read(release_path(lab), as_version=4)
    wrong = replace_solution(solution, wrong_cell, wrong_source)
    for student, nb in (("solution", solution), ("release", release), ("one_wrong", wrong)):
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{lab}.ipynb")
    run = grading.autograde(lab, subs, out=tmp / "course", root=ROOT)
    return grading.read_scores(tmp / "course", lab), grading.max_scores(tmp / "course", lab), run.csv


def roundtrip(lab: str, wrong_cell: str, wrong_source: str):
    """``(scores, maxima, csv_path)``: scores is ``{student: {grade_id: score}}`` for the students
    ``solution``, ``release`` and ``one_wrong``; maxima is ``{grade_id: (points, autograded)}``."""
    return _roundtrip(lab, wrong_cell, wrong_source)


def check_roundtrip(lab: str, wrong_cell: str, wrong_source: str, loses: set[str]) -> None:
    """Solution: full marks on every autograded cell. Release: 0 on every autograded test cell.
    One wrong exercise: loses exactly the grade cells in ``loses``, keeps all the others."""
    scores, maxima, csv_path = roundtrip(lab, wrong_cell, wrong_source)
    with open(csv_path, encoding="utf-8") as fh:
        status = {r["student"]: (r["status"], r["notes"]) for r in csv.DictReader(fh)}
    # an honest notebook is neither flagged nor "tampered" (the guard sees nothing in a real lab)
    assert status["solution"][0] == "ok", f"the solution was graded {status['solution']}"
    auto = {g: pts for g, (pts, is_auto) in maxima.items() if is_auto}
    assert auto, f"{lab} has no autograded cells"
    assert set(loses) <= set(auto), f"unknown grade ids in loses: {set(loses) - set(auto)}"
    for g, pts in auto.items():
        assert scores["solution"][g] == pts, f"solution scored {scores['solution'][g]} of {pts} on {g}"
        assert scores["release"][g] == 0, f"untouched release scored {scores['release'][g]} on {g}"
        if g in loses:
            assert scores["one_wrong"][g] == 0, f"wrong {wrong_cell} still scored {scores['one_wrong'][g]} on {g}"
        else:
            assert scores["one_wrong"][g] == pts, f"wrong {wrong_cell} lost points on unrelated cell {g}"
