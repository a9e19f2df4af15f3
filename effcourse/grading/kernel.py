"""The kernel every submission runs in: ipykernel, started under limits and watched.

Run as ``python kernel.py -f CONNECTION_FILE`` (nbgrader starts it through the kernel spec that
``supervise`` writes, inside the sandbox). Before any student code runs it

1. sets resource limits (address space = ``EFFCOURSE_MEMORY_BYTES``, no core files) and points
   ``faulthandler`` at ``<progress>.fault``, so a segfault or an abort says where it happened;
2. starts ipykernel, which reads the connection file and binds its sockets;
3. drops to an unprivileged uid when ``EFFCOURSE_DROP_UID`` is set (the grader runs as root);
4. installs the tamper guard (``guard.py``), which snapshots the libraries grade cells use and,
   after every cell, restores what a cell rebound and reports it to ``<progress>.guard``;
5. ignores Python warnings (nbgrader scores a grade cell with stderr output 0);
6. writes the cell about to run to ``<progress>`` and starts a watchdog that kills the kernel
   when one cell outlives nbgrader's timeout by a grace period (it swallowed the interrupt).

Environment: ``EFFCOURSE_PROGRESS`` (path prefix of the progress files), ``EFFCOURSE_HANG_LIMIT``
(seconds), ``EFFCOURSE_MEMORY_BYTES``, ``EFFCOURSE_LAB``, ``EFFCOURSE_DROP_UID``.
"""
from __future__ import annotations

import atexit
import faulthandler
import hashlib
import json
import os
import resource
import sys
import threading
import time
import warnings


def _limits() -> None:
    mem = int(os.environ.get("EFFCOURSE_MEMORY_BYTES") or 0)
    if mem > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges() -> None:
    uid = os.environ.pop("EFFCOURSE_DROP_UID", "")
    if uid and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))
        if os.geteuid() == 0:       # pragma: no cover - setuid cannot fail silently, but be sure
            os._exit(70)


def cell_digest(source: str) -> str:
    """How the guard names a cell in its report: the first 16 hex digits of its source's SHA-256."""
    return hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()[:16]


def main() -> None:
    _limits()
    progress = os.environ["EFFCOURSE_PROGRESS"]
    fault = open(progress + ".fault", "w")  # noqa: SIM115 - open for the life of the kernel
    faulthandler.enable(file=fault)
    guard_log = open(progress + ".guard", "a", encoding="utf-8")  # noqa: SIM115
    hang_limit = float(os.environ.get("EFFCOURSE_HANG_LIMIT") or 0)
    state: dict = {"start": None, "cell": ""}

    def pre(info=None):
        state["cell"] = getattr(info, "raw_cell", "") or ""
        with open(progress, "w", encoding="utf-8") as fh:
            json.dump({"cell": state["cell"], "done": False}, fh)
        state["start"] = time.monotonic()

    def post(result=None):
        state["start"] = None
        with open(progress, "w", encoding="utf-8") as fh:
            json.dump({"cell": state["cell"], "done": True}, fh)

    def report(source, changed):
        guard_log.write(json.dumps({"cell": cell_digest(source), "changed": changed}) + "\n")
        guard_log.flush()

    def watchdog():
        while True:
            time.sleep(0.2)
            start = state["start"]
            if start is not None and time.monotonic() - start > hang_limit:
                with open(progress + ".hang", "w") as fh:
                    fh.write(f"{time.monotonic() - start:.1f}")
                os._exit(124)

    def vm_peak():
        try:
            with open("/proc/self/status") as src, open(progress + ".mem", "w") as dst:
                dst.write(src.read())
        except OSError:
            pass

    atexit.register(vm_peak)
    # in the sandbox's pid namespace the grader is not our parent: bubblewrap's --die-with-parent
    # ends the kernel with the grader instead of ipykernel's parent poller
    os.environ.pop("JPY_PARENT_PID", None)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:])
    _drop_privileges()
    app.shell.events.register("pre_run_cell", pre)
    from effcourse.grading.guard import install

    install(app.shell, report, os.environ.get("EFFCOURSE_LAB") or None)
    # nbgrader scores a grade cell that writes to stderr 0: a harmless warning (a deprecation inside
    # torch, a learner's idiom) must not cost a correct answer its points
    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"
    app.shell.events.register("post_run_cell", post)
    if hang_limit > 0:
        threading.Thread(target=watchdog, daemon=True, name="effcourse-watchdog").start()
    app.start()


if __name__ == "__main__":
    main()
