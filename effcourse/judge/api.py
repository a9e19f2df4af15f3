"""What a hidden test uses to reach the student's kernel; the same code runs in both modes.

*Locally* (papermill, ``nbgrader validate``, a student's own run) a hidden block runs in the
notebook's kernel and these helpers act on local objects. *In the judge* (autograding) the hidden
block runs in the judge process, the student's names are ``Remote`` proxies, and these helpers
send requests to the kernel instead:

* ``build("torch.nn.Conv2d", 4, 6, 3, state=conv.state_dict())`` — an object of a public
  ``torch``/``effcourse`` callable, made in the kernel (to pass into the student's code);
  ``twin(conv, "torch.nn.Conv2d", 4, 6, 3)`` is the same with ``conv``'s weights and mode;
* ``in_kernel("effcourse.checks.lab5.check_speedup", SparseConv2d, ...)`` — run a public probe
  where the student's code lives and get its result by value (what only the kernel can observe);
* ``get(obj, "conv.weight.grad")`` — an attribute path, by value;
* ``isinstance_of(obj, "torch.nn.Module")``, ``type_of(obj)``, ``value("T")`` (a notebook global, by value),
  ``manual_seed(s)`` (seeds torch here and in the kernel).
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Iterator

import torch

_state = threading.local()


def session():
    """The judge session of this thread, or ``None`` when running locally."""
    return getattr(_state, "session", None)


def in_judge() -> bool:
    return session() is not None


@contextlib.contextmanager
def judging(s) -> Iterator[None]:
    old = session()
    _state.session = s
    try:
        yield
    finally:
        _state.session = old


def _local(path: str):
    from .kernel import resolve

    return resolve(path)


def build(path: str, *args, state: dict | None = None, train: bool | None = None, **kwargs) -> Any:
    """An object of the public callable ``path`` (under ``torch`` or ``effcourse``), made where the
    student's code runs; ``state`` is loaded with ``load_state_dict``, ``train`` sets its mode."""
    s = session()
    if s is None:
        obj = _local(path)(*args, **kwargs)
        if state is not None:
            obj.load_state_dict(state)
        if train is not None:
            obj.train(train)
        return obj
    from .remote import Remote

    enc = s.encoder()
    head = {"op": "new", "path": path, "keep": True, "args": enc(list(args)), "kwargs": enc(dict(kwargs)),
            "state": None if state is None else enc(dict(state)), "train": train}
    reply, _ = s.ask(head, enc.blobs)
    ref = reply.get("ref")
    if not isinstance(ref, dict):
        from .remote import JudgeAbort

        raise JudgeAbort("the kernel did not keep the object the judge built")
    return Remote(s, ref=ref)


def twin(module: torch.nn.Module, path: str, *args, **kwargs) -> Any:
    """``build(path, *args, **kwargs)`` with ``module``'s weights and train/eval mode."""
    return build(path, *args, state=module.state_dict(), train=module.training, **kwargs)


def in_kernel(path: str, *args, **kwargs) -> Any:
    """Call the public callable ``path`` where the student's code runs; its result by value.
    What it reports is observed inside the student's kernel: a hostile kernel can forge it."""
    s = session()
    if s is None:
        return _local(path)(*args, **kwargs)
    return s.request({"op": "new", "path": path}, args=list(args), kwargs=dict(kwargs))


def get(obj: Any, path: str) -> Any:
    """``obj.a.b`` for ``path = "a.b"``, fetched by value."""
    s = session()
    from .remote import Remote

    if s is None or not isinstance(obj, Remote):
        return functools.reduce(getattr, path.split("."), obj)
    return s.request({"op": "getattr", "target": obj._judge_ref(), "path": path.split(".")})


def isinstance_of(obj: Any, path: str) -> bool:
    """``isinstance(obj, <the class at path>)``, asked where ``obj`` lives."""
    s = session()
    from .remote import Remote

    if s is None or not isinstance(obj, Remote):
        return isinstance(obj, _local(path))
    return bool(s.request({"op": "isinstance", "target": obj._judge_ref(), "path": [], "cls": path}))


def type_of(obj: Any) -> str:
    """``"module.QualName"`` of ``obj``'s type, asked where ``obj`` lives (one request)."""
    s = session()
    from .remote import Remote

    if s is None or not isinstance(obj, Remote):
        t = type(obj)
        return f"{t.__module__}.{t.__qualname__}"
    return str(s.request({"op": "typeof", "target": obj._judge_ref(), "path": []}))


def value(name: str) -> Any:
    """A global of the student's notebook, by value."""
    s = session()
    if s is None:
        from .kernel import _user_namespace

        return _user_namespace()[name]
    return s.request({"op": "getattr", "target": {"$": "name", "v": name}, "path": []})


def manual_seed(seed: int) -> None:
    """Seed torch's global generator here and, in the judge, in the student's kernel too."""
    torch.manual_seed(seed)
    s = session()
    if s is not None:
        s.request({"op": "seed", "seed": int(seed)})
