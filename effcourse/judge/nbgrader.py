"""nbgrader preprocessors that move every grade cell's verdict out of the student's kernel.

In ``nbgrader_config.py`` (so ``effcourse autograde``, ``nbgrader autograde`` and formgrader's
button all grade this way)::

    c.Autograde.autograde_preprocessors = [JudgeGradeCells, CappedExecute, ApplyVerdicts, ...nbgrader's rest]

1. ``JudgeGradeCells`` reads each grade cell's full source (hidden tests included) from the
   course's *source* notebook — never from the submission or the gradebook — starts a ``Judge``
   with it, and gives the kernel, in place of each grade cell, only ``answer("<grade id>")``.
2. ``CappedExecute`` is nbgrader's ``Execute`` with a cap on the bytes of output a cell (and the
   notebook) may send; what is over the cap is dropped and flagged.
3. ``ApplyVerdicts`` puts the visible source back and replaces each grade cell's outputs with the
   judge's verdict alone: nothing the kernel printed, displayed or raised in a grade cell counts,
   so nbgrader's ``SaveAutoGrades`` scores exactly what the judge decided.

``EFFCOURSE_JUDGE_DIR`` (set by ``effcourse autograde``) is where the judge's socket goes: the
folder the sandboxed kernel can reach. ``EFFCOURSE_JUDGE_REPORT``, when set, names a JSON file
that receives the verdicts and the flags.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

from .server import Judge, judge_code

STUB = 'from effcourse.judge.kernel import answer\nanswer({gid!r})'
_KEY = "effcourse_judge"
#: how a cell that the grader took out (it hung or crashed the kernel) begins: it is not judged
SKIP_MARK = 'raise RuntimeError("effcourse grader: this cell was not run'
_JUDGES: dict[int, Judge] = {}


def kernel_stub(gid: str) -> str:
    """What the kernel runs in place of grade cell ``gid``."""
    return STUB.format(gid=gid)


def stub_grade_id(source: str) -> str | None:
    """The grade id in a kernel stub's source, or None if ``source`` is not a stub."""
    m = re.fullmatch(r"from effcourse\.judge\.kernel import answer\nanswer\('([^'\n]*)'\)", source.strip())
    return m.group(1) if m else None


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def source_cells(config, resources: dict) -> dict[str, str]:
    """grade_id -> full source of the grade cells of the course's source notebook."""
    from nbgrader.coursedir import CourseDirectory

    info = resources.get("nbgrader", {})
    cd = CourseDirectory(config=config)
    folder = Path(cd.format_path(cd.source_directory, ".", info.get("assignment", "")))
    path = folder / f"{info.get('notebook', '')}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"the judge needs the source notebook {path} (the instructor's, with hidden tests)")
    nb = nbformat.read(path, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if _is_test(c)}


class JudgeGradeCells(NbGraderPreprocessor):
    """Start the judge; the kernel gets ``answer(id)`` in place of every grade cell."""

    timeout = Integer(300, help="seconds the judge gives one grade cell").tag(config=True)

    def preprocess(self, nb, resources):
        full = source_cells(self.config, resources)
        codes, visible = {}, {}
        for cell in nb.cells:
            if not _is_test(cell):
                continue
            gid = cell.metadata["nbgrader"]["grade_id"]
            if cell.source.startswith(SKIP_MARK):     # the grader took this cell out after it hung or crashed
                continue
            codes[gid] = judge_code(full.get(gid, cell.source))
            visible[gid] = cell.source
            cell.source = kernel_stub(gid)
        try:
            timeout = int(self.config.Execute.timeout) - 5
        except (AttributeError, TypeError, ValueError):
            timeout = self.timeout
        folder = os.environ.get("EFFCOURSE_JUDGE_DIR") or None
        judge = Judge(codes, folder=folder, timeout=max(10, min(self.timeout, timeout))).start()
        _JUDGES[id(judge)] = judge
        os.environ["EFFCOURSE_JUDGE_SOCKET"] = judge.path
        resources[_KEY] = {"judge": id(judge), "visible": visible}
        return nb, resources


class CappedExecute(Execute):
    """nbgrader's ``Execute``, dropping output beyond ``cell_bytes`` per cell or ``notebook_bytes``."""

    cell_bytes = Integer(1 << 20, help="bytes of output one cell may produce").tag(config=True)
    notebook_bytes = Integer(8 << 20, help="bytes of output the whole notebook may produce").tag(config=True)

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = getattr(self, "_effcourse_used", None)
        if used is None:
            used = self._effcourse_used = {}
        used[cell_index] = used.get(cell_index, 0) + size
        if used[cell_index] > self.cell_bytes or sum(used.values()) > self.notebook_bytes:
            cell = self.nb.cells[cell_index]
            if not cell.metadata.get("effcourse_capped"):
                cell.metadata["effcourse_capped"] = True
                outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                    f"[effcourse: output beyond {self.cell_bytes} bytes per cell or {self.notebook_bytes} per "
                    "notebook was dropped]\n")))
            return None
        return super().output(outs, msg, display_id, cell_index)


class ApplyVerdicts(NbGraderPreprocessor):
    """Every grade cell shows the judge's verdict and nothing else; the judge stops."""

    def preprocess(self, nb, resources):
        state = resources.pop(_KEY, None)
        if state is None:
            raise RuntimeError("ApplyVerdicts runs after JudgeGradeCells (see effcourse/judge/nbgrader.py)")
        judge = _JUDGES.pop(state["judge"])
        judge.close()
        os.environ.pop("EFFCOURSE_JUDGE_SOCKET", None)
        report = {"verdicts": {}, "never_asked": [], "capped": []}
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and cell.metadata.pop("effcourse_capped", False):
                report["capped"].append(cell.metadata.get("nbgrader", {}).get("grade_id") or f"code cell {i + 1}")
            if not _is_test(cell):
                continue
            gid = cell.metadata["nbgrader"]["grade_id"]
            if gid not in state["visible"]:
                continue                            # not judged (taken out by the grader): keeps its error
            cell.source = state["visible"][gid]
            v = judge.verdicts.get(gid)
            if v is None:
                report["never_asked"].append(gid)
                cell.outputs = [_error("NotJudged", "this grade cell never reached the judge (it did not run, or "
                                                    "something stopped it before it could answer): 0 points"),
                                *_kernel_faults(cell)]
                continue
            report["verdicts"][gid] = {"passed": v.passed, "message": v.message, "seconds": round(v.seconds, 3),
                                       "requests": v.requests}
            cell.outputs = ([nbformat.v4.new_output("stream", name="stdout", text=f"\u2714 {gid}: passed\n")]
                            if v.passed else [_error(v.kind, v.message), *_kernel_faults(cell)])
        path = os.environ.get("EFFCOURSE_JUDGE_REPORT")
        if path:
            Path(path).write_text(json.dumps(report, indent=1), encoding="utf-8")
        return nb, resources


#: errors that nbgrader itself records in a cell (not the student's code): kept beside a failed
#: verdict, so that the grader's notes can say why (``supervise.scan_autograded``)
_FAULTS = ("CellTimeoutError", "DeadKernelError", "MemoryError")


def _kernel_faults(cell) -> list:
    return [_error(o["ename"], str(o.get("evalue", ""))[:300]) for o in cell.get("outputs", [])
            if o.get("output_type") == "error" and o.get("ename") in _FAULTS][:1]


def _error(name: str, message: str):
    return nbformat.v4.new_output("error", ename=name, evalue=message,
                                  traceback=[f"\x1b[0;31m{name}\x1b[0m: {message}"])
