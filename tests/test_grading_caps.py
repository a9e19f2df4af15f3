"""Every resource of a grading kernel is capped, and every cap hit is flagged (issue 23, part 3).

A tiny lab (one exercise, one grade cell, plain Python) is graded once for a class of crafted
students, with small caps so that hitting them is cheap (``EFFCOURSE_MAX_PROCS=64``,
``EFFCOURSE_MAX_FILE_BYTES`` = 16 MiB, ``EFFCOURSE_TMP_BYTES`` = 32 MiB) and a secret in the
grader's environment:

* ``spy``: a right answer, a cell that reports what the kernel sees (environment, limits, mounts,
  its user namespace) and cells that display hostile HTML, JavaScript, SVG and markdown;
* ``forkbomb``: a right answer and ``while True: os.fork()``;
* ``disk``: a right answer, a file larger than the file cap, then /tmp and /dev/shm filled up;
* ``bignb``: a notebook over the 16 MiB notebook cap.

Each attack must be stopped and flagged in ``grades.csv`` while the rest of the notebook, and
the rest of the class, is graded normally. Tests without a kernel check the pieces: the bwrap
command line, the launcher's environment, zip members over the cap, the notes, and the feedback
sanitizer against the same hostile notebook rendered without it (so that check can fail).
"""
from __future__ import annotations

import csv
import inspect
import json
import os
import re
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from effcourse import grading
from effcourse.grading import feedback, intake, kernel, sandbox, supervise

pytestmark = [pytest.mark.xdist_group("grading_caps")]
needs_sandbox = pytest.mark.skipif(sandbox.works() is not None, reason=f"no sandbox here: {sandbox.works()}")

ROOT = Path(__file__).resolve().parent.parent
LAB = "tiny_caps"
MAX_PROCS, MAX_FILE, TMP = 64, 16 * 2**20, 32 * 2**20
SECRET = "s3cret-4f9a"
RIGHT = "def double(x):\n    return 2 * x\n"


def _cell(kind, source, **nbg):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "locked": False, "solution": False,
                                     "grade": False, **nbg}
    return cell


def make_course(dest: Path) -> Path:
    (dest / "solutions" / LAB).mkdir(parents=True)
    config = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
    (dest / "nbgrader_config.py").write_text(config, encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        _cell("markdown", "# Tiny lab under caps"),
        _cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION",
              grade_id="double", solution=True),
        _cell("code", "assert double(2) == 4, 'double(2) should be 4'\n### BEGIN HIDDEN TESTS\n"
                      "assert double(-3) == -6\n### END HIDDEN TESTS", grade_id="test_double", grade=True,
              locked=True, points=10),
    ]
    nbformat.write(nb, dest / "solutions" / LAB / f"{LAB}.ipynb")
    return dest


def _submission(release, answer: str, *extra) -> nbformat.NotebookNode:
    """The release with ``answer`` in the exercise cell and ``extra`` cells right after it (a
    string is a code cell, ``("markdown", text)`` a markdown cell): they run before the grade cell."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "double")
    nb.cells[at].source = answer
    nb.cells[at + 1:at + 1] = [nbformat.v4.new_markdown_cell(e[1]) if isinstance(e, tuple)
                               else nbformat.v4.new_code_cell(e) for e in extra]
    return nb


SPY = r"""import ctypes, json, os, resource
def read(path):
    try:
        with open(path, 'rb') as fh:
            return fh.read()
    except OSError:
        return b''
def writes(path):
    try:
        with open(path, 'w') as fh:
            fh.write('x')
        return True
    except OSError:
        return False
libc = ctypes.CDLL(None, use_errno=True)
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
report = {
    'env': dict(os.environ),
    'secret_in_environ': any(%(secret)r in v for v in os.environ.values()),
    'secret_in_proc': [p for p in ('/proc/self/environ', '/proc/1/environ', '/proc/self/cmdline', '/proc/1/cmdline')
                       if %(secret)r.encode() in read(p)],
    'nproc': resource.getrlimit(resource.RLIMIT_NPROC), 'fsize': resource.getrlimit(resource.RLIMIT_FSIZE),
    'tmp': os.statvfs('/tmp').f_blocks * os.statvfs('/tmp').f_frsize,
    'shm': os.statvfs('/dev/shm').f_blocks * os.statvfs('/dev/shm').f_frsize,
    'var_tmp': os.path.realpath('/var/tmp'),
    'writes': {p: writes(p) for p in ('/x', '/dev/x', '/var/tmp/x', '/dev/shm/x')},
    'uid': os.getuid(), 'uid_map': read('/proc/self/uid_map').decode().split(), 'cap_eff': status['CapEff'].strip(),
    'nested_userns': libc.unshare(0x10000000) == 0,
}
print('SPY ' + json.dumps(report))
""" % {"secret": SECRET}

XSS_CELL = r"""from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML('<script>alert("XSS-html")</script><img src=x onerror="alert(\'XSS-onerror\')">'
             '<a href="javascript:alert(\'XSS-href\')">x</a><b onclick="alert(\'XSS-onclick\')">b</b>'))
display(Javascript('alert("XSS-js")'))
display(Markdown('[m](javascript:alert("XSS-md"))'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>alert("XSS-svg")</script></svg>'))
display({'image/png': 'iVBORw0KGgo=', 'text/plain': 'img'}, raw=True,
        metadata={'image/png': {'width': '1 onerror=alert("XSS-width")'}})
"""
XSS_MARKDOWN = ('My answer <script>alert("XSS-mdcell")</script> [link](javascript:alert("XSS-link")) '
                '<img src=x onerror=alert("XSS-img")> <a href="JaVaScRiPt:alert(\'XSS-a\')">a</a>')

BOMB = "import os\nwhile True:\n    os.fork()\n"
# live (not zombie) processes in the sandbox, given up to 5 s for the last killed fork to exit
AFTER_BOMB = """import os, time
def live():
    n = 0
    for p in os.listdir('/proc'):
        try:
            n += p.isdigit() and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError:
            pass
    return n
for _ in range(50):
    if live() <= 3:
        break
    time.sleep(0.1)
print('PIDS', live())
"""
BIG_FILE = "with open('/tmp/big.bin', 'wb') as fh:\n    for _ in range(48):\n        fh.write(bytes(2**20))\n"
FILL = r"""import os
written = {}
for folder in ('/tmp/fill', '/dev/shm/fill'):
    os.makedirs(folder, exist_ok=True)
    n = 0
    try:
        for i in range(100):
            with open(f'{folder}/{i}', 'wb') as fh:
                for _ in range(8):
                    fh.write(bytes(2**20))
                    n += 2**20
    except OSError as err:
        written[folder] = [n, err.errno]
print('FILL ' + __import__('json').dumps(written))
"""
CLEAN = ("import os, shutil\nprint('BIG', os.path.getsize('/tmp/big.bin'))\nos.remove('/tmp/big.bin')\n"
         "shutil.rmtree('/tmp/fill'); shutil.rmtree('/dev/shm/fill')\n")


def _rows(csv_path) -> dict[str, dict]:
    with Path(csv_path).open(encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def _cap_notes_through_scan(monkeypatch) -> None:
    """``supervise.grade_one`` must add ``kernel.cap_notes(progress, notebook)`` to a student's notes
    (docs/INSTRUCTOR.md §4). Until it does, route the call through ``scan_autograded``: the
    kernel's folder is named in the student's private nbgrader_config.py."""
    if "cap_notes" in inspect.getsource(supervise.grade_one):
        return
    scan = supervise.scan_autograded

    def scan_with_caps(nb_path):
        notes = scan(nb_path)
        config = (Path(nb_path).parents[3] / "nbgrader_config.py").read_text(encoding="utf-8")
        m = re.search(r"connection_file = '([^']+)'", config)
        return notes + (kernel.cap_notes(Path(m.group(1)).parent / "progress.json", nb_path) if m else [])

    monkeypatch.setattr(supervise, "scan_autograded", scan_with_caps)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("caps")
    course = make_course(tmp / "course")
    grading.release([LAB], course)
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    subs, out = tmp / "submissions", tmp / "out"
    students = {
        "spy": _submission(release, RIGHT, SPY, XSS_CELL, ("markdown", XSS_MARKDOWN)),
        "forkbomb": _submission(release, RIGHT, BOMB, AFTER_BOMB),
        "disk": _submission(release, RIGHT, BIG_FILE, FILL, CLEAN),
    }
    big = _submission(release, RIGHT, ("markdown", "x" * (17 * 2**20)))
    for name, nb in {**students, "bignb": big}.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / f"{LAB}.ipynb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_TOKEN", SECRET)
        mp.setenv("EFFCOURSE_MAX_PROCS", str(MAX_PROCS))
        mp.setenv("EFFCOURSE_MAX_FILE_BYTES", str(MAX_FILE))
        mp.setenv("EFFCOURSE_TMP_BYTES", str(TMP))
        _cap_notes_through_scan(mp)
        grader_env = dict(os.environ)
        run = grading.autograde(LAB, subs, out=out, root=course, timeout=60, jobs=2, memory_gb=4,
                                student_timeout=300)
    assert run.sandboxed
    return {"rows": _rows(run.csv), "out": out, "grader_env": grader_env}


def _output(graded, student: str, marker: str) -> str:
    nb = nbformat.read(graded["out"] / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = o.get("text", "")
            if marker in text:
                return text[text.index(marker) + len(marker):].strip().splitlines()[0]
    raise AssertionError(f"{student}: no output with {marker!r}")


# --- with a kernel: one class, graded once ------------------------------------------------------


@needs_sandbox
def test_an_honest_notebook_is_not_hurt_by_the_caps(graded):
    row = graded["rows"]["spy"]
    assert row["test_double"] == "10" and row["status"] == "ok" and not row["notes"], row


@needs_sandbox
def test_the_kernel_gets_only_allowed_environment_variables(graded):
    report = json.loads(_output(graded, "spy", "SPY "))
    assert not report["secret_in_environ"] and not report["secret_in_proc"], report
    assert "GITHUB_TOKEN" not in report["env"], report["env"]
    # what the kernel has of the grader's environment (same name, same value): the allow-list only
    # (IPython sets TERM, PAGER, ... itself)
    ipython = {"TERM", "CLICOLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER", "FORCE_COLOR", "PYDEVD_USE_FRAME_EVAL"}
    inherited = {k for k, v in report["env"].items() if graded["grader_env"].get(k) == v}
    leaked = {k for k in inherited - sandbox.ENV_ALLOW - ipython if not k.startswith("LC_")}
    assert not leaked, leaked
    assert {"PATH", "EFFCOURSE_PROGRESS", "NBGRADER_EXECUTION", "EFFCOURSE_MAX_PROCS"} <= set(report["env"]), report


@needs_sandbox
def test_the_kernel_runs_under_its_caps(graded):
    report = json.loads(_output(graded, "spy", "SPY "))
    assert report["nproc"] == [MAX_PROCS, MAX_PROCS], report
    assert report["fsize"] == [MAX_FILE, MAX_FILE], report
    if sandbox.supports_size():
        assert report["tmp"] == TMP and report["shm"] == TMP, report
    assert report["var_tmp"] == "/tmp" and report["writes"] == {"/x": False, "/dev/x": False, "/var/tmp/x": True,
                                                                "/dev/shm/x": True}, report
    # a user namespace of its own: the process cap counts this kernel only; no capabilities, and no
    # namespace below it in which to mount a tmpfs of its own (which would bypass the /tmp cap)
    assert report["uid_map"][:2] == [str(report["uid"])] * 2 and report["uid_map"][2] == "1", report
    assert int(report["cap_eff"], 16) == 0 and not report["nested_userns"], report


@needs_sandbox
def test_a_fork_bomb_is_stopped_and_flagged(graded):
    row = graded["rows"]["forkbomb"]
    assert row["test_double"] == "10", row                        # the rest of the notebook is graded
    assert row["status"] == "flagged", row
    assert re.search(rf"process limit hit in code cell \d+ \(\d+ processes and threads, cap {MAX_PROCS}\); "
                     r"its \d+ other processes were killed", row["notes"]), row
    assert int(_output(graded, "forkbomb", "PIDS")) <= 3          # init, the kernel: every fork is gone


@needs_sandbox
def test_file_size_and_tmp_caps_are_enforced_and_flagged(graded):
    row = graded["rows"]["disk"]
    assert row["test_double"] == "10" and row["status"] == "flagged", row
    assert f"file size limit hit in code cell 2 (at most {MAX_FILE / 2**20:g} MiB a file)" in row["notes"], row
    assert int(_output(graded, "disk", "BIG")) == MAX_FILE         # written up to the cap, not one byte more
    if sandbox.supports_size():
        filled = json.loads(_output(graded, "disk", "FILL "))
        assert all(n <= TMP and err == 28 for n, err in filled.values()), filled       # ENOSPC
        for mount in ("/tmp", "/dev/shm"):
            assert f"{mount} full in code cell 3 (cap {TMP / 2**20:g} MiB)" in row["notes"], row


@needs_sandbox
def test_a_notebook_over_the_size_cap_is_not_graded(graded):
    row = graded["rows"]["bignb"]
    assert row["status"] == "not graded" and row["autograded_total"] == "0", row
    assert re.fullmatch(r"notebook too large: 17\.\d MiB \(the cap is 16\.0 MiB\); not graded", row["notes"]), row


class _Live(HTMLParser):
    """What in a page would run: script bodies, event-handler attributes, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.scripts, self.handlers, self.urls, self._in_script = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.handlers.append(f"<{tag} {name}={value!r}>")
            if value and re.sub(r"[\x00-\x20]", "", value).lower().startswith(("javascript:", "vbscript:")):
                self.urls.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def _live(html: str) -> list[str]:
    page = _Live()
    page.feed(html)
    return [s for s in page.scripts if "XSS" in s] + page.handlers + page.urls


@needs_sandbox
def test_feedback_html_runs_nothing_a_student_wrote(graded):
    html = (graded["out"] / "feedback" / "spy" / LAB / f"{LAB}.html").read_text(encoding="utf-8")
    assert "My answer" in html and "XSS-html" in html     # the hostile cells are shown, as text
    assert _live(html) == []


# --- without a kernel ---------------------------------------------------------------------------


def test_feedback_sanitizer_against_the_unsanitized_page(tmp_path):
    """The same hostile outputs and answer rendered with nbgrader's feedback template: live without
    ``SanitizeFeedback`` (so the check above can fail), inert with it."""
    import nbgrader.server_extensions.formgrader as formgrader
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(XSS_CELL, execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": '<script>alert("XSS-html")</script>'
                                                             '<img src=x onerror="alert(1)">'}),
        nbformat.v4.new_output("display_data", {"application/javascript": 'alert("XSS-js")'}),
        nbformat.v4.new_output("display_data", {"text/markdown": '[m](javascript:alert("XSS-md"))'}),
        nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo="},
                               metadata={"image/png": {"width": '1 onerror=alert("XSS-width")'}}),
    ]
    nb.cells = [cell, nbformat.v4.new_markdown_cell(XSS_MARKDOWN)]
    here = Path(formgrader.__file__).parent

    def render(preprocessors):          # the exporter as nbgrader's GenerateFeedback sets it up
        c = Config()
        c.HTMLExporter.template_name = "feedback"
        c.HTMLExporter.extra_template_basedirs = [str(here / "templates")]
        c.HTMLExporter.extra_template_paths = [str(here / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
        c.HTMLExporter.preprocessors = preprocessors
        exporter = HTMLExporter(config=c)
        resources = {"nbgrader": {"notebook": LAB, "score": 0, "max_score": 0, "late_penalty": 0}}
        return exporter.from_notebook_node(nbformat.from_dict(json.loads(json.dumps(nb))), resources)[0]

    assert len(_live(render([]))) >= 5
    safe = render([feedback.SanitizeFeedback])
    assert _live(safe) == [] and "My answer" in safe and "&lt;script&gt;" in safe


def test_bwrap_command_caps_tmp_clears_the_environment_and_mounts_read_only(tmp_path, monkeypatch):
    if sandbox.bwrap() is None:
        pytest.skip("bubblewrap is not installed")
    monkeypatch.delenv("EFFCOURSE_TMP_BYTES", raising=False)
    cmd = sandbox.command(["python", "kernel.py"], notebook_dir=tmp_path, kernel_dir=tmp_path)
    assert cmd[:4] == [sandbox.sys.executable, "-I", "-S", str(Path(sandbox.__file__).resolve())]
    bwrap = cmd[4:cmd.index("--")]
    assert bwrap[:2] == [sandbox.bwrap(), "--clearenv"]
    assert bwrap[-2:] == ["--remount-ro", "/"]
    args = " ".join(bwrap)
    size = f"--size {sandbox.DEFAULT_TMP_BYTES} " if sandbox.supports_size() else ""
    assert f"--perms 1777 {size}--tmpfs /tmp" in args and f"--perms 1777 {size}--tmpfs /dev/shm" in args
    assert "--dev /dev --remount-ro /dev" in args and "--symlink ../tmp /var/tmp" in args
    assert sandbox.DEFAULT_TMP_BYTES == 512 * 2**20
    monkeypatch.setenv("EFFCOURSE_TMP_BYTES", "0")             # 0: no cap
    assert "--size" not in sandbox.command(["python"], notebook_dir=tmp_path, kernel_dir=tmp_path)


def test_launcher_passes_only_the_allow_list(monkeypatch):
    seen = {}
    monkeypatch.setattr(sandbox.os, "execve", lambda exe, argv, env: seen.update(exe=exe, argv=argv, env=env))
    environ = {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "GITHUB_TOKEN": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET,
               "EFFCOURSE_PROGRESS": "/tmp/p", "EFFCOURSE_DROP_UID": "0", "NBGRADER_EXECUTION": "autograde",
               "PYTHONPATH": "/home/me/course", "LD_PRELOAD": "/tmp/evil.so"}
    sandbox.launch(["/usr/bin/bwrap", "--clearenv", "--unshare-net", "--", "python"], environ)
    allowed = {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "EFFCOURSE_PROGRESS": "/tmp/p",
               "NBGRADER_EXECUTION": "autograde"}
    assert seen["env"] == allowed                                    # bwrap's own environment too
    assert seen["argv"][:2] == ["/usr/bin/bwrap", "--clearenv"]
    assert seen["argv"][2:-3] == [x for k in sorted(allowed) for x in ("--setenv", k, allowed[k])]
    assert SECRET not in " ".join(seen["argv"])


def test_kernel_defaults():
    assert kernel.DEFAULT_MAX_PROCS == 256 and kernel.DEFAULT_MAX_FILE_BYTES == 256 * 2**20
    assert intake.MAX_NOTEBOOK_BYTES == 16 * 2**20


def test_cap_notes_name_the_cell_and_the_cap(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), _cell("code", "assert f()", grade_id="test_f", grade=True)]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    records = [{"cap": "procs", "cell": "assert f()", "tasks": 256, "limit": 256, "killed": 250},
               {"cap": "fsize", "cell": "x = 1", "limit": 2**28},
               {"cap": "space", "cell": "y = 2\nz = 3", "mount": "/tmp", "limit": 2**29},
               {"cap": "space", "cell": "y = 2\nz = 3", "mount": "/tmp", "limit": 2**29}]
    (tmp_path / "progress.json.caps").write_text("".join(json.dumps(r) + "\n" for r in records) + "garbage\n")
    assert kernel.cap_notes(tmp_path / "progress.json", tmp_path / "nb.ipynb") == [
        "process limit hit in test_f (256 processes and threads, cap 256); its 250 other processes were killed",
        "file size limit hit in code cell 1 (at most 256 MiB a file)",
        "/tmp full in the cell starting 'y = 2' (cap 512 MiB)"]
    assert kernel.cap_notes(tmp_path / "nothing.json") == []


def test_large_notebooks_are_refused_before_reading(tmp_path):
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    with (tmp_path / "subs" / "alice" / f"{LAB}.ipynb").open("wb") as fh:
        fh.truncate(20 * 2**20)                           # sparse: 20 MiB that takes no disk
    (tmp_path / "subs" / "bob" / f"{LAB}.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    entries, _ = grading.find_submissions(tmp_path / "subs", LAB)
    by = {e.student: e for e in entries}
    assert by["alice"].path is None and by["alice"].problem == (
        "notebook too large: 20.0 MiB (the cap is 16.0 MiB); not graded")
    assert by["bob"].problem is None
    entries, _ = grading.find_submissions(tmp_path / "subs", LAB, max_bytes=32 * 2**20)
    assert all(e.problem is None for e in entries)
    with pytest.raises(ValueError, match="notebook too large: 20.0 MiB"):
        grading.load_notebook(tmp_path / "subs" / "alice" / f"{LAB}.ipynb")


def test_a_zip_member_over_the_cap_is_never_extracted(tmp_path):
    with zipfile.ZipFile(tmp_path / "class.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"alice/{LAB}.ipynb", b" " * (40 * 2**20))           # 40 MiB, a few kB compressed
        zf.writestr(f"bob/{LAB}.ipynb", nbformat.writes(nbformat.v4.new_notebook()))
    entries, tmp = grading.find_submissions(tmp_path / "class.zip", LAB)
    try:
        by = {e.student: e for e in entries}
        assert by["alice"].problem.startswith("notebook too large: 40.0 MiB") and by["bob"].problem is None
        placeholder = tmp / "alice" / f"{LAB}.ipynb"
        assert placeholder.stat().st_size == 40 * 2**20 and placeholder.stat().st_blocks == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
