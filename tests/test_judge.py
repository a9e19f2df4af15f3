"""The judge's mechanism, in one process: plain data on the wire, proxies, autograd across the
boundary, errors, and what a hostile kernel can and cannot do to a verdict.

Each test starts a ``Judge`` (a thread that runs no student code) and plays the kernel's side with
``answer()`` against a namespace of its own, as a graded notebook does.
"""
from __future__ import annotations

import json
import socket
import struct
import threading

import pytest
import torch
from torch import nn

from effcourse.judge import kernel, wire
from effcourse.judge.server import Judge, free_names, judge_code


def judged(code: str, ns: dict, cell: str = "test_x") -> tuple[bool, str]:
    """Run judge ``code`` for one cell against the kernel namespace ``ns``; the verdict."""
    with Judge({cell: code}, timeout=60) as j:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(j.path)
        wire.send(sock, {"op": "hello", "cell": cell}, [])
        kernel._Session(sock, ns).serve()
        sock.close()
        v = j.verdicts[cell]
    return v.passed, v.message


def test_plain_data_round_trips_and_nothing_else_is_built():
    x = torch.randn(3, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    value = {"a": (1, 2.5, None, True), "t": [x, x.to(torch.bfloat16), torch.arange(4)], "d": torch.float16,
             "s": slice(1, None, 2), "g": g, "b": b"\x00\x01"}
    enc = wire.Encoder(lambda v: (_ for _ in ()).throw(TypeError(type(v))))
    got = wire.Decoder(enc.blobs, ref=lambda d: None)(json.loads(json.dumps(enc(value))))
    assert got["a"] == (1, 2.5, None, True) and got["d"] == torch.float16 and got["s"] == slice(1, None, 2)
    assert torch.equal(got["t"][0], x) and torch.equal(got["t"][1], x.to(torch.bfloat16))
    assert torch.equal(got["g"].get_state(), g.get_state()) and got["b"] == b"\x00\x01"
    with pytest.raises(TypeError):
        enc(nn.Linear(2, 2))


@pytest.mark.parametrize("bad", [{"$": "tensor", "dtype": "float32", "shape": [2], "blob": 0},      # 4 bytes for 8
                                 {"$": "tensor", "dtype": "object", "shape": [1], "blob": 0},
                                 {"$": "tensor", "dtype": "float32", "shape": [-1], "blob": 0},
                                 {"$": "pickle", "v": "cos\nsystem\n"}, {"$": "ref", "id": 3}])
def test_malformed_or_foreign_values_are_refused(bad):
    def no_ref(d):
        raise wire.WireError("no refs here")
    with pytest.raises(wire.WireError):
        wire.Decoder([b"\x00" * 4], ref=no_ref)(bad)


def test_an_oversized_header_is_refused_before_it_is_read():
    a, b = socket.socketpair()
    a.sendall(struct.pack("<Q", 2**40))
    with pytest.raises(wire.WireError):
        wire.recv(b)


def test_the_split_runs_imports_and_the_hidden_block_in_the_judge():
    src = ("import torch\nfrom effcourse.checks import lab1\nlab1.check_x(f)\n### BEGIN HIDDEN TESTS\n"
           "y = f(torch.ones(2))\n### END HIDDEN TESTS\n")
    code = judge_code(src)
    assert "import torch" in code and "y = f(" in code and "check_x" not in code
    assert judge_code("check(f)\n") == "check(f)\n"                 # no hidden block: the whole cell
    assert free_names(code) == {"f"}
    # names bound only inside a function may get a proxy too: harmless, the local shadows it
    names = free_names("def h(a):\n    return a + g\nh(1)\nfor i in range(2): k = i\n")
    assert "g" in names and not names & {"h", "i", "k", "range"}


def test_calls_attributes_iteration_and_gradients_cross_the_boundary():
    def shift(x, k):
        return torch.roll(x, k, 0) * 2
    ns = {"shift": shift, "Lin": nn.Linear}
    code = """
import torch
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_true
x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
y = shift(x, 1)
assert_true(y.requires_grad, "the output carries the graph")
(y * torch.arange(15.0, dtype=torch.float64).view(5, 3)).sum().backward()
weights = torch.arange(15.0, dtype=torch.float64).view(5, 3)
assert_close("grad through the kernel", x.grad, 2 * torch.roll(weights, -1, 0))
lin = torch.nn.Linear(3, 2)
yours = judge.twin(lin, "torch.nn.Linear", 3, 2)
out = yours(torch.ones(4, 3))
out.sum().backward()
assert_close("a built module's forward", out.detach(), lin(torch.ones(4, 3)).detach())
assert_close("its weight's grad, fetched", judge.get(yours, "weight.grad"), torch.full((2, 3), 4.0))
assert_true(sum(p.numel() for p in yours.parameters()) == 8, "iteration by value")
assert_true(judge.isinstance_of(yours, "torch.nn.Module"), "isinstance asked in the kernel")
yours.training = False
assert_true(yours.training is False, "setattr then getattr")
m = Lin(2, 2)                                                     # the student's class: a Remote handle
assert_true(tuple(m(torch.ones(1, 2)).shape) == (1, 2), "a handle's call")
"""
    assert judged(code, ns) == (True, "passed")


def test_in_place_changes_and_generators_are_mirrored():
    def bump(x, g):
        x.add_(torch.rand(x.shape, generator=g))
        return None
    code = """
import torch
x = torch.zeros(3)
g = torch.Generator().manual_seed(1)
twin = torch.Generator().manual_seed(1)
bump(x, g)
assert torch.equal(x, torch.rand(3, generator=twin)), "the in-place change is mirrored"
assert torch.equal(g.get_state(), twin.get_state()), "the generator advanced here too"
"""
    assert judged(code, {"bump": bump}) == (True, "passed")


def test_student_errors_keep_their_builtin_class():
    def f(x):
        raise ValueError("bad rank")
    code = """
try:
    f(1)
except ValueError as err:
    assert "bad rank" in str(err)
else:
    raise AssertionError("no error")
"""
    assert judged(code, {"f": f}) == (True, "passed")


def test_a_kernel_that_stops_answering_fails_even_where_an_error_was_expected():
    """``except Exception`` in a test (an expected error) must not swallow a broken kernel."""
    with Judge({"test_x": "try:\n    f(1)\nexcept Exception:\n    pass\n"}, timeout=30) as j:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(j.path)
        wire.send(sock, {"op": "hello", "cell": "test_x"}, [])
        wire.recv(sock)                                          # the judge's first request...
        sock.close()                                             # ...and the kernel vanishes
        for _ in range(100):
            if j.verdicts.get("test_x") and j.verdicts["test_x"].message != "judging was interrupted":
                break
            threading.Event().wait(0.05)
        v = j.verdicts["test_x"]
    assert not v.passed and "stopped answering" in v.message, v


def test_forged_answers_pass_only_when_they_are_right():
    """A kernel that answers with whatever it likes: a wrong value fails, and a value of the wrong
    type (a forged 'True') cannot stand in for a tensor."""
    code = ("import torch\nfrom effcourse.checks.asserts import assert_close\nx = torch.randn(4)\n"
            "assert_close('f(x)', f(x), 2 * x)\n")

    def liar(value):
        with Judge({"test_x": code}, timeout=30) as j:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(j.path)
            wire.send(sock, {"op": "hello", "cell": "test_x"}, [])
            head, blobs = wire.recv(sock)
            x = wire.Decoder(blobs, ref=lambda d: None)(head["args"])[0]
            enc = wire.Encoder(lambda v: None)
            wire.send(sock, {"ok": enc(value(x)), "gid": None, "changed": [], "generators": []}, enc.blobs)
            wire.recv(sock)
            sock.close()
            return j.verdicts["test_x"]

    assert not liar(lambda x: True).passed
    assert not liar(lambda x: x).passed
    assert liar(lambda x: 2 * x).passed                      # the right bytes are the right answer


def test_each_cell_is_judged_once_and_unknown_cells_get_nothing():
    ns = {"f": lambda x: x}
    with Judge({"test_x": "assert f(1) == 1"}, timeout=30) as j:
        for cell in ("test_x", "test_x", "no_such_cell"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(j.path)
            wire.send(sock, {"op": "hello", "cell": cell}, [])
            done = kernel._Session(sock, ns).serve()
            sock.close()
            if cell == "no_such_cell":
                assert not done["passed"]
        assert j.verdicts["test_x"].passed and j.verdicts["test_x"].requests == 1
        assert set(j.verdicts) == {"test_x"}


def test_the_kernel_builds_only_public_torch_and_effcourse_objects():
    for path in ("os.system", "subprocess.run", "torch._C._foo", "effcourse.judge.kernel._Session", "builtins.eval"):
        with pytest.raises(ValueError):
            kernel.resolve(path)
    assert kernel.resolve("torch.nn.Conv2d") is nn.Conv2d
