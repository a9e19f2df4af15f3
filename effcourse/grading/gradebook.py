"""Reading and writing nbgrader gradebooks: scores, maxima, a tamper fingerprint, the class merge.

``merge`` writes each newly graded student's scores (clamped to ``[0, max]``) into the class
gradebook with nbgrader's API, after all student code has stopped.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from .course import ensure_bin_on_path
from .report import Result


def read_scores(course: str | Path, lab: str) -> dict[str, dict[str, float]]:
    """``{student: {grade_id: score, ...}}`` for every autograded submission in the gradebook."""
    from nbgrader.api import Gradebook

    ensure_bin_on_path()
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

    ensure_bin_on_path()
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(lab, lab)
        return {g.name: (g.max_score, g.cell_type == "code") for g in nb.grade_cells}


# --------------------------------------------------------------------------------------------------
# Grading a class: one nbgrader course directory per student, run under supervision, merged after.
# --------------------------------------------------------------------------------------------------


def fingerprint(db: Path, lab: str) -> tuple:
    from nbgrader.api import Gradebook

    ensure_bin_on_path()
    with Gradebook(f"sqlite:///{db}") as gb:
        nb = gb.find_notebook(lab, lab)
        return (tuple(sorted((g.name, g.max_score, g.cell_type) for g in nb.grade_cells)),
                tuple(sorted((c.name, c.checksum, c.source, c.locked) for c in nb.source_cells)))



def merge(course: Path, lab: str, results: list[Result], maxima: dict[str, tuple[float, bool]]) -> None:
    """Write newly graded results into the course gradebook (nbgrader's API), clamping every
    score to [0, max], and copy autograded notebooks and feedback into the course folders."""
    from nbgrader.api import Gradebook

    ensure_bin_on_path()

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")   # SQLAlchemy autoflush notes from inside nbgrader's API, harmless
        for r in results:
            if r.grades is None:
                try:
                    gb.remove_submission(lab, r.sid)      # a stale grade must not survive a broken resubmission
                except Exception:  # noqa: BLE001 - nothing to remove
                    pass
                continue
            gb.update_or_create_student(r.sid)
            gb.update_or_create_submission(lab, r.sid, **({"timestamp": r.timestamp} if r.timestamp else {}))
            snb = gb.find_submission_notebook(lab, lab, r.sid)
            for g in snb.grades:
                new = r.grades.get(g.name, {"auto_score": 0.0, "needs_manual_grade": False})
                score = new["auto_score"]
                if score is not None:
                    score = min(max(float(score), 0.0), float(maxima[g.name][0]))
                g.auto_score = score
                g.needs_manual_grade = new["needs_manual_grade"]
            for c in snb.comments:
                c.auto_comment = r.comments.get(c.name)
            snb.flagged = r.status != "ok"
        gb.db.commit()
    for r in results:
        dst = course / "autograded" / r.sid / lab
        shutil.rmtree(dst, ignore_errors=True)
        shutil.rmtree(course / "feedback" / r.sid / lab, ignore_errors=True)
        if r.autograded is not None and r.autograded.exists():
            shutil.copytree(r.autograded, dst, symlinks=False)
