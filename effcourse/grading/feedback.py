"""Feedback without hidden tests: what a student sees of a failed grade cell.

nbgrader's ``ClearHiddenTests`` removes the hidden block from a grade cell's *source*, but an
error's traceback quotes the lines around the failing call — often hidden-test lines (a reference
implementation, the inputs it draws). ``ShortenGradeTracebacks`` replaces the traceback of every
error in a grade cell by its last line, ``ExceptionName: message``: the check's own message (what
was expected, what came back, the seed) is kept, the test code is not.
"""
from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class ShortenGradeTracebacks(NbGraderPreprocessor):
    """Error outputs of grade cells keep only ``ename: evalue``."""

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"\x1b[0;31m{out.get('ename', 'Error')}\x1b[0m: {out.get('evalue', '')}"]
        return cell, resources
