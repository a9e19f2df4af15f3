"""The instructor workflow (``effcourse autograde``) against hostile and broken submissions.

Every test here grades a tiny two-exercise lab made on the fly (it runs in about a second), never
the real labs: a batch of normal students graded together with crafted ones (an endless loop, a
loop that swallows the timeout interrupt, ``os._exit``, a segfault, a memory hog, tampered grade
cells, corrupt/empty/misnamed/missing notebooks, odd student ids, code that attacks the results).
"""
from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from effcourse import cli, grading
from harness import strip_solution_markers

pytestmark = pytest.mark.xdist_group("grading")

ROOT = Path(__file__).resolve().parent.parent
LAB = "tiny"
TIMEOUT = 3            # per-cell timeout for the crafted batch (s)


def _cell(kind, source, **nbg):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "locked": False, "solution": False,
                                     "grade": False, **nbg}
    return cell


def make_tiny_course(dest: Path) -> Path:
    """A course folder with one nbgrader source notebook: two exercises, two grade cells (5 points
    each, with hidden tests) and one written question (2 points)."""
    (dest / "solutions" / LAB).mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        _cell("markdown", "# Tiny lab\nTwo exercises."),
        _cell("code", "import math"),
        _cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              grade_id="add", solution=True),
        # the hidden block is the whole judge (it runs without the visible lines): it repeats them
        _cell("code", "assert add(1, 2) == 3, 'add(1, 2) should be 3'\n### BEGIN HIDDEN TESTS\n"
                      "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n### END HIDDEN TESTS", grade_id="test_add",
              grade=True, locked=True,
              points=5),
        _cell("code", "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
              grade_id="mul", solution=True),
        _cell("code", "assert mul(2, 3) == 6, 'mul(2, 3) should be 6'\n### BEGIN HIDDEN TESTS\n"
                      "assert mul(2, 3) == 6\nassert mul(0, 5) == 0\n### END HIDDEN TESTS",
              grade_id="test_mul", grade=True, locked=True, points=5),
        _cell("markdown", "Why? " + "### BEGIN SOLUTION\nBecause.\n### END SOLUTION", grade_id="q_why",
              grade=True, solution=True, points=2),
    ]
    nbformat.write(nb, dest / "solutions" / LAB / f"{LAB}.ipynb")
    return dest


def _solution(course: Path) -> nbformat.NotebookNode:
    return strip_solution_markers(nbformat.read(course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4))


def _with(nb, grade_id, source=None, **meta):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            if source is not None:
                cell.source = source
            cell.metadata["nbgrader"].update(meta)
            return nb
    raise KeyError(grade_id)


def _without(nb, grade_id):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


SWALLOW = """def add(a, b):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""
FROZEN = ("import ctypes, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
          "ctypes.PyDLL(None).sleep(10000)   # SIGINT blocked, the GIL held: no interrupt gets through\n")
HOG = "def mul(a, b):\n    buf = bytearray(8 * 2**30)\n    return a * b\n"


def _write(folder: Path, student: str, nb, name: str = f"{LAB}.ipynb") -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / student / name)


def _rows(csv_path: Path) -> dict[str, dict]:
    with Path(csv_path).open(encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One class graded with --jobs 2: normal students and every crafted submission."""
    tmp = tmp_path_factory.mktemp("grading")
    course = make_tiny_course(tmp / "course")
    grading.release([LAB], course)
    good = _solution(course)
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    subs, out = tmp / "submissions", tmp / "out"
    _write(subs, "alice", good)
    _write(subs, "bob", release)
    _write(subs, "loop", _with(good, "add", "def add(a, b):\n    while True:\n        pass"))
    _write(subs, "swallow", _with(good, "add", SWALLOW))
    _write(subs, "frozen", _with(good, "mul", FROZEN))
    _write(subs, "exits", _with(good, "mul", "import os\nos._exit(3)"))
    _write(subs, "segfault", _with(good, "mul", "import ctypes\nctypes.string_at(0)"))
    _write(subs, "hog", _with(good, "mul", HOG))
    tampered = _with(_with(good, "add", "def add(a, b):\n    return 0"), "test_add", "assert True  # all good",
                     points=50)
    _write(subs, "tamper", _without(_with(tampered, "mul", "def mul(a, b):\n    return 1"), "test_mul"))
    (subs / "nobook").mkdir()
    (subs / "nobook" / "answers.txt").write_text("I did it on paper")
    (subs / "corrupt").mkdir()
    (subs / "corrupt" / f"{LAB}.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    (subs / "empty").mkdir()
    (subs / "empty" / f"{LAB}.ipynb").write_bytes(b"")
    _write(subs, "José Núñez", good, name="My Lab (1).ipynb")
    hostile = ("import os, sqlite3, pathlib\n"
               "def attempt(fn):\n"
               "    try:\n"
               "        fn()\n"
               "        print('ATTACK WORKED')\n"
               "    except Exception:\n"
               "        pass\n"
               f"out = pathlib.Path({str(out)!r})\n"
               "attempt(lambda: (out / 'gradebook.db').write_bytes(b'junk'))\n"
               "attempt(lambda: (out / 'grades.csv').write_text('student,total\\nhostile,1000\\n'))\n"
               "attempt(lambda: (out / '.effcourse-state.json').write_text('{}'))\n"
               f"attempt(lambda: (pathlib.Path({str(tmp)!r}) / 'outside.txt').write_text('I was here'))\n"
               "own = pathlib.Path(os.getcwd()).parents[2] / 'gradebook.db'\n"
               "attempt(lambda: sqlite3.connect(own).execute('UPDATE grade_cells SET max_score = 1000')"
               ".connection.commit())\n"
               "def add(a, b):\n    return a + b\n")
    _write(subs, "hostile", _with(good, "add", hostile))
    csv_path = grading.autograde(LAB, subs, out=out, root=course, timeout=TIMEOUT, jobs=2, memory_gb=6,
                                 student_timeout=300)
    return {"tmp": tmp, "course": course, "subs": subs, "out": out, "csv": csv_path.csv, "rows": _rows(csv_path),
            "good": good}


def test_normal_students_are_graded_exactly(batch):
    rows = batch["rows"]
    assert rows["alice"]["test_add"] == "5" and rows["alice"]["test_mul"] == "5"
    assert rows["alice"]["autograded_total"] == "10" and rows["alice"]["autograded_max"] == "10"
    assert rows["alice"]["manual_max"] == "2" and rows["alice"]["status"] == "ok", rows["alice"]
    assert rows["bob"]["autograded_total"] == "0" and rows["bob"]["status"] == "ok"
    scores = grading.read_scores(batch["out"], LAB)
    assert scores["alice"]["test_add"] == 5 and scores["alice"]["test_mul"] == 5 and scores["bob"]["test_add"] == 0


def test_infinite_loop_times_out_and_the_rest_is_graded(batch):
    row = batch["rows"]["loop"]
    assert (row["test_add"], row["test_mul"]) == ("0", "5"), row
    assert row["status"] == "flagged" and "timeout in test_add" in row["notes"]


def test_loop_that_swallows_the_interrupt_is_killed_and_the_rest_graded(batch):
    row = batch["rows"]["swallow"]
    assert (row["test_add"], row["test_mul"]) == ("0", "5"), row
    assert row["status"] == "flagged" and "test_add ignored the 3 s timeout interrupt" in row["notes"], row
    row = batch["rows"]["frozen"]
    assert (row["test_add"], row["test_mul"]) == ("5", "0"), row
    assert row["status"] == "flagged" and "mul ignored the 3 s timeout interrupt" in row["notes"], row


@pytest.mark.parametrize("student, reason", [("exits", "killed the kernel"), ("segfault", "Segmentation fault")])
def test_kernel_death_is_flagged_and_the_rest_graded(batch, student, reason):
    row = batch["rows"][student]
    assert (row["test_add"], row["test_mul"]) == ("5", "0"), row
    assert row["status"] == "flagged" and reason in row["notes"] and "mul" in row["notes"], row


def test_memory_limit_is_enforced_and_flagged(batch):
    row = batch["rows"]["hog"]
    assert (row["test_add"], row["test_mul"]) == ("5", "0"), row
    assert row["status"] == "flagged" and "memory limit" in row["notes"], row


def test_tampered_grade_cells_are_restored_and_flagged(batch):
    row = batch["rows"]["tamper"]
    # the real test_add ran (wrong add: 0 of 5, not 50); the deleted test_mul was added back and ran
    assert (row["test_add"], row["test_mul"], row["autograded_max"]) == ("0", "0", "10"), row
    assert "locked cell test_add edited (source, points)" in row["notes"] and row["status"] == "flagged"
    assert "locked cell test_mul deleted" in row["notes"]


def test_broken_files_get_a_clear_status(batch):
    rows = batch["rows"]
    assert rows["nobook"]["status"] == "missing" and "answers.txt" in rows["nobook"]["notes"]
    assert rows["corrupt"]["status"] == "not graded" and "not valid JSON" in rows["corrupt"]["notes"]
    assert rows["empty"]["status"] == "not graded" and "empty file" in rows["empty"]["notes"]
    assert rows["corrupt"]["autograded_total"] == "0"


def test_odd_student_ids(batch):
    row = batch["rows"]["José Núñez"]                              # also: a wrongly named notebook
    assert row["autograded_total"] == "10" and row["status"] == "flagged"
    assert "wrong file name 'My Lab (1).ipynb'" in row["notes"]
    assert " " not in row["nbgrader_id"] and row["nbgrader_id"] in grading.read_scores(batch["out"], LAB)


def test_student_code_cannot_alter_the_results(batch):
    out, rows = batch["out"], batch["rows"]
    # the sandbox shows the kernel neither the results nor the student's own private course folder
    assert rows["hostile"]["status"] == "ok" and rows["hostile"]["autograded_total"] == "10", rows["hostile"]
    assert rows["alice"]["autograded_total"] == "10"            # grades.csv rewritten after all student code
    scores = grading.read_scores(out, LAB)                        # gradebook restored, then merged
    assert scores["alice"]["test_add"] == 5 and scores["hostile"]["test_add"] == 5
    assert grading.max_scores(out, LAB)["test_add"] == (5, True)
    state = json.loads((out / ".effcourse-state.json").read_text())
    assert state["lab"] == LAB and "alice" in state["students"]
    assert not (batch["tmp"] / "outside.txt").exists()
    graded = nbformat.read(out / "autograded" / "hostile" / LAB / f"{LAB}.ipynb", as_version=4)
    printed = [o.get("text", "") for c in graded.cells for o in c.get("outputs", [])]
    assert not any("ATTACK WORKED" in t for t in printed), printed


def test_feedback_has_no_hidden_tests(batch):
    html = (batch["out"] / "feedback" / "alice" / LAB / f"{LAB}.html").read_text()
    assert "add(1, 2)" in html and "add(-1, 1)" not in html and "HIDDEN TESTS" not in html
    assert (batch["out"] / "autograded" / "loop" / LAB / f"{LAB}.ipynb").exists()


def test_rerun_is_idempotent_and_late_submissions_grade_only_themselves(batch):
    before = batch["csv"].read_text()
    run = grading.autograde(LAB, batch["subs"], out=batch["out"], root=batch["course"], timeout=TIMEOUT,
                              jobs=2, memory_gb=6, student_timeout=300)
    assert run.graded == 0
    assert run.csv.read_text() == before
    late = batch["tmp"] / "late"
    _write(late, "dave", batch["good"])
    path = grading.autograde(LAB, late, out=batch["out"], root=batch["course"], timeout=TIMEOUT, memory_gb=6,
                             student_timeout=300)
    assert path.graded == 1
    rows = _rows(path)
    assert rows["dave"]["autograded_total"] == "10" and rows["alice"]["autograded_total"] == "10"
    assert set(rows) == set(batch["rows"]) | {"dave"}


def test_lms_zip_with_named_files(batch, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{LAB}_s1234_attempt_2026-11-20-10-00-00_{LAB}.ipynb", nbformat.writes(batch["good"]))
        zf.writestr(f"{LAB}_s5678_attempt_2026-11-21-09-30-00_{LAB}.ipynb", "not a notebook")
    rc = cli.main(["--root", str(batch["course"]), "autograde", LAB, str(archive), "--out", str(tmp_path / "o"),
                   "--timeout", str(TIMEOUT), "--memory", "6", "--name-regexp",
                   r".+_(?P<student_id>s\d+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file_id>\w+)"])
    assert rc == 0
    rows = _rows(tmp_path / "o" / "grades.csv")
    assert rows["s1234"]["autograded_total"] == "10" and rows["s5678"]["status"] == "not graded"


def test_zip_slip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.ipynb", "{}")
    with pytest.raises(ValueError, match="escapes"):
        grading.find_submissions(archive, LAB)


def test_student_key():
    assert grading.student_key("alice_01") == "alice_01"
    assert grading.student_key("Émile") == "Émile"
    key = grading.student_key("José Núñez")
    assert " " not in key and key.startswith("José_Núñez-")
    assert grading.student_key("a*b") != grading.student_key("a?b")


def test_load_notebook_errors(tmp_path):
    p = tmp_path / "x.ipynb"
    for data, msg in ((b"", "empty file"), (b"{oops", "not valid JSON"), (b"[1, 2]", "not a notebook"),
                      (b"\xff\xfe\x00", "not a text file")):
        p.write_bytes(data)
        with pytest.raises(ValueError, match=msg):
            grading.load_notebook(p)


def test_cli_exit_status_only_for_grading_failures(tmp_path):
    course = make_tiny_course(tmp_path / "course")
    assert cli.main(["--root", str(course), "autograde", "no_such_lab", str(tmp_path)]) == 2
    assert cli.main(["--root", str(course), "autograde", LAB, str(tmp_path / "nowhere")]) == 2


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    course = make_tiny_course(tmp_path / "course")
    (tmp_path / "subs").mkdir()
    with pytest.raises(ValueError, match="not made by"):
        grading.autograde(LAB, tmp_path / "subs", out=course, root=course)
    with pytest.raises(ValueError, match="not made by"):
        grading.autograde(LAB, tmp_path / "subs", out=course / "solutions", root=course)


def test_find_submissions_layouts(tmp_path):
    nb = nbformat.writes(nbformat.v4.new_notebook())
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:          # one wrapping folder, per-student folders
        zf.writestr(f"class/alice/{LAB}.ipynb", nb)
        zf.writestr("class/bob/notes/other.ipynb", nb)
        zf.writestr("class/carol/readme.txt", "nothing")
        zf.writestr("__MACOSX/class/._alice", "junk")
    entries, tmp = grading.find_submissions(archive, LAB)
    try:
        got = {e.student: (e.path.name if e.path else None, e.problem) for e in entries}
        assert got == {"alice": (f"{LAB}.ipynb", None), "bob": ("other.ipynb", None),
                       "carol": (None, "missing notebook (found only: readme.txt)")}
        assert "wrong file name" in next(e for e in entries if e.student == "bob").notes[0]
    finally:
        shutil.rmtree(tmp)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("dan.ipynb", "eve smith.ipynb", "notes.pdf"):
        (flat / name).write_text(nb)
    entries, tmp = grading.find_submissions(flat, LAB)
    assert tmp is None and sorted(e.student for e in entries) == ["dan", "eve smith"]


def test_feedback_and_export_commands(batch, tmp_path):
    args = ["--root", str(batch["course"])]
    assert cli.main([*args, "export", LAB, "--out", str(batch["out"]), "--to", str(tmp_path / "all.csv")]) == 0
    with (tmp_path / "all.csv").open(encoding="utf-8") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(rows["alice"]["raw_score"]) == 10 and float(rows["alice"]["max_score"]) == 12
    assert (batch["out"] / "feedback" / "bob" / LAB / f"{LAB}.html").exists()   # written by autograde
    assert cli.main([*args, "feedback", LAB, "--out", str(tmp_path / "nothing")]) == 2


def test_scan_autograded_names_timeouts_and_memory(tmp_path):
    nb = nbformat.v4.new_notebook()
    err = nbformat.v4.new_output
    nb.cells = [_cell("code", "x", grade_id="test_a", grade=True, points=1), _cell("code", "y"), _cell("code", "z")]
    nb.cells[0].outputs = [err("error", ename="CellTimeoutError", evalue="", traceback=[])]
    nb.cells[1].outputs = [err("error", ename="RuntimeError", evalue="DefaultCPUAllocator: can't allocate memory",
                               traceback=[])]
    nb.cells[2].outputs = [err("error", ename="AssertionError", evalue="expected 3, got 4", traceback=[])]
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert grading.scan_autograded(tmp_path / "a.ipynb") == [
        "timeout in test_a (scored 0)", "memory limit hit in code cell 2 (RuntimeError)"]


def test_tamper_report_compares_with_the_release(tmp_path):
    course = make_tiny_course(tmp_path / "course")
    grading.release([LAB], course)
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    assert grading.tamper_report(release, release) == []
    assert grading.tamper_report(_with(release, "add", "def add(a, b): return a + b"), release) == []
    assert grading.tamper_report(_with(release, "test_mul", points=99), release) == [
        "locked cell test_mul edited (points)"]
    assert grading.tamper_report(_without(release, "test_add"), release) == ["locked cell test_add deleted"]


def test_hard_wall_clock_limit_per_student(tmp_path):
    """Whatever nbgrader does, a student's run is killed at --student-timeout; the cell that was
    running is stubbed out and the rest graded (here the limit is shorter than the cell timeout)."""
    course = make_tiny_course(tmp_path / "course")
    good = _solution(course)
    _write(tmp_path / "subs", "spin", _with(good, "mul", "while True:\n    pass"))
    path = grading.autograde(LAB, tmp_path / "subs", out=tmp_path / "out", root=course, timeout=120,
                             memory_gb=6, student_timeout=60)
    row = _rows(path)["spin"]
    assert (row["test_add"], row["test_mul"]) == ("5", "0"), row
    assert "mul ran past the per-student limit of 60 s and was killed" in row["notes"], row
