"""Hostile students against the judge: no code in a solution cell can forge a grade.

Lab 1 is graded once (``effcourse autograde``, sandbox on) for a class of crafted students. Each
attacker submits a *wrong* ``temporal_shift`` (it returns ``x.clone()``) plus an attack that tries
to make the 22-point ``test_temporal_shift`` pass anyway: a tensor subclass or a torch function
mode that answers every comparison with success, patched type dicts, a swapped module class,
IPython hooks and input transformers, the displayhook, error clearing, trace and profile
functions, theft of the reference from frames, history and linecache, a forged conversation with
the judge's socket. The judge runs the hidden tests in the grading process, where none of this
code runs, so every attack must score 0 on its target — while an honest solution in the same class
keeps 75/75 (so these tests can fail) and each attacker keeps the points of the exercises it
answered honestly. Also: an untouched release plus a four-line cell scores 0, and the feedback
a student receives holds no line of the hidden tests.
"""
from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import nbformat
import pytest

import harness
from effcourse import grading
from effcourse.grading import sandbox

pytestmark = [pytest.mark.xdist_group("judge_attacks"),
              pytest.mark.skipif(sandbox.works() is not None, reason=f"no sandbox here: {sandbox.works()}")]

LAB = "lab1_temporal_shift"
TARGET = "test_temporal_shift"
WRONG = "def temporal_shift(x, n_segment, fold_div=8):\n    return x.clone()\n"

# each attack: source appended to the wrong answer's cell (it runs before every grade cell)
ATTACKS = {
    "tensor_subclass": WRONG.replace("return x.clone()", "return Liar(x.clone())") + textwrap.dedent("""
        import torch
        class Liar(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                name = getattr(func, '__name__', '')
                if name in ('equal', 'allclose'):
                    return True
                if name == 'isclose':
                    return torch.ones(args[0].shape, dtype=torch.bool)
                return super().__torch_function__(func, types, args, kwargs or {})
        """),
    "function_mode_left_open": WRONG + textwrap.dedent("""
        import torch
        from torch.overrides import TorchFunctionMode
        class Yes(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, '__name__', '')
                if name in ('equal', 'allclose'):
                    return True
                if name == 'isclose':
                    return torch.ones(args[0].shape, dtype=torch.bool)
                return func(*args, **(kwargs or {}))
        Yes().__enter__()
        """),
    "type_dict_patch": WRONG + textwrap.dedent("""
        import gc, torch
        d = gc.get_referents(torch._C.TensorBase.__dict__)[0]
        d['any'] = lambda self, *a, **k: torch.tensor(False)
        d['sum'] = lambda self, *a, **k: torch.tensor(0)
        """),
    "module_class_swap": WRONG + textwrap.dedent("""
        import sys, types
        class Yes(types.ModuleType):
            def __getattribute__(self, name):
                if name.startswith('assert') or name == 'call':
                    return (lambda *a, **k: a[2](*a[3:], **k) if name == 'call' else None)
                return super().__getattribute__(name)
        sys.modules['effcourse.checks.asserts'].__class__ = Yes
        """),
    "hooks_patch_then_unpatch": WRONG + textwrap.dedent("""
        import torch, effcourse.checks.asserts as A
        ip = get_ipython()
        saved = {}
        def patch(*_):
            saved.update(equal=torch.equal, close=A.assert_close)
            torch.equal = lambda *a: True
            A.assert_close = lambda *a, **k: None
        def unpatch(*_):
            if saved:
                torch.equal, A.assert_close = saved['equal'], saved['close']
        ip.events.register('pre_run_cell', patch)
        ip.events.callbacks['post_run_cell'].insert(0, unpatch)
        """),
    "input_transformer_pass": WRONG + textwrap.dedent("""
        ip = get_ipython()
        ip.input_transformers_post.append(
            lambda lines: ['pass\\n'] if any('answer' in l or 'check' in l for l in lines) else lines)
        """),
    "clear_errors_after_cells": WRONG + textwrap.dedent("""
        ip = get_ipython()
        def forget(result):
            result.error_in_exec = None
            ip.showtraceback = lambda *a, **k: None
        ip.events.register('post_run_cell', forget)
        ip.showtraceback = lambda *a, **k: None
        """),
    "displayhook_full_marks": WRONG + textwrap.dedent("""
        ip = get_ipython()
        ip.events.register('pre_run_cell', lambda *_: ip.displayhook(22.0))
        """),
    "settrace_rebinds_names": WRONG + textwrap.dedent("""
        import sys, torch
        def tracer(frame, event, arg):
            g = frame.f_globals
            if 'assert_close' in g:
                g['assert_close'] = lambda *a, **k: None
                g['assert_true'] = lambda *a, **k: None
            return tracer
        sys.settrace(tracer)
        import threading; threading.settrace(tracer)
        """),
    "setprofile_unpatches_for_guard": WRONG + textwrap.dedent("""
        import sys, torch
        real = torch.equal
        def prof(frame, event, arg):
            torch.equal = real if 'guard' in frame.f_code.co_filename else (lambda *a: True)
        sys.setprofile(prof)
        """),
    "steals_the_reference": textwrap.dedent("""
        import gc, linecache, sys, torch
        stolen = []
        def _find():
            f = sys._getframe(1)
            while f is not None:
                for ns in (f.f_locals, f.f_globals):
                    for k, v in list(ns.items()):
                        if k in ('_ref_shift', '_ref_past') and callable(v):
                            return v
                f = f.f_back
            for o in gc.get_objects():
                if callable(o) and getattr(o, '__name__', '') == '_ref_shift':
                    return o
            src = '\\n'.join(''.join(linecache.getlines(n)) for n in list(linecache.cache)) + '\\n'.join(
                str(c) for c in get_ipython().user_ns.get('In', []))
            if 'def _ref_shift' in src:
                stolen.append('source')
            return None
        def temporal_shift(x, n_segment, fold_div=8):
            ref = _find()
            if ref is not None:
                stolen.append(getattr(ref, '__name__', '?'))
                return ref(x, n_segment, fold_div)
            return x.clone()
        """),
    "prints_history_into_feedback": WRONG.replace("    return x.clone()", textwrap.dedent("""\
            import sys
            ip = get_ipython()
            print('LEAK In:', ip.user_ns.get('In', [])[-1:])
            f = sys._getframe(1)
            while f is not None:
                print('LEAK frame:', f.f_code.co_filename, sorted(f.f_globals)[:40])
                f = f.f_back
            return x.clone()""").replace("\n", "\n    ")),
    "forges_the_judges_socket": WRONG + textwrap.dedent("""
        import json, os, socket, struct
        def _send(s, head):
            b = json.dumps({**head, 'blobs': []}).encode()
            s.sendall(struct.pack('<Q', len(b)) + b)
        def _recv(s):
            n = struct.unpack('<Q', s.recv(8, socket.MSG_WAITALL))[0]
            head = json.loads(s.recv(n, socket.MSG_WAITALL))
            for k in head.get('blobs', []):
                s.recv(k, socket.MSG_WAITALL)
            return head
        path = os.environ.get('EFFCOURSE_JUDGE_SOCKET')
        if path:
            s = socket.socket(socket.AF_UNIX); s.connect(path)
            _send(s, {'op': 'hello', 'cell': 'test_temporal_shift'})
            for _ in range(200):
                head = _recv(s)
                if head.get('op') == 'done':
                    break
                _send(s, {'ok': True, 'gid': None, 'changed': [], 'generators': []})
            s.close()
        """),
    "garbage_to_the_judge": WRONG + textwrap.dedent("""
        import os, socket, struct
        path = os.environ.get('EFFCOURSE_JUDGE_SOCKET')
        if path:
            for cell in ('test_temporal_shift', 'nonexistent'):
                s = socket.socket(socket.AF_UNIX); s.connect(path)
                s.sendall(struct.pack('<Q', 2**40) + b'{')
                s.close()
        """),
    "exits_when_judged": WRONG.replace("return x.clone()", "import os; os._exit(0)"),
    "floods_stdout": WRONG + "print('x' * (1 << 21))\n",
}
# attacks that stop the kernel from answering any later grade cell honestly: they lose the rest too
LOSES_EVERYTHING = {"input_transformer_pass"}
# the four-line cell, appended to an untouched release
FOUR_LINES = textwrap.dedent("""\
    ip = get_ipython()
    ip.input_transformers_post.append(lambda lines: ['pass\\n'] if any('answer' in l for l in lines) else lines)
    ip.events.register('pre_run_cell', lambda *_: ip.displayhook(1.0))
    ip.events.register('post_run_cell', lambda r: setattr(r, 'error_in_exec', None))
    """)
# lines of Lab 1's hidden tests that no student writes (an attacker may well write "_ref_shift")
HIDDEN_MARKERS = ("A loop over frames: the definition", "BEGIN HIDDEN", "_g = torch.Generator().manual_seed(_seed)",
                  "(4, 5, 7, 2, 3, 3)")


def _without_experiments(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission without its ``experiment`` cells (a student may delete any cell that is not
    nbgrader's): the class is graded on its exercises only, which keeps this suite cheap."""
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if "experiment" not in c.metadata.get("tags", [])]
    return nb


def _insert_after(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell(source))
            return nb
    raise KeyError(grade_id)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judge_attacks")
    solution = harness.strip_solution_markers(nbformat.read(harness.solution_path(LAB), as_version=4))
    release = nbformat.read(harness.release_path(LAB), as_version=4)
    students = {"honest": solution, "wrong": harness.replace_solution(solution, "temporal_shift", WRONG),
                "untouched_plus_four_lines": _insert_after(release, "temporal_shift", FOUR_LINES)}
    for name, src in ATTACKS.items():
        students[name] = harness.replace_solution(solution, "temporal_shift", src)
    subs = tmp / "submissions"
    for name, nb in students.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(_without_experiments(nb), subs / name / f"{LAB}.ipynb")
    run = grading.autograde(LAB, subs, out=tmp / "out", root=harness.ROOT, jobs=2)
    with Path(run.csv).open(encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    maxima = grading.max_scores(tmp / "out", LAB)
    auto = {g: pts for g, (pts, is_auto) in maxima.items() if is_auto}
    return {"rows": rows, "out": tmp / "out", "auto": auto}


def _score(row: dict, g: str) -> float:
    return float(row[g] or 0)


def test_an_honest_solution_keeps_full_marks(graded):
    row = graded["rows"]["honest"]
    assert all(_score(row, g) == pts for g, pts in graded["auto"].items()), row
    assert row["status"] == "ok", row


def test_a_plainly_wrong_answer_loses_its_cells_only(graded):
    row = graded["rows"]["wrong"]                  # no shift, and no validation either
    assert _score(row, TARGET) == 0 and _score(row, "test_temporal_shift_errors") == 0, row
    assert all(_score(row, g) == pts for g, pts in graded["auto"].items()
               if g not in (TARGET, "test_temporal_shift_errors")), row


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_attack_earns_nothing(graded, attack):
    row = graded["rows"][attack]
    assert _score(row, TARGET) == 0, f"{attack} forged {row[TARGET]} points on {TARGET}: {row}"


@pytest.mark.parametrize("attack", sorted(set(ATTACKS) - LOSES_EVERYTHING - {"exits_when_judged"}))
def test_the_attacker_keeps_the_points_of_its_honest_answers(graded, attack):
    """The judge judges the functions: an attack on one cell costs the attacker nothing elsewhere,
    so a zero above is the judge's verdict on the wrong shift, not collateral damage."""
    row = graded["rows"][attack]
    kept = {g: _score(row, g) for g in graded["auto"] if g not in (TARGET, "test_temporal_shift_errors",
                                                                     "test_ResidualShift")}
    assert all(v == graded["auto"][g] for g, v in kept.items()), (attack, row)


def test_an_untouched_release_with_four_lines_scores_nothing(graded):
    row = graded["rows"]["untouched_plus_four_lines"]
    assert all(_score(row, g) == 0 for g in graded["auto"]), row
    assert "never reached the judge" in row["notes"], row


def test_a_kernel_that_dies_when_judged_scores_nothing_there_and_is_flagged(graded):
    row = graded["rows"]["exits_when_judged"]
    assert _score(row, TARGET) == 0 and row["status"] != "ok", row
    assert "killed the kernel" in row["notes"], row


def test_flooding_stdout_is_capped_and_flagged(graded):
    row = graded["rows"]["floods_stdout"]
    assert "output cap hit" in row["notes"] and row["status"] != "ok", row
    nb = graded["out"] / "autograded" / "floods_stdout" / LAB / f"{LAB}.ipynb"
    assert nb.stat().st_size < 3 * 2**20, nb.stat().st_size


@pytest.mark.parametrize("student", ["prints_history_into_feedback", "steals_the_reference", "wrong"])
def test_feedback_holds_no_hidden_test_code(graded, student):
    html = (graded["out"] / "feedback" / student / LAB / f"{LAB}.html").read_text(encoding="utf-8")
    assert "CheckFailed" in html                     # the judge's message is there
    for marker in HIDDEN_MARKERS:
        assert marker not in html, f"{student}'s feedback shows hidden test code: {marker!r}"
    autograded = nbformat.read(graded["out"] / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
    text = "".join(str(o) for c in autograded.cells for o in c.get("outputs", []))
    for marker in HIDDEN_MARKERS:
        assert marker not in text, f"{student}'s kernel saw hidden test code: {marker!r}"
