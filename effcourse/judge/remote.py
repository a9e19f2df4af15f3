"""The judge's side: proxies for the objects in a student's kernel, and the conversation with it.

``Remote`` stands for something that lives in the kernel — a notebook global (``temporal_shift``),
an object the kernel keeps (the module a student's class returned), or an attribute of one. Using
it sends a request and waits for plain data: calling it returns tensors, numbers and containers
*by value* (anything else comes back as another ``Remote``); ``remote.attr`` fetches an attribute
the same way; ``remote.attr = v`` sets one.

Gradients cross the boundary: when grad mode is on and a tensor argument requires grad, the kernel
keeps the graph, and the returned tensors are joined to the judge's graph by ``_Bridge``, whose
backward sends the judge's output gradients to the kernel and returns the kernel's input gradients.
So ``y = temporal_shift(x, 4); (y * g).sum().backward(); x.grad`` works as it does locally, with
every comparison made here. A tensor argument that the student's code changed in place is
changed here the same way; a ``torch.Generator`` argument advances here as it did there.

Errors: an exception in the student's code comes back as ``StudentError`` (a subclass of the same
built-in class, e.g. ``ValueError``, so ``except ValueError`` works); a kernel that breaks the
protocol, dies or runs out of time raises ``JudgeAbort``, a ``BaseException`` that no test's
``except Exception`` can mistake for an answer.
"""
from __future__ import annotations

import builtins
import socket
import time
from typing import Any

import torch

from . import wire


class JudgeAbort(BaseException):
    """The kernel stopped answering properly: the grade cell fails, whatever the test expected."""


class StudentError(Exception):
    """An exception raised by the student's code in the kernel (type and message only)."""

    remote_type = "Exception"


_ERRORS: dict[tuple[str, str], type] = {}


def _student_error(kind: str, builtin_bases: list) -> type:
    base = next((getattr(builtins, b) for b in builtin_bases if isinstance(getattr(builtins, b, None), type)
                 and issubclass(getattr(builtins, b), Exception)), Exception)
    if base is Exception and kind == "SystemExit":
        base = Exception
    key = (kind, base.__name__)
    if key not in _ERRORS:
        _ERRORS[key] = type(kind if kind.isidentifier() else "Error", (StudentError, base), {"remote_type": kind})
    return _ERRORS[key]


class Session:
    """One grade cell's conversation with one kernel, over a connected Unix socket."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.requests = 0

    def ask(self, head: dict, args_blobs: list[bytes] | None = None) -> tuple[dict, list[bytes]]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise JudgeAbort("the grade cell ran out of time")
        self.sock.settimeout(left)
        self.requests += 1
        try:
            wire.send(self.sock, head, args_blobs or [])
            reply, blobs = wire.recv(self.sock)
        except (OSError, EOFError, wire.WireError, ValueError) as err:
            raise JudgeAbort(f"the kernel stopped answering the judge ({type(err).__name__}: {err})") from None
        if "error" in reply:
            e = reply["error"] if isinstance(reply["error"], dict) else {}
            cls = _student_error(str(e.get("type", "Exception"))[:60], list(e.get("builtin", []))[:6])
            raise cls(str(e.get("message", ""))[:2000])
        if "ok" not in reply:
            raise JudgeAbort("the kernel sent a malformed answer")
        return reply, blobs

    # encoding -----------------------------------------------------------------------------
    def encoder(self) -> wire.Encoder:
        def other(v):
            if isinstance(v, Remote):
                return v._judge_ref()
            raise TypeError(f"a {type(v).__name__} built in the judge cannot be sent to the kernel: build it there "
                            "with effcourse.judge.build(...) (or pass plain data: tensors, numbers, containers)")
        return wire.Encoder(other, grads=False)

    def decode(self, reply: dict, blobs: list[bytes]) -> tuple[Any, wire.Decoder]:
        dec = wire.Decoder(blobs, lambda d: Remote(self, ref=d))
        try:
            return dec(reply["ok"]), dec
        except (wire.WireError, ValueError, TypeError, RuntimeError) as err:
            raise JudgeAbort(f"the kernel sent data that cannot be decoded ({err})") from None

    def request(self, head: dict, **values) -> Any:
        enc = self.encoder()
        head = {**head, **{k: enc(v) for k, v in values.items()}}
        reply, blobs = self.ask(head, enc.blobs)
        return self.decode(reply, blobs)[0]

    # calls --------------------------------------------------------------------------------
    def call(self, target: dict, path: list[str], args: tuple, kwargs: dict) -> Any:
        grad = torch.is_grad_enabled()
        enc = self.encoder()
        head = {"op": "call", "target": target, "path": path, "grad": grad,
                "args": enc(list(args)), "kwargs": enc(dict(kwargs))}
        sent = list(enc.tensors)
        gens = [(i, a) for i, a in enumerate(args) if isinstance(a, torch.Generator)]
        gens += [(k, a) for k, a in kwargs.items() if isinstance(a, torch.Generator)]
        reply, blobs = self.ask(head, enc.blobs)
        value, dec = self.decode(reply, blobs)
        # the student's code changed these arguments in place: change them here too
        changed = reply.get("changed") or []
        if isinstance(changed, list):
            for item in changed:
                try:
                    i, new = int(item[0]), dec(item[1])
                    t = sent[i][0]
                except (IndexError, TypeError, ValueError, wire.WireError):
                    raise JudgeAbort("the kernel sent a malformed in-place change") from None
                if isinstance(new, torch.Tensor) and new.shape == t.shape:
                    with torch.no_grad():
                        t.copy_(new.to(t.dtype))
        states = reply.get("generators") or []
        for (_, gen), item in zip(gens, states):
            new = dec(item[1]) if isinstance(item, list) and len(item) == 2 else None
            if isinstance(new, torch.Generator):
                gen.set_state(new.get_state())
        gid = reply.get("gid")
        if gid is None or not grad:
            return value
        inputs = [t for t, d in sent if d.get("rg") and (t.is_floating_point() or t.is_complex())]
        outs = [(t, d) for t, d in dec.tensors if isinstance(d.get("oi"), int)]
        outs.sort(key=lambda td: td[1]["oi"])
        if not outs:
            return value
        anchor = torch.zeros((), requires_grad=True)
        joined = _Bridge.apply(self, int(gid), [t for t, _ in outs], anchor, *inputs)
        swap = {id(t): j for (t, _), j in zip(outs, joined)}
        return _replace(value, swap)

    def backward(self, gid: int, grads: tuple, n_inputs: int) -> list:
        got = self.request({"op": "backward", "gid": gid}, grads=list(grads))
        if not isinstance(got, list) or len(got) != n_inputs:
            raise JudgeAbort("the kernel sent gradients for the wrong number of inputs")
        return got

    def finish(self, passed: bool, message: str) -> None:
        try:
            self.sock.settimeout(5)
            wire.send(self.sock, {"op": "done", "passed": passed, "message": message}, [])
        except OSError:
            pass


def _replace(value: Any, swap: dict) -> Any:
    if isinstance(value, torch.Tensor):
        return swap.get(id(value), value)
    if isinstance(value, tuple):
        return tuple(_replace(v, swap) for v in value)
    if isinstance(value, list):
        return [_replace(v, swap) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, swap) for k, v in value.items()}
    return value


class _Bridge(torch.autograd.Function):
    """Joins tensors computed in the kernel to the judge's autograd graph."""

    @staticmethod
    def forward(ctx, session, gid, outs, anchor, *inputs):
        ctx.session, ctx.gid, ctx.meta = session, gid, [(t.shape, t.dtype) for t in inputs]
        return tuple(o.detach().clone() for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        got = ctx.session.backward(ctx.gid, grads, len(ctx.meta))
        result = []
        for g, (shape, dtype) in zip(got, ctx.meta):
            if g is not None and (not isinstance(g, torch.Tensor) or g.shape != shape):
                raise JudgeAbort("the kernel sent a gradient of the wrong shape")
            result.append(None if g is None else g.to(dtype))
        return (None, None, None, None, *result)


class Remote:
    """An object in the student's kernel; see the module docstring."""

    __slots__ = ("_judge_session", "_judge_target", "_judge_path", "_judge_type")

    def __init__(self, session: Session, *, name: str | None = None, ref: dict | None = None,
                 path: tuple[str, ...] = ()):
        object.__setattr__(self, "_judge_session", session)
        target = {"$": "name", "v": name} if name is not None else {"$": "ref", "id": ref.get("id")}
        object.__setattr__(self, "_judge_target", target)
        object.__setattr__(self, "_judge_path", tuple(path))
        object.__setattr__(self, "_judge_type", (ref or {}).get("type", name))

    def _judge_ref(self) -> dict:
        if self._judge_path:      # an attribute: fetch it as an object the kernel keeps
            got = self._judge_session.request({"op": "getattr", "target": self._judge_target,
                                               "path": list(self._judge_path)})
            if isinstance(got, Remote):
                return got._judge_ref()
            raise TypeError("internal: a plain attribute has no ref")
        return self._judge_target

    def __call__(self, *args, **kwargs):
        return self._judge_session.call(self._judge_target, list(self._judge_path), args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._judge_session.request({"op": "getattr", "target": self._judge_target,
                                            "path": [*self._judge_path, name]})

    def __setattr__(self, name: str, value) -> None:
        s = self._judge_session
        obj = self if not self._judge_path else Remote(s, ref=self._judge_ref())
        s.request({"op": "setattr", "target": obj._judge_target, "path": [], "name": name}, value=value)

    def __getitem__(self, key):
        return self._judge_session.request({"op": "getitem", "target": self._judge_target,
                                            "path": list(self._judge_path)}, key=key)

    def __len__(self) -> int:
        n = self._judge_session.request({"op": "len", "target": self._judge_target, "path": list(self._judge_path)})
        if not isinstance(n, int) or n < 0:
            raise StudentError(f"len() of the student's object returned {n!r}")
        return n

    def __iter__(self):
        items = self._judge_session.request({"op": "iter", "target": self._judge_target,
                                             "path": list(self._judge_path)})
        if not isinstance(items, list):
            raise JudgeAbort("the kernel sent a malformed iteration")
        return iter(items)

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a student's object is not defined in the judge; "
                        "compare a value fetched from it")

    def __repr__(self) -> str:
        return f"<student's {self._judge_type}>"
