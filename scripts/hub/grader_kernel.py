"""Kernel spec command of the hub's ``effcourse-grader`` kernel: the course's grading kernel in bubblewrap.

    python grader_kernel.py CONNECTION_FILE      (argv of kernels/effcourse-grader/kernel.json)

nbgrader (formgrader's Autograde, in the instructor's server) starts it in the folder of the
notebook it grades (``autograded/<student>/<lab>``). It sets the grading kernel's environment
(progress file, limits; see ``effcourse/grading/kernel.py``) and execs the sandbox launcher
(``effcourse.grading.sandbox.command``) around ``kernel.py``: the kernel sees that notebook folder
read-only and the connection file's folder, no course directory, no gradebook, no network, and runs
as ``nobody`` when the hub runs as root — the same sandbox ``effcourse autograde`` uses.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from effcourse.grading import kernel as kernel_module
from effcourse.grading import sandbox


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: grader_kernel.py CONNECTION_FILE")
    conn = Path(argv[0]).resolve()
    kernel_dir = conn.parent
    if os.geteuid() == 0:
        os.chown(kernel_dir, sandbox.NOBODY, sandbox.NOBODY)
    timeout = int(os.environ.get("EFFCOURSE_HUB_CELL_TIMEOUT", "300"))
    os.environ.update({
        "EFFCOURSE_PROGRESS": str(kernel_dir / "progress.json"),
        "EFFCOURSE_HANG_LIMIT": str(timeout + max(3, timeout // 10)),
        "EFFCOURSE_MEMORY_BYTES": str(int(float(os.environ.get("EFFCOURSE_HUB_MEMORY_GB", "8")) * 2**30)),
        "EFFCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1", "EFFCOURSE_LAB": Path.cwd().name,
    })
    inner = [sys.executable, str(Path(kernel_module.__file__).resolve()), "-f", str(conn)]
    cmd = sandbox.command(inner, notebook_dir=Path.cwd(), kernel_dir=kernel_dir)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
