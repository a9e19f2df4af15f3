"""The kernel every submission runs in: ipykernel, started under limits and watched.

Run as ``python kernel.py -f CONNECTION_FILE`` (nbgrader starts it through the kernel spec that
``supervise`` writes, inside the sandbox). Before any student code runs it

1. sets resource limits (address space = ``EFFCOURSE_MEMORY_BYTES``, file size =
   ``EFFCOURSE_MAX_FILE_BYTES``, no core files) and points ``faulthandler`` at ``<progress>.fault``,
   so a segfault or an abort says where it happened;
2. drops to an unprivileged uid when ``EFFCOURSE_DROP_UID`` is set (the grader runs as root),
   after handing its connection file to that uid;
3. in the sandbox, moves into a user namespace of its own (same uid, no capabilities, no further
   user namespaces) and caps its processes and threads (``RLIMIT_NPROC`` =
   ``EFFCOURSE_MAX_PROCS``): ``RLIMIT_NPROC`` counts per user and user namespace, so each kernel
   has a budget of its own even when every kernel runs as ``nobody``;
4. starts ipykernel, which reads the connection file and binds its sockets;
5. installs the tamper guard (``guard.py``), which snapshots the libraries grade cells use and,
   after every cell, restores what a cell rebound and reports it to ``<progress>.guard``;
6. ignores Python warnings (nbgrader scores a grade cell with stderr output 0);
7. writes the cell about to run to ``<progress>`` and starts a watchdog that kills the kernel
   when one cell outlives nbgrader's timeout by a grace period (it swallowed the interrupt), and
   that ends a fork bomb (every other process of the sandbox) once the process cap is reached.

Every cap a cell hits (processes, file size, a full ``/tmp`` or ``/dev/shm``) is appended to
``<progress>.caps``, one JSON object a line; ``cap_notes`` turns them into notes for ``grades.csv``.

Environment: ``EFFCOURSE_PROGRESS`` (path prefix of the progress files), ``EFFCOURSE_HANG_LIMIT``
(seconds), ``EFFCOURSE_MEMORY_BYTES``, ``EFFCOURSE_MAX_PROCS`` (default 256),
``EFFCOURSE_MAX_FILE_BYTES`` (default 256 MiB), ``EFFCOURSE_LAB``, ``EFFCOURSE_DROP_UID``,
``EFFCOURSE_SANDBOX`` (set by ``sandbox.py``). 0 turns a cap off.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import faulthandler
import hashlib
import json
import os
import resource
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

#: processes and threads of one kernel, all together (Lab 7 forks 3 gloo ranks; torch adds threads)
DEFAULT_MAX_PROCS = 256
#: the largest file a kernel may write, anywhere
DEFAULT_MAX_FILE_BYTES = 256 * 2**20
_CLONE_NEWUSER = 0x10000000
_PR_GET_DUMPABLE, _PR_SET_DUMPABLE = 3, 4


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(float(value)) if value else default


def _cap(res: int, n: int) -> int:
    """Set soft and hard limit ``res`` to ``n`` (at most the current hard limit); returns the cap."""
    _, hard = resource.getrlimit(res)
    if hard != resource.RLIM_INFINITY:
        n = min(n, hard)
    resource.setrlimit(res, (n, n))
    return n


def _limits() -> None:
    mem = int(os.environ.get("EFFCOURSE_MEMORY_BYTES") or 0)
    if mem > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = _env_int("EFFCOURSE_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)
    if fsize > 0:
        _cap(resource.RLIMIT_FSIZE, fsize)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges(argv: list[str]) -> None:
    uid = os.environ.pop("EFFCOURSE_DROP_UID", "")
    if uid and os.geteuid() == 0:
        if "-f" in argv[:-1]:      # the grader wrote it for root only; ipykernel reads and updates it
            os.chown(argv[argv.index("-f") + 1], int(uid), int(uid))
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))
        if os.geteuid() == 0:       # pragma: no cover - setuid cannot fail silently, but be sure
            os._exit(70)


def _own_user_namespace() -> bool:
    """Move this (single-threaded) process into a new user namespace with the same uid and gid,
    forbid user namespaces below it and drop every capability. ``RLIMIT_NPROC`` then counts only
    the processes of this kernel, and student code cannot mount a tmpfs of its own (which would
    bypass the /tmp cap) nor make a namespace in which to raise its limits. False when the system
    does not allow it (unprivileged user namespaces disabled): the kernel goes on without."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    dumpable = libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)           # after setuid, /proc/self/*_map is root's otherwise
    try:
        if libc.unshare(_CLONE_NEWUSER) != 0:
            return False
        for name, value in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(value)
        try:
            with open("/proc/sys/user/max_user_namespaces", "w") as fh:
                fh.write("0")
        except OSError:
            pass

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        header, data = Header(0x20080522, 0), (Data * 2)()      # _LINUX_CAPABILITY_VERSION_3: none at all
        libc.capset(ctypes.byref(header), data)
        return True
    except OSError:
        return False
    finally:
        libc.prctl(_PR_SET_DUMPABLE, dumpable, 0, 0, 0)


def _processes() -> dict[int, int]:
    """Every process of the sandbox's pid namespace but its init (pid 1): ``{pid: threads}``, a
    zombie as 0 threads."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == "1":
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2:].split()
        out[int(name)] = 0 if fields[0] in (b"Z", b"X") else int(fields[17])
    return out


class Caps:
    """Notices the caps a cell hits and appends them to ``<progress>.caps`` (JSON lines)."""

    def __init__(self, out, state: dict, max_procs: int, max_file: int, sandboxed: bool):
        self.out, self.state = out, state
        self.max_procs, self.max_file, self.sandboxed = max_procs, max_file, sandboxed
        self.lock = threading.Lock()
        self.seen: set = set()
        self.full: set = set()          # writable mounts that were full after the previous cell
        self.fsize_signal = False

    def record(self, cap: str, **detail) -> None:
        cell = self.state.get("cell", "")
        with self.lock:
            if (cap, cell, detail.get("mount")) in self.seen:
                return
            self.seen.add((cap, cell, detail.get("mount")))
            self.out.write(json.dumps({"cap": cap, "cell": cell, **detail}) + "\n")
            self.out.flush()

    def on_sigxfsz(self, signum, frame) -> None:
        self.fsize_signal = True

    def after_cell(self, result=None) -> None:
        exc, seen = getattr(result, "error_in_exec", None), set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
                self.fsize_signal = True
            exc = exc.__cause__ or exc.__context__
        if self.fsize_signal and self.max_file:
            self.fsize_signal = False
            self.record("fsize", limit=self.max_file)
        if self.sandboxed:
            for mount in ("/tmp", "/dev/shm"):
                try:
                    st = os.statvfs(mount)
                except OSError:
                    continue
                full = st.f_bavail == 0 or (st.f_favail == 0 and st.f_files > 0)
                if full and mount not in self.full:
                    self.record("space", mount=mount, limit=st.f_blocks * st.f_frsize)
                self.full.discard(mount) if not full else self.full.add(mount)
        self.check_procs()

    def check_procs(self) -> None:
        """At the process cap (a thread cannot start), kill every other process of the sandbox."""
        if not (self.sandboxed and self.max_procs):
            return
        procs = _processes()
        tasks = sum(max(n, 1) for n in procs.values())
        if tasks < max(16, self.max_procs // 4) or self._thread_starts():
            return
        killed = self.kill_others()
        self.record("procs", tasks=tasks, limit=self.max_procs, killed=killed)

    @staticmethod
    def _thread_starts() -> bool:
        try:
            probe = threading.Thread(target=int, daemon=True)
            probe.start()
        except RuntimeError:                 # "can't start new thread": EAGAIN from clone
            return False
        probe.join()
        return True

    @staticmethod
    def kill_others() -> int:
        """SIGSTOP then SIGKILL every process of the sandbox but this one and init, until none is
        left (a stopped process forks no more); reap our own children. Returns how many."""
        me, killed = os.getpid(), set()
        for _ in range(100):
            others = [p for p, n in _processes().items() if p != me and n > 0]
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in others:
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
            killed.update(others)
            for pid in list(killed):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not others:
                break
            time.sleep(0.01)
        return len(killed)


def cap_notes(progress: str | Path, notebook: str | Path | None = None) -> list[str]:
    """Notes for ``grades.csv`` from ``<progress>.caps``: which cap which cell hit. ``notebook``
    (the graded notebook) names the cells: a grade cell by its grade id, another by its number."""
    path = Path(f"{progress}.caps")
    if not path.exists():
        return []
    labels: dict[str, str] = {}
    if notebook is not None:
        try:
            import nbformat

            code = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
            for i, cell in enumerate(code, start=1):
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                labels.setdefault(cell.source.strip(), gid or f"code cell {i}")
                if gid:                 # a judged grade cell: the kernel ran the judge's stub instead
                    from effcourse.judge.nbgrader import kernel_stub

                    labels.setdefault(kernel_stub(gid).strip(), gid)
        except Exception:  # noqa: BLE001 - unreadable notebook: cells are named by their first line
            pass
    notes = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        cell = str(rec.get("cell") or "").strip()
        first = cell.splitlines()[0][:40] if cell else ""
        label = labels.get(cell) or (f"the cell starting {first!r}" if first else "the kernel")
        mib = int(rec.get("limit") or 0) / 2**20
        if rec.get("cap") == "procs":
            notes.append(f"process limit hit in {label} ({rec.get('tasks')} processes and threads, cap "
                         f"{rec.get('limit')}); its {rec.get('killed')} other processes were killed")
        elif rec.get("cap") == "fsize":
            notes.append(f"file size limit hit in {label} (at most {mib:g} MiB a file)")
        elif rec.get("cap") == "space":
            notes.append(f"{rec.get('mount')} full in {label} (cap {mib:g} MiB)")
    return list(dict.fromkeys(notes))


def cell_digest(source: str) -> str:
    """How the guard names a cell in its report: the first 16 hex digits of its source's SHA-256."""
    return hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()[:16]


def main() -> None:
    _limits()
    progress = os.environ["EFFCOURSE_PROGRESS"]
    fault = open(progress + ".fault", "w")  # noqa: SIM115 - open for the life of the kernel
    faulthandler.enable(file=fault)
    guard_log = open(progress + ".guard", "a", encoding="utf-8")  # noqa: SIM115
    caps_log = open(progress + ".caps", "w", encoding="utf-8")  # noqa: SIM115
    hang_limit = float(os.environ.get("EFFCOURSE_HANG_LIMIT") or 0)
    state: dict = {"start": None, "cell": ""}
    kernel_pid = os.getpid()          # a forked child (a fork bomb's) runs these hooks too: not its job
    argv = sys.argv[1:]
    _drop_privileges(argv)
    sandboxed = os.environ.get("EFFCOURSE_SANDBOX") == "1"
    max_procs = 0
    if sandboxed:
        _own_user_namespace()
        max_procs = _env_int("EFFCOURSE_MAX_PROCS", DEFAULT_MAX_PROCS)
        if max_procs > 0:
            max_procs = _cap(resource.RLIMIT_NPROC, max_procs)
    max_file = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    caps = Caps(caps_log, state, max_procs, 0 if max_file == resource.RLIM_INFINITY else max_file, sandboxed)
    signal.signal(signal.SIGXFSZ, caps.on_sigxfsz)

    def pre(info=None):
        if os.getpid() != kernel_pid:
            return
        state["cell"] = getattr(info, "raw_cell", "") or ""
        with open(progress, "w", encoding="utf-8") as fh:
            json.dump({"cell": state["cell"], "done": False}, fh)
        state["start"] = time.monotonic()

    def post(result=None):
        if os.getpid() != kernel_pid:
            return
        state["start"] = None
        try:
            caps.after_cell(result)
        except Exception:  # noqa: BLE001 - an error here would print to the cell's stderr and cost points
            pass
        with open(progress, "w", encoding="utf-8") as fh:
            json.dump({"cell": state["cell"], "done": True}, fh)

    def report(source, changed):
        if os.getpid() != kernel_pid:
            return
        guard_log.write(json.dumps({"cell": cell_digest(source), "changed": changed}) + "\n")
        guard_log.flush()

    def watchdog():
        while True:
            time.sleep(0.2)
            if state["start"] is not None:
                try:
                    caps.check_procs()
                except Exception:  # noqa: BLE001 - the watchdog must keep watching for hangs
                    pass
            start = state["start"]
            if hang_limit > 0 and start is not None and time.monotonic() - start > hang_limit:
                with open(progress + ".hang", "w") as fh:
                    fh.write(f"{time.monotonic() - start:.1f}")
                os._exit(124)

    def vm_peak():
        if os.getpid() != kernel_pid:
            return
        try:
            with open("/proc/self/status") as src, open(progress + ".mem", "w") as dst:
                dst.write(src.read())
        except OSError:
            pass

    atexit.register(vm_peak)
    # in the sandbox's pid namespace the grader is not our parent: bubblewrap's --die-with-parent
    # ends the kernel with the grader instead of ipykernel's parent poller. parent_handle=1 (init,
    # which never exits) is ipykernel's "no poller"; with 0 it would also print, into the grading
    # log, the banner meant for a kernel started by hand ("Ctrl-C will not work")
    os.environ.pop("JPY_PARENT_PID", None)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance(parent_handle=1)
    app.initialize(argv)
    app.shell.events.register("pre_run_cell", pre)
    from effcourse.grading.guard import install

    install(app.shell, report, os.environ.get("EFFCOURSE_LAB") or None)
    # nbgrader scores a grade cell that writes to stderr 0: a harmless warning (a deprecation inside
    # torch, a learner's idiom) must not cost a correct answer its points
    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"
    app.shell.events.register("post_run_cell", post)
    if hang_limit > 0 or max_procs:
        threading.Thread(target=watchdog, daemon=True, name="effcourse-watchdog").start()
    app.start()


if __name__ == "__main__":
    main()
