"""The feedback page as a student reads it: named exercises, honest totals, wrapped messages and
equations that render without a network — rendered with the course's own template and
preprocessors, kernel-free (tests/test_grading.py and test_exchange.py render real ones)."""
from __future__ import annotations

import os

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from traitlets.config import Config

from effcourse.grading import feedback, feedback_page, mathml


def _cell(kind, source, **nbg):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "solution": False, "grade": False, **nbg}
    return cell


def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=["long hidden traceback"])


@pytest.fixture
def graded_nb():
    """A graded notebook as GetGrades leaves it: one full and one failed test cell, an input-error
    cell, a written answer nobody has graded and one that is graded."""
    shift_test = _cell("code", "check()", grade=True, locked=True, grade_id="test_temporal_shift", points=22,
                       score=0.0)
    shift_test.outputs = [_error("CheckFailed", "frame 3, channel 0: expected 1.5, got 0.0 " + "x" * 500)]
    return nbformat.v4.new_notebook(cells=[
        _cell("markdown", "# Lab $x$\n" r"The shift: $y_t = x_{t+1}$ and $$\frac{a}{b} < 1$$; it costs $5 and $10."),
        _cell("code", "def temporal_shift(x): ...", solution=True, grade_id="temporal_shift"),
        shift_test,
        _cell("code", "check_errors()", grade=True, locked=True, grade_id="test_temporal_shift_errors", points=3,
              score=3.0),
        _cell("markdown", "**Q1.** Why does the shift cost no FLOPs? Answer below."),
        _cell("markdown", "Because it moves memory.", solution=True, grade=True, grade_id="q1", points=5,
              score=0.0, needs_manual_grade=True),
        _cell("markdown", "**Q2.** Where would you place the shift?"),
        _cell("markdown", "In the residual branch <script>alert(1)</script>.", solution=True, grade=True,
              grade_id="answer_two", points=5, score=4.0),
    ])


def test_rows_name_each_exercise_and_keep_ungraded_answers_out_of_the_total(graded_nb):
    resources = {"nbgrader": {"score": 7.0, "max_score": 35.0, "late_penalty": 0, "notebook": "lab1"}}
    _, resources = feedback_page.SummarizeGrades().preprocess(graded_nb, resources)
    fb = resources["effcourse_feedback"]
    assert [r["label"] for r in fb["rows"]] == [
        "temporal_shift", "temporal_shift: bad input", "Written answer Q1", "Written answer: Q2."], fb["rows"]
    assert [r["score"] for r in fb["rows"]] == ["0 / 22", "3 / 3", "not graded yet (5 points)", "4 / 5"]
    assert [r["state"] for r in fb["rows"]] == ["short", "full", "pending", "short"]
    assert fb["auto"] == "3 / 25" and fb["written"] == "4 / 5" and fb["pending"] == "5"
    msg = fb["rows"][0]["message"]
    assert msg.startswith("CheckFailed: frame 3, channel 0: expected 1.5") and len(msg) <= 400
    assert "hidden traceback" not in msg


def test_the_page_renders_with_the_course_template(graded_nb):
    resources = {"nbgrader": {"score": 7.0, "max_score": 35.0, "late_penalty": 0, "notebook": "lab1"}}
    nb, resources = feedback_page.SummarizeGrades().preprocess(graded_nb, resources)
    nb, resources = feedback.ShortenGradeTracebacks().preprocess(nb, resources)
    nb, resources = feedback.SanitizeFeedback().preprocess(nb, resources)
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [str(feedback_page.TEMPLATES)]
    nbgrader_css = os.path.join(os.path.dirname(__import__("nbgrader").__file__), "server_extensions", "formgrader",
                                "static", "node_modules", "bootstrap", "dist", "css")
    c.HTMLExporter.extra_template_paths = [nbgrader_css]
    html, _ = HTMLExporter(config=c).from_notebook_node(nb, resources=resources)
    assert "Test cell" not in html and "temporal_shift: bad input" in html
    assert "Autograded exercises: <b>3 / 25</b>" in html and "worth 5 points not graded yet" in html
    assert "white-space: pre-wrap" in html                      # long messages wrap
    assert "<math" in html and "<mfrac>" in html and r"\frac" not in html   # equations as MathML
    assert "$5 and $10" in html                                  # prices are not equations
    assert "mathjax" not in html.lower()                         # nothing loaded from a CDN
    assert "<script>alert" not in html


@pytest.mark.parametrize("latex, tag", [(r"\operatorname{shift}(x)_t", "<mo>shift</mo>"), (r"\sqrt{2}", "<msqrt>"),
                                        (r"x^{2}", "<msup>")])
def test_render_math_outside_code_only(latex, tag):
    out = mathml.render_math(f"<p>see ${latex}$ and <code>${latex}$</code></p>")
    assert tag in out and f"<code>${latex}$</code>" in out


def test_a_formula_latex2mathml_cannot_read_stays_text():
    assert mathml.render_math(r"<p>$\frac{a}{$</p>") == r"<p>$\frac{a}{$</p>"
