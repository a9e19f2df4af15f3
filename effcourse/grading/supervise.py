"""Grading one student: a private nbgrader course folder, the kernel in a sandbox, supervision.

``grade_one(ctx, submission, notebook)`` runs ``nbgrader autograde --student`` in a folder of the
student's own, with the kernel of ``kernel.py`` inside the bubblewrap sandbox of ``sandbox.py``. It
never raises for a student's fault: a cell that hangs, ignores the interrupt, crashes the kernel or
exhausts memory is replaced by a stub and the notebook graded again without it (up to
``ctx.passes`` times); what the tamper guard reported is checked and turned into notes and zeros.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat

from effcourse.judge.nbgrader import SKIP_MARK

from . import kernel as kernel_module
from . import sandbox
from .course import ensure_bin_on_path
from .gradebook import fingerprint
from .intake import Submission, tamper_report
from .report import Result


GRADER_MARK = "EFFCOURSE_GRADING_TOKEN"
SKIP_STUB = (SKIP_MARK + ': in an earlier grading pass it {why}. Everything after it was graded normally.")')



def _kill_tree(proc: subprocess.Popen, token: str) -> None:
    """Kill the nbgrader process, everything below it (the kernel runs in a session of its own),
    and any process that carries this student's grading token in its environment (a daemon that
    detached itself). SIGKILL: student code cannot catch it."""
    import psutil

    victims = []
    try:
        parent = psutil.Process(proc.pid)
        victims = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me or p in victims:
            continue
        try:
            if p.environ().get(GRADER_MARK) == token:
                victims.append(p)
        except (psutil.Error, OSError):
            continue
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _supervise(cmd: list[str], cwd: Path, env: dict, limit: float, token: str) -> tuple[int | None, str, float, float]:
    """Run ``cmd`` in its own session; kill the whole tree after ``limit`` s. Returns
    ``(returncode or None if killed, log tail, seconds, peak RSS of the tree in MB)``."""
    import psutil

    log = cwd / "nbgrader.log"
    start = time.monotonic()
    peak = 0.0
    with log.open("w", encoding="utf-8", errors="replace") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        killed = False
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            if time.monotonic() - start > limit:
                killed = True
                break
        _kill_tree(proc, token)
    text = log.read_text(encoding="utf-8", errors="replace")
    return (None if killed else rc), text, time.monotonic() - start, peak


def _neutralize(work: Path, lab: str, sid: str, cell_source: str, why: str) -> str | None:
    """Replace the cell whose source is ``cell_source`` by a stub that raises, in this student's
    private copy: in the gradebook copy (locked cells are restored from there) and in the
    submitted notebook (the student's own cells). Returns a label for the cell, or None."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum

    from effcourse.judge.nbgrader import stub_grade_id

    ensure_bin_on_path()
    stub = SKIP_STUB.format(why=why)
    label = None
    gid = stub_grade_id(cell_source)           # the kernel ran a grade cell's answer(...) in its place
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        nbk = gb.find_notebook(lab, lab)
        grade_cells = {g.name: g for g in nbk.grade_cells}
        solution_cells = {c.name for c in nbk.solution_cells}
        for cell in nbk.source_cells:
            if cell.source.strip() == cell_source.strip() or (gid is not None and cell.name == gid):
                meta = {"grade_id": cell.name, "grade": cell.name in grade_cells, "locked": bool(cell.locked),
                        "solution": cell.name in solution_cells, "schema_version": 3}
                if cell.name in grade_cells:
                    meta["points"] = grade_cells[cell.name].max_score
                node = nbformat.from_dict({"cell_type": cell.cell_type, "source": stub, "metadata": {"nbgrader": meta}})
                cell.source, cell.checksum = stub, compute_checksum(node)
                label = cell.name
        gb.db.commit()
    sub = work / "submitted" / sid / lab / f"{lab}.ipynb"
    nb = nbformat.read(sub, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code_cells):
        if cell.source.strip() == cell_source.strip() or (
                gid is not None and cell.metadata.get("nbgrader", {}).get("grade_id") == gid):
            if cell.metadata.get("nbgrader", {}).get("grade_id"):
                label = label or cell.metadata["nbgrader"]["grade_id"]
            cell.source = stub
            label = label or f"code cell {i + 1}"
    nbformat.write(nb, sub)
    return label


def judge_notes(report: Path) -> list[str]:
    """Notes from the judge's report (``effcourse/judge/nbgrader.py``): capped outputs, grade cells
    that never reached the judge."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["the judge wrote no report: every grade cell scored 0"]
    notes = [f"output cap hit in {c}: the rest of its output was dropped" for c in data.get("capped", [])]
    notes += [f"{g} never reached the judge (scored 0)" for g in data.get("never_asked", [])]
    return notes


def _cell_label(cell, index: int) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    return gid or f"code cell {index}"


def scan_autograded(nb_path: Path) -> list[str]:
    """Notes about what went wrong while the graded notebook ran: timeouts, memory errors."""
    notes = []
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001
        return notes
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            if out.get("ename") == "CellTimeoutError":
                notes.append(f"timeout in {_cell_label(cell, code_index)} (scored 0)")
            elif out.get("ename") == "MemoryError" or re.search(
                    r"(can't|cannot|unable to) allocate|out of memory|MemoryError", str(out.get("evalue", "")), re.I):
                notes.append(f"memory limit hit in {_cell_label(cell, code_index)} ({out.get('ename')})")
    return notes


@dataclasses.dataclass
class Context:
    lab: str
    pristine: Path          # private course dir made by generate_assignment (gradebook + source)
    release_nb: nbformat.NotebookNode
    work: Path              # private folder holding one work dir per student
    timeout: int            # nbgrader per-cell timeout
    hang_grace: float
    student_limit: float    # hard wall-clock limit per nbgrader run
    memory_bytes: int
    pristine_db: bytes = b""
    source_files: dict = dataclasses.field(default_factory=dict)
    passes: int = 3
    sandbox: bool = True    # run the kernel under bubblewrap (sandbox.py)


def grade_one(ctx: Context, sub: Submission, nb: nbformat.NotebookNode) -> Result:
    """Grade one student in a private course directory; never raises for a student's fault."""
    lab, sid = ctx.lab, sub.sid
    notes = list(sub.notes)
    notes += [f"{p}; restored by nbgrader" for p in tamper_report(nb, ctx.release_nb)]
    token = uuid.uuid4().hex
    work = ctx.work / sid
    shutil.rmtree(work, ignore_errors=True)
    (work / "submitted" / sid / lab).mkdir(parents=True)
    shutil.copy2(ctx.pristine / "nbgrader_config.py", work / "nbgrader_config.py")
    (work / "gradebook.db").write_bytes(ctx.pristine_db)          # from memory: no student can alter it
    for rel, data in ctx.source_files.items():
        (work / "solutions" / lab / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "solutions" / lab / rel).write_bytes(data)
    nbformat.write(nb, work / "submitted" / sid / lab / f"{lab}.ipynb")
    secret = sub.path.parent / "submission_secret.txt"     # from nbgrader submit: feedback is released by it
    if secret.is_file():
        shutil.copy2(secret, work / "submitted" / sid / lab / secret.name)
    if sub.timestamp:
        (work / "submitted" / sid / lab / "timestamp.txt").write_text(sub.timestamp, encoding="utf-8")
    kdir = work / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True)
    # the kernel's own folder (connection file, sockets, progress files): short, since a Unix
    # socket path has at most 107 bytes, and the only place besides /tmp the kernel may write
    kernel_dir = Path(tempfile.mkdtemp(prefix="efk-", dir="/tmp"))
    with (work / "nbgrader_config.py").open("a", encoding="utf-8") as fh:
        # Unix sockets in the kernel's folder: the sandboxed kernel has a network namespace of its own
        fh.write(f'\nc.KernelManager.transport = "ipc"\nc.KernelManager.ip = {str(kernel_dir / "k")!r}\n'
                 f'c.KernelManager.connection_file = {str(kernel_dir / "connection.json")!r}\n')
    progress = kernel_dir / "progress.json"
    argv = [sys.executable, str(Path(kernel_module.__file__).resolve()), "-f", "{connection_file}"]
    notebook_dir = work / "autograded" / sid / lab
    if ctx.sandbox:
        if os.geteuid() == 0:
            os.chown(kernel_dir, sandbox.NOBODY, sandbox.NOBODY)
        argv = sandbox.command(argv, notebook_dir=notebook_dir, kernel_dir=kernel_dir)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Python 3 (effcourse grader)", "language": "python",
        "interrupt_mode": "message"}), encoding="utf-8")
    (work / "home").mkdir()
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    judge_report = work / "judge.json"
    env.update({"JUPYTER_PATH": str(work / "jupyter"), "JUPYTER_RUNTIME_DIR": str(kernel_dir), GRADER_MARK: token,
                # the judge's socket goes where the sandboxed kernel can reach it; its report where it cannot
                "EFFCOURSE_JUDGE_DIR": str(kernel_dir), "EFFCOURSE_JUDGE_REPORT": str(judge_report),
                "EFFCOURSE_PROGRESS": str(progress), "EFFCOURSE_LAB": lab,
                "EFFCOURSE_HANG_LIMIT": str(ctx.timeout + ctx.hang_grace),
                "EFFCOURSE_MEMORY_BYTES": str(ctx.memory_bytes), "MPLBACKEND": "Agg",
                "EFFCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "IPYTHONDIR": str(work / "home" / ".ipython"), "PYTHONDONTWRITEBYTECODE": "1"})
    cmd = [sys.executable, "-m", "nbgrader", "autograde", lab, "--student", sid, "--force",
           f"--Execute.timeout={ctx.timeout}", "--OverwriteCells.add_missing_cells=True", "--log-level=INFO"]
    res = Result(sub.student, sid, "not graded", notes, None, timestamp=sub.timestamp)
    seconds, peak = 0.0, 0.0
    graded = False
    tampered: list[str] = []
    for _ in range(ctx.passes):
        for f in (progress, *(Path(f"{progress}.{x}") for x in ("fault", "hang", "mem", "guard"))):
            f.unlink(missing_ok=True)
        expected = fingerprint(work / "gradebook.db", lab)
        rc, log, secs, pk = _supervise(cmd, work, env, ctx.student_limit, token)
        seconds += secs
        peak = max(peak, pk)
        mem = Path(f"{progress}.mem")
        m = re.search(r"VmPeak:\s*(\d+) kB", mem.read_text(errors="replace")) if mem.exists() else None
        if m:
            res.kernel_vm_mb = max(res.kernel_vm_mb, round(int(m.group(1)) / 1024))
        if rc == 0:
            if fingerprint(work / "gradebook.db", lab) != expected:
                notes.append("student code altered the grading database; scores discarded")
                break
            graded = True
            break
        # why did it fail, and in which cell? (the kernel wrote the cell it was running)
        try:
            info = json.loads(progress.read_text(encoding="utf-8")) if progress.exists() else {}
            cell = info.get("cell") if not info.get("done") else None
        except (ValueError, AttributeError):
            cell = None
        fault = Path(f"{progress}.fault")
        fault_text = fault.read_text(errors="replace").strip() if fault.exists() else ""
        if rc is None:
            why = f"ran past the per-student limit of {ctx.student_limit:g} s and was killed"
        elif Path(f"{progress}.hang").exists() or "CellTimeoutError" in log:
            # nbgrader interrupted the cell at the timeout, but it did not stop (it swallowed
            # the KeyboardInterrupt or blocked the signal): nbgrader gives up on the notebook
            why = f"ignored the {ctx.timeout} s timeout interrupt and was killed"
        elif fault_text:
            first = fault_text.splitlines()[0]
            why = f"crashed the kernel ({first.replace('Fatal Python error: ', '')})"
            if ctx.memory_bytes and "Abort" in first:
                why += f", probably at the {ctx.memory_bytes / 2**30:g} GB memory limit"
        elif "DeadKernelError" in log or "Kernel died" in log:
            why = "killed the kernel (it exited)"
        else:
            tail = [ln for ln in log.splitlines() if "ERROR" in ln or "Error" in ln][-3:]
            notes.append("nbgrader could not grade this notebook: " + (" | ".join(tail) or log[-300:]))
            break
        label = _neutralize(work, lab, sid, cell, why) if cell else None
        if label is None:
            notes.append(f"the notebook {why}; could not tell which cell")
            break
        notes.append(f"{label} {why}; scored 0, the rest re-graded without it")
    else:
        notes.append(f"gave up after {ctx.passes} grading passes")
    res.seconds, res.peak_mb = round(seconds, 1), round(peak)
    if graded:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
            snb = gb.find_submission_notebook(lab, lab, sid)
            res.grades = {g.name: {"auto_score": g.auto_score, "needs_manual_grade": bool(g.needs_manual_grade)}
                          for g in snb.grades}
            res.comments = {c.name: c.auto_comment for c in snb.comments}
        res.autograded = work / "autograded" / sid / lab
        notes += scan_autograded(res.autograded / f"{lab}.ipynb")
        notes += judge_notes(judge_report)
        notes += kernel_module.cap_notes(progress, res.autograded / f"{lab}.ipynb")
        tampered = guard_verdict(res.autograded / f"{lab}.ipynb", Path(f"{progress}.guard"), res.grades)
    shutil.rmtree(kernel_dir, ignore_errors=True)
    res.notes = list(dict.fromkeys(notes + tampered))
    res.status = ("tampered" if tampered else "flagged" if res.notes else "ok") if graded else "not graded"
    return res


def guard_verdict(nb_path: Path, guard_log: Path, grades: dict[str, dict]) -> list[str]:
    """What the kernel's tamper guard saw (``kernel.py``, ``guard.py``); zeroes ``grades`` of every
    grade cell during which a library object was rebound. Returns notes (empty: nothing seen).

    The guard reports once per executed cell, naming the cell by the digest of its source. A
    notebook whose cells ran but whose guard stopped reporting (switched off from inside) is
    flagged too: its grade cells after that point cannot be trusted and score 0.
    """
    from effcourse.judge.nbgrader import kernel_stub

    from .kernel import cell_digest

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable output: nothing to check
        return []
    lines = []
    if guard_log.exists():
        for raw in guard_log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"cell": "?", "changed": ["(an unreadable guard report)"]})
    notes: list[str] = []
    pos = 0
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() and c.get("execution_count")]
    for index, cell in enumerate(code, start=1):
        label = _cell_label(cell, index)
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        judged = meta.get("grade") and not meta.get("solution") and not cell.source.startswith(SKIP_MARK)
        digest = cell_digest(kernel_stub(gid) if judged else cell.source)    # the kernel ran the judge's stub
        while pos < len(lines) and lines[pos].get("cell") != digest:
            pos += 1
        if pos >= len(lines):
            notes.append(f"tampering: the grader's guard stopped reporting at {label}; "
                         "every grade cell from there on scored 0")
            for later in code[index - 1:]:
                g = later.metadata.get("nbgrader", {}).get("grade_id")
                if g in grades:
                    grades[g]["auto_score"] = 0.0
            break
        changed = lines[pos].get("changed") or []
        pos += 1
        if changed:
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            if gid in grades and cell.metadata.get("nbgrader", {}).get("grade"):
                grades[gid]["auto_score"] = 0.0
                notes.append(f"tampering: {label} rebound {shown} while it ran; scored 0 (restored afterwards)")
            else:
                notes.append(f"tampering: {label} rebound {shown}; restored before the next cell, no points gained")
    return notes
