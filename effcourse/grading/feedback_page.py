"""The feedback page a student reads: each exercise named, honest totals, the grader's message.

nbgrader's page lists every grade as "Test cell (Score: 0.0 / 22.0)", counts written answers that
nobody has graded yet as zeros in its total, and prints a check's message as one unwrapped line.
``GetGradesAndStatus`` (nbgrader's ``GetGrades``, which also notes which cells still wait for a
grader) and ``SummarizeGrades`` (after it in ``c.GenerateFeedback.preprocessors``) collect, per
graded cell, a label (the exercise it tests, or the question a written answer answers), its score
or "not graded yet", and the first line of the grader's message, into
``resources["effcourse_feedback"]``; the ``feedback`` template in ``TEMPLATES`` (listed first in
``c.HTMLExporter.extra_template_basedirs``, so formgrader's button uses it too) prints them as a
table above the notebook and heads each graded cell with its label.
"""
from __future__ import annotations

import re
from pathlib import Path

from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor

#: the template folder; its ``feedback/`` template replaces nbgrader's of the same name
TEMPLATES = Path(__file__).with_name("templates")


def template_dirs() -> list[str]:
    """``c.HTMLExporter.extra_template_basedirs`` for the course: effcourse's templates first (its
    ``feedback``), then nbgrader's own (formgrader's ``formgrade`` view of a submission needs them)."""
    import nbgrader

    return [str(TEMPLATES), str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates")]
_MESSAGE_CHARS = 400


def _question(source: str) -> str:
    """The first sentence of a question's markdown, without markup, at most 90 characters."""
    text = re.sub(r"[#*_`>]|\$[^$]*\$", "", source or "").strip()
    text = re.sub(r"\s+", " ", text)
    first = re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0]
    return first if len(first) <= 90 else first[:87] + "…"


def label(cell, previous_markdown: str = "") -> str:
    """A reader's name for a graded cell: ``temporal_shift`` for ``test_temporal_shift``,
    ``temporal_shift: bad input`` for ``test_temporal_shift_errors``, ``Written answer Q1: tsn
    ceiling`` for ``q1_tsn_ceiling``, else the first sentence of the markdown above an answer."""
    meta = cell.metadata.get("nbgrader", {})
    gid = str(meta.get("grade_id", ""))
    if cell.cell_type == "markdown" or meta.get("solution"):
        m = re.fullmatch(r"[qQ](\d+)(?:_(.+))?", gid)
        if m:                                           # the course's ids: q1_tsn_ceiling
            return f"Written answer Q{m.group(1)}" + (f": {m.group(2).replace('_', ' ')}" if m.group(2) else "")
        question = _question(previous_markdown)
        return f"Written answer: {question}" if question else f"Written answer ({gid})"
    name = gid[5:] if gid.startswith("test_") else gid
    return f"{name[:-7]}: bad input" if name.endswith("_errors") else name


def _message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            text = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
            return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS - 1] + "…"
    return ""


def _number(x) -> str:
    return f"{float(x):g}"


class GetGradesAndStatus(GetGrades):
    """nbgrader's ``GetGrades``, plus ``needs_manual_grade`` in each graded cell's metadata
    (nbgrader reports an ungraded written answer as a score of 0)."""

    def _get_score(self, cell, resources):
        super()._get_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        cell.metadata.nbgrader["needs_manual_grade"] = bool(grade.needs_manual_grade)


class SummarizeGrades(NbGraderPreprocessor):
    """Per graded cell: ``effcourse_label``/``effcourse_score`` in its nbgrader metadata, and one
    row in ``resources["effcourse_feedback"]["rows"]``; totals split into autograded points and
    written answers (graded, or how many points still wait for the instructor)."""

    def preprocess(self, nb, resources):
        rows, auto, manual = [], [0.0, 0.0], [0.0, 0.0, 0.0]     # auto: got, max; manual: got, max, pending
        previous = ""
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not (isinstance(meta, dict) and meta.get("grade") and meta.get("points") is not None):
                if cell.cell_type == "markdown":
                    previous = cell.source
                continue
            points, score = float(meta.get("points") or 0), meta.get("score")
            written = cell.cell_type == "markdown" or bool(meta.get("solution"))
            name = label(cell, previous)
            if written:
                manual[1] += points
                if score is None or meta.get("needs_manual_grade"):
                    manual[2] += points
                    shown = f"not graded yet ({_number(points)} points)"
                else:
                    manual[0] += float(score)
                    shown = f"{_number(score)} / {_number(points)}"
                message = ""
            else:
                got = float(score or 0)
                auto[0], auto[1] = auto[0] + got, auto[1] + points
                shown, message = f"{_number(got)} / {_number(points)}", _message(cell)
            meta["effcourse_label"], meta["effcourse_score"] = name, shown
            full = score is not None and not meta.get("needs_manual_grade") and float(score) >= points
            state = "full" if full else "pending" if shown.startswith("not graded") else "short"
            rows.append({"anchor": str(meta.get("grade_id", "")), "label": name, "score": shown, "state": state,
                         "message": message})
        nbg = resources.get("nbgrader", {})
        resources["effcourse_feedback"] = {
            "rows": rows, "auto": f"{_number(auto[0])} / {_number(auto[1])}",
            "written": (f"{_number(manual[0])} / {_number(manual[1] - manual[2])}" if manual[1] > manual[2] else ""),
            "pending": _number(manual[2]) if manual[2] else "",
            "late_penalty": _number(nbg.get("late_penalty") or 0) if nbg.get("late_penalty") else "",
            "total": f"{_number(nbg.get('score', auto[0] + manual[0]))} / {_number(nbg.get('max_score', 0))}"}
        return nb, resources
