"""Submission intake: find each student's notebook in a folder or an LMS zip, read it safely, and
report edits to locked cells.

``find_submissions`` accepts a folder of ``<student>/<notebook>.ipynb``, a folder of
``<student>.ipynb``, or a zip of either; ``load_notebook`` says plainly what is wrong with a file.
A notebook larger than ``MAX_NOTEBOOK_BYTES`` (16 MiB) is not read at all: that student is "not
graded", with a note naming the size and the cap (and a zip member that large is never extracted).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import tempfile
import unicodedata
import zipfile
from pathlib import Path

import nbformat

#: the largest submitted notebook that is graded (the release notebooks, outputs cleared, are < 1 MiB)
MAX_NOTEBOOK_BYTES = 16 * 2**20


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def too_large(size: int, max_bytes: int | None = MAX_NOTEBOOK_BYTES) -> str | None:
    """The note for a notebook of ``size`` bytes over the cap, or None when it may be graded."""
    if max_bytes and size > max_bytes:
        return f"notebook too large: {_mib(size)} (the cap is {_mib(max_bytes)}); not graded"
    return None


@dataclasses.dataclass
class Submission:
    """One student's entry in a batch: where the notebook is, or why there is none."""
    student: str                      # the id as the instructor knows it (folder/file name)
    sid: str                          # nbgrader's student id (safe for paths and globs)
    path: Path | None = None
    problem: str | None = None        # set when nothing can be graded
    notes: list[str] = dataclasses.field(default_factory=list)
    timestamp: str | None = None



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


def _extract_zip(path: Path, lab: str, max_bytes: int | None = MAX_NOTEBOOK_BYTES) -> tuple[Path, Path]:
    """Extract a zip safely (no member may land outside the folder); returns ``(tmp, top)`` where
    ``top`` skips one wrapping folder if the zip has one (``class/alice/...``, ``class/bob.ipynb``).
    A member larger than ``max_bytes`` is not extracted: an empty sparse file of its size stands in
    for it (so it is refused like a large notebook in a folder, and takes no disk)."""
    tmp = Path(tempfile.mkdtemp(prefix="effcourse-zip-")).resolve()
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            target = (tmp / member).resolve()
            if tmp not in target.parents and target != tmp:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ValueError(f"zip member {member!r} escapes the extraction folder; refusing the zip")
        for info in zf.infolist():
            if info.is_dir() or not (max_bytes and info.file_size > max_bytes):
                zf.extract(info, tmp)
                continue
            target = tmp / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as fh:
                fh.truncate(info.file_size)
    top = tmp
    entries = _visible(tmp)
    if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / f"{lab}.ipynb").exists():
        inner = _visible(entries[0])
        if len(inner) > 1 or (inner and inner[0].is_dir()):
            top = entries[0]
    return tmp, top


def find_submissions(submissions: str | Path, lab: str, name_regexp: str | None = None,
                     max_bytes: int | None = MAX_NOTEBOOK_BYTES) -> tuple[list[Submission], Path | None]:
    """The students in ``submissions`` (folder of ``<student>/<notebook>.ipynb``, folder of
    ``<student>.ipynb``, or a zip of either; with ``name_regexp``, flat LMS file names are parsed
    by nbgrader's ``FileNameCollectorPlugin`` (named groups ``student_id``, optional
    ``timestamp``)). Returns ``(entries, tmpdir)``; ``tmpdir`` is the extracted zip (delete it).
    A notebook over ``max_bytes`` (None or 0: no cap) is an entry with a problem: not graded."""
    submissions = Path(submissions)
    if not submissions.exists():
        raise FileNotFoundError(f"submissions not found: {submissions}")
    tmp = None
    if submissions.is_file():
        if not zipfile.is_zipfile(submissions):
            raise ValueError(f"{submissions} is neither a folder nor a zip file")
        tmp, submissions = _extract_zip(submissions, lab, max_bytes)
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
        if path is not None and problem is None:
            problem = too_large(path.stat().st_size, max_bytes)
        found[sid] = Submission(student, sid, None if problem else path, problem, list(notes), timestamp)

    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or entry.name == "__MACOSX":
            continue
        if entry.is_dir():
            nbs = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
                         and not p.name.startswith("."))
            preferred = [p for p in nbs if p.name == f"{lab}.ipynb"]
            # nbgrader's collected layout keeps it beside the notebook: <student>/<lab>/timestamp.txt
            stamps = [p.parent / "timestamp.txt" for p in (preferred or nbs)[:1]] + [entry / "timestamp.txt"]
            ts = next((t for t in stamps if t.is_file()), None)
            timestamp = ts.read_text(encoding="utf-8").strip() if ts else None
            if preferred:
                add(entry.name, preferred[0], timestamp=timestamp)
            elif len(nbs) == 1:
                note = f"wrong file name {nbs[0].name!r} (expected {lab}.ipynb); graded anyway"
                add(entry.name, nbs[0], notes=[note], timestamp=timestamp)
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


def load_notebook(path: Path, max_bytes: int | None = MAX_NOTEBOOK_BYTES) -> nbformat.NotebookNode:
    """Read a submitted notebook; raise ``ValueError`` saying plainly what is wrong with it (also
    when it is larger than ``max_bytes``, before reading it)."""
    big = too_large(path.stat().st_size, max_bytes)
    if big:
        raise ValueError(big)
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
            changed = (("source", tsrc != src), ("points", tpts != pts), ("grade flag", tgrade != grade))
            what = [w for w, bad in changed if bad]
            if what:
                problems.append(f"locked cell {gid} edited ({', '.join(what)})")
    return problems
