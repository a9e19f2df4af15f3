"""nbgrader's own hand-out path, end to end, on a local exchange directory (no JupyterHub).

Instructor: ``nbgrader release_assignment``. Two students (``alice``: every exercise solved; ``bob``:
only the first one) ``fetch_assignment`` and ``submit`` from home folders of their own. Instructor:
``collect``, ``effcourse autograde`` on the collected submissions (``effcourse.grading.autograde``),
``release_feedback`` from the autograde course folder. Students: ``fetch_feedback``; each gets their
own feedback HTML, with their own scores and no hidden test code.

Both students are this test's one OS account: nbgrader 0.9 names a submitter after the account
(``pwd``, not ``$USER``), so ``submit`` and ``fetch_feedback`` get ``--CourseDirectory.student_id``
(nbgrader's explicit-id option; on a JupyterHub each student's account gives it). Every call runs
with a home folder of its own (``HOME``, ``JUPYTER_*``: nbgrader keeps each student's submission
cache there) and gets ``--Exchange.root`` (a temporary folder) and ``--CourseDirectory.course_id``.
The notebooks run in the smoke profile (nbgrader sets ``NBGRADER_EXECUTION``).
``EFFCOURSE_EXCHANGE_LAB`` picks the lab (default: the cheapest to grade).
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from effcourse import grading
from harness import release_path, solution_path, strip_solution_markers

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("exchange")]

ROOT = Path(__file__).resolve().parent.parent
LAB = os.environ.get("EFFCOURSE_EXCHANGE_LAB", "lab1_temporal_shift")
COURSE_ID = "effcourse-exchange-test"
STUDENTS = ("alice", "bob")


def nbgrader(args: list[str], cwd: Path, user: str, exchange: Path, home: Path) -> str:
    """Run ``nbgrader ARGS`` as ``user`` (by environment) with the test's exchange and course id."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION" and not k.startswith("JUPYTER")}
    env.update(USER=user, LOGNAME=user, USERNAME=user, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local" / "share" / "jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / ".local" / "share" / "jupyter" / "runtime"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--Exchange.root={exchange}",
           f"--CourseDirectory.course_id={COURSE_ID}", "--log-level=INFO"]
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} as {user} failed (exit {proc.returncode}):\n{log[-3000:]}"
    return log


def _first_exercise(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """``(grade_id, source)`` of the solution's first code exercise (markers stripped)."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            return meta["grade_id"], cell.source
    raise AssertionError(f"{LAB} has no code exercise")


def _with_cell(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
            return nb
    raise KeyError(grade_id)


def test_release_fetch_submit_collect_autograde_feedback(tmp_path):
    t0 = time.monotonic()
    exchange, course = tmp_path / "exchange", tmp_path / "course"
    exchange.mkdir()
    exchange.chmod(0o777)                               # nbgrader wants an exchange everyone may write to
    homes = {who: tmp_path / "home" / who for who in ("instructor", *STUDENTS)}
    for home in homes.values():
        home.mkdir(parents=True)
    ins = dict(user="instructor", exchange=exchange, home=homes["instructor"])

    # instructor: a course folder with the lab's source, release and gradebook; release it
    grading.make_course(course, [LAB], ROOT)
    assert (course / "labs" / LAB / f"{LAB}.ipynb").exists()
    nbgrader(["release_assignment", LAB], course, **ins)
    assert (exchange / COURSE_ID / "outbound" / LAB / f"{LAB}.ipynb").exists()

    # students: fetch, work, submit
    solution = strip_solution_markers(nbformat.read(solution_path(LAB), as_version=4))
    first, first_src = _first_exercise(solution)
    for who in STUDENTS:
        home = homes[who]
        nbgrader(["fetch_assignment", LAB], home, who, exchange, home)
        mine = home / LAB / f"{LAB}.ipynb"
        release = nbformat.read(mine, as_version=4)
        assert release.cells == nbformat.read(release_path(LAB), as_version=4).cells, "fetched != labs/ release"
        work = solution if who == "alice" else _with_cell(release, first, first_src)
        nbformat.write(work, mine)
        nbgrader(["submit", LAB, f"--CourseDirectory.student_id={who}"], home, who, exchange, home)

    # instructor: collect, then grade what was collected with effcourse
    nbgrader(["collect", LAB], course, **ins)
    collected = course / "submitted"
    assert sorted(p.name for p in collected.iterdir()) == sorted(STUDENTS)
    for who in STUDENTS:
        assert (collected / who / LAB / f"{LAB}.ipynb").exists()
        assert (collected / who / LAB / "submission_secret.txt").exists()
    graded = tmp_path / "graded"
    t_grade = time.monotonic()
    run = grading.autograde(LAB, collected, out=graded, root=ROOT)
    t_grade = time.monotonic() - t_grade
    with open(os.fspath(run), encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == sorted(STUDENTS), rows
    maxima = grading.max_scores(graded, LAB)
    auto = {g: pts for g, (pts, is_auto) in maxima.items() if is_auto}
    test_first = f"test_{first}"
    assert test_first in auto, f"no grade cell {test_first} for the exercise {first}"
    for who in STUDENTS:
        assert rows[who]["status"] == "ok", f"{who}: {rows[who]['status']} {rows[who]['notes']}"
    assert float(rows["alice"]["autograded_total"]) == sum(auto.values())
    assert float(rows["bob"][test_first]) == auto[test_first]
    assert float(rows["bob"]["autograded_total"]) < sum(auto.values())

    # instructor: release feedback from the autograde course folder; autograde carried each
    # submission's timestamp.txt and submission_secret.txt (how fetch_feedback finds it) along
    for who in STUDENTS:
        fb = graded / "feedback" / who / LAB
        assert (fb / f"{LAB}.html").exists(), f"no feedback for {who}"
        for name in ("timestamp.txt", "submission_secret.txt"):
            assert (fb / name).exists(), f"autograde did not carry {name} to {who}'s feedback"
    nbgrader(["release_feedback", LAB], graded, **ins)

    # students: fetch their own feedback
    hidden = _hidden_lines()
    for who in STUDENTS:
        home = homes[who]
        nbgrader(["fetch_feedback", LAB, f"--CourseDirectory.student_id={who}"], home, who, exchange, home)
        got = sorted((home / LAB / "feedback").glob(f"*/{LAB}.html"))
        assert len(got) == 1, f"{who} fetched {got}"
        html = got[0].read_text(encoding="utf-8")
        text = _html_text(html)
        total = float(rows[who]["autograded_total"])
        assert re.search(rf"\b{total:g}(\.0+)?\s*/\s*\d", html) or f"{total:g}" in html, \
            f"{who}'s score not in feedback"
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{who}'s feedback shows hidden test code: {leaked[:3]}"
    print(f"\nexchange round trip ({LAB}, 2 students): {time.monotonic() - t0:.0f} s wall, "
          f"of which autograde {t_grade:.0f} s")


def _html_text(html: str) -> str:
    """The text of an HTML page (tags dropped, entities decoded): highlighted code reads as code."""
    import html as _html

    return _html.unescape(re.sub(r"<[^>]+>", "", html))


def _hidden_lines() -> list[str]:
    """Distinctive lines of the lab's hidden tests (long enough not to occur by chance, and not also
    public: in the release or in the ``effcourse`` package a student installs, whose frames a
    traceback may quote, nor in a solution block, which a student who solved it submits as their
    own). Feedback must not show them: not in a cell's source, not in a traceback."""
    release = nbformat.read(release_path(LAB), as_version=4)
    solution = nbformat.read(solution_path(LAB), as_version=4)
    visible = {ln.strip() for cell in release.cells for ln in cell.source.splitlines()}
    visible |= {ln.strip() for f in (ROOT / "effcourse").rglob("*.py")
                for ln in f.read_text(encoding="utf-8").splitlines()}
    visible |= {ln.strip() for cell in solution.cells
                for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S)
                for ln in block.splitlines()}
    out = []
    for cell in solution.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
            out += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 30 and ln.strip() not in visible]
    assert out, f"{LAB} has no hidden tests to look for"
    return out
