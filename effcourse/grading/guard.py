"""Inside the grading kernel: notice, undo and report a submission's rebinding of library objects.

A grade cell calls ``effcourse.checks``, ``torch`` and ``numpy``. A submission that replaces one of
them (``asserts.assert_close = lambda *a, **k: None``, ``torch.allclose = ...``, a fake module in
``sys.modules``, a patched builtin) would pass a wrong answer. Before the first cell runs,
``Guard.snapshot()`` records every attribute of the protected modules (and of the classes they define
that Python code can change); after every cell, ``Guard.check()`` compares, **restores** the originals
and returns what had changed. So a grade cell always runs against the libraries as installed, and a
rebinding made while a grade cell ran (from inside a learner's function) is reported for that cell,
which the grader then scores 0.

This is an in-process check, not a security boundary: a submission that studies this module can
switch it off. The grader notices when the guard stops reporting (see ``supervise``), and the
sandbox (``sandbox.py``), not this module, is what keeps answers out of reach.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from pathlib import Path
import warnings

#: packages whose attributes grade cells rely on
PROTECTED = ("builtins", "effcourse", "torch", "numpy", "math", "random", "time", "functools", "itertools",
             "collections", "operator", "copy")
#: attributes that IPython and ipykernel rebind on their own while a cell runs
_IPYTHON_OWNED = {"_", "__", "___", "_i", "_ii", "_iii", "_oh", "_dh", "In", "Out", "exit", "quit", "get_ipython",
                  "display", "input", "raw_input", "__IPYTHON__", "__builtins__", "__spec__", "__loader__"}
_SKIP_MODULES = ("effcourse.grading", "effcourse.cli", "torch._dynamo", "torch._inductor", "torch.fx.experimental",
                 "torch.testing._internal")


def _protected(name: str) -> bool:
    """A public module of a protected package (``torch._dynamo``, ``torch._C`` ... are internals)."""
    return (any(name == p or name.startswith(p + ".") for p in PROTECTED) and not name.startswith(_SKIP_MODULES)
            and not any(part.startswith("_") for part in name.split(".")))


_TORCH_DIR = None


def _library_own(old, new, owner: str, key: str) -> bool:
    """A library's own lazy patch, not a submission's: torch wrapping one of its functions once
    (``torch.manual_seed`` when ``torch._dynamo`` loads: the wrapper is a torch function whose
    ``__wrapped__`` is the original), or a lazily imported submodule replacing its placeholder."""
    global _TORCH_DIR
    if isinstance(new, types.ModuleType):
        return sys.modules.get(f"{owner}.{key}") is new and getattr(new, "__name__", "") == f"{owner}.{key}"
    if getattr(new, "__wrapped__", None) is not old:
        return False
    if _TORCH_DIR is None:
        import torch
        _TORCH_DIR = str(Path(torch.__file__).resolve().parent)
    code = getattr(new, "__code__", None)
    return code is not None and str(Path(code.co_filename).resolve()).startswith(_TORCH_DIR)


def _interesting(value) -> bool:
    """Values whose rebinding changes behaviour: functions, classes, modules, bound methods."""
    return callable(value) or isinstance(value, types.ModuleType)


def import_course_modules(lab: str | None = None) -> None:
    """Import what a grade cell may use, so the snapshot covers it: the lab's self-checks (and the
    plumbing they import), or, for an unknown lab, every effcourse module."""
    import effcourse
    import effcourse.checks.asserts  # noqa: F401

    names = [f"effcourse.checks.{lab.split('_')[0]}"] if lab else [
        info.name for info in pkgutil.walk_packages(effcourse.__path__, "effcourse.")]
    for name in names:
        if name.startswith(_SKIP_MODULES):
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module (e.g. a missing extra) is simply not protected
            pass


class Guard:
    """Snapshot of protected module and class namespaces; ``check()`` restores and reports."""

    def __init__(self) -> None:
        self._modules: dict[str, types.ModuleType] = {}
        self._attrs: dict[int, tuple[object, str, dict]] = {}

    def snapshot(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._snapshot()

    def _snapshot(self) -> None:
        for name, mod in list(sys.modules.items()):
            if isinstance(mod, types.ModuleType) and _protected(name):
                self._modules[name] = mod
                self._take(mod, name, strict=name.startswith("effcourse.checks"))
                if name.startswith("effcourse"):
                    for attr, value in list(vars(mod).items()):
                        if isinstance(value, type) and getattr(value, "__module__", "") == name:
                            self._take(value, f"{name}.{attr}", strict=False, is_class=True)
        import torch
        for cls, label in ((torch.Tensor, "torch.Tensor"), (torch.nn.Module, "torch.nn.Module"),
                           (torch.nn.Parameter, "torch.nn.Parameter")):
            self._take(cls, label, strict=False, is_class=True)

    def _take(self, obj, label: str, strict: bool, is_class: bool = False) -> None:
        try:
            ns = vars(obj)
        except TypeError:
            return
        keep = {k: v for k, v in list(ns.items())
                if k not in _IPYTHON_OWNED and (strict or _interesting(v))}
        # a class gains behaviour from a new attribute too (it shadows an inherited method)
        self._attrs[id(obj)] = (obj, label, keep, set(ns) if is_class else None)

    def check(self) -> list[str]:
        """Restore every rebound or deleted attribute and replaced module; return what changed."""
        changed = []
        for name, mod in self._modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
        for obj, label, keep, names in self._attrs.values():
            ns = vars(obj)
            for key, value in keep.items():
                now = ns.get(key, _MISSING)
                if now is not value:
                    if now is not _MISSING and _library_own(value, now, label, key):
                        keep[key] = now               # the library's new normal
                        continue
                    try:
                        setattr(obj, key, value)
                    except (AttributeError, TypeError):
                        continue
                    changed.append(f"{label}.{key}")
            if names is not None and len(ns) != len(names):
                for key in [k for k in ns if k not in names]:
                    if _interesting(ns[key]):
                        try:
                            delattr(obj, key)
                        except (AttributeError, TypeError):
                            continue
                        changed.append(f"{label}.{key}")
        return changed


_MISSING = object()


def install(shell, report, lab: str | None = None) -> Guard:
    """Snapshot now; after every cell, restore and call ``report(cell_source, changed)``."""
    import_course_modules(lab)
    guard = Guard()
    guard.snapshot()
    state = {"cell": ""}

    def pre(info=None):
        state["cell"] = getattr(info, "raw_cell", "") or ""

    def post(result=None):
        report(state["cell"], guard.check())

    shell.events.register("pre_run_cell", pre)
    shell.events.register("post_run_cell", post)
    return guard
