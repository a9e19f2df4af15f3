"""Grading a class: every student in a private course folder, several at a time, merged after.

``autograde(lab, submissions)`` builds a fresh gradebook from ``solutions/`` (that is where the
hidden tests come from), grades each new or changed submission with ``supervise.grade_one``
(``jobs`` at a time), and only after all student code has stopped merges the results into the
class course folder and writes ``grades.csv`` and feedback HTML without hidden tests.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from . import sandbox as sandbox_mod
from .course import check_lab, config_timeout, course_root, make_course, nbgrader
from .gradebook import max_scores, merge
from .intake import Submission, find_submissions, load_notebook
from .report import Result, write_csv
from .supervise import Context, grade_one


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _settings_key(lab_digest: str, timeout: int, memory_bytes: int) -> str:
    return _sha(f"{lab_digest}|{timeout}|{memory_bytes}".encode())


@dataclasses.dataclass
class AutogradeRun:
    """What one ``autograde`` call did. Path-like: ``Path(run)`` is ``grades.csv``."""
    csv: Path                 # grades.csv
    out: Path                 # the nbgrader course folder with gradebook, autograded/, feedback/
    graded: int               # students graded in this run
    unchanged: int            # students kept from earlier runs (same notebook, same settings)
    sandboxed: bool           # kernels ran under bubblewrap

    def __fspath__(self) -> str:
        return str(self.csv)


def autograde(lab: str, submissions: str | Path, out: str | Path | None = None, timeout: float | None = None,
              root: str | Path | None = None, *, jobs: int = 1, memory_gb: float | None = 8.0,
              student_timeout: float | None = None, name_regexp: str | None = None, regrade: bool = False,
              progress: bool = False, keep_work: bool = False, sandbox: bool | None = None) -> AutogradeRun:
    """Grade every submission of ``lab``; returns an ``AutogradeRun`` (path-like: ``grades.csv``).

    ``out`` (default ``autograde-<lab>/``) is an nbgrader course directory: ``gradebook.db``,
    ``submitted/``, ``autograded/``, ``feedback/`` (HTML without hidden tests), ``grades.csv``.
    Each student is graded by ``nbgrader autograde --student`` in a private course directory of
    its own (``jobs`` at a time), under a kernel with an address-space limit of ``memory_gb`` and
    a watchdog; results are merged into ``out`` only after all student code has stopped, from an
    in-memory snapshot of ``out`` taken before any ran. Re-running grades only students whose
    notebook (or the lab source, or the limits) changed; ``regrade=True`` grades everyone again.
    ``timeout`` is the per-cell limit (default: ``c.Execute.timeout`` of the course config);
    ``student_timeout`` the hard wall-clock limit per nbgrader run (default 20 × timeout, ≥ 15 min).
    ``sandbox``: run every kernel under bubblewrap (``sandbox.py``); ``None`` means "yes, and refuse
    to grade if bubblewrap cannot run here"; ``False`` grades without one (student code then runs
    with your rights: only for trusted notebooks).
    """
    check_lab(lab, root)
    if sandbox is not False:
        why = sandbox_mod.works()
        if why:
            raise RuntimeError(f"cannot sandbox the grading kernel: {why}. Install bubblewrap, or pass "
                               "--no-sandbox to grade trusted notebooks without one (docs/INSTRUCTOR.md)")
    use_sandbox = sandbox is not False
    croot = course_root(root)
    out = Path(out or f"autograde-{lab}").resolve()
    timeout = int(timeout or config_timeout(croot) or 300)
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
        ctx = Context(lab, pristine, nbformat.read(pristine / "labs" / lab / f"{lab}.ipynb", as_version=4),
                       scratch / "work", timeout, max(3.0, 0.1 * timeout), student_limit, memory_bytes)
        ctx.sandbox = use_sandbox
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
                notes = [f"unreadable notebook: {err}", *sub.notes]
                results[sub.sid] = Result(sub.student, sub.sid, "not graded", notes, None)
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
            futures = {pool.submit(grade_one, ctx, sub, nb): (sub, digest) for sub, nb, digest in todo}
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
            secret = src.path.parent / "submission_secret.txt"       # nbgrader submit's: release_feedback needs it
            if secret.is_file():
                shutil.copy2(secret, dst / secret.name)
        merge(out, lab, [r for r in results.values() if not r.unchanged], maxima)
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
        rows = [results[k] for k in sorted(results, key=lambda s: results[s].student)]
        path = write_csv(out / "grades.csv", lab, rows, maxima)
        return AutogradeRun(path, out, len(graded), sum(r.unchanged for r in results.values()), use_sandbox)
    finally:
        if ziptmp is not None:
            shutil.rmtree(ziptmp, ignore_errors=True)
        if not keep_work:
            shutil.rmtree(scratch, ignore_errors=True)



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
