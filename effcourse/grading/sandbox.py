"""The grading kernel's sandbox: bubblewrap (``bwrap``, the sandbox Flatpak uses).

``command(argv, ...)`` wraps a kernel command line so that the kernel

* sees only what it must: the system's read-only directories, the Python installation, the
  virtual environment and the effcourse package (read-only), the student's notebook folder
  (read-only), a private writable ``/tmp`` and the folder holding its connection file;
* cannot read the instructor's files: the course directory, the gradebook, the solutions, other
  students' folders and the home directory are simply not mounted;
* has no network (a network namespace of its own, with only loopback) and no view of other
  processes (a pid namespace), and dies with the grader (``--die-with-parent``);
* runs as an unprivileged user: as root, the kernel drops to ``nobody`` (uid 65534) itself once
  it has handed its connection file to that uid (``drop_uid`` below); otherwise it keeps the
  grader's own uid inside a user namespace;
* gets a cleared environment: only the variables of ``ENV_ALLOW`` (and ``LC_*``) that the grader
  has are passed on, so a token or password in the grader's environment never reaches student
  code (``launch`` below starts bwrap itself with that environment only);
* can write only to ``/tmp`` and ``/dev/shm``, each a tmpfs of at most ``tmp_bytes`` (default
  ``DEFAULT_TMP_BYTES``, 512 MiB, or ``EFFCOURSE_TMP_BYTES``; needs bwrap >= 0.7), and to the folder
  of its connection file; ``/var/tmp`` is ``/tmp``, the root and ``/dev`` are read-only.
  The kernel's other caps (file size, processes, memory) are set by ``kernel.py`` itself.

The kernel talks to nbgrader over Unix sockets in the bound folder (``KernelManager.transport =
"ipc"``), since TCP on loopback does not cross network namespaces.
"""
from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

NOBODY = 65534
#: cap of /tmp and of /dev/shm in the sandbox (each a tmpfs of its own); EFFCOURSE_TMP_BYTES overrides
DEFAULT_TMP_BYTES = 512 * 2**20
#: the grader's environment variables the kernel gets (besides LC_*); everything else is cleared
ENV_ALLOW = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH",
    # the grading kernel (kernel.py) and effcourse.setup(): progress files, limits, profile, threads
    "EFFCOURSE_PROGRESS", "EFFCOURSE_HANG_LIMIT", "EFFCOURSE_MEMORY_BYTES", "EFFCOURSE_MAX_PROCS",
    "EFFCOURSE_MAX_FILE_BYTES", "EFFCOURSE_LAB", "EFFCOURSE_THREADS", "EFFCOURSE_SMOKE", "EFFCOURSE_QUICK",
    "EFFCOURSE_JUDGE_SOCKET", "EFFCOURSE_GRADING_TOKEN",
    "NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MPLBACKEND",
    "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8",
    "JPY_SESSION_NAME",
})
ENV_ALLOW_PREFIXES = ("LC_",)
#: system folders every program needs, bound read-only when they exist
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives", "/etc/ssl",
               "/etc/fonts", "/usr/share/fonts")
SYSTEM_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/localtime",
                "/etc/hosts", "/etc/matplotlibrc", "/etc/mime.types")


def bwrap() -> str | None:
    return shutil.which("bwrap")


def allowed_env(environ=None) -> dict[str, str]:
    """The part of ``environ`` (default: this process's environment) a sandboxed kernel may see."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k in ENV_ALLOW or k.startswith(ENV_ALLOW_PREFIXES)}


@functools.lru_cache(maxsize=None)
def supports_size(exe: str | None = None) -> bool:
    """Whether this bwrap can cap a tmpfs (``--size``: bubblewrap >= 0.7, and not in setuid mode)."""
    exe = exe or bwrap()
    if exe is None:
        return False
    if os.stat(exe).st_mode & stat.S_ISUID and os.geteuid() != 0:
        return False             # bwrap refuses --size when it runs setuid
    try:
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in proc.stdout + proc.stderr


def tmp_bytes_default() -> int:
    """``EFFCOURSE_TMP_BYTES`` if set (0: no cap), else ``DEFAULT_TMP_BYTES``."""
    value = os.environ.get("EFFCOURSE_TMP_BYTES", "").strip()
    return int(float(value)) if value else DEFAULT_TMP_BYTES


def python_roots() -> list[Path]:
    """Folders the kernel's Python needs: the base installation, the virtual environment, and
    effcourse's source when it is installed in editable mode (outside site-packages)."""
    import effcourse

    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix)}
    exe = Path(sys.executable)
    roots |= {exe.parent, exe.resolve().parent.parent}
    pkg = Path(effcourse.__file__).resolve().parent
    if not any(r in pkg.parents for r in roots):
        roots.add(pkg)
    # keep only the outermost folders
    return sorted(r for r in roots if not any(o != r and o in r.parents for o in roots))


def command(argv: list[str], *, notebook_dir: Path, kernel_dir: Path, drop_uid: bool | None = None,
            tmp_bytes: int | None = None) -> list[str]:
    """``argv`` wrapped in bwrap; see the module docstring for what the kernel can see and do.

    The command starts with ``python sandbox.py``, which execs bwrap with the environment cleared
    down to ``allowed_env()`` of the environment it is started with (``launch``): the variables a
    kernel gets are known only then (nbgrader sets ``NBGRADER_EXECUTION`` after the kernel spec is
    written). ``tmp_bytes`` caps /tmp and /dev/shm (default ``tmp_bytes_default()``; 0: no cap).
    """
    exe = bwrap()
    if exe is None:
        raise FileNotFoundError("bubblewrap (bwrap) is not installed: `apt install bubblewrap` "
                                "(or run effcourse autograde --no-sandbox, see docs/INSTRUCTOR.md)")
    root = os.geteuid() == 0
    if tmp_bytes is None:
        tmp_bytes = tmp_bytes_default()
    size = ["--size", str(int(tmp_bytes))] if tmp_bytes and supports_size(exe) else []
    cmd = [exe, "--clearenv", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grader"]
    if not root:
        cmd += ["--unshare-user"]
    # bwrap creates a bound path's missing parents as 0700 (/etc for /etc/fonts, /etc/passwd, ...):
    # once the kernel drops to nobody it could read nothing under them (fontconfig then prints
    # "Cannot load default config file" into the grade cells' stderr), so they are made 0755 first
    bound: list[Path] = []

    def parents_readable(target: Path) -> None:
        for parent in reversed(target.parents):
            if parent != Path("/") and parent not in bound and not any(b in parent.parents for b in bound):
                cmd.extend(["--perms", "0755", "--dir", str(parent)])
                bound.append(parent)

    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink() or p.is_dir():
            parents_readable(p)
            cmd += ["--symlink", os.readlink(p), d] if p.is_symlink() else ["--ro-bind", d, d]
            bound.append(p)
    for f in SYSTEM_FILES:
        if Path(f).exists():
            parents_readable(Path(f))
            cmd += ["--ro-bind", f, f]
    # /dev read-only (bwrap's /dev is a tmpfs the sandbox's user owns without a user switch), and
    # the two writable folders capped: a kernel cannot fill the grader's memory through them
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
            "--perms", "1777", *size, "--tmpfs", "/dev/shm", "--perms", "1777", *size, "--tmpfs", "/tmp",
            "--perms", "0755", "--dir", "/var", "--symlink", "../tmp", "/var/tmp"]
    binds = [("--ro-bind", r) for r in python_roots()]
    binds += [("--ro-bind", Path(notebook_dir)), ("--bind", Path(kernel_dir))]
    made = {Path("/"), Path("/tmp"), Path("/var"), Path("/var/tmp"), Path("/proc"), Path("/dev"),
            *map(Path, SYSTEM_DIRS)}
    for _, target in binds:          # bwrap would create missing parents as 0700: unreadable once we drop to nobody
        for parent in reversed(target.parents):
            if parent not in made:
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for flag, target in binds:
        cmd += [flag, str(target), str(target)]
    cmd += ["--chdir", str(notebook_dir),
            "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
            "--setenv", "IPYTHONDIR", "/tmp/ipython", "--setenv", "XDG_CACHE_HOME", "/tmp/cache",
            "--setenv", "TORCHINDUCTOR_CACHE_DIR", "/tmp/inductor", "--setenv", "EFFCOURSE_SANDBOX", "1"]
    if drop_uid if drop_uid is not None else root:
        cmd += ["--setenv", "EFFCOURSE_DROP_UID", str(NOBODY)]
    cmd += ["--remount-ro", "/"]          # bwrap's root is a tmpfs the sandbox's user may own: no writes there
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), *cmd, "--", *argv]


def launch(cmd: list[str], environ=None) -> None:
    """Exec bwrap (``cmd``, as ``command`` builds it after the launcher) with only the allowed
    environment: bwrap itself gets ``allowed_env()`` (so not even ``/proc/<bwrap>/environ`` holds
    anything else), and ``--setenv`` of each allowed variable follows its ``--clearenv``."""
    env = allowed_env(environ)
    at = cmd.index("--clearenv") + 1
    setenv = [x for key in sorted(env) for x in ("--setenv", key, env[key])]
    os.execve(cmd[0], [*cmd[:at], *setenv, *cmd[at:]], env)


@functools.lru_cache(maxsize=None)
def works() -> str | None:
    """``None`` when bwrap runs a Python here; otherwise why not (one line)."""
    if bwrap() is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt install bubblewrap)"
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    cmd = command([sys.executable, "-c", "print('ok')"], notebook_dir=tmp, kernel_dir=tmp)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap failed to start: {err}"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        return f"bwrap cannot start a sandbox here: {(proc.stderr or proc.stdout).strip()[:200]}"
    return None


if __name__ == "__main__":      # the launcher of ``command``: python -I -S sandbox.py BWRAP ARGS...
    launch(sys.argv[1:])
