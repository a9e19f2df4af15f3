"""The grading kernel's sandbox: bubblewrap (``bwrap``, the sandbox Flatpak uses).

``command(argv, ...)`` wraps a kernel command line so that the kernel

* sees only what it must: the system's read-only directories, the Python installation, the
  virtual environment and the effcourse package (read-only), the student's notebook folder
  (read-only), a private writable ``/tmp`` and the folder holding its connection file;
* cannot read the instructor's files: the course directory, the gradebook, the solutions, other
  students' folders and the home directory are simply not mounted;
* has no network (a network namespace of its own, with only loopback) and no view of other
  processes (a pid namespace), and dies with the grader (``--die-with-parent``);
* runs as an unprivileged user: as root, the kernel drops to ``nobody`` (uid 65534) itself after
  it has read its connection file (``drop_uid`` below); otherwise it keeps the grader's own uid
  inside a user namespace.

The kernel talks to nbgrader over Unix sockets in the bound folder (``KernelManager.transport =
"ipc"``), since TCP on loopback does not cross network namespaces.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

NOBODY = 65534
#: system folders every program needs, bound read-only when they exist
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives", "/etc/ssl",
               "/etc/fonts", "/usr/share/fonts")
SYSTEM_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/localtime",
                "/etc/hosts", "/etc/matplotlibrc", "/etc/mime.types")


def bwrap() -> str | None:
    return shutil.which("bwrap")


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


def command(argv: list[str], *, notebook_dir: Path, kernel_dir: Path, drop_uid: bool | None = None) -> list[str]:
    """``argv`` wrapped in bwrap; see the module docstring for what the kernel can see and do."""
    exe = bwrap()
    if exe is None:
        raise FileNotFoundError("bubblewrap (bwrap) is not installed: `apt install bubblewrap` "
                                "(or run effcourse autograde --no-sandbox, see docs/INSTRUCTOR.md)")
    root = os.geteuid() == 0
    cmd = [exe, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grader"]
    if not root:
        cmd += ["--unshare-user"]
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            cmd += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            cmd += ["--ro-bind", d, d]
    for f in SYSTEM_FILES:
        if Path(f).exists():
            cmd += ["--ro-bind", f, f]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777",
            "--tmpfs", "/var/tmp"]
    binds = [("--ro-bind", r) for r in python_roots()] + [("--ro-bind", Path(notebook_dir)), ("--bind", Path(kernel_dir))]
    made = {Path("/"), Path("/tmp"), Path("/var/tmp"), Path("/proc"), Path("/dev"), *map(Path, SYSTEM_DIRS)}
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
            "--setenv", "TORCHINDUCTOR_CACHE_DIR", "/tmp/inductor"]
    if drop_uid if drop_uid is not None else root:
        cmd += ["--setenv", "EFFCOURSE_DROP_UID", str(NOBODY)]
    return cmd + ["--", *argv]


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
