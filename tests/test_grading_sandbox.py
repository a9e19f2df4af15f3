"""Hostile submissions against the grader's sandbox and tamper guard (``effcourse autograde``).

A tiny lab made on the fly, whose grade cell relies on ``effcourse.checks.asserts`` and ``torch``,
is graded once for a class of crafted students:

* tampering: rebinding checks or torch functions (at top level, inside the learner's function,
  through ``sys.modules``, through a class attribute, through builtins) and switching the guard off;
* theft: walking up from the notebook folder to the instructor's source notebook or the gradebook,
  reading the course checkout or another student's folder, reaching the network;
* a spy that reports what the kernel can see and who it runs as.

Every attack must earn nothing, and honest students must keep full marks.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from effcourse import grading
from effcourse.grading import sandbox

pytestmark = [pytest.mark.xdist_group("grading_sandbox"),
              pytest.mark.skipif(sandbox.works() is not None, reason=f"no sandbox here: {sandbox.works()}")]

ROOT = Path(__file__).resolve().parent.parent
LAB = "tiny_torch"
ANSWER = "return x * 2"          # the answer a thief is after (appears only in the source notebook)


def _cell(kind, source, **nbg):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "locked": False, "solution": False,
                                     "grade": False, **nbg}
    return cell


GRADE = """import torch
from effcourse.checks.asserts import assert_close, assert_true, call
x = torch.arange(6.0).reshape(2, 3)
assert_close("double(x)", call("double", double, x), 2 * x)
### BEGIN HIDDEN TESTS
import torch
from effcourse.checks import asserts
y = torch.randn(4, 5, dtype=torch.float64)
asserts.assert_close("double(y)", asserts.call("double", double, y), y + y)
asserts.assert_true(torch.equal(double(y), y * 2), "double must return exactly 2 * x")
### END HIDDEN TESTS"""


def make_course(dest: Path) -> Path:
    (dest / "solutions" / LAB).mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        _cell("markdown", "# Tiny torch lab"),
        _cell("code", "import torch"),
        _cell("code", f"def double(x):\n    ### BEGIN SOLUTION\n    {ANSWER}\n    ### END SOLUTION",
              grade_id="double", solution=True),
        _cell("code", GRADE, grade_id="test_double", grade=True, locked=True, points=10),
    ]
    nbformat.write(nb, dest / "solutions" / LAB / f"{LAB}.ipynb")
    return dest


def _submission(release: nbformat.NotebookNode, answer: str, extra_cell: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = answer
            if extra_cell is not None:
                nb.cells.insert(i + 1, nbformat.v4.new_code_cell(extra_cell))
            return nb
    raise KeyError("double")


WRONG = "def double(x):\n    return x + 1\n"
# passes the visible check (float32), fails in the hidden block (float64): its traceback points there
HALF_RIGHT = "import torch\ndef double(x):\n    return 2 * x if x.dtype == torch.float32 else x\n"
RIGHT = "def double(x):\n    return 2 * x\n"
NOOP = "lambda *a, **k: None"

TAMPER = {
    # top level: no-op checks and a patched torch, then a wrong answer
    "noop_checks": WRONG + f"import effcourse.checks.asserts as A\nA.assert_close = {NOOP}\nA.assert_true = {NOOP}\n"
                   "A.call = lambda name, fn, *a, **k: None\n",
    "patched_torch": WRONG + "import torch\ntorch.equal = lambda *a: True\n"
                     "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n",
    "fake_module": WRONG + "import sys, types\nfake = types.ModuleType('effcourse.checks.asserts')\n"
                   f"fake.assert_close = fake.assert_true = {NOOP}\nfake.call = lambda n, f, *a, **k: f(*a, **k)\n"
                   "sys.modules['effcourse.checks.asserts'] = fake\n"
                   "import effcourse.checks\neffcourse.checks.asserts = fake\n",
    "tensor_eq": WRONG + "import torch\ntorch.Tensor.__eq__ = lambda a, b: torch.ones_like(a, dtype=torch.bool)\n"
                 "torch.Tensor.sub = lambda a, b: torch.zeros_like(a)\n",
    "builtins": WRONG + "import builtins\n_real = builtins.isinstance\nbuiltins.isinstance = lambda o, t: True\n",
    # inside the learner's function: the patch happens while the grade cell runs
    "in_function": "def double(x):\n    import effcourse.checks.asserts as A, torch\n"
                   f"    A.assert_close = {NOOP}\n    A.assert_true = {NOOP}\n    torch.equal = lambda *a: True\n"
                   "    return x + 1\n",
    # switch the guard off, then patch
    "guard_off": WRONG + "ip = get_ipython()\nfor ev in ('pre_run_cell', 'post_run_cell'):\n"
                 "    ip.events.callbacks[ev].clear()\n"
                 f"import effcourse.checks.asserts as A\nA.assert_close = {NOOP}\nA.assert_true = {NOOP}\n"
                 "A.call = lambda name, fn, *a, **k: None\n",
}

THEFT = """import glob, json, os, pathlib
found = []
here = pathlib.Path.cwd()
ups = [d for d in [here, *here.parents] if len(d.parts) > 2]
candidates = [p for d in ups for pattern in ('*.ipynb', '*/*.ipynb', '*/*/*.ipynb') for p in d.glob(pattern)]
for pattern in ('/tmp/effcourse-grade-*/*/solutions/*/*.ipynb', '/tmp/effcourse-grade-*/work/*/solutions/*/*.ipynb',
                %(root)r + '/solutions/*/*.ipynb', %(repo)r + '/solutions/*/*.ipynb'):
    candidates += [pathlib.Path(p) for p in glob.glob(pattern)]
for p in candidates:
    try:
        cells = json.loads(p.read_text())['cells']
    except (OSError, ValueError, KeyError):
        continue
    for cell in cells:
        src = ''.join(cell['source'])
        if '### BEGIN SOLUTION' in src and 'def double' in src and 'THEFT' not in src:
            found.append(str(p))
            exec(src.replace('### BEGIN SOLUTION', '').replace('### END SOLUTION', ''))
dbs = [d / 'gradebook.db' for d in ups] + [pathlib.Path(p) for p in glob.glob('/tmp/effcourse-grade-*/*/gradebook.db')
                                         + glob.glob('/tmp/effcourse-grade-*/work/*/gradebook.db')]
for db in dbs:
    try:
        db.read_bytes()
        found.append(str(db))
    except OSError:
        pass
print('THEFT found:', found)
"""

SPY = """import os, socket, pathlib, glob
report = {'uid': os.getuid(), 'cwd_writable': os.access('.', os.W_OK),
          'root_listing': sorted(os.listdir('/')),
          'course_visible': os.path.exists(%(root)r),
          'home_entries': sorted(os.listdir(%(home)r)) if os.path.isdir(%(home)r) else [],
          'solutions_visible': os.path.exists(%(repo)r + '/solutions') or os.path.exists(%(repo)r + '/tests'),
          'other_grading_files': [os.path.join(d, f) for top in glob.glob('/tmp/effcourse-grade-*')
                                  for d, _, files in os.walk(top) for f in files
                                  if not d.startswith(os.getcwd())],
          'pids': len([p for p in os.listdir('/proc') if p.isdigit()]),
          'etc_readable': os.access('/etc/passwd', os.R_OK) and os.access('/etc/fonts/fonts.conf', os.R_OK)}
try:
    import subprocess
    fc = subprocess.run(['fc-list'], capture_output=True, text=True, timeout=30)
    report['fc_list_stderr'] = fc.stderr.strip()
except (OSError, subprocess.SubprocessError) as err:
    report['fc_list_stderr'] = f'not run: {err}'
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2).close()
    report['network'] = 'reached 1.1.1.1'
except OSError as err:
    report['network'] = f'blocked: {err}'
try:
    pathlib.Path(%(out)r, 'pwned.txt').write_text('x')
    report['wrote_outside'] = True
except OSError:
    report['wrote_outside'] = False
print('SPY ' + __import__('json').dumps(report))
"""


def _rows(csv_path) -> dict[str, dict]:
    with Path(csv_path).open(encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    course = make_course(tmp / "course")
    grading.release([LAB], course)
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    subs, out = tmp / "submissions", tmp / "out"
    students = {"honest": _submission(release, RIGHT), "wrong": _submission(release, WRONG),
                "half_right": _submission(release, HALF_RIGHT)}
    for name, src in TAMPER.items():
        students[name] = _submission(release, src)
    theft = THEFT % {"root": str(course), "repo": str(ROOT)}
    students["thief"] = _submission(release, theft)
    students["thief_after_answer"] = _submission(release, "def double(x):\n    raise NotImplementedError\n", theft)
    students["spy"] = _submission(release, RIGHT, SPY % {"root": str(course), "home": str(Path.home()),
                                                          "out": str(tmp), "repo": str(ROOT)})
    for name, nb in students.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / f"{LAB}.ipynb")
    run = grading.autograde(LAB, subs, out=out, root=course, timeout=60, jobs=2, memory_gb=4, student_timeout=300)
    assert run.sandboxed
    return {"rows": _rows(run.csv), "out": out, "tmp": tmp, "course": course}


def _output(graded, student: str, marker: str) -> str:
    nb = nbformat.read(graded["out"] / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = o.get("text", "")
            if marker in text:
                return text[text.index(marker) + len(marker):].strip()
    raise AssertionError(f"{student}: no output with {marker!r}")


def test_honest_and_wrong_students_are_graded_as_before(graded):
    rows = graded["rows"]
    assert rows["honest"]["test_double"] == "10" and rows["honest"]["status"] == "ok", rows["honest"]
    assert rows["wrong"]["test_double"] == "0" and rows["wrong"]["status"] == "ok", rows["wrong"]


def test_feedback_shows_no_hidden_test_code(graded):
    html = (graded["out"] / "feedback" / "half_right" / LAB / f"{LAB}.html").read_text()
    assert graded["rows"]["half_right"]["test_double"] == "0"
    assert "CheckFailed" in html and "double(y)" in html            # the check's message is kept
    for hidden in ("torch.randn(4, 5", "asserts.call(", "BEGIN HIDDEN", "y + y"):
        assert hidden not in html, f"feedback shows hidden test code: {hidden!r}"


@pytest.mark.parametrize("student", sorted(TAMPER))
def test_tampering_earns_nothing_and_is_flagged(graded, student):
    row = graded["rows"][student]
    assert row["test_double"] == "0", row
    assert row["status"] == "tampered" and "tampering" in row["notes"], row


def test_tampering_is_named(graded):
    rows = graded["rows"]
    assert "effcourse.checks.asserts.assert_close" in rows["noop_checks"]["notes"]
    assert "torch.equal" in rows["patched_torch"]["notes"]
    assert "sys.modules['effcourse.checks.asserts']" in rows["fake_module"]["notes"]
    assert "torch.Tensor.__eq__" in rows["tensor_eq"]["notes"]
    assert "builtins.isinstance" in rows["builtins"]["notes"]
    assert "test_double rebound" in rows["in_function"]["notes"]
    assert "guard stopped reporting" in rows["guard_off"]["notes"]


@pytest.mark.parametrize("student", ["thief", "thief_after_answer"])
def test_the_answer_cannot_be_stolen(graded, student):
    row = graded["rows"][student]
    assert row["test_double"] == "0", row
    assert _output(graded, student, "THEFT found:") == "[]"


def test_the_kernel_sees_only_what_it_must(graded):
    report = json.loads(_output(graded, "spy", "SPY "))
    assert not report["course_visible"] and not report["other_grading_files"], report
    assert not report["solutions_visible"], report
    assert not report["wrote_outside"] and not report["cwd_writable"], report
    assert report["network"].startswith("blocked"), report
    assert report["pids"] <= 3, report                               # its own pid namespace
    if os.geteuid() == 0:
        assert report["uid"] == sandbox.NOBODY, report               # root drops to nobody
    # of your home, only what the Python installation needs (e.g. ~/.pyenv when Python lives there)
    home = Path.home()
    needed = {r.relative_to(home).parts[0] for r in sandbox.python_roots() if home in r.parents}
    assert set(report["home_entries"]) <= needed, (report["home_entries"], needed)
    assert not (graded["tmp"] / "pwned.txt").exists()
    assert graded["rows"]["spy"]["test_double"] == "10"
    # the system folders stay readable after the drop to nobody: fontconfig (matplotlib runs
    # fc-list) finds its config and prints no "Fontconfig error" into the learner's cells
    if Path("/etc/fonts/fonts.conf").exists():
        assert report["etc_readable"], report
    if shutil.which("fc-list"):
        assert report["fc_list_stderr"] == "", report


def test_without_the_sandbox_the_thief_succeeds(tmp_path):
    """The theft test can fail: with ``sandbox=False`` the same thief finds the instructor's source
    notebook (the grader's private copy next to the student's folder) and scores full marks."""
    course = make_course(tmp_path / "course")
    grading.release([LAB], course)
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    (tmp_path / "subs" / "thief").mkdir(parents=True)
    nbformat.write(_submission(release, THEFT % {"root": str(course), "repo": str(ROOT)}),
                   tmp_path / "subs" / "thief" / f"{LAB}.ipynb")
    run = grading.autograde(LAB, tmp_path / "subs", out=tmp_path / "out", root=course, timeout=60, memory_gb=4,
                            student_timeout=300, sandbox=False)
    assert not run.sandboxed
    assert _rows(run.csv)["thief"]["test_double"] == "10"
