"""The judge: runs each grade cell's tests in this process, where no student code runs.

``Judge(cells)`` listens on a Unix socket. When a kernel's grade cell calls ``answer(cell_id)``,
the judge runs that cell's *judge code* — the grade cell's imports and its hidden block (or, for
a cell without one, the whole cell) — with every free name bound to a ``Remote`` proxy of the
student's object of that name. The cell passes when the code runs to its end. Each cell is
judged at most once; a cell the kernel never asked for has no verdict (and scores 0).

``judge_code(source)`` is that split; ``free_names(code)`` the names it leaves to the kernel.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

from . import api, wire
from .remote import JudgeAbort, Remote, Session

_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS[^\n]*$", re.S | re.M)


def hidden_block(source: str) -> str | None:
    m = _HIDDEN.search(source)
    return m.group(1) if m else None


def judge_code(source: str) -> str:
    """What the judge runs for a grade cell: its top-level imports and its hidden block; a cell
    without a hidden block is run whole."""
    hidden = hidden_block(source)
    if hidden is None:
        return source
    visible = _HIDDEN.sub("", source)
    try:
        tree = ast.parse(visible)
    except SyntaxError:
        return hidden
    lines = visible.splitlines()
    imports = ["\n".join(lines[n.lineno - 1:n.end_lineno]) for n in tree.body
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(imports) + "\n" + hidden


def free_names(code: str) -> set[str]:
    """Names the code reads but never binds at module level (and that are not builtins)."""
    tree = ast.parse(code)
    bound: set[str] = set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        for sub in [node] if isinstance(node, scopes) else ast.walk(node):
            if isinstance(sub, scopes):
                bound.add(sub.name)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                bound.add(sub.id)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                for a in sub.names:
                    bound.add((a.asname or a.name).split(".")[0])
            elif isinstance(sub, ast.ExceptHandler) and sub.name:
                bound.add(sub.name)
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in loads - bound if not hasattr(builtins, n)}


@dataclasses.dataclass
class Verdict:
    passed: bool
    message: str
    seconds: float = 0.0
    requests: int = 0
    kind: str = "CheckFailed"     # a failure's class: CheckFailed, the student's error (MemoryError, ...), JudgeAbort


def _message(err: BaseException) -> str:
    if type(err).__name__ == "CheckFailed":             # effcourse.checks.asserts: its message says it all
        text = str(err)
    elif isinstance(err, JudgeAbort):
        text = f"the judge could not finish: {err}"
    elif isinstance(err, NotImplementedError):
        text = "not implemented yet (NotImplementedError)"
    else:
        text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 1500 else text[:1500] + " …"


def run(code: str, session: Session, label: str = "grade cell") -> Verdict:
    """Run judge ``code`` against the kernel behind ``session``; never raises."""
    start = time.monotonic()
    ns: dict = {"__name__": "__judge__", "__builtins__": builtins}
    try:
        for n in free_names(code):
            ns[n] = Remote(session, name=n)
        compiled = compile(code, f"<judge: {label}>", "exec")
    except SyntaxError as err:
        return Verdict(False, f"the judge's code for {label} does not compile: {err}")
    try:
        with api.judging(session), torch.random.fork_rng(devices=[]):
            exec(compiled, ns)                                         # noqa: S102 - the instructor's code
        verdict = Verdict(True, "passed")
    except BaseException as err:  # noqa: BLE001 - every failure is a verdict
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        kind = getattr(err, "remote_type", None) or ("CheckFailed" if type(err).__name__ == "CheckFailed"
                                                     else type(err).__name__)
        verdict = Verdict(False, _message(err), kind=str(kind)[:60])
        if os.environ.get("EFFCOURSE_JUDGE_DEBUG"):
            traceback.print_exc(file=sys.__stderr__)
    verdict.seconds, verdict.requests = time.monotonic() - start, session.requests
    return verdict


class Judge:
    """Serves grade cells' verdicts on a Unix socket; see the module docstring.

    ``cells`` maps a grade cell's id to its judge code; ``timeout`` bounds one cell's judging."""

    def __init__(self, cells: dict[str, str], *, folder: str | Path | None = None, timeout: float = 300.0):
        self.cells = dict(cells)
        self.timeout = float(timeout)
        self.verdicts: dict[str, Verdict] = {}
        self._own = folder is None
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="efj-"))
        self.path = str(self.folder / f"judge-{os.getpid()}-{id(self) % 10**6}.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o777)      # the kernel may run as another user (nobody)
        self._sock.listen(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="effcourse-judge", daemon=True)

    def __enter__(self) -> Judge:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Judge:
        self._thread.start()
        return self

    def _loop(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            with contextlib.closing(conn):
                try:
                    self._serve(conn)
                except Exception:  # noqa: BLE001 - a broken connection must not stop the judge
                    pass

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        head, _ = wire.recv(conn)
        cell = head.get("cell") if head.get("op") == "hello" else None
        session = Session(conn, time.monotonic() + self.timeout)
        if not isinstance(cell, str) or cell not in self.cells:
            session.finish(False, f"the judge has no grade cell {str(cell)[:80]!r}")
            return
        if cell in self.verdicts:
            v = self.verdicts[cell]
            session.finish(v.passed, "judged already: " + v.message)
            return
        self.verdicts[cell] = Verdict(False, "judging was interrupted")
        verdict = run(self.cells[cell], session, cell)
        self.verdicts[cell] = verdict
        session.finish(verdict.passed, verdict.message)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._own:
            with contextlib.suppress(OSError):
                self.folder.rmdir()
