"""Instructor plumbing around nbgrader: release, execute solutions, autograde a class.

Nothing here grades by itself: nbgrader does (``generate_assignment``, ``autograde``,
``generate_feedback``), run as subprocesses in a course directory. ``autograde`` builds a fresh
course directory from ``solutions/`` (so hidden tests come back from the source), imports the
submissions, grades them and writes ``grades.csv`` and per-student HTML feedback.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

import nbformat

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def course_root(root: str | Path | None = None) -> Path:
    """The course directory: ``root``, else the checkout this package lives in, else the cwd."""
    for cand in ([Path(root)] if root else []) + [PACKAGE_ROOT, Path.cwd()]:
        if (cand / "nbgrader_config.py").exists() and (cand / "solutions").is_dir():
            return cand.resolve()
    raise FileNotFoundError("no course directory found (a folder with nbgrader_config.py and solutions/); "
                            "run from the course checkout or pass --root")


def labs(root: str | Path | None = None) -> list[str]:
    """Lab ids (nbgrader assignment ids): folders ``solutions/<lab>/`` holding ``<lab>.ipynb``."""
    src = course_root(root) / "solutions"
    return sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").exists())


def check_lab(lab: str, root: str | Path | None = None) -> str:
    known = labs(root)
    if lab not in known:
        raise ValueError(f"unknown lab id {lab!r}; known labs: {', '.join(known) or '(none)'}")
    return lab


def nbgrader(args: list[str], cwd: str | Path, timeout: float | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m nbgrader ARGS`` in ``cwd``; on failure raise with the tail of its log."""
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    # nbgrader runs `alembic` (and kernels) from PATH: put this interpreter's bin folder first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def release(lab_ids: Iterable[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """Regenerate ``labs/<lab>/`` from ``solutions/<lab>/`` with ``nbgrader generate_assignment``."""
    root = course_root(root)
    out = []
    for lab in (list(lab_ids) or labs(root)) if lab_ids is not None else labs(root):
        check_lab(lab, root)
        nbgrader(["generate_assignment", lab, "--force", "--log-level=WARN"], cwd=root)
        out.append(root / "labs" / lab / f"{lab}.ipynb")
    return out


def make_course(dest: str | Path, lab_ids: Iterable[str], root: str | Path | None = None) -> Path:
    """A fresh course directory at ``dest`` with the given labs' sources and a gradebook made by
    ``generate_assignment`` (which is where autograde finds the hidden tests)."""
    root, dest = course_root(root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", dest / "nbgrader_config.py")
    for lab in lab_ids:
        check_lab(lab, root)
        shutil.copytree(root / "solutions" / lab, dest / "solutions" / lab, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nbgrader(["generate_assignment", lab, "--force", "--log-level=WARN"], cwd=dest)
    return dest


def collect(submissions: str | Path, lab: str, dest: str | Path) -> dict[str, str]:
    """Lay out submissions as nbgrader expects (``dest/submitted/<student>/<lab>/<lab>.ipynb``).

    ``submissions`` is a folder of ``<student>/<notebook>.ipynb``, a folder of ``<student>.ipynb``
    files, or a zip of either. Returns ``{student: status}`` where status is ``"ok"`` or a reason.
    """
    submissions, dest = Path(submissions), Path(dest)
    if not submissions.exists():
        raise FileNotFoundError(f"submissions not found: {submissions}")
    tmp = None
    if submissions.is_file():
        if not zipfile.is_zipfile(submissions):
            raise ValueError(f"{submissions} is neither a folder nor a zip file")
        tmp = Path(tempfile.mkdtemp(prefix="effcourse-zip-"))
        with zipfile.ZipFile(submissions) as zf:
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if not str(target).startswith(str(tmp.resolve())):
                    raise ValueError(f"zip member {member!r} escapes the extraction folder; refusing")
            zf.extractall(tmp)
        submissions = tmp
    status: dict[str, str] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or entry.name == "__MACOSX":
            continue
        if entry.is_dir():
            student = entry.name
            nbs = sorted(entry.rglob("*.ipynb"))
            nbs = [p for p in nbs if ".ipynb_checkpoints" not in p.parts]
            preferred = [p for p in nbs if p.name == f"{lab}.ipynb"]
            src = (preferred or nbs or [None])[0]
        elif entry.suffix == ".ipynb":
            student, src = entry.stem, entry
        else:
            continue
        target = dest / "submitted" / student / lab / f"{lab}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        if src is None:
            status[student] = "missing notebook"
            continue
        try:
            nbformat.read(src, as_version=4)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the student's, not ours
            status[student] = f"unreadable notebook ({type(err).__name__})"
            shutil.rmtree(target.parent.parent)
            continue
        shutil.copy2(src, target)
        status[student] = "ok"
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return status


def read_scores(course: str | Path, lab: str) -> dict[str, dict[str, float]]:
    """``{student: {grade_id: score, ...}}`` for every autograded submission in the gradebook."""
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(lab):
            scores = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[grade.name] = grade.score
            out[sub.student.id] = scores
    return out


def max_scores(course: str | Path, lab: str) -> dict[str, tuple[float, bool]]:
    """``{grade_id: (max_points, autograded)}`` from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(lab, lab)
        return {g.name: (g.max_score, g.cell_type == "code") for g in nb.grade_cells}


def autograde(lab: str, submissions: str | Path, out: str | Path | None = None, timeout: float | None = None,
              root: str | Path | None = None) -> Path:
    """Grade every submission of ``lab``; returns the path of ``grades.csv``.

    ``out`` (default ``autograde-<lab>/``) becomes a course directory holding the gradebook, the
    autograded notebooks, ``feedback/`` (HTML without hidden tests) and ``grades.csv``.
    """
    check_lab(lab, root)
    out = Path(out or f"autograde-{lab}").resolve()
    make_course(out, [lab], root)
    status = collect(submissions, lab, out)
    extra = [f"--Execute.timeout={int(timeout)}"] if timeout else []
    if any(s == "ok" for s in status.values()):
        nbgrader(["autograde", lab, "--force", "--log-level=WARN", *extra], cwd=out)
        nbgrader(["generate_feedback", lab, "--force", "--log-level=WARN"], cwd=out)
    scores = read_scores(out, lab)
    maxima = max_scores(out, lab)
    auto_ids = [g for g, (_, auto) in maxima.items() if auto]
    path = out / "grades.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *auto_ids, "autograded_total", "autograded_max", "status"])
        for student in sorted(status):
            s = scores.get(student, {})
            st = status[student] if student in scores or status[student] != "ok" else "not graded"
            pts = [s.get(g) for g in auto_ids]
            total = sum(p or 0 for p in pts)
            w.writerow([student, *["" if p is None else f"{p:g}" for p in pts], f"{total:g}",
                        f"{sum(maxima[g][0] for g in auto_ids):g}", st])
    return path
