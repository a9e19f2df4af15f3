"""Instructor plumbing around nbgrader: release, execute solutions, autograde a class.

Nothing here grades by itself: nbgrader does (``generate_assignment``, ``autograde``,
``generate_feedback``), run as subprocesses. ``autograde`` builds the gradebook from
``solutions/`` (so hidden tests come back from the source), grades every student with
``nbgrader autograde --student`` in a private course directory of its own (several at a time),
under a kernel with a memory limit and a hang watchdog, merges the results into one course
directory with nbgrader's gradebook API, and writes ``grades.csv`` and per-student HTML feedback.
See docs/INSTRUCTOR.md for what is and is not sandboxed.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
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


def _ensure_bin_on_path() -> None:
    """nbgrader's gradebook runs the ``alembic`` script: make this interpreter's ``bin/`` findable
    even when the virtual environment is not activated (``.venv/bin/python -m pytest``)."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")


def nbgrader(args: list[str], cwd: str | Path, timeout: float | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m nbgrader ARGS`` in ``cwd``; on failure raise with the tail of its log."""
    _ensure_bin_on_path()
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
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


def read_scores(course: str | Path, lab: str) -> dict[str, dict[str, float]]:
    """``{student: {grade_id: score, ...}}`` for every autograded submission in the gradebook."""
    from nbgrader.api import Gradebook

    _ensure_bin_on_path()
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

    _ensure_bin_on_path()
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(lab, lab)
        return {g.name: (g.max_score, g.cell_type == "code") for g in nb.grade_cells}


# --------------------------------------------------------------------------------------------------
# Grading a class: one nbgrader course directory per student, run under supervision, merged after.
# --------------------------------------------------------------------------------------------------

#: The kernel every submission runs in. It is ipykernel, started in-process after three things:
#: resource limits (address space = ``--memory``, no core files), ``faulthandler`` writing fatal
#: errors (segfaults, aborts) to a file, and two IPython hooks that write the source of the cell
#: about to run, and whether it finished, to a progress file. A watchdog thread kills the kernel when one cell outlives
#: nbgrader's per-cell timeout by a grace period, i.e. when the cell swallowed the interrupt that
#: nbgrader sent. The supervisor then knows which cell hung or crashed and re-grades without it.
KERNEL_LAUNCHER = r'''
import faulthandler, json, os, resource, sys, threading, time
mem = int(os.environ.get("EFFCOURSE_MEMORY_BYTES") or 0)
if mem > 0:
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
progress = os.environ["EFFCOURSE_PROGRESS"]
_fault = open(progress + ".fault", "w")
faulthandler.enable(file=_fault)
hang_limit = float(os.environ.get("EFFCOURSE_HANG_LIMIT") or 0)
state = {"start": None}

def _pre(info=None):
    state["cell"] = getattr(info, "raw_cell", "")
    with open(progress, "w", encoding="utf-8") as fh:
        json.dump({"cell": state["cell"], "done": False}, fh)
    state["start"] = time.monotonic()

def _post(result=None):
    state["start"] = None
    with open(progress, "w", encoding="utf-8") as fh:
        json.dump({"cell": state.get("cell", ""), "done": True}, fh)

def _watchdog():
    while True:
        time.sleep(0.2)
        start = state["start"]
        if start is not None and time.monotonic() - start > hang_limit:
            with open(progress + ".hang", "w") as fh:
                fh.write("%.1f" % (time.monotonic() - start))
            os._exit(124)

def _vm_peak():
    try:
        with open("/proc/self/status") as src, open(progress + ".mem", "w") as dst:
            dst.write(src.read())
    except OSError:
        pass

import atexit
atexit.register(_vm_peak)
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
app.initialize(sys.argv[1:])
app.shell.events.register("pre_run_cell", _pre)
app.shell.events.register("post_run_cell", _post)
if hang_limit > 0:
    threading.Thread(target=_watchdog, daemon=True, name="effcourse-watchdog").start()
app.start()
'''

GRADER_MARK = "EFFCOURSE_GRADING_TOKEN"
SKIP_STUB = ('raise RuntimeError("effcourse grader: this cell was not run: in an earlier grading pass it {why}. '
             'Everything after it was graded normally.")')


@dataclasses.dataclass
class Submission:
    """One student's entry in a batch: where the notebook is, or why there is none."""
    student: str                      # the id as the instructor knows it (folder/file name)
    sid: str                          # nbgrader's student id (safe for paths and globs)
    path: Path | None = None
    problem: str | None = None        # set when nothing can be graded
    notes: list[str] = dataclasses.field(default_factory=list)
    timestamp: str | None = None


@dataclasses.dataclass
class Result:
    student: str
    sid: str
    status: str                       # "ok", "flagged", "not graded", "missing"
    notes: list[str]
    grades: dict[str, dict] | None    # grade_id -> {"auto_score", "needs_manual_grade"}
    comments: dict[str, str | None] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    peak_mb: float = 0.0              # peak RSS of nbgrader + kernel
    kernel_vm_mb: float = 0.0         # peak address space of the kernel (what --memory limits)
    digest: str = ""
    timestamp: str | None = None
    unchanged: bool = False           # kept from an earlier run (same notebook, same settings)
    autograded: Path | None = None    # autograded notebook folder (in the private work dir)


def student_key(student: str) -> str:
    """nbgrader id for a student id: kept if it is a plain word (letters incl. unicode, digits,
    ``_ . @ -``); otherwise unsafe characters become ``_`` and a short hash keeps ids distinct."""
    student = unicodedata.normalize("NFC", student).strip()
    if student and re.fullmatch(r"[\w.@-]+", student) and not student.startswith((".", "-")):
        return student
    slug = re.sub(r"[^\w.@-]+", "_", student).strip("._-") or "student"
    return f"{slug}-{hashlib.sha1(student.encode('utf-8')).hexdigest()[:6]}"


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def _extract_zip(path: Path, lab: str) -> tuple[Path, Path]:
    """Extract a zip safely (no member may land outside the folder); returns ``(tmp, top)`` where
    ``top`` skips one wrapping folder if the zip has one (``class/alice/...``, ``class/bob.ipynb``)."""
    tmp = Path(tempfile.mkdtemp(prefix="effcourse-zip-")).resolve()
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            target = (tmp / member).resolve()
            if tmp not in target.parents and target != tmp:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ValueError(f"zip member {member!r} escapes the extraction folder; refusing the zip")
        zf.extractall(tmp)
    top = tmp
    entries = _visible(tmp)
    if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / f"{lab}.ipynb").exists():
        inner = _visible(entries[0])
        if len(inner) > 1 or (inner and inner[0].is_dir()):
            top = entries[0]
    return tmp, top


def find_submissions(submissions: str | Path, lab: str, name_regexp: str | None = None) -> tuple[list[Submission], Path | None]:
    """The students in ``submissions`` (folder of ``<student>/<notebook>.ipynb``, folder of
    ``<student>.ipynb``, or a zip of either; with ``name_regexp``, flat LMS file names are parsed
    by nbgrader's ``FileNameCollectorPlugin`` (named groups ``student_id``, optional
    ``timestamp``)). Returns ``(entries, tmpdir)``; ``tmpdir`` is the extracted zip (delete it)."""
    submissions = Path(submissions)
    if not submissions.exists():
        raise FileNotFoundError(f"submissions not found: {submissions}")
    tmp = None
    if submissions.is_file():
        if not zipfile.is_zipfile(submissions):
            raise ValueError(f"{submissions} is neither a folder nor a zip file")
        tmp, submissions = _extract_zip(submissions, lab)
    collector = None
    if name_regexp:
        from nbgrader.plugins import FileNameCollectorPlugin

        collector = FileNameCollectorPlugin(named_regexp=name_regexp)
    found: dict[str, Submission] = {}

    def add(student: str, path: Path | None, problem: str | None = None, notes=(), timestamp=None):
        sid = student_key(student)
        if sid in found:
            prev = found[sid]
            prev.notes.append(f"several submissions under this id ({path.name if path else '?'} ignored)")
            return
        found[sid] = Submission(student, sid, path, problem, list(notes), timestamp)

    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or entry.name == "__MACOSX":
            continue
        if entry.is_dir():
            nbs = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
                         and not p.name.startswith("."))
            ts = entry / "timestamp.txt"
            timestamp = ts.read_text(encoding="utf-8").strip() if ts.is_file() else None
            preferred = [p for p in nbs if p.name == f"{lab}.ipynb"]
            if preferred:
                add(entry.name, preferred[0], timestamp=timestamp)
            elif len(nbs) == 1:
                add(entry.name, nbs[0], notes=[f"wrong file name {nbs[0].name!r} (expected {lab}.ipynb); graded anyway"],
                    timestamp=timestamp)
            elif nbs:
                add(entry.name, None, f"several notebooks, none named {lab}.ipynb: "
                    + ", ".join(p.name for p in nbs[:5]))
            else:
                others = [p.name for p in entry.iterdir() if not p.name.startswith(".")][:5]
                add(entry.name, None, "missing notebook" + (f" (found only: {', '.join(others)})" if others else ""))
        elif entry.suffix == ".ipynb":
            if collector is not None:
                info = collector.collect(str(entry.name))
                if not info or not info.get("student_id"):
                    add(entry.stem, None, f"file name {entry.name!r} does not match --name-regexp")
                    continue
                add(info["student_id"], entry, timestamp=info.get("timestamp"))
            else:
                add(entry.stem, entry)
        else:
            continue
    return list(found.values()), tmp


def load_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a submitted notebook; raise ``ValueError`` saying plainly what is wrong with it."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError("empty file")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ValueError("not a text file (not UTF-8)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON (line {err.lineno}: {err.msg}); the file is corrupt") from None
    if not isinstance(data, dict) or "cells" not in data:
        raise ValueError("valid JSON but not a notebook (no 'cells')")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - any malformed notebook is the student's problem
        raise ValueError(f"not a valid notebook ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    return nb


def tamper_report(nb: nbformat.NotebookNode, release_nb: nbformat.NotebookNode) -> list[str]:
    """What a student changed in cells they may not change (grade cells and other locked cells):
    edited source, edited points or grade flag, deleted cells. nbgrader restores these from the
    gradebook anyway; this only says that it had to."""
    def locked(nb):
        out = {}
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
                out[meta["grade_id"]] = (cell.source.strip(), meta.get("points"), meta.get("grade"))
        return out

    ref = locked(release_nb)
    theirs = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id"):
            theirs.setdefault(meta["grade_id"], (cell.source.strip(), meta.get("points"), meta.get("grade")))
    problems = []
    for gid, (src, pts, grade) in ref.items():
        if gid not in theirs:
            problems.append(f"locked cell {gid} deleted")
        else:
            tsrc, tpts, tgrade = theirs[gid]
            what = [w for w, bad in (("source", tsrc != src), ("points", tpts != pts), ("grade flag", tgrade != grade)) if bad]
            if what:
                problems.append(f"locked cell {gid} edited ({', '.join(what)})")
    return problems


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


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


def _gradebook_fingerprint(db: Path, lab: str) -> tuple:
    from nbgrader.api import Gradebook

    _ensure_bin_on_path()
    with Gradebook(f"sqlite:///{db}") as gb:
        nb = gb.find_notebook(lab, lab)
        return (tuple(sorted((g.name, g.max_score, g.cell_type) for g in nb.grade_cells)),
                tuple(sorted((c.name, c.checksum, c.source, c.locked) for c in nb.source_cells)))


def _neutralize(work: Path, lab: str, sid: str, cell_source: str, why: str) -> str | None:
    """Replace the cell whose source is ``cell_source`` by a stub that raises, in this student's
    private copy: in the gradebook copy (locked cells are restored from there) and in the
    submitted notebook (the student's own cells). Returns a label for the cell, or None."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum

    _ensure_bin_on_path()
    stub = SKIP_STUB.format(why=why)
    label = None
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        nbk = gb.find_notebook(lab, lab)
        grade_cells = {g.name: g for g in nbk.grade_cells}
        solution_cells = {c.name for c in nbk.solution_cells}
        for cell in nbk.source_cells:
            if cell.source.strip() == cell_source.strip():
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
        if cell.source.strip() == cell_source.strip():
            if cell.metadata.get("nbgrader", {}).get("grade_id"):
                label = label or cell.metadata["nbgrader"]["grade_id"]
            cell.source = stub
            label = label or f"code cell {i + 1}"
    nbformat.write(nb, sub)
    return label


def _cell_label(cell, index: int) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    return gid or f"code cell {index}"


def _scan_autograded(nb_path: Path) -> list[str]:
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
                    r"(can't|cannot|unable to) allocate|out of memory", str(out.get("evalue", "")), re.I):
                notes.append(f"memory limit hit in {_cell_label(cell, code_index)} ({out.get('ename')})")
    return notes


@dataclasses.dataclass
class _Context:
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


def _grade_one(ctx: _Context, sub: Submission, nb: nbformat.NotebookNode) -> Result:
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
    if sub.timestamp:
        (work / "submitted" / sid / lab / "timestamp.txt").write_text(sub.timestamp, encoding="utf-8")
    kdir = work / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True)
    (kdir / "launch.py").write_text(KERNEL_LAUNCHER, encoding="utf-8")
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(kdir / "launch.py"), "-f", "{connection_file}"],
        "display_name": "Python 3 (effcourse grader)", "language": "python"}), encoding="utf-8")
    (work / "home").mkdir()
    progress = work / "progress.json"
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    env.update({"JUPYTER_PATH": str(work / "jupyter"), GRADER_MARK: token, "EFFCOURSE_PROGRESS": str(progress),
                "EFFCOURSE_HANG_LIMIT": str(ctx.timeout + ctx.hang_grace),
                "EFFCOURSE_MEMORY_BYTES": str(ctx.memory_bytes), "MPLBACKEND": "Agg",
                "EFFCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "IPYTHONDIR": str(work / "home" / ".ipython"), "PYTHONDONTWRITEBYTECODE": "1"})
    cmd = [sys.executable, "-m", "nbgrader", "autograde", lab, "--student", sid, "--force",
           f"--Execute.timeout={ctx.timeout}", "--OverwriteCells.add_missing_cells=True", "--log-level=INFO"]
    res = Result(sub.student, sid, "not graded", notes, None, timestamp=sub.timestamp)
    seconds, peak = 0.0, 0.0
    graded = False
    for attempt in range(ctx.passes):
        for f in (progress, Path(f"{progress}.fault"), Path(f"{progress}.hang"), Path(f"{progress}.mem")):
            f.unlink(missing_ok=True)
        expected = _gradebook_fingerprint(work / "gradebook.db", lab)
        rc, log, secs, pk = _supervise(cmd, work, env, ctx.student_limit, token)
        seconds += secs
        peak = max(peak, pk)
        mem = Path(f"{progress}.mem")
        m = re.search(r"VmPeak:\s*(\d+) kB", mem.read_text(errors="replace")) if mem.exists() else None
        if m:
            res.kernel_vm_mb = max(res.kernel_vm_mb, round(int(m.group(1)) / 1024))
        if rc == 0:
            if _gradebook_fingerprint(work / "gradebook.db", lab) != expected:
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
        notes += _scan_autograded(res.autograded / f"{lab}.ipynb")
    res.notes = list(dict.fromkeys(notes))
    res.status = ("flagged" if res.notes else "ok") if graded else "not graded"
    return res


def _merge(course: Path, lab: str, results: list[Result], maxima: dict[str, tuple[float, bool]]) -> None:
    """Write newly graded results into the course gradebook (nbgrader's API), clamping every
    score to [0, max], and copy autograded notebooks and feedback into the course folders."""
    from nbgrader.api import Gradebook

    _ensure_bin_on_path()
    import warnings

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


def _settings_key(lab_digest: str, timeout: int, memory_bytes: int) -> str:
    return _sha(f"{lab_digest}|{timeout}|{memory_bytes}".encode())


def autograde(lab: str, submissions: str | Path, out: str | Path | None = None, timeout: float | None = None,
              root: str | Path | None = None, *, jobs: int = 1, memory_gb: float | None = 8.0,
              student_timeout: float | None = None, name_regexp: str | None = None, regrade: bool = False,
              progress: bool = False, keep_work: bool = False) -> Path:
    """Grade every submission of ``lab``; returns the path of ``grades.csv``.

    ``out`` (default ``autograde-<lab>/``) is an nbgrader course directory: ``gradebook.db``,
    ``submitted/``, ``autograded/``, ``feedback/`` (HTML without hidden tests), ``grades.csv``.
    Each student is graded by ``nbgrader autograde --student`` in a private course directory of
    its own (``jobs`` at a time), under a kernel with an address-space limit of ``memory_gb`` and
    a watchdog; results are merged into ``out`` only after all student code has stopped, from an
    in-memory snapshot of ``out`` taken before any ran. Re-running grades only students whose
    notebook (or the lab source, or the limits) changed; ``regrade=True`` grades everyone again.
    ``timeout`` is the per-cell limit (default: ``c.Execute.timeout`` of the course config);
    ``student_timeout`` the hard wall-clock limit per nbgrader run (default 20 × timeout, ≥ 15 min).
    """
    check_lab(lab, root)
    croot = course_root(root)
    out = Path(out or f"autograde-{lab}").resolve()
    timeout = int(timeout or _config_timeout(croot) or 300)
    memory_bytes = int((memory_gb or 0) * 2**30)
    student_limit = float(student_timeout or max(20 * timeout, 900))
    if out == croot or out in croot.parents or (out.is_dir() and any(out.iterdir())
                                                 and not (out / ".effcourse-state.json").exists()):
        raise ValueError(f"--out {out} is not empty and was not made by `effcourse autograde`; "
                         "choose a new folder (it is overwritten with grading results)")
    scratch = Path(tempfile.mkdtemp(prefix=f"effcourse-grade-{lab}-"))
    entries, ziptmp = find_submissions(submissions, lab, name_regexp)
    try:
        pristine = make_course(scratch / "course", [lab], croot)
        lab_key = _settings_key(_tree_digest(croot / "solutions" / lab), timeout, memory_bytes)
        out.mkdir(parents=True, exist_ok=True)
        state_path = out / ".effcourse-state.json"
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {}
        if state.get("lab") not in (None, lab):
            raise ValueError(f"{out} holds grades of {state['lab']}, not {lab}; use another --out")
        fresh = regrade or state.get("settings") != lab_key or not (out / "gradebook.db").exists()
        if fresh:   # the source or the limits changed: start the course folder over
            for name in ("gradebook.db", "autograded", "feedback", "submitted", "solutions", "labs"):
                p = out / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            state = {"lab": lab, "settings": lab_key, "students": {}}
            shutil.copy2(pristine / "gradebook.db", out / "gradebook.db")
            shutil.copy2(pristine / "nbgrader_config.py", out / "nbgrader_config.py")
            for d in ("solutions", "labs"):
                shutil.copytree(pristine / d / lab, out / d / lab)
        # the results so far, held in memory while student code runs
        snapshot = (out / "gradebook.db").read_bytes()
        maxima = max_scores(pristine, lab)
        ctx = _Context(lab, pristine, nbformat.read(pristine / "labs" / lab / f"{lab}.ipynb", as_version=4),
                       scratch / "work", timeout, max(3.0, 0.1 * timeout), student_limit, memory_bytes)
        ctx.work.mkdir()
        ctx.pristine_db = (pristine / "gradebook.db").read_bytes()
        src = pristine / "solutions" / lab
        ctx.source_files = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
        results: dict[str, Result] = {}
        for sid, old in state["students"].items():      # graded earlier, not in this batch
            if old.get("result"):
                results[sid] = Result(**{**old["result"], "unchanged": True})
        todo: list[tuple[Submission, nbformat.NotebookNode | None, str]] = []
        for sub in entries:
            kept = results.pop(sub.sid, None)
            if sub.problem:
                status = "missing" if sub.problem.startswith("missing") else "not graded"
                results[sub.sid] = Result(sub.student, sub.sid, status, [sub.problem, *sub.notes], None)
                continue
            try:
                nb = load_notebook(sub.path)
            except (ValueError, OSError) as err:
                results[sub.sid] = Result(sub.student, sub.sid, "not graded", [f"unreadable notebook: {err}", *sub.notes], None)
                continue
            digest = _sha(nbformat.writes(nb).encode() + (sub.timestamp or "").encode())
            old = state["students"].get(sub.sid)
            if kept is not None and old and old.get("digest") == digest:
                results[sub.sid] = kept                    # same notebook, same settings: keep
                continue
            todo.append((sub, nb, digest))
        graded: list[Result] = []
        bar = _progress(len(todo), progress)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            futures = {pool.submit(_grade_one, ctx, sub, nb): (sub, digest) for sub, nb, digest in todo}
            for fut in concurrent.futures.as_completed(futures):
                sub, digest = futures[fut]
                try:
                    r = fut.result()
                except Exception as err:  # noqa: BLE001 - a bug for one student must not stop the class
                    r = Result(sub.student, sub.sid, "not graded", [f"grader error: {type(err).__name__}: {err}"], None)
                r.digest = digest
                graded.append(r)
                results[sub.sid] = r
                bar(f"{r.student}: {r.status}")
        # every student process has ended: restore the results as they were, then merge
        for suffix in ("-journal", "-wal", "-shm"):
            (out / f"gradebook.db{suffix}").unlink(missing_ok=True)
        (out / "gradebook.db").write_bytes(snapshot)
        for r in graded:
            dst = out / "submitted" / r.sid / lab
            shutil.rmtree(dst, ignore_errors=True)
            src = next(e for e in entries if e.sid == r.sid)
            dst.mkdir(parents=True)
            nbformat.write(load_notebook(src.path), dst / f"{lab}.ipynb")
            if src.timestamp:
                (dst / "timestamp.txt").write_text(src.timestamp, encoding="utf-8")
        _merge(out, lab, [r for r in results.values() if not r.unchanged], maxima)
        for r in results.values():
            if not r.unchanged:
                state["students"][r.sid] = {"digest": r.digest, "result": {
                    k: v for k, v in dataclasses.asdict(r).items() if k not in ("autograded", "unchanged")}}
        if graded:  # feedback for every graded student, from the merged gradebook (no student code runs here)
            fb = nbgrader(["generate_feedback", lab, "--force", "--log-level=WARN"], cwd=out, check=False)
            if fb.returncode != 0:
                print(f"effcourse autograde: generate_feedback failed; run `effcourse feedback {lab} --out {out}`:\n"
                      + "\n".join((fb.stdout + fb.stderr).splitlines()[-10:]), file=sys.stderr)
        state_path.write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
        path = write_csv(out / "grades.csv", lab, [results[k] for k in sorted(results, key=lambda s: results[s].student)],
                         maxima)
        _LAST_RUN.clear()
        _LAST_RUN.update(graded=len(graded), unchanged=sum(r.unchanged for r in results.values()), out=out)
        return path
    finally:
        if ziptmp is not None:
            shutil.rmtree(ziptmp, ignore_errors=True)
        if not keep_work:
            shutil.rmtree(scratch, ignore_errors=True)


_LAST_RUN: dict = {}


def _config_timeout(root: Path) -> int | None:
    m = re.search(r"^c\.Execute\.timeout\s*=\s*(\d+)", (root / "nbgrader_config.py").read_text(), flags=re.M)
    return int(m.group(1)) if m else None


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return lambda msg: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="nb", desc="autograde", file=sys.stderr, dynamic_ncols=True)

    def step(msg: str) -> None:
        bar.set_postfix_str(msg[:40])
        bar.update(1)
        if bar.n == bar.total:
            bar.close()
    return step


def write_csv(path: Path, lab: str, results: list[Result], maxima: dict[str, tuple[float, bool]]) -> Path:
    """``grades.csv``: one row per student; the autograded points of each grade cell, their total
    and maximum, the points still to grade by hand, a status and the reasons behind it."""
    auto_ids = [g for g, (_, auto) in maxima.items() if auto]
    manual = sum(p for p, auto in maxima.values() if not auto)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "nbgrader_id", *auto_ids, "autograded_total", "autograded_max", "manual_max",
                    "status", "notes", "seconds", "peak_mem_mb", "kernel_vm_mb"])
        for r in results:
            grades = r.grades or {}
            pts = [min(max(float(grades.get(g, {}).get("auto_score") or 0), 0.0), maxima[g][0]) for g in auto_ids]
            w.writerow([r.student, r.sid, *[f"{p:g}" for p in pts], f"{sum(pts):g}",
                        f"{sum(maxima[g][0] for g in auto_ids):g}", f"{manual:g}", r.status, "; ".join(r.notes),
                        f"{r.seconds:g}", f"{r.peak_mb:g}", f"{r.kernel_vm_mb:g}"])
    return path


def summary_table(csv_path: Path) -> str:
    """The terminal summary of a ``grades.csv``."""
    from tabulate import tabulate

    with Path(csv_path).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    table = [[r["student"], f"{r['autograded_total']}/{r['autograded_max']}", r["status"],
              (r["notes"][:70] + "…") if len(r["notes"]) > 71 else r["notes"]] for r in rows]
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    foot = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return tabulate(table, headers=["student", "autograded", "status", "notes"]) + f"\n{len(rows)} students: {foot}"
