"""The kernel's side of judging: answer the judge's questions about this notebook, with plain data.

A grade cell, when graded, runs ``answer("test_temporal_shift")``: it connects to the judge (the
socket named by ``EFFCOURSE_JUDGE_SOCKET``), says which cell it is, and then answers requests
until the judge is done. The judge holds the hidden tests, their inputs' seeds, the references
and the comparisons; this side only calls what the judge names and sends back what came out:

* ``call``     call a notebook global, a kept object or an attribute of one, with decoded args;
* ``new``      call a public callable of ``torch`` or ``effcourse`` (build a module, run a probe);
* ``getattr`` / ``setattr`` / ``getitem`` / ``len`` / ``iter`` / ``isinstance``;
* ``backward`` push the judge's gradients through a graph kept from an earlier call;
* ``seed``     seed torch's global generator here.

Whatever is not plain data (a module, a generator of parameters) stays here and travels as a
ref. This module is public on purpose: it is the same for every lab and holds no test.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import socket
import warnings
from typing import Any

import torch

from . import wire

#: modules whose public callables the judge may ask this side to run (``new``)
TRUSTED = ("torch", "effcourse")


class JudgeFailed(AssertionError):
    """The judge's verdict on this grade cell: the message says what was expected."""


def _user_namespace() -> dict:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            return ip.user_ns
    except ImportError:      # pragma: no cover
        pass
    import __main__

    return vars(__main__)


def resolve(path: str) -> Any:
    """``"torch.nn.Conv2d"`` -> the object; only names under ``TRUSTED`` and no private parts."""
    parts = str(path).split(".")
    if parts[0] not in TRUSTED or any(p.startswith("_") or not p.isidentifier() for p in parts):
        raise ValueError(f"the judge may only build public objects of {TRUSTED}, not {path!r}")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ValueError(f"cannot import {path!r}")


class _Session:
    def __init__(self, sock: socket.socket, ns: dict):
        self.sock, self.ns = sock, ns
        self.objects: dict[int, Any] = {}
        self.graphs: dict[int, tuple[list, list]] = {}

    # values -------------------------------------------------------------------------------
    def keep(self, obj: Any) -> dict:
        i = len(self.objects) + 1
        self.objects[i] = obj
        return {"$": "ref", "id": i, "type": f"{type(obj).__module__}.{type(obj).__qualname__}"}

    def ref(self, d: dict) -> Any:
        try:
            return self.objects[d["id"]]
        except (KeyError, TypeError):
            raise wire.WireError(f"no object {d.get('id')!r} is kept here") from None

    def name(self, d: dict) -> Any:
        n = d.get("v")
        if not isinstance(n, str) or n not in self.ns:
            raise NameError(f"name {n!r} is not defined in your notebook (did you run its cell?)")
        return self.ns[n]

    def decoder(self, blobs):
        return wire.Decoder(blobs, self.ref, self.name)

    def reply(self, value: Any, extra: dict | None = None, grads: bool = True) -> None:
        enc = wire.Encoder(self.keep, grads=grads)
        head = {"ok": enc(value), **(extra or {})}
        wire.send(self.sock, head, enc.blobs)

    # requests -----------------------------------------------------------------------------
    def target(self, head: dict, dec: wire.Decoder) -> Any:
        obj = dec(head["target"])
        for a in head.get("path", []):
            obj = getattr(obj, a)
        return obj

    def op_call(self, head, dec):
        fn = self.target(head, dec)
        grad = bool(head.get("grad"))
        args = dec(head.get("args", []))
        kwargs = dec(head.get("kwargs", {"$": "dict", "v": []}))
        leaves = []
        if grad:
            for t, d in dec.tensors:
                if d.get("rg") and (t.is_floating_point() or t.is_complex()):
                    t.requires_grad_(True)
                    leaves.append(t)
        before = [(t, t.detach().clone()) for t, _ in dec.tensors]
        gens = [(i, a) for i, a in enumerate(args) if isinstance(a, torch.Generator)]
        gens += [(k, a) for k, a in kwargs.items() if isinstance(a, torch.Generator)]
        with torch.set_grad_enabled(grad), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args, **kwargs)
        enc = wire.Encoder(self.keep)
        value = enc(out)
        outs = [t for t, _ in enc.tensors if t.requires_grad]
        gid = None
        if grad and outs:
            gid = len(self.graphs) + 1
            self.graphs[gid] = (outs, leaves)
            k = 0
            for t, d in enc.tensors:
                if t.requires_grad:
                    d["oi"] = k
                    k += 1
        changed = []
        for i, (t, old) in enumerate(before):
            try:
                same = t.shape == old.shape and torch.equal(t.detach(), old)
            except RuntimeError:
                same = False
            if not same:
                changed.append([i, enc.tensor(t.detach())])
        state = [[k, enc(g)] for k, g in gens]
        wire.send(self.sock, {"ok": value, "gid": gid, "changed": changed, "generators": state}, enc.blobs)

    def op_backward(self, head, dec):
        outs, leaves = self.graphs[int(head["gid"])]
        grads = dec(head.get("grads", []))
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        for leaf in leaves:
            leaf.grad = None
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g.to(o.dtype) for o, g in pairs], retain_graph=True)
        got = [leaf.grad for leaf in leaves]
        for leaf in leaves:
            leaf.grad = None
        self.reply(got, grads=False)

    def op_new(self, head, dec):
        fn = resolve(head["path"])
        args = dec(head.get("args", []))
        kwargs = dec(head.get("kwargs", {"$": "dict", "v": []}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = fn(*args, **kwargs)
        state = dec(head["state"]) if head.get("state") is not None else None
        if state is not None:
            obj.load_state_dict(state)
        if head.get("train") is not None:
            obj.train(bool(head["train"]))
        if head.get("keep"):
            self.reply(None, {"ref": self.keep(obj)})
        else:
            self.reply(obj)

    def op_getattr(self, head, dec):
        self.reply(self.target(head, dec))

    def op_setattr(self, head, dec):
        obj = self.target(head, dec)
        setattr(obj, head["name"], dec(head["value"]))
        self.reply(None)

    def op_getitem(self, head, dec):
        self.reply(self.target(head, dec)[dec(head["key"])])

    def op_len(self, head, dec):
        self.reply(len(self.target(head, dec)))

    def op_iter(self, head, dec):
        self.reply(list(self.target(head, dec)))

    def op_isinstance(self, head, dec):
        self.reply(isinstance(self.target(head, dec), resolve(head["cls"])))

    def op_typeof(self, head, dec):
        t = type(self.target(head, dec))
        self.reply(f"{t.__module__}.{t.__qualname__}")

    def op_seed(self, head, dec):
        torch.manual_seed(int(head["seed"]))
        self.reply(None)

    def serve(self) -> dict:
        while True:
            head, blobs = wire.recv(self.sock)
            op = head.get("op")
            if op == "done":
                return head
            handler = getattr(self, f"op_{op}", None)
            try:
                if handler is None:
                    raise ValueError(f"unknown request {op!r}")
                handler(head, self.decoder(blobs))
            except (Exception, SystemExit) as err:  # noqa: BLE001 - the student's error is an answer too
                bases = [c.__name__ for c in type(err).__mro__ if c.__module__ == "builtins"]
                wire.send(self.sock, {"error": {"type": type(err).__name__, "builtin": bases[:6],
                                                "message": str(err)[:2000]}}, [])


def answer(cell: str, socket_path: str | None = None) -> None:
    """Serve the judge for grade cell ``cell``; raise ``JudgeFailed`` if its verdict is a failure.

    Outside grading (no ``EFFCOURSE_JUDGE_SOCKET``) this says so and does nothing."""
    path = socket_path or os.environ.get("EFFCOURSE_JUDGE_SOCKET")
    if not path:
        print(f"{cell}: graded by the judge when the notebook is autograded")
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    with contextlib.closing(sock):
        wire.send(sock, {"op": "hello", "cell": cell}, [])
        done = _Session(sock, _user_namespace()).serve()
    if not done.get("passed"):
        raise JudgeFailed(str(done.get("message", "failed"))[:4000])
    print(f"\u2714 {cell}: {done.get('message', 'passed')}")
